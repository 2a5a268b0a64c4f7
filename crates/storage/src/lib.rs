//! Durable storage for a QuNimbus node.
//!
//! SQLite (via `sqlx`) in WAL mode with `synchronous = FULL`, so a commit is
//! on disk before it returns. All writes go through one writer task that
//! group-commits: it takes every job waiting in its queue, writes them in a
//! single `BEGIN IMMEDIATE` transaction and answers each job after the
//! commit, so one fsync covers many runs and writers never contend for the
//! database lock. Reads use a separate small connection pool.

mod record;
mod writer;

pub use record::{RunRecord, Stored};
pub use writer::CommitObserver;

use qunimbus_valuation::{nearest_rank, PhiStats};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use writer::{WriteJob, Writer};

/// Storage failures.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not decode into a valid record.
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    /// The group transaction this write belonged to failed and was rolled back.
    #[error("commit failed, nothing was stored: {0}")]
    CommitFailed(String),
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
    /// Stop gathering more jobs into one transaction once it holds this many rows.
    pub max_group_rows: usize,
    /// Connections in the read pool.
    pub read_connections: u32,
    /// Called after every commit with its size and duration (for metrics).
    pub on_commit: Option<CommitObserver>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            queue_depth: 8192,
            max_group_rows: 4096,
            read_connections: 4,
            on_commit: None,
        }
    }
}

/// The node's database: a read pool plus the group-committing writer.
pub struct Store {
    reader: SqlitePool,
    jobs: mpsc::Sender<WriteJob>,
    shutdown: std::sync::Arc<Notify>,
    writer_task: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`, applies the
    /// migrations and starts the writer task.
    pub async fn open_sqlite(path: &Path, options: StoreOptions) -> Result<Self, StorageError> {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .log_statements(tracing::log::LevelFilter::Trace);
        let mut write_conn = connect.connect().await?;
        sqlx::migrate!("./migrations").run(&mut write_conn).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .connect_with(connect.read_only(true))
            .await?;
        let (jobs, rx) = mpsc::channel(options.queue_depth.max(1));
        let shutdown = std::sync::Arc::new(Notify::new());
        let writer = Writer::new(write_conn, options.max_group_rows, options.on_commit);
        let writer_task = tokio::spawn(writer.run(rx, shutdown.clone()));
        Ok(Self {
            reader,
            jobs,
            shutdown,
            writer_task: Mutex::new(Some(writer_task)),
        })
    }

    /// Queues `records` to be stored in one transaction together and waits for
    /// the commit. Returns, per record, whether it was newly stored or an
    /// earlier record with the same `run_id` already existed (idempotency).
    /// Either every new record is committed or none is.
    pub async fn append(&self, records: Vec<RunRecord>) -> Result<Vec<Stored>, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .try_send(WriteJob { records, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StorageError::Busy,
                mpsc::error::TrySendError::Closed(_) => StorageError::Closed,
            })?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// The `limit` most recently accepted runs, newest first, optionally of one region.
    pub async fn list(
        &self,
        region: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM runs WHERE (?1 IS NULL OR region = ?1) ORDER BY seq DESC LIMIT ?2",
            record::COLUMNS
        ))
        .bind(region)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(RunRecord::from_row).collect()
    }

    /// Looks up one run by its id.
    pub async fn get(&self, run_id: &str) -> Result<Option<RunRecord>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM runs WHERE run_id = ?1",
            record::COLUMNS
        ))
        .bind(run_id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(RunRecord::from_row).transpose()
    }

    /// Count, mean, min, max, p50 and p95 (nearest rank) of `phi_qevf` over
    /// every stored run.
    pub async fn phi_stats(&self) -> Result<PhiStats, StorageError> {
        let mut tx = self.reader.begin().await?;
        let row =
            sqlx::query("SELECT COUNT(*), AVG(phi_qevf), MIN(phi_qevf), MAX(phi_qevf) FROM runs")
                .fetch_one(&mut *tx)
                .await?;
        let count: i64 = row.try_get(0)?;
        let mut stats = PhiStats {
            count: count as u64,
            mean: row.try_get(1)?,
            min: row.try_get(2)?,
            max: row.try_get(3)?,
            p50: None,
            p95: None,
        };
        if count > 0 {
            for (p, slot) in [(50, &mut stats.p50), (95, &mut stats.p95)] {
                let offset = nearest_rank(p, count as usize) as i64 - 1;
                let value: f64 = sqlx::query_scalar(
                    "SELECT phi_qevf FROM runs ORDER BY phi_qevf LIMIT 1 OFFSET ?1",
                )
                .bind(offset)
                .fetch_one(&mut *tx)
                .await?;
                *slot = Some(value);
            }
        }
        tx.commit().await?;
        Ok(stats)
    }

    /// `phi_qevf` of the `n` most recent runs, oldest first (to refill the
    /// engine's history after a restart).
    pub async fn recent_phi(&self, n: u32) -> Result<Vec<f64>, StorageError> {
        let mut values: Vec<f64> =
            sqlx::query_scalar("SELECT phi_qevf FROM runs ORDER BY seq DESC LIMIT ?1")
                .bind(i64::from(n))
                .fetch_all(&self.reader)
                .await?;
        values.reverse();
        Ok(values)
    }

    /// Whether the database answers and the writer is running.
    pub async fn ready(&self) -> Result<(), StorageError> {
        if self.jobs.is_closed() {
            return Err(StorageError::Closed);
        }
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// Stops taking writes, commits everything already queued, stops the
    /// writer and closes every connection. Idempotent.
    pub async fn close(&self) {
        self.shutdown.notify_one();
        let task = self.writer_task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "storage writer task failed");
            }
        }
        self.reader.close().await;
    }
}
