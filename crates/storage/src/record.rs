//! Stored forms of runs and blocks, and their row mappings.

use crate::StorageError;
use chrono::{DateTime, Utc};
use qunimbus_core::{time::rfc3339_micros, DataClass, RunId, RunMetrics, Telemetry};
use qunimbus_ledger::block::{AttestationStatus, Block, BlockKind};
use qunimbus_valuation::Valuation;
use std::collections::BTreeMap;

/// The columns of `runs` in the order `RunRow` reads them.
pub(crate) const RUN_COLUMNS: &str = "run_id, region, data_class, eta_ent, coherence_variance, \
runtime_hours, eph_delivered, efficiency_multiplier, coherence_penalty, runtime_factor, \
phi_qevf, price_multiplier, market_value, eph_price, coherence_within_threshold, accepted_at, block_index, feed_seq, erasure_salt, policy_sha256";

/// The columns of `blocks` in the order `BlockRow` reads them.
pub(crate) const BLOCK_COLUMNS: &str =
    "idx, timestamp, kind, phi_qevf, eta_ent, region, run_id, attestations, payload, previous_hash, hash";

/// An accepted run: the validated telemetry, its valuation, when the node
/// accepted it and the ledger block that records it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// What the runtime reported.
    pub telemetry: Telemetry,
    /// What the engine computed.
    pub valuation: Valuation,
    /// When the node accepted it (UTC, whole microseconds).
    pub accepted_at: DateTime<Utc>,
    /// Index of its `valuation` block; `None` until stored.
    pub block_index: Option<u64>,
    /// Its gap-free market feed sequence number (from 1); `None` until stored.
    pub feed_seq: Option<u64>,
    /// Personal-class runs: the random salt of the `run_ref` on their block
    /// (kept off the ledger, so erasing it unlinks the block from the run).
    pub erasure_salt: Option<String>,
    /// SHA-256 of the compliance policy that accepted it (`None` for runs
    /// stored before the policy was recorded per run).
    pub policy_sha256: Option<String>,
}

/// The outcome of storing one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// The record is new and now durable, with its block.
    Created(RunRecord),
    /// A record with the same `run_id` was already stored; this is that original.
    Existing(RunRecord),
}

impl RunRecord {
    /// The run's public reference when it is personal-class (its salted
    /// `run_ref`, as on its ledger block); `None` for other runs, and for an
    /// erased run, whose salt is gone.
    pub fn run_ref(&self) -> Option<String> {
        self.erasure_salt.as_deref().map(|salt| {
            qunimbus_ledger::personal::run_reference(salt, self.telemetry.run_id.as_str())
        })
    }

    /// Whether the run's id may be shown only to admin callers.
    pub fn is_personal(&self) -> bool {
        self.telemetry.data_class == DataClass::Personal
    }
}

impl Stored {
    /// The record that is stored under the run id.
    pub fn record(&self) -> &RunRecord {
        match self {
            Self::Created(r) | Self::Existing(r) => r,
        }
    }

    /// Whether the record was newly created.
    pub fn is_created(&self) -> bool {
        matches!(self, Self::Created(_))
    }
}

/// A row of `runs`.
#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    run_id: String,
    region: String,
    data_class: String,
    eta_ent: f64,
    coherence_variance: f64,
    runtime_hours: f64,
    eph_delivered: f64,
    efficiency_multiplier: f64,
    coherence_penalty: f64,
    runtime_factor: f64,
    phi_qevf: f64,
    price_multiplier: f64,
    market_value: f64,
    eph_price: f64,
    coherence_within_threshold: bool,
    accepted_at: String,
    block_index: i64,
    feed_seq: Option<i64>,
    erasure_salt: Option<String>,
    policy_sha256: Option<String>,
}

impl TryFrom<RunRow> for RunRecord {
    type Error = StorageError;

    fn try_from(row: RunRow) -> Result<Self, StorageError> {
        let corrupt =
            |what: &str| StorageError::Corrupt(format!("run {:?}: bad {what}", row.run_id));
        Ok(Self {
            telemetry: Telemetry {
                run_id: RunId::parse(&row.run_id).map_err(|_| corrupt("run_id"))?,
                region: row.region.clone(),
                data_class: DataClass::parse(&row.data_class)
                    .ok_or_else(|| corrupt("data_class"))?,
                metrics: RunMetrics {
                    eta_ent: row.eta_ent,
                    coherence_variance: row.coherence_variance,
                    runtime_hours: row.runtime_hours,
                    eph_delivered: row.eph_delivered,
                },
            },
            valuation: Valuation {
                efficiency_multiplier: row.efficiency_multiplier,
                coherence_penalty: row.coherence_penalty,
                runtime_factor: row.runtime_factor,
                phi_qevf: row.phi_qevf,
                price_multiplier: row.price_multiplier,
                market_value: row.market_value,
                eph_price: row.eph_price,
                coherence_within_threshold: row.coherence_within_threshold,
            },
            accepted_at: DateTime::parse_from_rfc3339(&row.accepted_at)
                .map_err(|_| corrupt("accepted_at"))?
                .with_timezone(&Utc),
            block_index: Some(u64::try_from(row.block_index).map_err(|_| corrupt("block_index"))?),
            feed_seq: row
                .feed_seq
                .map(|s| u64::try_from(s).map_err(|_| corrupt("feed_seq")))
                .transpose()?,
            erasure_salt: row.erasure_salt,
            policy_sha256: row.policy_sha256,
        })
    }
}

impl RunRecord {
    pub(crate) fn accepted_at_text(&self) -> String {
        rfc3339_micros(self.accepted_at)
    }
}

/// A row of `blocks`.
#[derive(sqlx::FromRow)]
pub(crate) struct BlockRow {
    idx: i64,
    timestamp: String,
    kind: String,
    phi_qevf: Option<f64>,
    eta_ent: Option<f64>,
    region: Option<String>,
    run_id: Option<String>,
    attestations: String,
    payload: Option<String>,
    previous_hash: String,
    hash: String,
}

impl BlockRow {
    /// Reads a row of `SELECT {BLOCK_COLUMNS}` through rusqlite (the bulk
    /// scan); a column of the wrong type is the block's corruption.
    pub(crate) fn from_sqlite(row: &rusqlite::Row<'_>) -> Result<Self, StorageError> {
        let idx: i64 = row
            .get(0)
            .map_err(|e| StorageError::Corrupt(format!("block index: {e}")))?;
        let corrupt = |e: rusqlite::Error| StorageError::CorruptBlock {
            index: u64::try_from(idx).unwrap_or(0),
            reason: format!("stored column does not decode: {e}"),
        };
        Ok(Self {
            idx,
            timestamp: row.get(1).map_err(corrupt)?,
            kind: row.get(2).map_err(corrupt)?,
            phi_qevf: row.get(3).map_err(corrupt)?,
            eta_ent: row.get(4).map_err(corrupt)?,
            region: row.get(5).map_err(corrupt)?,
            run_id: row.get(6).map_err(corrupt)?,
            attestations: row.get(7).map_err(corrupt)?,
            payload: row.get(8).map_err(corrupt)?,
            previous_hash: row.get(9).map_err(corrupt)?,
            hash: row.get(10).map_err(corrupt)?,
        })
    }
}

impl TryFrom<BlockRow> for Block {
    type Error = StorageError;

    /// Rebuilds the block exactly as stored; a row that does not decode is
    /// reported with its index (tampering shows up here or in the hash check).
    fn try_from(row: BlockRow) -> Result<Self, StorageError> {
        let index = u64::try_from(row.idx).map_err(|_| StorageError::CorruptBlock {
            index: 0,
            reason: format!("negative index {}", row.idx),
        })?;
        let corrupt = |reason: String| StorageError::CorruptBlock { index, reason };
        let kind = BlockKind::parse(&row.kind)
            .ok_or_else(|| corrupt(format!("unknown kind {:?}", row.kind)))?;
        let compliance_attestations: BTreeMap<String, AttestationStatus> =
            serde_json::from_str(&row.attestations)
                .map_err(|e| corrupt(format!("attestations are not valid: {e}")))?;
        let payload = row
            .payload
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>)
            .transpose()
            .map_err(|e| corrupt(format!("payload is not valid JSON: {e}")))?;
        Ok(Block {
            index,
            timestamp: row.timestamp,
            kind,
            phi_qevf: row.phi_qevf,
            eta_ent: row.eta_ent,
            compliance_attestations,
            region: row.region,
            run_id: row.run_id,
            payload,
            previous_hash: row.previous_hash,
            hash: row.hash,
        })
    }
}

/// The stored text of a block's attestation map and payload.
pub(crate) fn block_json_columns(block: &Block) -> Result<(String, Option<String>), StorageError> {
    let attestations = serde_json::to_string(&block.compliance_attestations)
        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let payload = block
        .payload
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
    Ok((attestations, payload))
}
