//! Read queries: runs, statistics, blocks, proofs, tiles and checkpoints.

use crate::backend::{self, dispatch, DbTarget, ReadPool};
use crate::cache::NodeCache;
use crate::codec::{fetch_nodes, fold_plan, node_key, to_hash, to_i64};
use crate::record::{BlockRow, RunRecord, RunRow, BLOCK_COLUMNS, RUN_COLUMNS};
use crate::StorageError;
use qunimbus_ledger::block::Block;
use qunimbus_ledger::merkle::{self, Hash, NodeId};
use qunimbus_valuation::{nearest_rank, PhiStats};
use std::sync::Arc;

/// A registered liquidity partner (the API key itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PartnerRecord {
    /// Stable identifier.
    pub id: String,
    /// Unique display name.
    pub name: String,
    /// Home region (decides which data classes it may receive).
    pub region: String,
    /// When it was registered (RFC 3339).
    pub created_at: String,
    /// When it was disabled, if it was.
    pub disabled_at: Option<String>,
}

/// The time-stamp state of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointTimestamp {
    /// Tree size of the checkpoint.
    pub size: u64,
    /// The signed note (its body is what the token's imprint covers).
    pub note: String,
    /// The token (DER), when one was obtained.
    pub token: Option<Vec<u8>>,
    /// Which TSA issued it.
    pub source: Option<String>,
    /// Attempts so far.
    pub attempts: u64,
    /// The last failure, while pending.
    pub error: Option<String>,
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// Tree size it covers.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
    /// The full signed note text.
    pub note: String,
    /// When it was signed (RFC 3339 UTC µs).
    pub signed_at: String,
}

/// Read access to the database through a connection pool. Also usable on
/// its own for offline tools (`qunimbus ledger verify`).
pub struct Reader {
    pub(crate) pool: ReadPool,
    cache: Arc<NodeCache>,
    /// Where the database is (the bulk scan opens its own connection).
    pub(crate) target: DbTarget,
}

impl Reader {
    /// Opens a read pool on an existing database (read-only for SQLite).
    pub async fn open(target: &DbTarget, connections: u32) -> Result<Self, StorageError> {
        Self::open_with_cache(target, connections, Arc::new(NodeCache::disabled())).await
    }

    pub(crate) async fn open_with_cache(
        target: &DbTarget,
        connections: u32,
        cache: Arc<NodeCache>,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            pool: backend::open_readers(target, connections).await?,
            cache,
            target: target.clone(),
        })
    }

    pub(crate) async fn ping(&self) -> Result<(), StorageError> {
        dispatch!(&self.pool, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The `limit` most recently accepted runs, newest first, optionally of one region.
    pub async fn list_runs(
        &self,
        region: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StorageError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE ($1 IS NULL OR region = $1) ORDER BY seq DESC LIMIT $2");
        let rows: Vec<RunRow> = dispatch!(&self.pool, pool => {
            sqlx::query_as(&sql).bind(region).bind(i64::from(limit)).fetch_all(pool).await
        })?;
        rows.into_iter().map(RunRecord::try_from).collect()
    }

    /// Looks up one run by its id.
    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StorageError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1");
        let row: Option<RunRow> = dispatch!(&self.pool, pool => sqlx::query_as(&sql).bind(run_id).fetch_optional(pool).await)?;
        row.map(RunRecord::try_from).transpose()
    }

    /// Count, mean, min, max, p50 and p95 (nearest rank) of `phi_qevf` over every stored run.
    pub async fn phi_stats(&self) -> Result<PhiStats, StorageError> {
        dispatch!(&self.pool, pool => {
            let mut tx = pool.begin().await?;
            let (count, mean, min, max): (i64, Option<f64>, Option<f64>, Option<f64>) =
                sqlx::query_as("SELECT COUNT(*), CAST(AVG(phi_qevf) AS DOUBLE PRECISION), MIN(phi_qevf), MAX(phi_qevf) FROM runs")
                    .fetch_one(&mut *tx)
                    .await?;
            let mut stats = PhiStats { count: count as u64, mean, min, max, p50: None, p95: None };
            if count > 0 {
                for (p, slot) in [(50, &mut stats.p50), (95, &mut stats.p95)] {
                    let offset = nearest_rank(p, count as usize) as i64 - 1;
                    let value: f64 = sqlx::query_scalar("SELECT phi_qevf FROM runs ORDER BY phi_qevf LIMIT 1 OFFSET $1")
                        .bind(offset)
                        .fetch_one(&mut *tx)
                        .await?;
                    *slot = Some(value);
                }
            }
            tx.commit().await?;
            Ok(stats)
        })
    }

    /// `phi_qevf` of the `n` most recent runs, oldest first.
    pub async fn recent_phi(&self, n: u32) -> Result<Vec<f64>, StorageError> {
        let mut values: Vec<f64> = dispatch!(&self.pool, pool => {
            sqlx::query_scalar("SELECT phi_qevf FROM runs ORDER BY seq DESC LIMIT $1").bind(i64::from(n)).fetch_all(pool).await
        })?;
        values.reverse();
        Ok(values)
    }

    /// Number of stored blocks, assuming no gaps (max index + 1; 0 when empty).
    pub async fn block_count(&self) -> Result<u64, StorageError> {
        let max: Option<i64> = dispatch!(&self.pool, pool => sqlx::query_scalar("SELECT MAX(idx) FROM blocks").fetch_one(pool).await)?;
        Ok(max.map_or(0, |m| u64::try_from(m).map_or(0, |m| m + 1)))
    }

    /// All partners, by name.
    pub async fn partners(&self) -> Result<Vec<PartnerRecord>, StorageError> {
        Ok(dispatch!(&self.pool, pool => {
            sqlx::query_as("SELECT id, name, region, created_at, disabled_at FROM partners ORDER BY name")
                .fetch_all(pool)
                .await
        })?)
    }

    /// One partner by id.
    pub async fn partner(&self, id: &str) -> Result<Option<PartnerRecord>, StorageError> {
        Ok(dispatch!(&self.pool, pool => {
            sqlx::query_as("SELECT id, name, region, created_at, disabled_at FROM partners WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// A persisted node setting.
    pub async fn state(&self, key: &str) -> Result<Option<String>, StorageError> {
        Ok(dispatch!(&self.pool, pool => {
            sqlx::query_scalar("SELECT value FROM node_state WHERE key = $1").bind(key).fetch_optional(pool).await
        })?)
    }

    /// Runs with feed seq from `from_seq` on, in feed order, at most `limit`.
    pub async fn runs_from_feed_seq(
        &self,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StorageError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE feed_seq >= $1 ORDER BY feed_seq LIMIT $2"
        );
        let from = to_i64(from_seq)?;
        let rows: Vec<RunRow> = dispatch!(&self.pool, pool => {
            sqlx::query_as(&sql).bind(from).bind(i64::from(limit)).fetch_all(pool).await
        })?;
        rows.into_iter().map(RunRecord::try_from).collect()
    }

    /// The newest run of each region.
    pub async fn latest_run_per_region(&self) -> Result<Vec<RunRecord>, StorageError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE seq IN (SELECT MAX(seq) FROM runs GROUP BY region) ORDER BY region");
        let rows: Vec<RunRow> =
            dispatch!(&self.pool, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        rows.into_iter().map(RunRecord::try_from).collect()
    }

    /// The highest feed seq stored (0 when none).
    pub async fn max_feed_seq(&self) -> Result<u64, StorageError> {
        let max: Option<i64> = dispatch!(&self.pool, pool => sqlx::query_scalar("SELECT MAX(feed_seq) FROM runs").fetch_one(pool).await)?;
        Ok(max.map_or(0, |m| u64::try_from(m).unwrap_or(0)))
    }

    /// One block by index.
    pub async fn block(&self, index: u64) -> Result<Option<Block>, StorageError> {
        let sql = format!("SELECT {BLOCK_COLUMNS} FROM blocks WHERE idx = $1");
        let idx = to_i64(index)?;
        let row: Option<BlockRow> = dispatch!(&self.pool, pool => sqlx::query_as(&sql).bind(idx).fetch_optional(pool).await)?;
        row.map(Block::try_from).transpose()
    }

    /// Up to `limit` blocks from index `from` on, in index order. A block that
    /// does not decode is returned as `Err(CorruptBlock)` in its place.
    pub async fn blocks(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<Result<Block, StorageError>>, StorageError> {
        let sql =
            format!("SELECT {BLOCK_COLUMNS} FROM blocks WHERE idx >= $1 ORDER BY idx LIMIT $2");
        let from = to_i64(from)?;
        let rows: Vec<BlockRow> = dispatch!(&self.pool, pool => {
            sqlx::query_as(&sql).bind(from).bind(i64::from(limit)).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(Block::try_from).collect())
    }

    /// Up to `limit` blocks of the given kinds from index `from` on, in
    /// index order (the trading agent's trail after its start).
    pub async fn blocks_of_kinds(
        &self,
        kinds: &[&str],
        from: u64,
        limit: u32,
    ) -> Result<Vec<Block>, StorageError> {
        let placeholders: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT {BLOCK_COLUMNS} FROM blocks WHERE idx >= $1 AND kind IN ({}) ORDER BY idx LIMIT $2",
            placeholders.join(", ")
        );
        let from = to_i64(from)?;
        let rows: Vec<BlockRow> = dispatch!(&self.pool, pool => {
            let mut query = sqlx::query_as(&sql).bind(from).bind(i64::from(limit));
            for kind in kinds {
                query = query.bind(*kind);
            }
            query.fetch_all(pool).await
        })?;
        rows.into_iter().map(Block::try_from).collect()
    }

    /// Up to `limit` blocks of one kind with an index below `before`,
    /// newest first (paging back through one kind).
    pub async fn blocks_of_kind_before(
        &self,
        kind: &str,
        before: u64,
        limit: u32,
    ) -> Result<Vec<Block>, StorageError> {
        let sql = format!(
            "SELECT {BLOCK_COLUMNS} FROM blocks WHERE kind = $1 AND idx < $2 ORDER BY idx DESC LIMIT $3"
        );
        let before = to_i64(before)?;
        let rows: Vec<BlockRow> = dispatch!(&self.pool, pool => {
            sqlx::query_as(&sql).bind(kind).bind(before).bind(i64::from(limit)).fetch_all(pool).await
        })?;
        rows.into_iter().map(Block::try_from).collect()
    }

    /// The newest `limit` blocks of one kind, newest first.
    pub async fn latest_blocks_of_kind(
        &self,
        kind: &str,
        limit: u32,
    ) -> Result<Vec<Block>, StorageError> {
        let sql = format!(
            "SELECT {BLOCK_COLUMNS} FROM blocks WHERE kind = $1 ORDER BY idx DESC LIMIT $2"
        );
        let rows: Vec<BlockRow> = dispatch!(&self.pool, pool => {
            sqlx::query_as(&sql).bind(kind).bind(i64::from(limit)).fetch_all(pool).await
        })?;
        rows.into_iter().map(Block::try_from).collect()
    }

    /// The newest signed checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<CheckpointRecord>, StorageError> {
        let row: Option<(i64, Vec<u8>, String, String)> = dispatch!(&self.pool, pool => {
            sqlx::query_as("SELECT tree_size, root_hash, note, signed_at FROM checkpoints ORDER BY tree_size DESC LIMIT 1")
                .fetch_optional(pool)
                .await
        })?;
        row.map(|(size, root, note, signed_at)| {
            Ok(CheckpointRecord {
                size: u64::try_from(size)
                    .map_err(|_| StorageError::Corrupt("checkpoint size".into()))?,
                root: to_hash(&root)?,
                note,
                signed_at,
            })
        })
        .transpose()
    }

    /// Time-stamp state of checkpoints, by ascending size: those of at least
    /// `from_size`, at most `limit`; `pending_only` keeps those without a token.
    pub async fn checkpoint_timestamps(
        &self,
        from_size: u64,
        limit: u32,
        pending_only: bool,
    ) -> Result<Vec<CheckpointTimestamp>, StorageError> {
        let sql = format!(
            "SELECT tree_size, note, tsa_token, tsa_source, tsa_attempts, tsa_error FROM checkpoints \
             WHERE tree_size >= $1 {} ORDER BY tree_size LIMIT $2",
            if pending_only { "AND tsa_token IS NULL" } else { "" }
        );
        let from = to_i64(from_size)?;
        type Row = (
            i64,
            String,
            Option<Vec<u8>>,
            Option<String>,
            i64,
            Option<String>,
        );
        let rows: Vec<Row> = dispatch!(&self.pool, pool => {
            sqlx::query_as(&sql).bind(from).bind(i64::from(limit)).fetch_all(pool).await
        })?;
        rows.into_iter()
            .map(|(size, note, token, source, attempts, error)| {
                Ok(CheckpointTimestamp {
                    size: u64::try_from(size)
                        .map_err(|_| StorageError::Corrupt("checkpoint size".into()))?,
                    note,
                    token,
                    source,
                    attempts: u64::try_from(attempts).unwrap_or(0),
                    error,
                })
            })
            .collect()
    }

    /// The time-stamp state of the checkpoint of exactly `size`.
    pub async fn checkpoint_timestamp(
        &self,
        size: u64,
    ) -> Result<Option<CheckpointTimestamp>, StorageError> {
        let mut found = self.checkpoint_timestamps(size, 1, false).await?;
        Ok(found.pop().filter(|c| c.size == size))
    }

    /// Number of checkpoints still waiting for a token.
    pub async fn pending_timestamp_count(&self) -> Result<u64, StorageError> {
        let n: i64 = dispatch!(&self.pool, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM checkpoints WHERE tsa_token IS NULL").fetch_one(pool).await
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Reads the given stored Merkle nodes.
    pub async fn nodes(
        &self,
        ids: &[NodeId],
    ) -> Result<std::collections::HashMap<NodeId, Hash>, StorageError> {
        if let Some(nodes) = self.cache.get(ids) {
            return Ok(nodes);
        }
        dispatch!(&self.pool, pool => fetch_nodes!(pool, ids).await)
    }

    /// The root of the first `size` leaves (size must not exceed the stored tree).
    pub async fn root_at(&self, size: u64) -> Result<Hash, StorageError> {
        let plan = merkle::root_plan(size);
        let nodes = self.nodes(&plan).await?;
        fold_plan(&plan, &nodes)
    }

    async fn assemble(&self, plan: Vec<Vec<NodeId>>) -> Result<Vec<Hash>, StorageError> {
        let ids: Vec<NodeId> = plan.iter().flatten().copied().collect();
        let nodes = self.nodes(&ids).await?;
        merkle::assemble(&plan, |id| nodes.get(&id).copied())
            .map_err(|e| StorageError::Inconsistent(e.to_string()))
    }

    /// The RFC 6962 audit path of leaf `index` in the tree of `size` leaves,
    /// with the leaf hash. `size` must not exceed `stored_size`.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
        stored_size: u64,
    ) -> Result<(Hash, Vec<Hash>), StorageError> {
        if size > stored_size {
            return Err(StorageError::OutOfRange(format!(
                "tree_size {size} is larger than the log ({stored_size})"
            )));
        }
        let plan = merkle::inclusion_plan(index, size)
            .map_err(|e| StorageError::OutOfRange(e.to_string()))?;
        let leaf_id = NodeId { level: 0, index };
        let mut ids: Vec<NodeId> = plan.iter().flatten().copied().collect();
        ids.push(leaf_id);
        let nodes = self.nodes(&ids).await?;
        let leaf = nodes.get(&leaf_id).copied().ok_or_else(|| {
            StorageError::Inconsistent(format!("leaf {index} has no stored hash"))
        })?;
        let proof = merkle::assemble(&plan, |id| nodes.get(&id).copied())
            .map_err(|e| StorageError::Inconsistent(e.to_string()))?;
        Ok((leaf, proof))
    }

    /// The RFC 6962 consistency proof between tree sizes `first` and `second`.
    pub async fn consistency_proof(
        &self,
        first: u64,
        second: u64,
        stored_size: u64,
    ) -> Result<Vec<Hash>, StorageError> {
        if second > stored_size {
            return Err(StorageError::OutOfRange(format!(
                "second {second} is larger than the log ({stored_size})"
            )));
        }
        let plan = merkle::consistency_plan(first, second)
            .map_err(|e| StorageError::OutOfRange(e.to_string()))?;
        self.assemble(plan).await
    }

    /// `count` consecutive stored hashes of one tree level starting at `from`,
    /// concatenated (a C2SP tlog tile). Errors if any is missing.
    pub async fn level_hashes(
        &self,
        level: u8,
        from: u64,
        count: u64,
    ) -> Result<Vec<u8>, StorageError> {
        let start = node_key(NodeId { level, index: from })?;
        let end = start.saturating_add(to_i64(count)?);
        let rows: Vec<(i64, Vec<u8>)> = dispatch!(&self.pool, pool => {
            sqlx::query_as("SELECT node, hash FROM merkle_nodes WHERE node >= $1 AND node < $2 ORDER BY node")
                .bind(start)
                .bind(end)
                .fetch_all(pool)
                .await
        })?;
        if rows.len() as u64 != count {
            return Err(StorageError::OutOfRange(format!(
                "level {level} has {} of the {count} hashes from {from}",
                rows.len()
            )));
        }
        let mut out = Vec::with_capacity(rows.len() * 32);
        for (_, hash) in rows {
            out.extend_from_slice(&to_hash(&hash)?);
        }
        Ok(out)
    }
}
