//! The node's side of the verification ledger: the signing key, the genesis
//! block, valuation block drafts, the checkpoint signer task and chain
//! verification (shared by `GET /v1/ledger/verify` and `qunimbus ledger verify`).

use crate::config::LedgerConfig;
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_ledger::audit::{LedgerAudit, SignedCheckpoint};
use qunimbus_ledger::block::{AttestationStatus, Block, BlockDigests, BlockDraft, BlockKind};
use qunimbus_ledger::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use qunimbus_ledger::merkle::Hash;
use qunimbus_ledger::personal::run_reference;
use qunimbus_storage::{BlockBatch, Reader, RunRecord, StorageError, Store};
use rand::RngCore;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::watch;

/// File name of the generated signing key inside the data dir.
pub const SIGNING_KEY_FILE: &str = "ledger.key";

/// Failure to load or create the signing key.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("signing key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is not a note signing key.
    #[error("signing key file {path} is not a valid note key: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The configured origin differs from the key's name.
    #[error("ledger.origin {configured:?} differs from the signing key's name {key:?}; the origin of an existing log cannot change")]
    OriginMismatch {
        /// Configured origin.
        configured: String,
        /// Name in the key file.
        key: String,
    },
}

/// Loads the checkpoint signing key from `ledger.signing_key_file` or
/// `DATA_DIR/ledger.key`, generating the latter (mode 0600) on first start.
/// The key's name is the log's origin.
pub fn load_or_generate_signer(
    config: &LedgerConfig,
    data_dir: &Path,
) -> Result<NoteSigner, KeyError> {
    let (path, may_generate) = match &config.signing_key_file {
        Some(path) => (path.clone(), false),
        None => (data_dir.join(SIGNING_KEY_FILE), true),
    };
    let io = |source| KeyError::Io {
        path: path.clone(),
        source,
    };
    let malformed = |message: String| KeyError::Malformed {
        path: path.clone(),
        message,
    };
    let signer = match std::fs::read_to_string(&path) {
        Ok(text) => NoteSigner::from_skey(text.trim()).map_err(|e| malformed(e.to_string()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_generate => {
            let mut seed = [0u8; 32];
            rand::rng().fill_bytes(&mut seed);
            let name = match &config.origin {
                Some(origin) => origin.clone(),
                None => default_origin(&seed).map_err(|e| malformed(e.to_string()))?,
            };
            let signer = NoteSigner::new(&name, seed).map_err(|e| malformed(e.to_string()))?;
            crate::credentials::write_private(&path, &format!("{}\n", signer.to_skey()))
                .map_err(io)?;
            tracing::info!(path = %path.display(), origin = %name, "generated the ledger signing key");
            signer
        }
        Err(e) => return Err(io(e)),
    };
    if let Some(origin) = &config.origin {
        if origin != signer.name() {
            return Err(KeyError::OriginMismatch {
                configured: origin.clone(),
                key: signer.name().to_string(),
            });
        }
    }
    Ok(signer)
}

/// `qunimbus/<first 8 hex digits of the public key's key id>`: unique per key.
fn default_origin(seed: &[u8; 32]) -> Result<String, qunimbus_ledger::LedgerError> {
    let probe = NoteSigner::new("qunimbus", *seed)?;
    let id = qunimbus_ledger::hex::encode(&probe.key_id());
    Ok(format!("qunimbus/{id}"))
}

/// Blocks of one kind read per page by [`newest_block_where`].
const NEWEST_PAGE: u32 = 256;

/// The newest block of `kind` that `matches`, paging back through that
/// kind (the newest page almost always holds it).
pub async fn newest_block_where(
    store: &qunimbus_storage::Store,
    kind: &str,
    matches: impl Fn(&Block) -> bool,
) -> Result<Option<Block>, qunimbus_storage::StorageError> {
    // Indexes are stored as signed 64-bit integers.
    let mut before = i64::MAX.unsigned_abs();
    loop {
        let page = store
            .reader()
            .blocks_of_kind_before(kind, before, NEWEST_PAGE)
            .await?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        before = last.index;
        if let Some(found) = page.into_iter().find(|b| matches(b)) {
            return Ok(Some(found));
        }
    }
}

/// A block recording an event of the node (a change of its configuration,
/// a fill, a risk decision), pending attestation under `frameworks`.
pub fn event_draft(
    kind: BlockKind,
    frameworks: &[String],
    payload: serde_json::Value,
) -> BlockDraft {
    BlockDraft {
        timestamp: rfc3339_micros(now_micros()),
        kind,
        phi_qevf: None,
        eta_ent: None,
        compliance_attestations: frameworks
            .iter()
            .map(|f| (f.clone(), AttestationStatus::Pending))
            .collect(),
        region: None,
        run_id: None,
        payload: Some(payload),
    }
}

/// The genesis block for a new ledger.
pub fn genesis_block(frameworks: &[String]) -> Result<Block, qunimbus_ledger::LedgerError> {
    let names: Vec<&str> = frameworks.iter().map(String::as_str).collect();
    Block::genesis(&rfc3339_micros(now_micros()), &names)
}

/// The draft of the `valuation` block recording `record`, accepted by
/// `policy`: `verified` for the frameworks the policy's rules evidence (the
/// payload names the policy's digest and those rules), `pending` for the rest.
pub fn valuation_draft(
    record: &RunRecord,
    frameworks: &[String],
    policy: &crate::trust::InForce,
) -> BlockDraft {
    let verified = &policy.enforced;
    let t = &record.telemetry;
    let v = &record.valuation;
    let mut payload = serde_json::json!({
        "data_class": t.data_class.as_str(),
        "coherence_variance": t.metrics.coherence_variance,
        "runtime_hours": t.metrics.runtime_hours,
        "eph_delivered": t.metrics.eph_delivered,
        "efficiency_multiplier": v.efficiency_multiplier,
        "coherence_penalty": v.coherence_penalty,
        "runtime_factor": v.runtime_factor,
        "price_multiplier": v.price_multiplier,
        "market_value": v.market_value,
        "eph_price": v.eph_price,
        "coherence_within_threshold": v.coherence_within_threshold,
        // What `verified` rests on: the policy that accepted the run and
        // the acceptance rules it passed.
        "policy_sha256": &*policy.sha256,
        "verified_by": &*policy.verified_by,
    });
    // Personal data never goes on the ledger in clear (SPEC §4): the block
    // carries a salted reference instead of the run id.
    let run_id = match &record.erasure_salt {
        Some(salt) => {
            payload["run_ref"] = run_reference(salt, t.run_id.as_str()).into();
            None
        }
        None => Some(t.run_id.as_str().to_string()),
    };
    BlockDraft {
        timestamp: rfc3339_micros(record.accepted_at),
        kind: BlockKind::Valuation,
        phi_qevf: Some(v.phi_qevf),
        eta_ent: Some(t.metrics.eta_ent),
        compliance_attestations: frameworks
            .iter()
            .map(|f| {
                let status = if verified.contains(f) {
                    AttestationStatus::Verified
                } else {
                    AttestationStatus::Pending
                };
                (f.clone(), status)
            })
            .collect::<BTreeMap<_, _>>(),
        region: Some(t.region.clone()),
        run_id,
        payload: Some(payload),
    }
}

/// Signs a checkpoint whenever the tree has grown, at most once per
/// `interval`, until `stop` is notified. A refused or failed checkpoint is
/// logged and counted; the log keeps accepting appends.
pub async fn run_checkpointer(
    store: Arc<Store>,
    signer: Arc<NoteSigner>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    on_result: impl Fn(Result<u64, &StorageError>) + Send + 'static,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
        let head = store.tree_head();
        if head.checkpoint_size == Some(head.size) {
            continue;
        }
        match sign_checkpoint(&store, &signer, head.size, head.root).await {
            Ok(()) => on_result(Ok(head.size)),
            Err(e) => {
                tracing::error!(error = %e, size = head.size, "checkpoint refused");
                on_result(Err(&e));
            }
        }
    }
}

/// Asks the store to sign and record a checkpoint of `size`/`root`; the
/// signing closure runs only after the store has checked consistency.
async fn sign_checkpoint(
    store: &Store,
    signer: &Arc<NoteSigner>,
    size: u64,
    root: Hash,
) -> Result<(), StorageError> {
    let signer = signer.clone();
    store
        .sign_checkpoint(size, root, move |size, root| {
            let checkpoint = Checkpoint {
                origin: signer.name().to_string(),
                size,
                root: *root,
            };
            (
                signer.sign(&checkpoint.body()),
                rfc3339_micros(now_micros()),
            )
        })
        .await
        .map(|_| ())
}

pub use qunimbus_ledger::audit::{
    AuditFailure as VerifyFailureReport, AuditOutcome, SignatureCheck,
};

/// The result of checking every block, link, stored Merkle node and the
/// root against the newest signed checkpoint.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyReport {
    /// True when nothing is wrong.
    pub ok: bool,
    /// Blocks read and checked.
    pub blocks_checked: u64,
    /// Stored Merkle nodes recomputed from the blocks and compared.
    pub nodes_checked: u64,
    /// Size of the newest signed checkpoint, if any.
    pub checkpoint_size: Option<u64>,
    /// Whether the checkpoint's signature was verified.
    pub signature: Option<SignatureCheck>,
    /// The first failure, when not ok.
    pub failure: Option<VerifyFailureReport>,
    /// RFC 3161 tokens of checkpoints, when they were checked.
    pub timestamps: Option<TimestampReport>,
    /// When verification finished (RFC 3339).
    pub checked_at: String,
    /// How long it took.
    pub duration_ms: u64,
}

impl VerifyReport {
    /// The report of an audit that took `took`.
    pub fn of(outcome: AuditOutcome, took: Duration) -> Self {
        Self {
            ok: outcome.ok,
            blocks_checked: outcome.blocks_checked,
            nodes_checked: outcome.nodes_checked,
            checkpoint_size: outcome.checkpoint_size,
            signature: outcome.signature,
            failure: outcome.failure,
            timestamps: None,
            checked_at: rfc3339_micros(now_micros()),
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

type Digest = Option<Result<BlockDigests, qunimbus_ledger::LedgerError>>;

/// Computes the digests of every decodable block of `batch` on all cores.
fn parallel_digests(batch: &[Result<Block, StorageError>]) -> Vec<Digest> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = batch.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = batch
            .chunks(chunk)
            .map(|part| {
                let worker = scope.spawn(move || {
                    part.iter()
                        .map(|b| b.as_ref().ok().map(Block::digests))
                        .collect::<Vec<_>>()
                });
                (part.len(), worker)
            })
            .collect();
        // A worker that died leaves `None`s: those blocks are hashed again, in order.
        workers
            .into_iter()
            .flat_map(|(len, w)| w.join().unwrap_or_else(|_| vec![None; len]))
            .collect()
    })
}

/// A batch of the scan with the digests of its blocks.
type DigestedBatch = (BlockBatch, Vec<Digest>);

/// Starts hashing `batch` on all cores, off the async threads.
fn digest_in_background(batch: BlockBatch) -> tokio::task::JoinHandle<DigestedBatch> {
    tokio::task::spawn_blocking(move || {
        let digests = parallel_digests(&batch.blocks);
        (batch, digests)
    })
}

/// Audits the stored ledger ([`LedgerAudit`]): every block's hash and link,
/// the genesis block, every stored Merkle node the blocks determine, and
/// the root against the newest signed checkpoint (and its signature, when
/// `verifier` is given). Three stages overlap: the scan reads batches
/// ahead, the next batch is hashed on all cores while this one is audited.
/// `progress` is called with the blocks checked so far.
pub async fn verify_ledger(
    reader: &Reader,
    verifier: Option<&NoteVerifier>,
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport, StorageError> {
    let started = Instant::now();
    let checkpoint = reader.latest_checkpoint().await?.map(|c| SignedCheckpoint {
        size: c.size,
        root: c.root,
        note: c.note,
    });
    let mut audit = LedgerAudit::new(checkpoint, verifier);
    let mut batches = reader.scan(true);
    let mut hashing = match batches.recv().await {
        Some(batch) => Some(digest_in_background(batch?)),
        None => None,
    };
    while let Some(task) = hashing.take() {
        let (batch, digests) = task
            .await
            .map_err(|e| StorageError::Corrupt(format!("verification worker failed: {e}")))?;
        if let Some(next) = batches.recv().await {
            hashing = Some(digest_in_background(next?));
        }
        audit_batch(&mut audit, batch, digests)?;
        progress(audit.size());
        if audit.failed() {
            break;
        }
    }
    Ok(VerifyReport::of(audit.finish(), started.elapsed()))
}

/// Pushes one hashed batch through the audit and compares the stored nodes
/// its blocks completed.
fn audit_batch(
    audit: &mut LedgerAudit,
    BlockBatch { blocks, nodes }: BlockBatch,
    digests: Vec<Digest>,
) -> Result<(), StorageError> {
    for (item, digest) in blocks.into_iter().zip(digests) {
        let block = match item {
            Ok(block) => block,
            Err(StorageError::CorruptBlock { index, reason }) => {
                audit.fail(index, reason);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if !audit.push(&block, digest.and_then(Result::ok).as_ref()) {
            return Ok(());
        }
    }
    audit.compare_stored_nodes(|id| nodes.get(&id).copied());
    Ok(())
}

pub use qunimbus_ledger::grafana::{grafana_row, GrafanaRow};

/// The result of checking checkpoints' RFC 3161 tokens.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimestampReport {
    /// Tokens checked.
    pub verified: u64,
    /// Checkpoints that have no token yet (not a failure).
    pub pending: u64,
    /// The first token that failed, by checkpoint tree size.
    pub failure: Option<TimestampFailure>,
}

/// A checkpoint whose token does not verify.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimestampFailure {
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// Why.
    pub reason: String,
}

/// Checkpoints read per query while checking tokens.
const TIMESTAMP_BATCH: u32 = 1000;

/// Verifies the RFC 3161 token of every checkpoint that has one (or only
/// the newest, with `latest_only`) against `anchors`: imprint = SHA-256 of
/// the checkpoint body, signature, signing certificate, chain, EKU and time.
pub async fn verify_timestamps(
    reader: &Reader,
    anchors: &qunimbus_timestamp::TrustAnchors,
    latest_only: bool,
) -> Result<TimestampReport, StorageError> {
    let mut report = TimestampReport {
        verified: 0,
        pending: 0,
        failure: None,
    };
    let mut from = match (latest_only, reader.latest_checkpoint().await?) {
        (true, Some(latest)) => latest.size,
        (true, None) => return Ok(report),
        (false, _) => 0,
    };
    loop {
        let batch = reader
            .checkpoint_timestamps(from, TIMESTAMP_BATCH, false)
            .await?;
        let Some(last) = batch.last() else { break };
        from = last.size + 1;
        for checkpoint in batch {
            let Some(token) = &checkpoint.token else {
                report.pending += 1;
                continue;
            };
            let checked = crate::tsa::checkpoint_digest(&checkpoint.note)
                .ok_or_else(|| "the stored checkpoint note has no body".to_string())
                .and_then(|digest| {
                    qunimbus_timestamp::verify_token(token, &digest, None, anchors)
                        .map_err(|e| e.to_string())
                });
            match checked {
                Ok(_) => report.verified += 1,
                Err(reason) => {
                    report.failure = Some(TimestampFailure {
                        tree_size: checkpoint.size,
                        reason,
                    });
                    return Ok(report);
                }
            }
        }
    }
    Ok(report)
}

impl VerifyReport {
    /// Adds the token check; a token that fails makes the report fail.
    pub fn with_timestamps(mut self, timestamps: TimestampReport) -> Self {
        if timestamps.failure.is_some() {
            self.ok = false;
        }
        self.timestamps = Some(timestamps);
        self
    }
}
