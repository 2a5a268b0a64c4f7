//! A2A tasks: each one stored in the database as its protocol JSON (so it
//! survives a restart), the running ones also held here with their cancel
//! flag and a channel of their changes for streams and waiting callers.

use a2a::{Artifact, Message, Part, Role, Task, TaskState, TaskStatus};
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_node::Node;
use qunimbus_storage::{StorageError, TaskRecord};
use rand::RngCore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What a restart tells a task it interrupted.
pub const INTERRUPTED: &str = "the node restarted while this task ran; send the message again";

/// A running task: how to stop it and where its changes go.
struct Running {
    cancel: Arc<AtomicBool>,
    changes: watch::Sender<Task>,
}

/// The node's A2A tasks.
#[derive(Default)]
pub struct TaskBook {
    running: Mutex<HashMap<String, Running>>,
}

/// A task's owner and skill, as stored beside it.
#[derive(Debug, Clone)]
pub struct Owned {
    /// The credential that created it.
    pub owner: String,
    /// The skill it runs.
    pub skill: String,
    /// When it was created (RFC 3339, µs).
    pub created_at: String,
}

impl Owned {
    /// The owner, skill and creation of a stored task.
    pub fn of(record: &TaskRecord) -> Self {
        Self {
            owner: record.owner.clone(),
            skill: record.skill.clone(),
            created_at: record.created_at.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fresh id (128 bits from the OS generator).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}-{}", qunimbus_ledger::hex::encode(&bytes))
}

/// The protocol name of a state (`TASK_STATE_…`).
pub fn state_name(state: &TaskState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// An agent message of one text part, in `task`'s context.
pub fn agent_text(task: &Task, text: impl Into<String>) -> Message {
    Message {
        message_id: new_id("msg"),
        context_id: Some(task.context_id.clone()),
        task_id: Some(task.id.clone()),
        role: Role::Agent,
        parts: vec![Part::text(text)],
        metadata: None,
        extensions: None,
        reference_task_ids: None,
    }
}

/// Sets `task`'s state now, with an agent message when given.
pub fn set_state(task: &mut Task, state: TaskState, text: Option<String>) {
    let message = text.map(|t| agent_text(task, t));
    task.status = TaskStatus {
        state,
        message,
        timestamp: Some(chrono::Utc::now()),
    };
}

/// The task's result: one artifact holding `data` as a data part.
pub fn complete(task: &mut Task, name: &str, data: serde_json::Value) {
    task.artifacts = Some(vec![Artifact {
        artifact_id: new_id("art"),
        name: Some(name.to_string()),
        description: None,
        parts: vec![Part::data(data)],
        metadata: None,
        extensions: None,
    }]);
    set_state(task, TaskState::Completed, None);
}

/// The stored form of `task`.
pub fn record(task: &Task, owned: &Owned) -> TaskRecord {
    TaskRecord {
        id: task.id.clone(),
        context_id: task.context_id.clone(),
        owner: owned.owner.clone(),
        skill: owned.skill.clone(),
        state: state_name(&task.status.state),
        task: serde_json::to_string(task).unwrap_or_default(),
        created_at: owned.created_at.clone(),
        updated_at: rfc3339_micros(now_micros()),
    }
}

/// A stored task, read back (`None` if its JSON is not a task: a defect).
pub fn parse(record: &TaskRecord) -> Option<Task> {
    serde_json::from_str(&record.task).ok()
}

impl TaskBook {
    /// Registers `task` as running (its cancel flag and its changes),
    /// unless `max` tasks already run.
    pub fn start(&self, task: &Task, max: usize) -> Option<(Arc<AtomicBool>, watch::Sender<Task>)> {
        let mut running = lock(&self.running);
        if running.len() >= max {
            return None;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let (changes, _) = watch::channel(task.clone());
        running.insert(
            task.id.clone(),
            Running {
                cancel: cancel.clone(),
                changes: changes.clone(),
            },
        );
        Some((cancel, changes))
    }

    /// The task ended: it is no longer held here.
    pub fn finish(&self, id: &str) {
        lock(&self.running).remove(id);
    }

    /// Follows a running task's changes (`None` when it is not running).
    pub fn follow(&self, id: &str) -> Option<watch::Receiver<Task>> {
        lock(&self.running).get(id).map(|r| r.changes.subscribe())
    }

    /// Asks a running task to stop; false when it is not running.
    pub fn cancel(&self, id: &str) -> bool {
        match lock(&self.running).get(id) {
            Some(r) => {
                r.cancel.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Marks every task a previous run left unfinished as failed (its
    /// work died with that process).
    pub async fn recover(node: &Node) -> Result<usize, StorageError> {
        let mut recovered = 0;
        for stored in node.store.reader().a2a_unfinished_tasks().await? {
            let Some(mut task) = parse(&stored) else {
                tracing::error!(task = %stored.id, "a stored A2A task is not a task; left as it is");
                continue;
            };
            set_state(&mut task, TaskState::Failed, Some(INTERRUPTED.into()));
            node.store
                .put_a2a_task(&record(&task, &Owned::of(&stored)))
                .await?;
            recovered += 1;
        }
        Ok(recovered)
    }
}
