//! The bulk, in-order read of the whole ledger for verification: blocks in
//! batches, each with the stored Merkle nodes its blocks complete, produced
//! ahead of the verifier through a small channel so reading overlaps with
//! hashing. On SQLite the rows are read and decoded on one blocking thread
//! with rusqlite (no per-row hand-off); on PostgreSQL through the pool.

use crate::backend::{dispatch, DbTarget};
use crate::codec::{node_id, node_key, to_hash, to_i64};
use crate::record::{BlockRow, BLOCK_COLUMNS};
use crate::{Reader, StorageError};
use qunimbus_ledger::block::Block;
use qunimbus_ledger::merkle::{Hash, NodeId};
use std::collections::HashMap;
use tokio::sync::mpsc;

/// Blocks per batch.
pub const SCAN_BATCH: u32 = 10_000;

/// Batches read ahead of the consumer.
const READ_AHEAD: usize = 2;

/// One batch of the scan, in index order.
#[derive(Debug)]
pub struct BlockBatch {
    /// The blocks (a row that does not decode is its `CorruptBlock` error).
    pub blocks: Vec<Result<Block, StorageError>>,
    /// The stored Merkle nodes that these blocks complete (empty unless
    /// asked for).
    pub nodes: HashMap<NodeId, Hash>,
}

/// The key ranges, one per tree level, of the nodes completed by leaves
/// `from..to`: node `(level, i)` completes with leaf `(i + 1)·2^level − 1`.
pub(crate) fn completed_node_ranges(from: u64, to: u64) -> Vec<(NodeId, NodeId)> {
    let mut ranges = Vec::new();
    for level in 0u8..56 {
        let span = 1u64 << level;
        if span > to {
            break;
        }
        let first = (from + span) >> level; // ceil((from + 1) / span)
        let last = to >> level; // floor(to / span)
        if first <= last && first >= 1 {
            ranges.push((NodeId::new(level, first - 1), NodeId::new(level, last - 1)));
        }
    }
    ranges
}

impl Reader {
    /// Streams every block from index 0, in batches of [`SCAN_BATCH`], with
    /// the stored nodes each batch completes when `with_nodes`. The stream
    /// ends after the last block, or after the first error.
    pub fn scan(&self, with_nodes: bool) -> mpsc::Receiver<Result<BlockBatch, StorageError>> {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        match &self.target {
            DbTarget::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = scan_sqlite(&path, with_nodes, &tx) {
                        let _ = tx.blocking_send(Err(e));
                    }
                });
            }
            DbTarget::Postgres(_) => {
                let pool = self.pool.clone();
                tokio::spawn(async move {
                    let reader = ScanPool(pool);
                    if let Err(e) = reader.scan_async(with_nodes, &tx).await {
                        let _ = tx.send(Err(e)).await;
                    }
                });
            }
        }
        rx
    }
}

fn sqlite_error(e: rusqlite::Error) -> StorageError {
    StorageError::Corrupt(format!("reading the SQLite ledger: {e}"))
}

fn scan_sqlite(
    path: &std::path::Path,
    with_nodes: bool,
    tx: &mpsc::Sender<Result<BlockBatch, StorageError>>,
) -> Result<(), StorageError> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error)?;
    // One read transaction: every batch sees the same snapshot of the log.
    conn.execute_batch("BEGIN").map_err(sqlite_error)?;
    let mut blocks = conn
        .prepare(&format!(
            "SELECT {BLOCK_COLUMNS} FROM blocks WHERE idx >= ?1 ORDER BY idx LIMIT ?2"
        ))
        .map_err(sqlite_error)?;
    let mut nodes = conn
        .prepare("SELECT node, hash FROM merkle_nodes WHERE node BETWEEN ?1 AND ?2")
        .map_err(sqlite_error)?;
    let mut from = 0u64;
    loop {
        let mut rows = blocks
            .query(rusqlite::params![to_i64(from)?, i64::from(SCAN_BATCH)])
            .map_err(sqlite_error)?;
        let mut batch = Vec::with_capacity(SCAN_BATCH as usize);
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            batch.push(BlockRow::from_sqlite(row).and_then(Block::try_from));
        }
        drop(rows);
        if batch.is_empty() {
            return Ok(());
        }
        let to = from + batch.len() as u64;
        let mut stored = HashMap::with_capacity(if with_nodes { 2 * batch.len() } else { 0 });
        if with_nodes {
            for (first, last) in completed_node_ranges(from, to) {
                let mut rows = nodes
                    .query(rusqlite::params![node_key(first)?, node_key(last)?])
                    .map_err(sqlite_error)?;
                while let Some(row) = rows.next().map_err(sqlite_error)? {
                    let key: i64 = row.get(0).map_err(sqlite_error)?;
                    let hash: Vec<u8> = row.get(1).map_err(sqlite_error)?;
                    stored.insert(node_id(key)?, to_hash(&hash)?);
                }
            }
        }
        let done = batch.len() < SCAN_BATCH as usize;
        let sent = tx.blocking_send(Ok(BlockBatch {
            blocks: batch,
            nodes: stored,
        }));
        if sent.is_err() || done {
            return Ok(());
        }
        from = to;
    }
}

/// The PostgreSQL side of the scan, through the read pool.
struct ScanPool(crate::backend::ReadPool);

impl ScanPool {
    async fn scan_async(
        &self,
        with_nodes: bool,
        tx: &mpsc::Sender<Result<BlockBatch, StorageError>>,
    ) -> Result<(), StorageError> {
        let sql =
            format!("SELECT {BLOCK_COLUMNS} FROM blocks WHERE idx >= $1 ORDER BY idx LIMIT $2");
        let mut from = 0u64;
        loop {
            let start = to_i64(from)?;
            let rows: Vec<BlockRow> = dispatch!(&self.0, pool => {
                sqlx::query_as(&sql).bind(start).bind(i64::from(SCAN_BATCH)).fetch_all(pool).await
            })?;
            if rows.is_empty() {
                return Ok(());
            }
            let to = from + rows.len() as u64;
            let done = rows.len() < SCAN_BATCH as usize;
            let mut stored = HashMap::with_capacity(if with_nodes { 2 * rows.len() } else { 0 });
            if with_nodes {
                for (first, last) in completed_node_ranges(from, to) {
                    let (lo, hi) = (node_key(first)?, node_key(last)?);
                    let found: Vec<(i64, Vec<u8>)> = dispatch!(&self.0, pool => {
                        sqlx::query_as("SELECT node, hash FROM merkle_nodes WHERE node BETWEEN $1 AND $2")
                            .bind(lo)
                            .bind(hi)
                            .fetch_all(pool)
                            .await
                    })?;
                    for (key, hash) in found {
                        stored.insert(node_id(key)?, to_hash(&hash)?);
                    }
                }
            }
            let blocks = rows.into_iter().map(Block::try_from).collect();
            if tx
                .send(Ok(BlockBatch {
                    blocks,
                    nodes: stored,
                }))
                .await
                .is_err()
                || done
            {
                return Ok(());
            }
            from = to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qunimbus_ledger::merkle::RightEdge;

    /// The ranges hold exactly the nodes `RightEdge::append` completes.
    #[test]
    fn ranges_match_the_nodes_appends_complete() {
        for (from, to) in [
            (0, 1),
            (0, 10_000),
            (3, 17),
            (10_000, 20_000),
            (7, 8),
            (1023, 1025),
        ] {
            let mut edge = RightEdge::new();
            let mut completed = Vec::new();
            for leaf in 0..to {
                let nodes = edge.append([0; 32]);
                if leaf >= from {
                    completed.extend(nodes.into_iter().map(|(id, _)| id));
                }
            }
            let mut expected: Vec<NodeId> = completed;
            expected.sort_by_key(|id| (id.level, id.index));
            let mut covered = Vec::new();
            for (first, last) in completed_node_ranges(from, to) {
                assert_eq!(first.level, last.level);
                covered.extend((first.index..=last.index).map(|i| NodeId::new(first.level, i)));
            }
            assert_eq!(covered, expected, "leaves {from}..{to}");
        }
    }
}
