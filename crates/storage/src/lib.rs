//! Durable storage for a QuNimbus node: accepted runs and the verification
//! ledger (blocks, Merkle nodes, signed checkpoints) in one database.
//!
//! Two real backends through `sqlx`, with the same schema: SQLite (the
//! embedded default; WAL, `synchronous = FULL`) and PostgreSQL. All writes go
//! through one writer task that group-commits: it takes every job waiting in
//! its queue and writes them in one transaction (`BEGIN IMMEDIATE` on SQLite),
//! runs together with their ledger blocks and Merkle nodes, then answers each
//! job after the commit. One fsync covers many runs, a run never exists
//! without its block, and writers never contend for the database lock.
//! Reads use a separate connection pool ([`Reader`]).

#![warn(missing_docs)]

mod a2a;
mod backend;
pub mod backup;
mod cache;
mod change;
mod codec;
mod reader;
mod record;
mod scan;
mod tokens;
mod trust;
mod writer;

pub use a2a::{TaskFilter, TaskRecord};
pub use backend::DbTarget;
pub use change::StateChange;
pub use reader::{CheckpointRecord, CheckpointTimestamp, PartnerRecord, Reader};
pub use record::{RunRecord, Stored};
pub use scan::{BlockBatch, SCAN_BATCH};
pub use tokens::{PartnerByKey, TokenRecord};
pub use trust::{PolicyRecord, RegionEventRecord, RegionRecord, StoredRunCount};
pub use writer::{
    CheckpointSigner, CommitObserver, CommittedRun, RunEntry, RunsObserver, TimestampOutcome,
};

use backend::{dispatch, BeginWrite};
use cache::NodeCache;
use codec::{fetch_nodes, root_from_nodes, to_hash};
use qunimbus_ledger::block::Block;
use qunimbus_ledger::merkle::{self, Hash, RightEdge};
use record::{BlockRow, BLOCK_COLUMNS};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use writer::{ChainHead, WriteJob, Writer};

/// Storage failures.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The SQLite file could not be created or made private.
    #[error("database file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The SQLite file to read does not exist.
    #[error("database file {0} does not exist")]
    Missing(String),
    /// A stored row does not decode into a valid record.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A stored block does not decode.
    #[error("block {index}: {reason}")]
    CorruptBlock {
        /// The block's index.
        index: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The stored tree disagrees with a signed checkpoint or is incomplete.
    #[error("ledger is inconsistent: {0}")]
    Inconsistent(String),
    /// A backup could not be taken or read.
    #[error("backup: {0}")]
    Backup(String),
    /// A unique value (e.g. a partner name) is already taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A block could not be built (e.g. a non-finite number or an oversized payload).
    #[error("invalid block: {0}")]
    InvalidBlock(String),
    /// A proof or range was asked for outside the current tree.
    #[error("{0}")]
    OutOfRange(String),
    /// The group transaction this write belonged to failed and was rolled back.
    #[error("commit failed, nothing was stored: {0}")]
    CommitFailed(String),
    /// Another process holds the database's single-writer lock.
    #[error("{0}")]
    InUse(String),
    /// The writer queue is full; the caller should retry later.
    #[error("the write queue is full; retry shortly")]
    Busy,
    /// The store is shutting down or its writer has stopped.
    #[error("the store is closed")]
    Closed,
}

/// Tuning knobs for the store.
#[derive(Clone)]
pub struct StoreOptions {
    /// How many write jobs may wait for the writer before submitters get `Busy`.
    pub queue_depth: usize,
    /// Runs that may wait for the writer (not yet in a transaction); past it
    /// submitters get `Busy`, unless the queue is empty. This bounds the
    /// time from submission to commit, and so to the next signed checkpoint.
    pub max_queued_rows: usize,
    /// Stop gathering more jobs into one transaction once it holds this many rows.
    pub max_group_rows: usize,
    /// Connections in the read pool.
    pub read_connections: u32,
    /// Called after every commit with its size and duration (for metrics).
    pub on_commit: Option<CommitObserver>,
    /// Called after every commit with the newly stored runs, in feed order.
    pub on_runs: Option<RunsObserver>,
    /// Keep every Merkle node in memory (64 bytes per block) while the tree
    /// has at most this many blocks; 0 turns the cache off.
    pub node_cache_max_leaves: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            queue_depth: 8192,
            max_queued_rows: 4096,
            max_group_rows: 4096,
            read_connections: 4,
            on_commit: None,
            on_runs: None,
            node_cache_max_leaves: 4 << 20,
        }
    }
}

/// Control jobs (checkpoints, time-stamps, blocks, administrative writes)
/// that may wait for the writer before submitters get `Busy`.
const CONTROL_QUEUE_DEPTH: usize = 1024;

/// The committed tree as the writer last published it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of blocks (leaves).
    pub size: u64,
    /// RFC 6962 root of those blocks.
    pub root: Hash,
    /// Size of the newest signed checkpoint, if any.
    pub checkpoint_size: Option<u64>,
}

/// The node's database: a read pool plus the group-committing writer.
pub struct Store {
    reader: Reader,
    /// Runs to ingest (bounded by `queue_depth`; full means `Busy`).
    jobs: mpsc::Sender<WriteJob>,
    /// Rows of run jobs in `jobs`, and the most that may wait.
    queued_rows: Arc<AtomicUsize>,
    max_queued_rows: usize,
    /// Everything else: checkpoints, time-stamps, blocks, administrative
    /// writes. Served first, so ingest load never starves them.
    control: mpsc::Sender<WriteJob>,
    shutdown: Arc<Notify>,
    writer_task: Mutex<Option<JoinHandle<()>>>,
    head: watch::Receiver<TreeHead>,
}

impl Store {
    /// Opens (creating if needed) the database, applies migrations, writes the
    /// genesis block if the ledger is empty, checks the stored tree against the
    /// last signed checkpoint (refusing to open on any mismatch) and starts the
    /// writer task.
    pub async fn open(
        target: &DbTarget,
        options: StoreOptions,
        genesis: Block,
    ) -> Result<Self, StorageError> {
        let mut writer_conn = backend::open_writer(target).await?;
        let (head, checkpoint_size) = load_head(&mut writer_conn.conn, genesis).await?;
        let tree = TreeHead {
            size: head.edge.size(),
            root: head.edge.root(),
            checkpoint_size,
        };
        let (published, head_rx) = watch::channel(tree);
        let cache = if tree.size <= options.node_cache_max_leaves {
            let cache = NodeCache::new(options.node_cache_max_leaves);
            load_cache(&mut writer_conn.conn, &cache).await?;
            Arc::new(cache)
        } else {
            Arc::new(NodeCache::disabled())
        };
        let reader =
            Reader::open_with_cache(target, options.read_connections, cache.clone()).await?;
        let (jobs, rx) = mpsc::channel(options.queue_depth.max(1));
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE_DEPTH);
        let shutdown = Arc::new(Notify::new());
        let queued_rows = Arc::new(AtomicUsize::new(0));
        let writer = Writer::new(
            writer_conn,
            head,
            &options,
            published,
            cache,
            queued_rows.clone(),
        );
        let writer_task = tokio::spawn(writer.run(control_rx, rx, shutdown.clone()));
        Ok(Self {
            reader,
            jobs,
            queued_rows,
            max_queued_rows: options.max_queued_rows.max(1),
            control,
            shutdown,
            writer_task: Mutex::new(Some(writer_task)),
            head: head_rx,
        })
    }

    /// Read access.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// The committed tree: size, root and last checkpoint size.
    pub fn tree_head(&self) -> TreeHead {
        *self.head.borrow()
    }

    async fn submit<T>(
        &self,
        job: WriteJob,
        answer: oneshot::Receiver<Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let (queue, admitted) = match &job {
            WriteJob::Runs { entries, .. } => (&self.jobs, self.admit(entries.len())?),
            _ => (&self.control, 0),
        };
        queue.try_send(job).map_err(|e| {
            self.queued_rows.fetch_sub(admitted, Ordering::Relaxed);
            match e {
                mpsc::error::TrySendError::Full(_) => StorageError::Busy,
                mpsc::error::TrySendError::Closed(_) => StorageError::Closed,
            }
        })?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// Counts `rows` more runs as waiting, unless that would pass
    /// `max_queued_rows` while others wait (then `Busy`).
    fn admit(&self, rows: usize) -> Result<usize, StorageError> {
        self.queued_rows
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
                (queued == 0 || queued + rows <= self.max_queued_rows).then_some(queued + rows)
            })
            .map(|_| rows)
            .map_err(|_| StorageError::Busy)
    }

    /// Stores runs, each new one with its `valuation` block, in one
    /// transaction, and waits for the commit. Returns, per run, whether it
    /// was newly stored or the original with the same `run_id` already existed.
    /// Either everything new is committed or nothing is.
    pub async fn append_runs(&self, entries: Vec<RunEntry>) -> Result<Vec<Stored>, StorageError> {
        self.append_runs_received(entries, None).await
    }

    /// [`Store::append_runs`], remembering when the request arrived (for
    /// latency measured by [`RunsObserver`] consumers).
    pub async fn append_runs_received(
        &self,
        entries: Vec<RunEntry>,
        received: Option<std::time::Instant>,
    ) -> Result<Vec<Stored>, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.submit(
            WriteJob::Runs {
                entries,
                received,
                reply,
            },
            answer,
        )
        .await
    }

    async fn admin(&self, write: change::AdminWrite) -> Result<u64, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.submit(WriteJob::Admin { write, reply }, answer).await
    }

    /// Registers a partner whose API key hashes to `key_hash`; a name
    /// already taken is [`StorageError::Conflict`].
    pub async fn add_partner(
        &self,
        partner: &PartnerRecord,
        key_hash: &str,
    ) -> Result<(), StorageError> {
        self.admin(change::AdminWrite::AddPartner {
            id: partner.id.clone(),
            name: partner.name.clone(),
            region: partner.region.clone(),
            key_hash: key_hash.to_string(),
            created_at: partner.created_at.clone(),
        })
        .await
        .map(drop)
    }

    /// Replaces the key (only its hash is stored) and home region of
    /// enabled partner `id`; returns whether a partner changed.
    pub async fn set_partner_key(
        &self,
        id: &str,
        key_hash: &str,
        region: &str,
    ) -> Result<bool, StorageError> {
        self.admin(change::AdminWrite::SetPartnerKey {
            id: id.to_string(),
            key_hash: key_hash.to_string(),
            region: region.to_string(),
        })
        .await
        .map(|rows| rows == 1)
    }

    /// Disables partner `id` at `at` (RFC 3339) unless it already is;
    /// returns whether this call disabled it.
    pub async fn disable_partner(&self, id: &str, at: &str) -> Result<bool, StorageError> {
        self.admin(change::AdminWrite::DisablePartner {
            id: id.to_string(),
            at: at.to_string(),
        })
        .await
        .map(|rows| rows == 1)
    }

    /// Sets the `node_state` value of `key` (persisted node flags and
    /// cursors), recording when (`at`, RFC 3339).
    pub async fn set_state(&self, key: &str, value: &str, at: &str) -> Result<(), StorageError> {
        self.admin(change::AdminWrite::SetState {
            key: key.to_string(),
            value: value.to_string(),
            at: at.to_string(),
        })
        .await
        .map(drop)
    }

    /// Appends blocks that record no run (attestations, rollouts, overrides).
    pub async fn append_blocks(
        &self,
        drafts: Vec<qunimbus_ledger::block::BlockDraft>,
    ) -> Result<Vec<Block>, StorageError> {
        self.append_blocks_with(drafts, Vec::new()).await
    }

    /// Appends blocks and makes `changes` in the same transaction: the
    /// state change and the block recording it commit together or not at
    /// all.
    pub async fn append_blocks_with(
        &self,
        drafts: Vec<qunimbus_ledger::block::BlockDraft>,
        changes: Vec<StateChange>,
    ) -> Result<Vec<Block>, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.submit(
            WriteJob::Blocks {
                drafts,
                changes,
                reply,
            },
            answer,
        )
        .await
    }

    /// Signs (with `sign`) and records a checkpoint for `size` and `root`.
    /// Refused, unsigned, unless it extends the last checkpoint consistently
    /// and `root` is the stored tree's root. Returns the signed note.
    pub async fn sign_checkpoint(
        &self,
        size: u64,
        root: Hash,
        sign: impl FnOnce(u64, &Hash) -> (String, String) + Send + Sync + 'static,
    ) -> Result<String, StorageError> {
        let (reply, answer) = oneshot::channel();
        let sign: CheckpointSigner = Box::new(sign);
        self.submit(
            WriteJob::Checkpoint {
                size,
                root,
                sign,
                reply,
            },
            answer,
        )
        .await
    }

    /// Records a time-stamp token for checkpoint `size`, or a failed attempt.
    pub async fn save_timestamp(
        &self,
        size: u64,
        outcome: TimestampOutcome,
    ) -> Result<(), StorageError> {
        let (reply, answer) = oneshot::channel();
        self.submit(
            WriteJob::Timestamp {
                size,
                outcome,
                reply,
            },
            answer,
        )
        .await
    }

    /// Whether the database answers and the writer is running.
    pub async fn ready(&self) -> Result<(), StorageError> {
        if self.jobs.is_closed() || self.control.is_closed() {
            return Err(StorageError::Closed);
        }
        self.reader.ping().await
    }

    /// Stops taking writes, commits everything already queued, stops the
    /// writer and closes every connection. Idempotent.
    pub async fn close(&self) {
        self.shutdown.notify_one();
        let task = self
            .writer_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "storage writer task failed");
            }
        }
        self.reader.close().await;
    }
}

/// Nodes read per query while filling the cache.
const CACHE_LOAD_PAGE: i64 = 50_000;

/// Fills the node cache from the database, in key order (level by level,
/// index by index: the order `NodeCache::extend` expects).
async fn load_cache(conn: &mut backend::WriteConn, cache: &NodeCache) -> Result<(), StorageError> {
    let mut after = i64::MIN;
    loop {
        let rows: Vec<(i64, Vec<u8>)> = dispatch!(&mut *conn, conn => {
            sqlx::query_as("SELECT node, hash FROM merkle_nodes WHERE node > $1 ORDER BY node LIMIT $2")
                .bind(after)
                .bind(CACHE_LOAD_PAGE)
                .fetch_all(&mut *conn)
                .await
        })?;
        let Some((last, _)) = rows.last() else {
            return Ok(());
        };
        after = *last;
        let mut nodes: Vec<(merkle::NodeId, Hash)> =
            codec::nodes_from_rows(rows)?.into_iter().collect();
        nodes.sort_by_key(|(id, _)| (id.level, id.index));
        cache.extend(&nodes);
        if !cache.enabled() {
            return Ok(());
        }
    }
}

/// Loads the chain head from the database (writing `genesis` into an empty
/// ledger) and checks it against the newest signed checkpoint.
async fn load_head(
    conn: &mut backend::WriteConn,
    genesis: Block,
) -> Result<(ChainHead, Option<u64>), StorageError> {
    dispatch!(conn, conn => {
        let last: Option<BlockRow> = sqlx::query_as(&format!("SELECT {BLOCK_COLUMNS} FROM blocks ORDER BY idx DESC LIMIT 1"))
            .fetch_optional(&mut *conn)
            .await?;
        let head = match last {
            None => {
                let leaf = genesis.leaf_bytes().map_err(|e| StorageError::InvalidBlock(e.to_string()))?;
                let mut edge = RightEdge::new();
                let nodes = edge.append(merkle::leaf_hash(&leaf));
                let (attestations, payload) = record::block_json_columns(&genesis)?;
                let mut tx = conn.begin_write().await?;
                sqlx::query(&format!(
                    "INSERT INTO blocks ({BLOCK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .bind(0i64)
                .bind(&genesis.timestamp)
                .bind(genesis.kind.as_str())
                .bind(genesis.phi_qevf)
                .bind(genesis.eta_ent)
                .bind(&genesis.region)
                .bind(&genesis.run_id)
                .bind(attestations)
                .bind(payload)
                .bind(&genesis.previous_hash)
                .bind(&genesis.hash)
                .execute(&mut *tx)
                .await?;
                for (id, hash) in nodes {
                    sqlx::query("INSERT INTO merkle_nodes (node, hash) VALUES ($1, $2)")
                        .bind(codec::node_key(id)?)
                        .bind(hash.to_vec())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                tracing::info!(hash = %genesis.hash, "wrote the genesis block");
                ChainHead {
                    next_feed_seq: 1,
                    next_index: 1,
                    last_hash: genesis.hash,
                    edge,
                }
            }
            Some(row) => {
                let last = Block::try_from(row)?;
                let size = last.index + 1;
                let plan = merkle::root_plan(size);
                let nodes: std::collections::HashMap<merkle::NodeId, Hash> = fetch_nodes!(&mut *conn, &plan).await?;
                let peaks = plan
                    .iter()
                    .map(|id| nodes.get(id).copied().ok_or_else(|| StorageError::Inconsistent(format!("Merkle node {id:?} is missing"))))
                    .collect::<Result<Vec<_>, _>>()?;
                let edge = RightEdge::from_peaks(size, peaks).map_err(|e| StorageError::Inconsistent(e.to_string()))?;
                let max_feed: Option<i64> = sqlx::query_scalar("SELECT MAX(feed_seq) FROM runs")
                    .fetch_one(&mut *conn)
                    .await?;
                ChainHead {
                    next_feed_seq: max_feed.map_or(1, |m| m as u64 + 1),
                    next_index: size,
                    last_hash: last.hash,
                    edge,
                }
            }
        };
        let checkpoint: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT tree_size, root_hash FROM checkpoints ORDER BY tree_size DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await?;
        let checkpoint_size = match checkpoint {
            None => None,
            Some((size, root)) => {
                let size = u64::try_from(size).map_err(|_| StorageError::Corrupt("checkpoint size".into()))?;
                let root = to_hash(&root)?;
                if size > head.edge.size() {
                    return Err(StorageError::Inconsistent(format!(
                        "the stored tree has {} blocks but the last signed checkpoint covers {size}",
                        head.edge.size()
                    )));
                }
                let stored_root: Hash = root_from_nodes!(&mut *conn, size).await?;
                if stored_root != root {
                    return Err(StorageError::Inconsistent(format!(
                        "the stored tree does not match the last signed checkpoint (size {size})"
                    )));
                }
                Some(size)
            }
        };
        Ok::<_, StorageError>((head, checkpoint_size))
    })
}
