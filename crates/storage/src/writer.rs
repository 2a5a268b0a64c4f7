//! The single writer task: group commits of runs and ledger blocks, and
//! checkpoint records.

mod group;

use crate::backend::{dispatch, WriteConn};
use crate::cache::NodeCache;
use crate::change::{AdminWrite, StateChange};
use crate::codec::{fetch_nodes, root_from_nodes, to_hash, to_i64};
use crate::record::RunRecord;
use crate::{StorageError, Stored, TreeHead};
use group::{write_group, JobOutcome};
use qunimbus_ledger::block::{Block, BlockDraft};
use qunimbus_ledger::merkle::{self, Hash, NodeId, RightEdge};
use sqlx::Connection;
use std::collections::HashMap;
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
