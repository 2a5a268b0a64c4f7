//! A ledger in a SQLite file for Python (`DVLLedger(path=…)`), written by
//! the node's own storage: the same schema, blocks, Merkle nodes and signed
//! checkpoints, so `qunimbus ledger verify --database-url sqlite:FILE`
//! checks it like a node's.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use qunimbus_ledger::block::Block;
use qunimbus_ledger::checkpoint::{Checkpoint, NoteSigner};
use qunimbus_storage::{DbTarget, Store, StoreOptions};
use tokio::runtime::Runtime;

fn failed(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// A new signing key (C2SP signed-note `PRIVATE+KEY+…` text) named
/// `name`, from 32 random bytes the caller supplies.
#[pyfunction]
pub fn new_signing_key(name: &str, seed: [u8; 32]) -> PyResult<String> {
    NoteSigner::new(name, seed)
        .map(|s| s.to_skey())
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The published verifier key of a signing key.
#[pyfunction]
pub fn verifier_key(signing_key: &str) -> PyResult<String> {
    NoteSigner::from_skey(signing_key.trim())
        .map(|s| s.verifier().to_vkey())
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The open file: its store, driven by a runtime of its own, and the key
/// that signs a checkpoint after every append.
#[pyclass(unsendable, module = "qunimbus._native")]
pub struct SqliteLedger {
    runtime: Runtime,
    store: Option<Store>,
    signer: NoteSigner,
}

impl SqliteLedger {
    fn store(&self) -> PyResult<&Store> {
        self.store
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("the ledger file is closed"))
    }
}

#[pymethods]
impl SqliteLedger {
    /// Opens (creating with a genesis block of `frameworks`) the ledger at
    /// `path`; a stored tree that does not match its last checkpoint is
    /// refused.
    #[new]
    fn new(
        path: &str,
        frameworks: Vec<String>,
        signing_key: &str,
        genesis_timestamp: &str,
    ) -> PyResult<Self> {
        let signer = NoteSigner::from_skey(signing_key.trim())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let names: Vec<&str> = frameworks.iter().map(String::as_str).collect();
        let genesis = Block::genesis(genesis_timestamp, &names)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(failed)?;
        let target = DbTarget::Sqlite(path.into());
        let store = runtime
            .block_on(Store::open(&target, StoreOptions::default(), genesis))
            .map_err(|e| PyValueError::new_err(format!("{path}: {e}")))?;
        Ok(Self {
            runtime,
            store: Some(store),
            signer,
        })
    }

    /// Every block, in index order, as JSON texts (a block that does not
    /// decode is refused, naming it).
    fn blocks(&self) -> PyResult<Vec<String>> {
        let store = self.store()?;
        let mut out = Vec::new();
        loop {
            let page = self
                .runtime
                .block_on(store.reader().blocks(out.len() as u64, 1000))
                .map_err(failed)?;
            if page.is_empty() {
                return Ok(out);
            }
            for block in page {
                out.push(serde_json::to_string(&block.map_err(failed)?).map_err(failed)?);
            }
        }
    }

    /// Seals `draft` (JSON text, as `seal_block` takes it) as the next
    /// block, durably, then signs a checkpoint covering it; returns it.
    fn append(&self, draft: &str) -> PyResult<String> {
        let store = self.store()?;
        let draft = crate::parse_draft(draft)?;
        let block = self
            .runtime
            .block_on(store.append_blocks(vec![draft]))
            .map_err(|e| PyValueError::new_err(e.to_string()))?
            .pop()
            .ok_or_else(|| failed("the store appended nothing"))?;
        let head = store.tree_head();
        let signer = self.signer.clone();
        let signed_at = qunimbus_core::time::rfc3339_micros(qunimbus_core::time::now_micros());
        self.runtime
            .block_on(
                store.sign_checkpoint(head.size, head.root, move |size, root| {
                    let body = Checkpoint {
                        origin: signer.name().to_string(),
                        size,
                        root: *root,
                    }
                    .body();
                    (signer.sign(&body), signed_at)
                }),
            )
            .map_err(failed)?;
        serde_json::to_string(&block).map_err(failed)
    }

    /// The newest signed checkpoint note.
    fn checkpoint(&self) -> PyResult<Option<String>> {
        let store = self.store()?;
        let latest = self
            .runtime
            .block_on(store.reader().latest_checkpoint())
            .map_err(failed)?;
        Ok(latest.map(|c| c.note))
    }

    /// Commits what is queued and closes the file (idempotent).
    fn close(&mut self) {
        if let Some(store) = self.store.take() {
            self.runtime.block_on(store.close());
        }
    }
}
