//! `qunimbus._native`: the node's own valuation engine and ledger code for
//! Python (SPEC §13), so a figure computed in Python is the figure the node
//! computes, to the last bit, and a proof checked in Python is checked by
//! the same RFC 6962 and signed-note code; the Trust Kernel's health,
//! trust, rollout-plan and policy rules are the node's too ([`trust`]).
//! Blocks cross the boundary as JSON text (the package's Python layer
//! converts dicts), numbers as f64.

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use qunimbus_core::RunMetrics;
use qunimbus_ledger::block::{Block, BlockDraft, GENESIS_PREVIOUS_HASH};
use qunimbus_ledger::checkpoint::NoteVerifier;
use qunimbus_ledger::merkle::{self, Hash};
use qunimbus_ledger::verify::ChainVerifier;
use qunimbus_valuation::{PhiStats, ValuationParams};
use serde_json::Value;

mod store;
mod trust;

create_exception!(
    _native,
    VerificationError,
    PyValueError,
    "A block, chain, proof or checkpoint that does not verify; the message says why."
);

/// The valuation engine of SPEC §3 with validated parameters.
#[pyclass(frozen, module = "qunimbus._native")]
struct ValuationEngine {
    engine: qunimbus_valuation::ValuationEngine,
}

#[pymethods]
impl ValuationEngine {
    #[new]
    #[pyo3(signature = (base_phi_value=1000.0, eta_baseline=0.95, coherence_variance_threshold=0.02, runtime_cap_hours=120.0, price_sensitivity=10.0))]
    fn new(
        base_phi_value: f64,
        eta_baseline: f64,
        coherence_variance_threshold: f64,
        runtime_cap_hours: f64,
        price_sensitivity: f64,
    ) -> PyResult<Self> {
        let params = ValuationParams {
            base_phi_value,
            eta_baseline,
            coherence_variance_threshold,
            runtime_cap_hours,
            price_sensitivity,
        };
        qunimbus_valuation::ValuationEngine::new(params)
            .map(|engine| Self { engine })
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The parameters in force.
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, self.engine.params())
    }

    /// Prices one run (inputs in SPEC §2 ranges, else `ValueError` naming
    /// the field): every factor, phi, price multiplier, market value, EPH
    /// price and whether the coherence variance is within the threshold.
    fn value<'py>(
        &self,
        py: Python<'py>,
        eta_ent: f64,
        coherence_variance: f64,
        runtime_hours: f64,
        eph_delivered: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let metrics = RunMetrics {
            eta_ent,
            coherence_variance,
            runtime_hours,
            eph_delivered,
        };
        metrics
            .validate()
            .map_err(|e| PyValueError::new_err(e.message))?;
        to_python(py, &self.engine.value(&metrics))
    }
}

/// Count, mean, min, max, p50 and p95 (nearest rank) of `values`, as the
/// node's history reports them (`None` for an empty list).
#[pyfunction]
fn phi_stats(py: Python<'_>, values: Vec<f64>) -> PyResult<Bound<'_, PyAny>> {
    to_python(py, &PhiStats::of(values))
}

/// A value the crates serialize, as the same plain Python value (a dict
/// with the struct's field names; serde's float round trip keeps every f64
/// exact), so Python sees every field the node's JSON has.
fn to_python<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

fn invalid(e: impl std::fmt::Display) -> PyErr {
    VerificationError::new_err(e.to_string())
}

/// Parses a block's JSON text; a missing `hash` is allowed (and set empty).
fn parse_block(text: &str) -> PyResult<Block> {
    let mut value: Value = serde_json::from_str(text).map_err(invalid)?;
    if let Some(obj) = value.as_object_mut() {
        obj.entry("hash")
            .or_insert_with(|| Value::String(String::new()));
    }
    Block::from_json(&value).map_err(invalid)
}

fn to_text(block: &Block) -> PyResult<String> {
    serde_json::to_string(block).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// `hex(SHA-256(JCS(block without "hash")))` of a block's JSON text.
#[pyfunction]
fn block_hash(block: &str) -> PyResult<String> {
    parse_block(block)?.compute_hash().map_err(invalid)
}

/// The block's RFC 6962 leaf hash (over the JCS bytes of the whole block).
#[pyfunction]
fn leaf_hash<'py>(py: Python<'py>, block: &str) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = parse_block(block)?.leaf_bytes().map_err(invalid)?;
    Ok(PyBytes::new(py, &merkle::leaf_hash(&bytes)))
}

/// The block's row of the Grafana export (JSON text), as the node's
/// `GET /v1/ledger/export/grafana` renders it.
#[pyfunction]
fn grafana_row(block: &str) -> PyResult<String> {
    let row = qunimbus_ledger::grafana::GrafanaRow::of(&parse_block(block)?);
    serde_json::to_string(&row).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// A block draft from JSON text: `timestamp`, `kind`, `phi_qevf`,
/// `eta_ent`, `compliance_attestations` and optionally `region`, `run_id`,
/// `payload`, checked by the node's block parser.
pub(crate) fn parse_draft(draft: &str) -> PyResult<BlockDraft> {
    let mut value: Value = serde_json::from_str(draft).map_err(invalid)?;
    let obj = value
        .as_object_mut()
        .ok_or_else(|| invalid("a block draft must be a JSON object"))?;
    for key in ["index", "previous_hash", "hash"] {
        if obj.contains_key(key) {
            return Err(invalid(format!(
                "a block draft has no {key:?}: the ledger sets it"
            )));
        }
    }
    obj.insert("index".into(), 0.into());
    obj.insert("previous_hash".into(), String::new().into());
    obj.insert("hash".into(), String::new().into());
    let parsed = Block::from_json(&value).map_err(invalid)?;
    Ok(BlockDraft {
        timestamp: parsed.timestamp,
        kind: parsed.kind,
        phi_qevf: parsed.phi_qevf,
        eta_ent: parsed.eta_ent,
        compliance_attestations: parsed.compliance_attestations,
        region: parsed.region,
        run_id: parsed.run_id,
        payload: parsed.payload,
    })
}

/// Seals a block: `draft` (see [`parse_draft`]) placed at `index` after
/// `previous_hash`, with its hash; by the node's rules (genesis only at 0,
/// finite numbers, size limit).
#[pyfunction]
fn seal_block(draft: &str, index: u64, previous_hash: &str) -> PyResult<String> {
    to_text(&Block::seal(parse_draft(draft)?, index, previous_hash).map_err(invalid)?)
}

/// The genesis block at `timestamp` attesting `frameworks` (status `genesis`).
#[pyfunction]
fn genesis_block(timestamp: &str, frameworks: Vec<String>) -> PyResult<String> {
    let names: Vec<&str> = frameworks.iter().map(String::as_str).collect();
    to_text(&Block::genesis(timestamp, &names).map_err(invalid)?)
}

/// Verifies a whole chain of blocks (JSON texts, index order) as the node
/// does, genesis included: `{"ok", "size", "root", "failure"}` with the
/// first bad block's `{"index", "reason"}`, and the Merkle root (bytes) of
/// the verified prefix.
#[pyfunction]
fn verify_chain<'py>(py: Python<'py>, blocks: Vec<String>) -> PyResult<Bound<'py, PyDict>> {
    let mut verifier = ChainVerifier::new();
    let mut failure = None;
    for (position, text) in blocks.iter().enumerate() {
        let pushed = match parse_block(text) {
            Ok(block) => verifier.push(&block).map_err(|f| (f.index, f.reason)),
            Err(e) => Err((position as u64, e.to_string())),
        };
        if let Err((index, reason)) = pushed {
            failure = Some((index, reason));
            break;
        }
    }
    let dict = PyDict::new(py);
    dict.set_item("ok", failure.is_none())?;
    dict.set_item("size", verifier.size())?;
    dict.set_item("root", PyBytes::new(py, &verifier.root()))?;
    match failure {
        Some((index, reason)) => {
            let f = PyDict::new(py);
            f.set_item("index", index)?;
            f.set_item("reason", reason)?;
            dict.set_item("failure", f)?;
        }
        None => dict.set_item("failure", py.None())?,
    }
    Ok(dict)
}

fn hash_of(bytes: &[u8], what: &str) -> PyResult<Hash> {
    bytes
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("{what} must be 32 bytes, got {}", bytes.len())))
}

fn hashes_of(list: &[Vec<u8>]) -> PyResult<Vec<Hash>> {
    list.iter().map(|h| hash_of(h, "each proof hash")).collect()
}

/// Checks an RFC 6962 inclusion proof of `leaf` (a leaf hash) at `index` in
/// the tree of `size` leaves with root `root`; raises `VerificationError`.
#[pyfunction]
fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: Vec<u8>,
    proof: Vec<Vec<u8>>,
    root: Vec<u8>,
) -> PyResult<()> {
    merkle::verify_inclusion(
        index,
        size,
        &hash_of(&leaf, "leaf")?,
        &hashes_of(&proof)?,
        &hash_of(&root, "root")?,
    )
    .map_err(invalid)
}

/// Checks an RFC 6962 consistency proof from the tree of `first` leaves to
/// the tree of `second`; raises `VerificationError`.
#[pyfunction]
fn verify_consistency(
    first: u64,
    second: u64,
    first_root: Vec<u8>,
    second_root: Vec<u8>,
    proof: Vec<Vec<u8>>,
) -> PyResult<()> {
    merkle::verify_consistency(
        first,
        second,
        &hash_of(&first_root, "first_root")?,
        &hash_of(&second_root, "second_root")?,
        &hashes_of(&proof)?,
    )
    .map_err(invalid)
}

/// Verifies a signed checkpoint note against `verifier_key` (what
/// `GET /v1/ledger/public-key` serves) and returns `{"origin", "size",
/// "root"}`; raises `VerificationError` naming what is wrong.
#[pyfunction]
fn verify_checkpoint<'py>(
    py: Python<'py>,
    note: &str,
    verifier_key: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let verifier = NoteVerifier::from_vkey(verifier_key.trim()).map_err(invalid)?;
    let body = verifier.verify(note).map_err(invalid)?;
    let checkpoint = qunimbus_ledger::checkpoint::Checkpoint::parse_body(&body).map_err(invalid)?;
    let dict = PyDict::new(py);
    dict.set_item("origin", checkpoint.origin)?;
    dict.set_item("size", checkpoint.size)?;
    dict.set_item("root", PyBytes::new(py, &checkpoint.root))?;
    Ok(dict)
}

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ValuationEngine>()?;
    trust::register(m)?;
    m.add_class::<store::SqliteLedger>()?;
    m.add_function(wrap_pyfunction!(store::new_signing_key, m)?)?;
    m.add_function(wrap_pyfunction!(store::verifier_key, m)?)?;
    m.add("VerificationError", m.py().get_type::<VerificationError>())?;
    m.add("GENESIS_PREVIOUS_HASH", GENESIS_PREVIOUS_HASH)?;
    m.add(
        "DEFAULT_FRAMEWORKS",
        qunimbus_ledger::block::DEFAULT_FRAMEWORKS.to_vec(),
    )?;
    for function in [
        wrap_pyfunction!(phi_stats, m)?,
        wrap_pyfunction!(block_hash, m)?,
        wrap_pyfunction!(leaf_hash, m)?,
        wrap_pyfunction!(grafana_row, m)?,
        wrap_pyfunction!(seal_block, m)?,
        wrap_pyfunction!(genesis_block, m)?,
        wrap_pyfunction!(verify_chain, m)?,
        wrap_pyfunction!(verify_inclusion, m)?,
        wrap_pyfunction!(verify_consistency, m)?,
        wrap_pyfunction!(verify_checkpoint, m)?,
    ] {
        m.add_function(function)?;
    }
    Ok(())
}
