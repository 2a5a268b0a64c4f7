//! `SendMessage` and `SendStreamingMessage`: a message becomes a stored
//! task; a quick skill completes it at once, `agent.backtest` runs on a
//! blocking thread with progress and a cancel flag, and the caller waits
//! for the end (or not, with `returnImmediately`), or follows it as a
//! stream of events.

use super::rpc::{respond, visible_task, RpcError};
use super::skills::{self, Refusal, Skill};
use super::tasks::{self, Owned};
use crate::state::AppState;
use a2a::{
    error_code, JsonRpcId, JsonRpcResponse, Role, SendMessageRequest, StreamResponse, Task,
    TaskArtifactUpdateEvent, TaskState, TaskStatus, TaskStatusUpdateEvent,
};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_node::backtest::SyntheticBacktest;
use qunimbus_node::tokens::Principal;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Longest a `SendMessage` waits for a long task before answering with it
/// still working (less when the request timeout is shorter).
const WAIT: Duration = Duration::from_secs(45);

/// Backtests running at once (each holds a core and up to 2,000,000 bars);
/// more are rejected until one ends.
const MAX_RUNNING: usize = 2;

/// Comment lines on a quiet stream (clients time out after about 5 s).
const PING: Duration = Duration::from_secs(2);

/// A new task for `request`'s message, submitted.
fn new_task(request: &SendMessageRequest) -> Task {
    let mut message = request.message.clone();
    let id = tasks::new_id("task");
    let context_id = message
        .context_id
        .clone()
        .filter(|c| !c.is_empty() && c.len() <= 200)
        .unwrap_or_else(|| tasks::new_id("ctx"));
    message.task_id = Some(id.clone());
    message.context_id = Some(context_id.clone());
    Task {
        id,
        context_id,
        status: TaskStatus {
            state: TaskState::Submitted,
            message: None,
            timestamp: Some(chrono::Utc::now()),
        },
        artifacts: None,
        history: Some(vec![message]),
        metadata: None,
    }
}

fn check_message(request: &SendMessageRequest) -> Result<(), RpcError> {
    let m = &request.message;
    if m.message_id.is_empty() || m.message_id.len() > 200 {
        return Err(RpcError::new(
            error_code::INVALID_PARAMS,
            "message.messageId must be 1–200 characters",
        ));
    }
    if m.role != Role::User {
        return Err(RpcError::new(
            error_code::INVALID_PARAMS,
            "message.role must be ROLE_USER",
        ));
    }
    if m.task_id.is_some() {
        return Err(RpcError::new(
            error_code::UNSUPPORTED_OPERATION,
            "this node's tasks take no further messages; send a new message without taskId",
        ));
    }
    Ok(())
}

/// Stores `task` for its owner.
async fn store(state: &AppState, task: &Task, owned: &Owned) -> Result<(), RpcError> {
    Ok(state
        .node
        .store
        .put_a2a_task(&tasks::record(task, owned))
        .await?)
}

/// Creates and stores the task; a quick skill finishes it, a backtest is
/// started. Returns the task and, for a backtest, its changes.
async fn begin(
    state: &Arc<AppState>,
    caller: &Principal,
    request: &SendMessageRequest,
) -> Result<(Task, Option<watch::Receiver<Task>>), RpcError> {
    check_message(request)?;
    let mut task = new_task(request);
    let requested = skills::requested(&request.message);
    let owned = Owned {
        owner: caller.credential.to_string(),
        skill: requested
            .as_ref()
            .map_or("(none)".to_string(), |(s, _)| s.id().to_string()),
        created_at: rfc3339_micros(now_micros()),
    };
    let plan = requested.and_then(|(skill, params)| {
        if !caller.may(skill.scope()) {
            return Err(format!(
                "{} needs the {} scope; this token has {}",
                skill.id(),
                skill.scope().names().join(", "),
                caller.scopes.names().join(", ")
            ));
        }
        if !skill.available(state) {
            return Err(format!(
                "{} is not available: the trading agent is not enabled on this node",
                skill.id()
            ));
        }
        Ok((skill, params))
    });
    let (skill, params) = match plan {
        Ok(plan) => plan,
        Err(why) => {
            tasks::set_state(&mut task, TaskState::Rejected, Some(why));
            store(state, &task, &owned).await?;
            return Ok((task, None));
        }
    };
    if skill == Skill::AgentBacktest {
        return start_backtest(state, task, owned, &params).await;
    }
    match skills::run_now(state, skill, &params).await {
        Ok(result) => tasks::complete(&mut task, skill.id(), result),
        Err(Refusal::Rejected(why)) => tasks::set_state(&mut task, TaskState::Rejected, Some(why)),
        Err(Refusal::Failed(why)) => tasks::set_state(&mut task, TaskState::Failed, Some(why)),
    }
    store(state, &task, &owned).await?;
    Ok((task, None))
}

/// `SendMessage`: the task once it ended (a backtest: or after [`WAIT`],
/// or at once with `returnImmediately`).
pub async fn send(
    state: &Arc<AppState>,
    caller: &Principal,
    request: SendMessageRequest,
) -> Result<Value, RpcError> {
    let immediately = request
        .configuration
        .as_ref()
        .and_then(|c| c.return_immediately)
        .unwrap_or(false);
    let (task, changes) = begin(state, caller, &request).await?;
    let task = match changes {
        Some(mut rx) if !immediately => {
            // Under the request timeout, so the answer is JSON-RPC, not a 503.
            let limit = state.limits.config.request_timeout();
            let wait = WAIT.min(limit.saturating_sub(limit / 10));
            let ended = tokio::time::timeout(wait, rx.wait_for(|t| t.status.state.is_terminal()))
                .await
                .map(|r| r.map(|t| t.clone()));
            match ended {
                Ok(Ok(t)) => t,
                Ok(Err(_)) => visible_task(state, caller, &task.id).await?.0,
                Err(_) => rx.borrow().clone(),
            }
        }
        Some(rx) => rx.borrow().clone(),
        None => task,
    };
    let history_length = request
        .configuration
        .as_ref()
        .and_then(|c| c.history_length);
    let task = super::rpc::trimmed(task, history_length);
    serde_json::to_value(a2a::SendMessageResponse::Task(task))
        .map_err(|e| RpcError::new(error_code::INTERNAL_ERROR, e.to_string()))
}

fn event(id: &JsonRpcId, result: StreamResponse) -> Result<Event, Infallible> {
    let value = serde_json::to_value(result).unwrap_or(Value::Null);
    let body = JsonRpcResponse::success(id.clone(), value);
    Ok(Event::default().data(serde_json::to_string(&body).unwrap_or_default()))
}

/// The events that follow a task's change from `last` to `now`.
fn changes(id: &JsonRpcId, last: &Task, now: &Task) -> Vec<Result<Event, Infallible>> {
    let mut events = Vec::new();
    if now.artifacts != last.artifacts {
        for artifact in now.artifacts.iter().flatten() {
            events.push(event(
                id,
                StreamResponse::ArtifactUpdate(TaskArtifactUpdateEvent {
                    task_id: now.id.clone(),
                    context_id: now.context_id.clone(),
                    artifact: artifact.clone(),
                    append: None,
                    last_chunk: Some(true),
                    metadata: None,
                }),
            ));
        }
    }
    if now.status != last.status {
        events.push(event(
            id,
            StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
                task_id: now.id.clone(),
                context_id: now.context_id.clone(),
                status: now.status.clone(),
                metadata: None,
            }),
        ));
    }
    events
}

/// A running task's events from `first` on, ending with its final state.
fn follow(
    id: JsonRpcId,
    first: Task,
    rx: watch::Receiver<Task>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let opening = event(&id, StreamResponse::Task(first.clone()));
    let rest = stream::unfold(Some((first, rx)), move |state| {
        let id = id.clone();
        async move {
            let (last, mut rx) = state?;
            if last.status.state.is_terminal() {
                return None;
            }
            let now = match rx.changed().await {
                Ok(()) => rx.borrow_and_update().clone(),
                // The runner left without a final change: nothing more comes.
                Err(_) => return None,
            };
            let events = changes(&id, &last, &now);
            Some((stream::iter(events), Some((now, rx))))
        }
    })
    .flatten();
    stream::once(async move { opening }).chain(rest)
}

/// `SendStreamingMessage`: the task, then its status and artifact updates
/// until it ends; the stream then closes.
pub async fn stream(
    state: Arc<AppState>,
    caller: &Principal,
    request: SendMessageRequest,
    id: JsonRpcId,
) -> Response {
    let (task, changes) = match begin(&state, caller, &request).await {
        Ok(begun) => begun,
        Err(e) => return respond(id, Err(e)),
    };
    let events = match changes {
        Some(rx) => follow(id, task, rx).boxed(),
        None => stream::once(async move { event(&id, StreamResponse::Task(task)) }).boxed(),
    };
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(PING))
        .into_response()
}

/// Validates a backtest, stores its task as working and runs it on a
/// blocking thread; its progress and end go to the task's channel.
async fn start_backtest(
    state: &Arc<AppState>,
    mut task: Task,
    owned: Owned,
    params: &serde_json::Map<String, Value>,
) -> Result<(Task, Option<watch::Receiver<Task>>), RpcError> {
    let universe = qunimbus_node::backtest::builtin_universe()
        .map_err(|e| RpcError::new(error_code::INTERNAL_ERROR, e.to_string()))?;
    let backtest = match SyntheticBacktest::parse(params, &universe) {
        Ok(b) => b,
        Err(e) => {
            let why = format!(
                "agent.backtest: {} (field {})",
                e.message,
                e.field.unwrap_or_default()
            );
            tasks::set_state(&mut task, TaskState::Rejected, Some(why));
            store(state, &task, &owned).await?;
            return Ok((task, None));
        }
    };
    tasks::set_state(
        &mut task,
        TaskState::Working,
        Some(format!("0 of {} bar times", backtest.bars)),
    );
    let Some((cancel, changes)) = state.a2a.start(&task, MAX_RUNNING) else {
        let why = format!(
            "busy: {MAX_RUNNING} backtests are running (at most {MAX_RUNNING} at once); send it again when one has ended"
        );
        tasks::set_state(&mut task, TaskState::Rejected, Some(why));
        store(state, &task, &owned).await?;
        return Ok((task, None));
    };
    if let Err(e) = store(state, &task, &owned).await {
        state.a2a.finish(&task.id);
        return Err(e);
    }
    let rx = changes.subscribe();
    let runner = Runner {
        state: state.clone(),
        task: task.clone(),
        owned,
        cancel,
        changes,
    };
    tokio::spawn(runner.run(backtest, universe));
    Ok((task, Some(rx)))
}

/// A backtest task at work: where its progress goes and how it stops.
struct Runner {
    state: Arc<AppState>,
    task: Task,
    owned: Owned,
    cancel: Arc<std::sync::atomic::AtomicBool>,
    changes: watch::Sender<Task>,
}

impl Runner {
    /// Runs the backtest on a blocking thread (progress once per percent;
    /// it stops when canceled or when the node stops), then stores and
    /// announces the task's end.
    async fn run(self, backtest: SyntheticBacktest, universe: qunimbus_node::backtest::Universe) {
        let bars = backtest.bars;
        let (progress, cancel) = (self.changes.clone(), self.cancel.clone());
        let stopping = self.state.node.stop.clone();
        let mut working = self.task.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut shown = 0u64;
            backtest.run(&universe, |done| {
                let percent = done * 100 / bars.max(1);
                if percent > shown {
                    shown = percent;
                    let text = format!("{percent} % ({done} of {bars} bar times)");
                    tasks::set_state(&mut working, TaskState::Working, Some(text));
                    progress.send_replace(working.clone());
                }
                !cancel.load(Ordering::Relaxed) && !*stopping.borrow()
            })
        })
        .await;
        let mut done = self.task;
        match outcome {
            Ok(Ok(report)) => tasks::complete(&mut done, "agent.backtest", report),
            Ok(Err(e)) => match e.stopped_at() {
                Some(at) if self.cancel.load(Ordering::Relaxed) => {
                    let text = format!("canceled after {at} of {bars} bar times");
                    tasks::set_state(&mut done, TaskState::Canceled, Some(text));
                }
                Some(_) => tasks::set_state(
                    &mut done,
                    TaskState::Failed,
                    Some(tasks::INTERRUPTED.into()),
                ),
                None => tasks::set_state(&mut done, TaskState::Failed, Some(e.to_string())),
            },
            Err(e) => {
                let text = format!("the backtest stopped: {e}");
                tasks::set_state(&mut done, TaskState::Failed, Some(text));
            }
        }
        if let Err(e) = store(&self.state, &done, &self.owned).await {
            tracing::error!(task = %done.id, error = %e.message, "an A2A task's end could not be stored");
        }
        let id = done.id.clone();
        self.changes.send_replace(done);
        self.state.a2a.finish(&id);
    }
}
