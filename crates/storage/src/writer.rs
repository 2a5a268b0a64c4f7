//! The single writer task and its group commit.

use crate::record::COLUMNS;
use crate::{RunRecord, StorageError, Stored};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, QueryBuilder, Sqlite};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify};

/// Receives `(rows in the transaction, time from BEGIN to COMMIT)` after each commit.
pub type CommitObserver = Arc<dyn Fn(usize, Duration) + Send + Sync>;

/// One caller's records and where to send the outcome.
pub(crate) struct WriteJob {
    pub records: Vec<RunRecord>,
    pub reply: oneshot::Sender<Result<Vec<Stored>, StorageError>>,
}

/// Rows per INSERT statement: 16 bound columns each, well under SQLite's
/// 32,766-parameter limit.
const ROWS_PER_STATEMENT: usize = 500;

pub(crate) struct Writer {
    conn: SqliteConnection,
    max_group_rows: usize,
    on_commit: Option<CommitObserver>,
}

impl Writer {
    pub fn new(
        conn: SqliteConnection,
        max_group_rows: usize,
        on_commit: Option<CommitObserver>,
    ) -> Self {
        Self {
            conn,
            max_group_rows: max_group_rows.max(1),
            on_commit,
        }
    }

    /// Serves jobs until shutdown is signalled, then drains the queue and closes.
    pub async fn run(mut self, mut rx: mpsc::Receiver<WriteJob>, shutdown: Arc<Notify>) {
        loop {
            let first = tokio::select! {
                job = rx.recv() => job,
                () = shutdown.notified() => {
                    rx.close();
                    rx.recv().await
                }
            };
            let Some(first) = first else { break };
            let mut group = vec![first];
            let mut rows = group[0].records.len();
            while rows < self.max_group_rows {
                match rx.try_recv() {
                    Ok(job) => {
                        rows += job.records.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group).await;
        }
        if let Err(e) = self.conn.close().await {
            tracing::warn!(error = %e, "closing the writer connection failed");
        }
    }

    async fn commit_group(&mut self, group: Vec<WriteJob>) {
        let started = Instant::now();
        let all: Vec<&RunRecord> = group.iter().flat_map(|j| j.records.iter()).collect();
        let result = write_all(&mut self.conn, &all).await;
        if result.is_ok() {
            if let Some(observe) = &self.on_commit {
                observe(all.len(), started.elapsed());
            }
        }
        match result {
            Ok(mut stored) => {
                for job in group {
                    let rest = stored.split_off(job.records.len());
                    let mine = std::mem::replace(&mut stored, rest);
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = all.len(), "group commit failed");
                let message = e.to_string();
                for job in group {
                    let _ = job
                        .reply
                        .send(Err(StorageError::CommitFailed(message.clone())));
                }
            }
        }
    }
}

/// Writes every record in one transaction, returning per record whether it
/// was created or already existed (earlier in the database or in this group).
async fn write_all(
    conn: &mut SqliteConnection,
    records: &[&RunRecord],
) -> Result<Vec<Stored>, StorageError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    let mut unique: Vec<&RunRecord> = Vec::with_capacity(records.len());
    for r in records {
        first_of
            .entry(r.telemetry.run_id.as_str())
            .or_insert_with(|| {
                unique.push(r);
                unique.len() - 1
            });
    }
    let mut inserted: HashSet<String> = HashSet::with_capacity(unique.len());
    for chunk in unique.chunks(ROWS_PER_STATEMENT) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("INSERT INTO runs ({COLUMNS}) "));
        qb.push_values(chunk, |mut b, r| {
            let (t, v) = (&r.telemetry, &r.valuation);
            b.push_bind(t.run_id.as_str())
                .push_bind(t.region.as_str())
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
                .push_bind(r.accepted_at_text());
        });
        qb.push(" ON CONFLICT (run_id) DO NOTHING RETURNING run_id");
        let ids: Vec<String> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
        inserted.extend(ids);
    }
    let mut resolved: Vec<Stored> = Vec::with_capacity(unique.len());
    for r in &unique {
        if inserted.contains(r.telemetry.run_id.as_str()) {
            resolved.push(Stored::Created((*r).clone()));
        } else {
            let row = sqlx::query(&format!("SELECT {COLUMNS} FROM runs WHERE run_id = ?1"))
                .bind(r.telemetry.run_id.as_str())
                .fetch_one(&mut *tx)
                .await?;
            resolved.push(Stored::Existing(RunRecord::from_row(&row)?));
        }
    }
    tx.commit().await?;
    let mut seen_created: HashSet<&str> = HashSet::new();
    Ok(records
        .iter()
        .map(|r| {
            let id = r.telemetry.run_id.as_str();
            let first = &resolved[first_of[id]];
            match first {
                Stored::Created(rec) if seen_created.insert(id) => Stored::Created(rec.clone()),
                other => Stored::Existing(other.record().clone()),
            }
        })
        .collect())
}
