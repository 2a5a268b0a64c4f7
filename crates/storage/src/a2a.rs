//! A2A tasks (SPEC §12): stored as their protocol JSON, found by id and
//! listed newest first per owner. Writes go through the writer queue.

use crate::backend::dispatch;
use crate::change::AdminWrite;
use crate::{Reader, StorageError, Store};

/// One stored task.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TaskRecord {
    /// The task's id.
    pub id: String,
    /// Its context.
    pub context_id: String,
    /// The credential that created it (only it, or an admin, may see it).
    pub owner: String,
    /// The skill it runs.
    pub skill: String,
    /// Its state (`TASK_STATE_…`).
    pub state: String,
    /// The task as A2A JSON.
    pub task: String,
    /// When it was created (RFC 3339, µs).
    pub created_at: String,
    /// Its last change.
    pub updated_at: String,
}

const COLUMNS: &str = "id, context_id, owner, skill, state, task, created_at, updated_at";

/// Which tasks a list shows.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this owner's (`None`: everyone's).
    pub owner: Option<String>,
    /// Only this context's.
    pub context_id: Option<String>,
    /// Only in this state.
    pub state: Option<String>,
    /// Only those created before this (created_at, id): the page cursor.
    pub before: Option<(String, String)>,
}

impl Reader {
    /// The task `id`.
    pub async fn a2a_task(&self, id: &str) -> Result<Option<TaskRecord>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM a2a_tasks WHERE id = $1");
        Ok(dispatch!(&self.pool, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })?)
    }

    /// Up to `limit` tasks matching `filter`, newest first.
    pub async fn a2a_tasks(
        &self,
        filter: &TaskFilter,
        limit: u32,
    ) -> Result<Vec<TaskRecord>, StorageError> {
        let (before_at, before_id) = filter.before.clone().unzip();
        let sql = format!(
            "SELECT {COLUMNS} FROM a2a_tasks \
             WHERE ($1 IS NULL OR owner = $1) AND ($2 IS NULL OR context_id = $2) \
             AND ($3 IS NULL OR state = $3) \
             AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) \
             ORDER BY created_at DESC, id DESC LIMIT $6"
        );
        Ok(dispatch!(&self.pool, pool => {
            sqlx::query_as(&sql)
                .bind(filter.owner.clone())
                .bind(filter.context_id.clone())
                .bind(filter.state.clone())
                .bind(before_at.clone())
                .bind(before_id.clone())
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })?)
    }

    /// How many tasks match `filter` (its cursor ignored).
    pub async fn a2a_task_count(&self, filter: &TaskFilter) -> Result<u64, StorageError> {
        let sql = "SELECT COUNT(*) FROM a2a_tasks \
                   WHERE ($1 IS NULL OR owner = $1) AND ($2 IS NULL OR context_id = $2) \
                   AND ($3 IS NULL OR state = $3)";
        let count: i64 = dispatch!(&self.pool, pool => {
            sqlx::query_scalar(sql)
                .bind(filter.owner.clone())
                .bind(filter.context_id.clone())
                .bind(filter.state.clone())
                .fetch_one(pool)
                .await
        })?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Tasks not in a final state (a restart finds them unfinished).
    pub async fn a2a_unfinished_tasks(&self) -> Result<Vec<TaskRecord>, StorageError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM a2a_tasks \
             WHERE state IN ('TASK_STATE_SUBMITTED', 'TASK_STATE_WORKING') ORDER BY created_at"
        );
        Ok(dispatch!(&self.pool, pool => {
            sqlx::query_as(&sql).fetch_all(pool).await
        })?)
    }
}

impl Store {
    /// Stores `task` (inserted, or its state and JSON replaced).
    pub async fn put_a2a_task(&self, task: &TaskRecord) -> Result<(), StorageError> {
        self.admin(AdminWrite::PutTask(task.clone()))
            .await
            .map(drop)
    }
}
