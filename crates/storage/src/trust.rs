//! Reads of the Trust Kernel's tables and of the evidence its compliance
//! evaluation needs. Writes go through the writer with the blocks that
//! record them ([`crate::Store::append_blocks_with`]).

use crate::backend::dispatch;
use crate::record::BlockRow;
use crate::{Reader, StorageError};
use qunimbus_ledger::block::Block;

/// A region's persisted settings.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RegionRecord {
    /// Canonical name.
    pub name: String,
    /// `active`, `degraded`, `down` or `draining`.
    pub status: String,
    /// When the node started tracking it (Unix µs).
    pub tracked_since: i64,
    /// Operator's trust override, if any.
    pub trust_override: Option<f64>,
    /// Why the override was set.
    pub override_reason: Option<String>,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// A recorded failure or recovery.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RegionEventRecord {
    /// Region name.
    pub region: String,
    /// `failure` or `recovery`.
    pub kind: String,
    /// When it happened (Unix µs).
    pub at_us: i64,
    /// The `health` block recording it.
    pub block_index: i64,
    /// `operator` or `detected`.
    pub source: String,
    /// When the node recorded it (Unix µs; `None` before that was kept).
    pub recorded_at_us: Option<i64>,
}

/// Stored runs of one data class in one region.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredRunCount {
    /// `public`, `personal` or `itar`.
    pub data_class: String,
    /// Region name.
    pub region: String,
    /// SHA-256 of the policy that accepted them (`None`: stored before
    /// policies were recorded per run).
    pub policy_sha256: Option<String>,
    /// When the earliest of them was accepted (RFC 3339).
    pub first_accepted_at: String,
    /// How many.
    pub count: i64,
}

/// A compliance policy that has been in force.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PolicyRecord {
    /// SHA-256 of its text (hex).
    pub sha256: String,
    /// The policy text.
    pub text: String,
    /// When it was first recorded (RFC 3339).
    pub recorded_at: String,
}

impl Reader {
    /// Every persisted region.
    pub async fn regions(&self) -> Result<Vec<RegionRecord>, StorageError> {
        Ok(dispatch!(&self.pool, pool => {
            sqlx::query_as("SELECT name, status, tracked_since, trust_override, override_reason, updated_at FROM regions ORDER BY name")
                .fetch_all(pool)
                .await
        })?)
    }

    /// Every recorded health event, oldest recorded first.
    pub async fn region_events(&self) -> Result<Vec<RegionEventRecord>, StorageError> {
        Ok(dispatch!(&self.pool, pool => {
            sqlx::query_as("SELECT region, kind, at_us, block_index, source, recorded_at_us FROM region_events ORDER BY id")
                .fetch_all(pool)
                .await
        })?)
    }

    /// Every rollout's JSON state, oldest first.
    pub async fn rollouts(&self) -> Result<Vec<String>, StorageError> {
        Ok(dispatch!(&self.pool, pool => {
            sqlx::query_scalar("SELECT state FROM rollouts ORDER BY created_at, id")
                .fetch_all(pool)
                .await
        })?)
    }

    /// Every block of one kind, in index order.
    pub async fn blocks_of_kind(&self, kind: &str) -> Result<Vec<Block>, StorageError> {
        let sql = format!(
            "SELECT {} FROM blocks WHERE kind = $1 ORDER BY idx",
            crate::record::BLOCK_COLUMNS
        );
        let rows: Vec<BlockRow> =
            dispatch!(&self.pool, pool => sqlx::query_as(&sql).bind(kind).fetch_all(pool).await)?;
        rows.into_iter().map(Block::try_from).collect()
    }

    /// Stored runs of the restricted classes (`personal`, `itar`) per class,
    /// region and accepting policy (the partial index
    /// `runs_restricted_policy` serves it); runs of no recorded policy last.
    pub async fn restricted_run_counts(&self) -> Result<Vec<StoredRunCount>, StorageError> {
        Ok(dispatch!(&self.pool, pool => {
            sqlx::query_as("SELECT data_class, region, policy_sha256, MIN(accepted_at) AS first_accepted_at, COUNT(*) AS count FROM runs WHERE data_class <> 'public' GROUP BY data_class, region, policy_sha256 ORDER BY data_class, region, COALESCE(policy_sha256, 'g')")
                .fetch_all(pool)
                .await
        })?)
    }

    /// Every policy that has been in force, first recorded first.
    pub async fn policies(&self) -> Result<Vec<PolicyRecord>, StorageError> {
        Ok(dispatch!(&self.pool, pool => {
            sqlx::query_as("SELECT sha256, text, recorded_at FROM policies ORDER BY recorded_at, sha256")
                .fetch_all(pool)
                .await
        })?)
    }

    /// Personal-class runs whose valuation block carries the run id in clear.
    pub async fn personal_runs_in_clear(&self) -> Result<u64, StorageError> {
        let n: i64 = dispatch!(&self.pool, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM runs JOIN blocks ON blocks.idx = runs.block_index \
                 WHERE runs.data_class = 'personal' AND blocks.run_id IS NOT NULL",
            )
            .fetch_one(pool)
            .await
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
