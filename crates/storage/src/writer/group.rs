//! One group commit: the runs already stored are read, the group's blocks
//! sealed, and the runs, blocks, Merkle nodes and state changes written in
//! one transaction.

use super::{ChainHead, SqlValue, Statement, WriteJob};
use crate::backend::{dispatch, WriteConn};
use crate::change::StateChange;
use crate::codec::{node_key, to_i64};
use crate::record::{block_json_columns, RunRecord, RunRow, RUN_COLUMNS};
use crate::{StorageError, Stored};
use qunimbus_ledger::block::{Block, BlockDraft};
use qunimbus_ledger::merkle::{Hash, NodeId};
use sqlx::{Executor, QueryBuilder};
use std::collections::HashMap;

/// Rows per INSERT statement (≤ 20 bound columns each; under both drivers' parameter limits).
const ROWS_PER_STATEMENT: usize = 500;

/// What each job of a committed group gets back.
pub(super) enum JobOutcome {
    Runs(Vec<Stored>),
    Blocks(Vec<Block>),
}

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

/// Opens the group's transaction (on SQLite as the script's first statement).
macro_rules! begin {
    ($script:ident, $conn:ident, $combine:expr) => {
        if $combine {
            $script.push("BEGIN IMMEDIATE; ");
        } else {
            (&mut *$conn).execute("BEGIN").await?;
        }
    };
}

/// Reads the runs of the group that are already stored, by run id.
macro_rules! select_existing {
    ($script:ident, $conn:ident, $combine:expr, $run_ids:expr) => {{
        let mut existing: HashMap<String, RunRecord> = HashMap::new();
        let chunks = $run_ids.chunks(ROWS_PER_STATEMENT);
        let last = chunks.len();
        for (i, chunk) in chunks.enumerate() {
            $script.push(format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id IN ("));
            let mut list = $script.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            $script.push(")");
            // SQLite answers the combined SELECTs in one fetch, after the last.
            if $combine && i + 1 < last {
                $script.push("; ");
                continue;
            }
            let rows = $script
                .build_query_as::<RunRow>()
                .fetch_all(&mut *$conn)
                .await?;
            for row in rows {
                let record = RunRecord::try_from(row)?;
                existing.insert(record.telemetry.run_id.as_str().to_string(), record);
            }
            $script.reset();
        }
        existing
    }};
}

/// Inserts the group's new runs.
macro_rules! insert_runs {
    ($script:ident, $conn:ident, $combine:expr, $runs:expr) => {
        for chunk in $runs.chunks(ROWS_PER_STATEMENT) {
            let rows = run_rows(chunk)?;
            $script.push(format!("INSERT INTO runs ({RUN_COLUMNS}) "));
            $script.push_values(rows, |mut b, (r, block_index, feed_seq)| {
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
                    .push_bind(r.erasure_salt.clone())
                    .push_bind(r.policy_sha256.clone());
            });
            end_statement!($script, $conn, $combine);
        }
    };
}

/// Inserts the group's sealed blocks.
macro_rules! insert_blocks {
    ($script:ident, $conn:ident, $combine:expr, $blocks:expr) => {
        for chunk in $blocks.chunks(ROWS_PER_STATEMENT) {
            let mut columns = Vec::with_capacity(chunk.len());
            for block in chunk {
                columns.push((to_i64(block.index)?, block_json_columns(block)?));
            }
            $script.push(format!(
                "INSERT INTO blocks ({}) ",
                crate::record::BLOCK_COLUMNS
            ));
            let rows = chunk.iter().zip(columns);
            $script.push_values(rows, |mut b, (block, (idx, (attestations, payload)))| {
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
            end_statement!($script, $conn, $combine);
        }
    };
}

/// Inserts the Merkle nodes the group's leaves completed.
macro_rules! insert_nodes {
    ($script:ident, $conn:ident, $combine:expr, $nodes:expr) => {
        for chunk in $nodes.chunks(ROWS_PER_STATEMENT) {
            let mut rows = Vec::with_capacity(chunk.len());
            for (id, hash) in chunk {
                rows.push((node_key(*id)?, hash.to_vec()));
            }
            $script.push("INSERT INTO merkle_nodes (node, hash) ");
            $script.push_values(rows, |mut b, (node, hash)| {
                b.push_bind(node).push_bind(hash);
            });
            end_statement!($script, $conn, $combine);
        }
    };
}

/// Runs the state changes that accompany the group's blocks. Statements
/// with their own `$N` placeholders run on their own, so SQLite's pending
/// script is sent first.
macro_rules! apply_state_changes {
    ($script:ident, $conn:ident, $combine:expr, $statements:expr) => {
        if $combine && !$statements.is_empty() && !$script.sql().trim().is_empty() {
            $script.build().execute(&mut *$conn).await?;
            $script.reset();
        }
        for (sql, binds) in $statements.iter().cloned() {
            let mut query = sqlx::query(sql);
            for value in binds {
                query = match value {
                    SqlValue::Text(v) => query.bind(v),
                    SqlValue::Int(v) => query.bind(v),
                    SqlValue::Real(v) => query.bind(v),
                    SqlValue::BlockIndex(_) => {
                        return Err(StorageError::Corrupt(
                            "internal: unresolved block index".into(),
                        ))
                    }
                };
            }
            query.execute(&mut *$conn).await.map_err(conflict_or)?;
        }
    };
}

/// Commits the group's transaction (on SQLite as the script's last statement).
macro_rules! commit {
    ($script:ident, $conn:ident, $combine:expr) => {
        if $combine {
            $script.push("COMMIT");
            $script.build().execute(&mut *$conn).await?;
        } else {
            (&mut *$conn).execute("COMMIT").await?;
        }
    };
}

/// Writes one group in one transaction. `head` advances only in the copy the
/// caller keeps on success.
pub(super) async fn write_group(
    conn: &mut WriteConn,
    head: &mut ChainHead,
    group: &[WriteJob],
) -> Result<(Vec<JobOutcome>, Vec<(NodeId, Hash)>), StorageError> {
    let run_ids = run_ids(group);
    let combine = matches!(conn, crate::backend::Either::Sqlite(_));
    dispatch!(conn, conn => {
        // The transaction is begun and ended by statements in the script;
        // every failure after BEGIN rolls it back before returning.
        let written = async {
            let mut script = QueryBuilder::new("");
            begin!(script, conn, combine);
            let existing = select_existing!(script, conn, combine, run_ids);
            let plan = plan_group(head, group, existing)?;
            insert_runs!(script, conn, combine, plan.new_runs);
            insert_blocks!(script, conn, combine, plan.blocks);
            insert_nodes!(script, conn, combine, plan.nodes);
            apply_state_changes!(script, conn, combine, plan.extra);
            commit!(script, conn, combine);
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

/// The run ids of the group's run jobs, in order.
fn run_ids(group: &[WriteJob]) -> Vec<&str> {
    group
        .iter()
        .filter_map(|job| match job {
            WriteJob::Runs { entries, .. } => {
                Some(entries.iter().map(|(r, _)| r.telemetry.run_id.as_str()))
            }
            _ => None,
        })
        .flatten()
        .collect()
}

/// Each new run with its block index and feed seq as database integers.
fn run_rows(chunk: &[RunRecord]) -> Result<Vec<(&RunRecord, i64, i64)>, StorageError> {
    chunk
        .iter()
        .map(|record| {
            let block_index = record
                .block_index
                .ok_or_else(|| StorageError::Corrupt("run without block".into()))?;
            let feed_seq = record
                .feed_seq
                .ok_or_else(|| StorageError::Corrupt("run without feed seq".into()))?;
            Ok((record, to_i64(block_index)?, to_i64(feed_seq)?))
        })
        .collect()
}

/// A unique-key violation of a state change is a conflict the caller named.
fn conflict_or(e: sqlx::Error) -> StorageError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StorageError::Conflict(db.message().to_string())
        }
        other => other.into(),
    }
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
