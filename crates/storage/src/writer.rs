//! The single writer task: group commits of runs and ledger blocks, and
//! checkpoint records.

use crate::backend::{dispatch, WriteConn};
use crate::cache::NodeCache;
use crate::change::{AdminWrite, StateChange};
use crate::record::{block_json_columns, RunRecord, RunRow, RUN_COLUMNS};
use crate::{StorageError, Stored, TreeHead};
use qunimbus_ledger::block::{Block, BlockDraft};
use qunimbus_ledger::merkle::{self, Hash, NodeId, RightEdge};
use sqlx::{Connection, Executor, QueryBuilder};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// A newly stored run and when its request arrived (monotonic), in commit order.
#[derive(Debug, Clone)]
pub struct CommittedRun {
    /// The run as stored (with its block index and feed seq).
    pub record: RunRecord,
    /// When the node received the request that carried it.
    pub received: Option<Instant>,
}

/// Receives the runs of each commit, in feed order, right after the commit.
pub type RunsObserver = Arc<dyn Fn(Vec<CommittedRun>) + Send + Sync>;

/// Receives `(rows in the transaction, time from BEGIN to COMMIT)` after each commit.
pub type CommitObserver = Arc<dyn Fn(usize, Duration) + Send + Sync>;

/// Produces `(signed note, signed_at)` for a tree size and root. Called only
/// after the writer has checked that they extend the last checkpoint.
pub type CheckpointSigner = Box<dyn FnOnce(u64, &Hash) -> (String, String) + Send + Sync>;

/// A run to store together with the draft of its `valuation` block.
pub type RunEntry = (RunRecord, BlockDraft);

/// Work for the writer.
pub(crate) enum WriteJob {
    /// Store runs; each new one gets its block.
    Runs {
        entries: Vec<RunEntry>,
        received: Option<Instant>,
        reply: oneshot::Sender<Result<Vec<Stored>, StorageError>>,
    },
    /// One small administrative write (partners, node state).
    Admin {
        write: AdminWrite,
        reply: oneshot::Sender<Result<u64, StorageError>>,
    },
    /// Append blocks that record no run (attestations, rollouts, overrides),
    /// and make `changes` in the same transaction.
    Blocks {
        drafts: Vec<BlockDraft>,
        changes: Vec<StateChange>,
        reply: oneshot::Sender<Result<Vec<Block>, StorageError>>,
    },
    /// Record a signed checkpoint.
    Checkpoint {
        size: u64,
        root: Hash,
        sign: CheckpointSigner,
        reply: oneshot::Sender<Result<String, StorageError>>,
    },
    /// Record the outcome of one attempt to time-stamp a checkpoint.
    Timestamp {
        size: u64,
        outcome: TimestampOutcome,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
}

/// A value bound to a [`Statement`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    /// TEXT (or NULL).
    Text(Option<String>),
    /// BIGINT / INTEGER (or NULL).
    Int(Option<i64>),
    /// DOUBLE PRECISION / REAL (or NULL).
    Real(Option<f64>),
    /// The index of the job's n-th block, known once the blocks are sealed.
    BlockIndex(usize),
}

/// A parameterised statement (`$1`… placeholders) written in the same
/// transaction as the blocks it accompanies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    /// The SQL, the same for both backends.
    pub sql: &'static str,
    /// One value per placeholder.
    pub binds: Vec<SqlValue>,
}

/// The result of asking a TSA for a checkpoint's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampOutcome {
    /// A verified token (DER) and where it came from (a URL or "built-in").
    Token {
        /// The TimeStampToken, DER.
        token: Vec<u8>,
        /// The TSA that issued it.
        source: String,
    },
    /// The attempt failed; the checkpoint stays pending.
    Failed {
        /// Why.
        error: String,
    },
}

impl WriteJob {
    fn rows(&self) -> usize {
        match self {
            Self::Runs { entries, .. } => entries.len(),
            Self::Blocks { drafts, .. } => drafts.len(),
            Self::Checkpoint { .. } | Self::Timestamp { .. } | Self::Admin { .. } => 1,
        }
    }

    /// Answers every job of a failed group that shared the transaction.
    fn fail(self, error: &StorageError) {
        self.fail_with(StorageError::CommitFailed(error.to_string()));
    }

    /// Answers the job with `e` itself (a job that committed alone).
    fn fail_with(self, e: StorageError) {
        match self {
            Self::Runs { reply, .. } => drop(reply.send(Err(e))),
            Self::Blocks { reply, .. } => drop(reply.send(Err(e))),
            Self::Checkpoint { reply, .. } => drop(reply.send(Err(e))),
            Self::Timestamp { reply, .. } => drop(reply.send(Err(e))),
            Self::Admin { reply, .. } => drop(reply.send(Err(e))),
        }
    }
}

/// The chain's in-memory head: what the next block links to and the Merkle right edge.
#[derive(Clone)]
pub(crate) struct ChainHead {
    pub next_index: u64,
    pub next_feed_seq: u64,
    pub last_hash: String,
    pub edge: RightEdge,
}

/// Rows per INSERT statement (≤ 19 bound columns each; under both drivers' parameter limits).
const ROWS_PER_STATEMENT: usize = 500;

pub(crate) struct Writer {
    conn: WriteConn,
    /// Held (and released) with the writer.
    _lock: crate::backend::WriterLock,
    head: ChainHead,
    max_group_rows: usize,
    on_commit: Option<CommitObserver>,
    published: watch::Sender<TreeHead>,
    cache: Arc<NodeCache>,
    on_runs: Option<RunsObserver>,
    /// Rows of run jobs waiting in the queue (admission control in `Store`).
    queued_rows: Arc<AtomicUsize>,
}

impl Writer {
    pub fn new(
        writer: crate::backend::LockedWriter,
        head: ChainHead,
        options: &crate::StoreOptions,
        published: watch::Sender<TreeHead>,
        cache: Arc<NodeCache>,
        queued_rows: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            conn: writer.conn,
            _lock: writer.lock,
            head,
            max_group_rows: options.max_group_rows.max(1),
            on_commit: options.on_commit.clone(),
            published,
            cache,
            on_runs: options.on_runs.clone(),
            queued_rows,
        }
    }

    /// Serves jobs until shutdown is signalled, then drains both queues and
    /// closes. Control jobs (checkpoints, time-stamps, blocks and
    /// administrative statements) come first whenever one is waiting, so
    /// saturating ingest never starves them; each commits in a transaction
    /// of its own, so a block that cannot be sealed fails only its own job.
    /// Runs are group-committed.
    pub async fn run(
        mut self,
        mut control: mpsc::Receiver<WriteJob>,
        mut runs: mpsc::Receiver<WriteJob>,
        shutdown: Arc<Notify>,
    ) {
        let mut stopping = false;
        loop {
            let next = if stopping {
                match control.recv().await {
                    Some(job) => Some(job),
                    None => runs.recv().await,
                }
            } else {
                tokio::select! {
                    biased;
                    job = control.recv() => job,
                    job = runs.recv() => job,
                    () = shutdown.notified() => {
                        control.close();
                        runs.close();
                        stopping = true;
                        continue;
                    }
                }
            };
            let Some(first) = next else { break };
            match first {
                WriteJob::Runs { .. } => {
                    let mut group = vec![first];
                    let mut rows = group[0].rows();
                    while rows < self.max_group_rows {
                        match runs.try_recv() {
                            Ok(job) => {
                                rows += job.rows();
                                group.push(job);
                            }
                            Err(_) => break,
                        }
                    }
                    self.queued_rows.fetch_sub(rows, Ordering::Relaxed);
                    self.commit_group(group, rows).await;
                }
                job => self.serve_control(job).await,
            }
        }
        if let Err(e) = self.conn.close().await {
            tracing::warn!(error = %e, "closing the writer connection failed");
        }
    }

    /// Runs one control job in a transaction of its own.
    async fn serve_control(&mut self, job: WriteJob) {
        match job {
            WriteJob::Checkpoint {
                size,
                root,
                sign,
                reply,
            } => drop(reply.send(self.save_checkpoint(size, root, sign).await)),
            WriteJob::Timestamp {
                size,
                outcome,
                reply,
            } => drop(reply.send(self.save_timestamp(size, outcome).await)),
            WriteJob::Admin { write, reply } => {
                let (sql, binds) = write.statement();
                drop(reply.send(self.execute(sql, binds).await))
            }
            job => {
                let rows = job.rows();
                self.commit_group(vec![job], rows).await;
            }
        }
    }

    async fn commit_group(&mut self, group: Vec<WriteJob>, rows: usize) {
        let started = Instant::now();
        let mut head = self.head.clone();
        match write_group(&mut self.conn, &mut head, &group).await {
            Ok((mut outcomes, nodes)) => {
                self.cache.extend(&nodes);
                self.head = head;
                self.publish();
                if let Some(observe) = &self.on_commit {
                    observe(rows, started.elapsed());
                }
                if let Some(on_runs) = &self.on_runs {
                    let committed: Vec<CommittedRun> = group
                        .iter()
                        .zip(&outcomes)
                        .filter_map(|(job, outcome)| match (job, outcome) {
                            (WriteJob::Runs { received, .. }, JobOutcome::Runs(stored)) => Some(
                                stored
                                    .iter()
                                    .filter_map(|s| match s {
                                        Stored::Created(record) => Some(CommittedRun {
                                            record: record.clone(),
                                            received: *received,
                                        }),
                                        Stored::Existing(_) => None,
                                    })
                                    .collect::<Vec<_>>(),
                            ),
                            _ => None,
                        })
                        .flatten()
                        .collect();
                    if !committed.is_empty() {
                        on_runs(committed);
                    }
                }
                for job in group.into_iter().rev() {
                    let outcome = outcomes.pop();
                    match (job, outcome) {
                        (WriteJob::Runs { reply, .. }, Some(JobOutcome::Runs(stored))) => {
                            drop(reply.send(Ok(stored)))
                        }
                        (WriteJob::Blocks { reply, .. }, Some(JobOutcome::Blocks(blocks))) => {
                            drop(reply.send(Ok(blocks)))
                        }
                        (job, _) => job.fail(&StorageError::CommitFailed(
                            "internal: outcome mismatch".into(),
                        )),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows, "group commit failed; nothing from it was stored");
                let mut group = group;
                if group.len() == 1 {
                    if let Some(job) = group.pop() {
                        job.fail_with(e);
                    }
                    return;
                }
                for job in group {
                    job.fail(&e);
                }
            }
        }
    }

    fn publish(&self) {
        self.published.send_modify(|t| {
            t.size = self.head.edge.size();
            t.root = self.head.edge.root();
        });
    }

    /// Runs one administrative statement; a unique-key violation is `Conflict`.
    async fn execute(
        &mut self,
        sql: &str,
        binds: Vec<Option<String>>,
    ) -> Result<u64, StorageError> {
        let result = dispatch!(&mut self.conn, conn => {
            let mut query = sqlx::query(sql);
            for value in &binds {
                query = query.bind(value.as_deref());
            }
            query.execute(&mut *conn).await.map(|r| r.rows_affected())
        });
        result.map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StorageError::Conflict(db.message().to_string())
            }
            other => other.into(),
        })
    }

    /// Stores a token for checkpoint `size`, or counts a failed attempt.
    async fn save_timestamp(
        &mut self,
        size: u64,
        outcome: TimestampOutcome,
    ) -> Result<(), StorageError> {
        let size = to_i64(size)?;
        let updated = dispatch!(&mut self.conn, conn => match &outcome {
            TimestampOutcome::Token { token, source } => {
                sqlx::query(
                    "UPDATE checkpoints SET tsa_token = $1, tsa_source = $2, tsa_attempts = tsa_attempts + 1, \
                     tsa_error = NULL WHERE tree_size = $3",
                )
                .bind(token.as_slice())
                .bind(source.as_str())
                .bind(size)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            }
            TimestampOutcome::Failed { error } => {
                sqlx::query("UPDATE checkpoints SET tsa_attempts = tsa_attempts + 1, tsa_error = $1 WHERE tree_size = $2")
                    .bind(error.as_str())
                    .bind(size)
                    .execute(&mut *conn)
                    .await
                    .map(|r| r.rows_affected())
            }
        })?;
        if updated == 1 {
            Ok(())
        } else {
            Err(StorageError::OutOfRange(format!(
                "no checkpoint of size {size}"
            )))
        }
    }

    /// Signs and persists a checkpoint, but only after checking that it
    /// extends the last one: a larger size, a root equal to the stored tree's
    /// root at that size, and a consistency proof from the previous checkpoint
    /// that verifies. An inconsistent checkpoint is never signed.
    async fn save_checkpoint(
        &mut self,
        size: u64,
        root: Hash,
        sign: CheckpointSigner,
    ) -> Result<String, StorageError> {
        let size_i = to_i64(size)?;
        dispatch!(&mut self.conn, conn => {
            let mut tx = conn.begin().await?;
            let previous: Option<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT tree_size, root_hash FROM checkpoints ORDER BY tree_size DESC LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await?;
            let stored_root: Hash = root_from_nodes!(&mut *tx, size).await?;
            if stored_root != root {
                return Err(StorageError::Inconsistent(format!(
                    "checkpoint root for size {size} does not match the stored tree"
                )));
            }
            if let Some((prev_size, prev_root)) = previous {
                let prev_size = u64::try_from(prev_size).map_err(|_| StorageError::Corrupt("checkpoint size".into()))?;
                let prev_root = to_hash(&prev_root)?;
                if size <= prev_size {
                    return Err(StorageError::Inconsistent(format!(
                        "checkpoint size {size} does not extend the last signed size {prev_size}"
                    )));
                }
                let plan = merkle::consistency_plan(prev_size, size).map_err(|e| StorageError::Inconsistent(e.to_string()))?;
                let ids: Vec<NodeId> = plan.iter().flatten().copied().collect();
                let nodes: HashMap<NodeId, Hash> = fetch_nodes!(&mut *tx, &ids).await?;
                let proof = merkle::assemble(&plan, |id| nodes.get(&id).copied())
                    .map_err(|e| StorageError::Inconsistent(e.to_string()))?;
                merkle::verify_consistency(prev_size, size, &prev_root, &root, &proof).map_err(|e| {
                    StorageError::Inconsistent(format!("new checkpoint is not consistent with the last signed one: {e}"))
                })?;
            }
            let (note, signed_at) = sign(size, &root);
            sqlx::query("INSERT INTO checkpoints (tree_size, root_hash, note, signed_at) VALUES ($1, $2, $3, $4)")
                .bind(size_i)
                .bind(root.to_vec())
                .bind(&note)
                .bind(signed_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<String, StorageError>(note)
        })
        .inspect(|_| self.published.send_modify(|t| t.checkpoint_size = Some(size)))
    }
}

enum JobOutcome {
    Runs(Vec<Stored>),
    Blocks(Vec<Block>),
}

pub(crate) fn to_i64(n: u64) -> Result<i64, StorageError> {
    i64::try_from(n).map_err(|_| StorageError::Corrupt(format!("{n} does not fit the database")))
}

pub(crate) fn to_hash(bytes: &[u8]) -> Result<Hash, StorageError> {
    bytes.try_into().map_err(|_| {
        StorageError::Corrupt(format!("stored hash has {} bytes, not 32", bytes.len()))
    })
}

/// The database key of a stored node: `(level << 56) | index`.
pub(crate) fn node_key(id: NodeId) -> Result<i64, StorageError> {
    if id.level >= 64 || id.index >= 1 << 56 {
        return Err(StorageError::OutOfRange(format!(
            "Merkle node {id:?} is outside the stored tree"
        )));
    }
    Ok((i64::from(id.level) << 56) | id.index as i64)
}

pub(crate) fn node_id(key: i64) -> Result<NodeId, StorageError> {
    let key = u64::try_from(key)
        .map_err(|_| StorageError::Corrupt(format!("negative node key {key}")))?;
    Ok(NodeId {
        level: (key >> 56) as u8,
        index: key & ((1 << 56) - 1),
    })
}

/// The SQL and bind values that read the given stored Merkle nodes.
pub(crate) fn nodes_query(ids: &[NodeId]) -> Result<(String, Vec<i64>), StorageError> {
    let unique: Vec<i64> = ids
        .iter()
        .map(|id| node_key(*id))
        .collect::<Result<HashSet<_>, _>>()?
        .into_iter()
        .collect();
    // Pad the list to a power of two (at least 32) with an impossible key so
    // that a handful of statement shapes cover every proof and each is
    // prepared once and then served from the statement cache.
    let slots = unique.len().max(32).next_power_of_two();
    let mut sql = String::from("SELECT node, hash FROM merkle_nodes WHERE node IN (");
    for i in 0..slots {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", i + 1));
    }
    sql.push(')');
    let mut binds = unique;
    binds.resize(slots, -1);
    Ok((sql, binds))
}

/// Decodes rows of `nodes_query`.
pub(crate) fn nodes_from_rows(
    rows: Vec<(i64, Vec<u8>)>,
) -> Result<HashMap<NodeId, Hash>, StorageError> {
    rows.into_iter()
        .map(|(key, hash)| Ok((node_id(key)?, to_hash(&hash)?)))
        .collect()
}

/// Reads stored Merkle nodes through any executor: `fetch_nodes!(executor, &ids)`.
/// (A macro rather than a generic function: generic sqlx executors inside
/// spawned futures trip rustc's higher-ranked lifetime inference.)
macro_rules! fetch_nodes {
    ($executor:expr, $ids:expr) => {
        async {
            let (sql, binds) = $crate::writer::nodes_query($ids)?;
            let mut query = sqlx::query_as::<_, (i64, Vec<u8>)>(&sql);
            for value in binds {
                query = query.bind(value);
            }
            let rows = query.fetch_all($executor).await?;
            $crate::writer::nodes_from_rows(rows)
        }
    };
}
pub(crate) use fetch_nodes;

/// The RFC 6962 root of the first `size` leaves from stored nodes:
/// `root_from_nodes!(executor, size)`.
macro_rules! root_from_nodes {
    ($executor:expr, $size:expr) => {
        async {
            let plan = qunimbus_ledger::merkle::root_plan($size);
            let nodes = $crate::writer::fetch_nodes!($executor, &plan).await?;
            $crate::writer::fold_plan(&plan, &nodes)
        }
    };
}
pub(crate) use root_from_nodes;

/// Folds the stored hashes of a root plan into the root.
pub(crate) fn fold_plan(
    plan: &[NodeId],
    nodes: &HashMap<NodeId, Hash>,
) -> Result<Hash, StorageError> {
    let hashes = plan
        .iter()
        .map(|id| {
            nodes.get(id).copied().ok_or_else(|| {
                StorageError::Inconsistent(format!("stored Merkle node {id:?} is missing"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(merkle::fold(&hashes).unwrap_or_else(merkle::empty_root))
}

/// Writes one group in one transaction. `head` advances only in the copy the
/// caller keeps on success.
/// Ends one statement of a group commit's script: PostgreSQL runs it now
/// (its extended protocol takes one statement per query); SQLite keeps
/// appending, so the whole script costs one round trip to its worker thread.
macro_rules! end_statement {
    ($script:ident, $conn:ident, $combine:expr) => {
        if $combine {
            $script.push("; ");
        } else {
            $script.build().execute(&mut *$conn).await?;
            $script.reset();
        }
    };
}

async fn write_group(
    conn: &mut WriteConn,
    head: &mut ChainHead,
    group: &[WriteJob],
) -> Result<(Vec<JobOutcome>, Vec<(NodeId, Hash)>), StorageError> {
    let run_ids: Vec<&str> = group
        .iter()
        .filter_map(|job| match job {
            WriteJob::Runs { entries, .. } => {
                Some(entries.iter().map(|(r, _)| r.telemetry.run_id.as_str()))
            }
            _ => None,
        })
        .flatten()
        .collect();
    let combine = matches!(conn, crate::backend::Either::Sqlite(_));
    dispatch!(conn, conn => {
        // The transaction is begun and ended by statements in the script;
        // every failure after BEGIN rolls it back before returning.
        let written = async {
            let mut script = QueryBuilder::new("");
            if combine {
                script.push("BEGIN IMMEDIATE; ");
            } else {
                (&mut *conn).execute("BEGIN").await?;
            }
            let mut existing: HashMap<String, RunRecord> = HashMap::new();
            for chunk in run_ids.chunks(ROWS_PER_STATEMENT) {
                script.push(format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id IN ("));
                let mut list = script.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                script.push(")");
                if !combine {
                    for row in script.build_query_as::<RunRow>().fetch_all(&mut *conn).await? {
                        let record = RunRecord::try_from(row)?;
                        existing.insert(record.telemetry.run_id.as_str().to_string(), record);
                    }
                    script.reset();
                } else {
                    script.push("; ");
                }
            }
            if combine && !run_ids.is_empty() {
                for row in script.build_query_as::<RunRow>().fetch_all(&mut *conn).await? {
                    let record = RunRecord::try_from(row)?;
                    existing.insert(record.telemetry.run_id.as_str().to_string(), record);
                }
                script.reset();
            }
            let plan = plan_group(head, group, existing)?;

            for chunk in plan.new_runs.chunks(ROWS_PER_STATEMENT) {
                let mut rows = Vec::with_capacity(chunk.len());
                for record in chunk {
                    let block_index = record.block_index.ok_or_else(|| StorageError::Corrupt("run without block".into()))?;
                    let feed_seq = record.feed_seq.ok_or_else(|| StorageError::Corrupt("run without feed seq".into()))?;
                    rows.push((record, to_i64(block_index)?, to_i64(feed_seq)?));
                }
                script.push(format!("INSERT INTO runs ({RUN_COLUMNS}) "));
                script.push_values(rows, |mut b, (r, block_index, feed_seq)| {
                    let (t, v) = (&r.telemetry, &r.valuation);
                    b.push_bind(t.run_id.as_str().to_string())
                        .push_bind(t.region.clone())
                        .push_bind(t.data_class.as_str())
                        .push_bind(t.metrics.eta_ent)
                        .push_bind(t.metrics.coherence_variance)
                        .push_bind(t.metrics.runtime_hours)
                        .push_bind(t.metrics.eph_delivered)
                        .push_bind(v.efficiency_multiplier)
                        .push_bind(v.coherence_penalty)
                        .push_bind(v.runtime_factor)
                        .push_bind(v.phi_qevf)
                        .push_bind(v.price_multiplier)
                        .push_bind(v.market_value)
                        .push_bind(v.eph_price)
                        .push_bind(v.coherence_within_threshold)
                        .push_bind(r.accepted_at_text())
                        .push_bind(block_index)
                        .push_bind(feed_seq)
                        .push_bind(r.erasure_salt.clone());
                });
                end_statement!(script, conn, combine);
            }
            for chunk in plan.blocks.chunks(ROWS_PER_STATEMENT) {
                let mut columns = Vec::with_capacity(chunk.len());
                for block in chunk {
                    columns.push((to_i64(block.index)?, block_json_columns(block)?));
                }
                script.push(format!("INSERT INTO blocks ({}) ", crate::record::BLOCK_COLUMNS));
                script.push_values(chunk.iter().zip(columns), |mut b, (block, (idx, (attestations, payload)))| {
                    b.push_bind(idx)
                        .push_bind(block.timestamp.clone())
                        .push_bind(block.kind.as_str())
                        .push_bind(block.phi_qevf)
                        .push_bind(block.eta_ent)
                        .push_bind(block.region.clone())
                        .push_bind(block.run_id.clone())
                        .push_bind(attestations)
                        .push_bind(payload)
                        .push_bind(block.previous_hash.clone())
                        .push_bind(block.hash.clone());
                });
                end_statement!(script, conn, combine);
            }
            for chunk in plan.nodes.chunks(ROWS_PER_STATEMENT) {
                let mut rows = Vec::with_capacity(chunk.len());
                for (id, hash) in chunk {
                    rows.push((node_key(*id)?, hash.to_vec()));
                }
                script.push("INSERT INTO merkle_nodes (node, hash) ");
                script.push_values(rows, |mut b, (node, hash)| {
                    b.push_bind(node).push_bind(hash);
                });
                end_statement!(script, conn, combine);
            }
            if combine && !plan.extra.is_empty() && !script.sql().trim().is_empty() {
                // Statements with their own `$N` placeholders run on their own.
                script.build().execute(&mut *conn).await?;
                script.reset();
            }
            for (sql, binds) in plan.extra.iter().cloned() {
                let mut query = sqlx::query(sql);
                for value in binds {
                    query = match value {
                        SqlValue::Text(v) => query.bind(v),
                        SqlValue::Int(v) => query.bind(v),
                        SqlValue::Real(v) => query.bind(v),
                        SqlValue::BlockIndex(_) => {
                            return Err(StorageError::Corrupt("internal: unresolved block index".into()))
                        }
                    };
                }
                query.execute(&mut *conn).await.map_err(|e| match e {
                    sqlx::Error::Database(db) if db.is_unique_violation() => {
                        StorageError::Conflict(db.message().to_string())
                    }
                    other => other.into(),
                })?;
            }
            if combine {
                script.push("COMMIT");
                script.build().execute(&mut *conn).await?;
            } else {
                (&mut *conn).execute("COMMIT").await?;
            }
            Ok::<_, StorageError>((plan.outcomes, plan.nodes))
        }
        .await;
        if written.is_err() {
            // Nothing of the group may stay; a failed rollback (no transaction
            // left after a failed COMMIT) changes nothing.
            let _ = (&mut *conn).execute("ROLLBACK").await;
        }
        written
    })
}

/// What a group commit writes, decided before the first insert.
struct GroupPlan {
    outcomes: Vec<JobOutcome>,
    new_runs: Vec<RunRecord>,
    blocks: Vec<Block>,
    nodes: Vec<(NodeId, Hash)>,
    extra: Vec<(&'static str, Vec<SqlValue>)>,
}

/// Seals the group's blocks on `head` and assigns feed seqs; runs already
/// stored (`existing`) are answered with the stored record and get no block.
fn plan_group(
    head: &mut ChainHead,
    group: &[WriteJob],
    mut existing: HashMap<String, RunRecord>,
) -> Result<GroupPlan, StorageError> {
    let mut plan = GroupPlan {
        outcomes: Vec::with_capacity(group.len()),
        new_runs: Vec::new(),
        blocks: Vec::new(),
        nodes: Vec::new(),
        extra: Vec::new(),
    };
    for job in group {
        match job {
            WriteJob::Runs { entries, .. } => {
                let mut stored = Vec::with_capacity(entries.len());
                for (record, draft) in entries {
                    let id = record.telemetry.run_id.as_str();
                    if let Some(original) = existing.get(id) {
                        stored.push(Stored::Existing(original.clone()));
                        continue;
                    }
                    let block = seal(head, draft.clone(), &mut plan.nodes)?;
                    let mut record = record.clone();
                    record.block_index = Some(block.index);
                    record.feed_seq = Some(head.next_feed_seq);
                    head.next_feed_seq += 1;
                    plan.blocks.push(block);
                    existing.insert(id.to_string(), record.clone());
                    plan.new_runs.push(record.clone());
                    stored.push(Stored::Created(record));
                }
                plan.outcomes.push(JobOutcome::Runs(stored));
            }
            WriteJob::Blocks {
                drafts, changes, ..
            } => {
                let mut sealed = Vec::with_capacity(drafts.len());
                for draft in drafts {
                    let block = seal(head, draft.clone(), &mut plan.nodes)?;
                    sealed.push(block.clone());
                    plan.blocks.push(block);
                }
                for statement in changes.iter().flat_map(StateChange::statements) {
                    plan.extra.push(bind_statement(&statement, &sealed)?);
                }
                plan.outcomes.push(JobOutcome::Blocks(sealed));
            }
            WriteJob::Checkpoint { .. } | WriteJob::Timestamp { .. } | WriteJob::Admin { .. } => {}
        }
    }
    Ok(plan)
}

/// Resolves a statement's block-index placeholders against its job's sealed blocks.
fn bind_statement(
    statement: &Statement,
    sealed: &[Block],
) -> Result<(&'static str, Vec<SqlValue>), StorageError> {
    let mut binds = Vec::with_capacity(statement.binds.len());
    for value in &statement.binds {
        binds.push(match value {
            SqlValue::BlockIndex(n) => {
                let block = sealed.get(*n).ok_or_else(|| {
                    StorageError::InvalidBlock(format!(
                        "statement refers to block #{n} of {}",
                        sealed.len()
                    ))
                })?;
                SqlValue::Int(Some(to_i64(block.index)?))
            }
            other => other.clone(),
        });
    }
    Ok((statement.sql, binds))
}

/// Seals the next block onto `head`, adding its new Merkle nodes to `nodes`.
fn seal(
    head: &mut ChainHead,
    draft: BlockDraft,
    nodes: &mut Vec<(NodeId, Hash)>,
) -> Result<Block, StorageError> {
    let (block, digests) = Block::seal_digested(draft, head.next_index, &head.last_hash)
        .map_err(|e| StorageError::InvalidBlock(e.to_string()))?;
    nodes.extend(head.edge.append(digests.leaf_hash));
    head.next_index += 1;
    head.last_hash = block.hash.clone();
    Ok(block)
}
