//! JSON-RPC 2.0 for A2A: the envelope checked, the version honoured, each
//! method's params parsed (a bad one is -32602 naming the problem), and
//! `GetTask`, `ListTasks` and `CancelTask` answered from the task store.

use super::tasks::{self, Owned};
use super::{run, VERSION};
use crate::state::AppState;
use a2a::{
    error_code, CancelTaskRequest, GetTaskRequest, JsonRpcError, JsonRpcId, JsonRpcResponse,
    ListTasksRequest, ListTasksResponse, SendMessageRequest, Task, TaskState,
};
use axum::response::{IntoResponse, Response};
use axum::Json;
use qunimbus_node::tokens::Principal;
use qunimbus_storage::TaskFilter;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Largest page of `ListTasks`.
const MAX_PAGE: i32 = 100;

/// How long `CancelTask` waits for a running task to stop.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// A JSON-RPC error.
pub struct RpcError {
    /// The code (the spec's).
    pub code: i32,
    /// What is wrong.
    pub message: String,
}

impl RpcError {
    /// An error with `code`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(error_code::INVALID_PARAMS, message)
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(error_code::INTERNAL_ERROR, e.to_string())
    }

    fn task_not_found(id: &str) -> Self {
        Self::new(
            error_code::TASK_NOT_FOUND,
            format!("no task {:?}", id.chars().take(80).collect::<String>()),
        )
    }
}

impl From<qunimbus_storage::StorageError> for RpcError {
    fn from(e: qunimbus_storage::StorageError) -> Self {
        tracing::error!(error = %e, "an A2A request could not read or write its task");
        Self::internal("the node's database could not be reached; try again")
    }
}

/// A JSON-RPC response as an HTTP 200 (errors included, as the binding wants).
pub fn respond(id: JsonRpcId, result: Result<Value, RpcError>) -> Response {
    let body = match result {
        Ok(value) => JsonRpcResponse::success(id, value),
        Err(e) => JsonRpcResponse::error(
            id,
            JsonRpcError {
                code: e.code,
                message: e.message,
                data: None,
            },
        ),
    };
    Json(body).into_response()
}

/// The request's id, method and params, or the error answering it.
fn envelope(text: &str) -> Result<(JsonRpcId, String, Value), (JsonRpcId, RpcError)> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        (
            JsonRpcId::Null,
            RpcError::new(error_code::PARSE_ERROR, format!("not JSON: {e}")),
        )
    })?;
    let invalid = |id: JsonRpcId, message: &str| {
        Err((id, RpcError::new(error_code::INVALID_REQUEST, message)))
    };
    let Value::Object(mut object) = value else {
        return invalid(
            JsonRpcId::Null,
            "a JSON-RPC request is an object (batches are not supported)",
        );
    };
    let id = match object.remove("id") {
        None | Some(Value::Null) => JsonRpcId::Null,
        Some(Value::String(s)) => JsonRpcId::String(s),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(n) => JsonRpcId::Number(n),
            None => return invalid(JsonRpcId::Null, "id must be a string or an integer"),
        },
        Some(_) => return invalid(JsonRpcId::Null, "id must be a string or an integer"),
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(id, "jsonrpc must be \"2.0\"");
    }
    let Some(Value::String(method)) = object.remove("method") else {
        return invalid(id, "method must be a string");
    };
    let params = object.remove("params").unwrap_or_else(|| json!({}));
    if !params.is_object() {
        return invalid(id, "params must be an object");
    }
    Ok((id, method, params))
}

/// Parses `params` as `T`, naming what is wrong.
fn params<T: DeserializeOwned>(method: &str, params: Value) -> Result<T, RpcError> {
    serde_json::from_value(params)
        .map_err(|e| RpcError::invalid_params(format!("{method} params: {e}")))
}

/// Answers one JSON-RPC request.
pub async fn handle(
    state: Arc<AppState>,
    caller: &Principal,
    version: Option<&str>,
    text: &str,
) -> Response {
    let (id, method, raw) = match envelope(text) {
        Ok(parts) => parts,
        Err((id, e)) => return respond(id, Err(e)),
    };
    if !version.is_some_and(|v| v == VERSION || v.starts_with("1.")) {
        let given = version.map_or("none (which means 0.3)".to_string(), |v| {
            format!("{:?}", v.chars().take(20).collect::<String>())
        });
        return respond(
            id,
            Err(RpcError::new(
                error_code::VERSION_NOT_SUPPORTED,
                format!("A2A-Version {given} is not supported; this node speaks {VERSION} (any 1.x is accepted)"),
            )),
        );
    }
    let result = match method.as_str() {
        "SendMessage" => match params::<SendMessageRequest>(&method, raw) {
            Ok(request) => run::send(&state, caller, request).await,
            Err(e) => Err(e),
        },
        "SendStreamingMessage" => {
            return match params::<SendMessageRequest>(&method, raw) {
                Ok(request) => run::stream(state, caller, request, id).await,
                Err(e) => respond(id, Err(e)),
            }
        }
        "GetTask" => match params::<GetTaskRequest>(&method, raw) {
            Ok(request) => get_task(&state, caller, request).await,
            Err(e) => Err(e),
        },
        "ListTasks" => match params::<ListTasksRequest>(&method, raw) {
            Ok(request) => list_tasks(&state, caller, request).await,
            Err(e) => Err(e),
        },
        "CancelTask" => match params::<CancelTaskRequest>(&method, raw) {
            Ok(request) => cancel_task(&state, caller, request).await,
            Err(e) => Err(e),
        },
        other if a2a::methods::is_valid(other) => Err(RpcError::new(
            error_code::UNSUPPORTED_OPERATION,
            format!("{other} is not supported by this node (no push notifications, no resubscription, no extended card)"),
        )),
        other => Err(RpcError::new(
            error_code::METHOD_NOT_FOUND,
            format!(
                "no method {:?}; the methods are SendMessage, SendStreamingMessage, GetTask, ListTasks, CancelTask",
                other.chars().take(40).collect::<String>()
            ),
        )),
    };
    respond(id, result)
}

/// The stored task `id` if `caller` may see it, with its live state when it
/// is running.
pub async fn visible_task(
    state: &AppState,
    caller: &Principal,
    id: &str,
) -> Result<(Task, Owned), RpcError> {
    let record = state
        .node
        .store
        .reader()
        .a2a_task(id)
        .await?
        .filter(|r| caller.is_admin() || r.owner == caller.credential)
        .ok_or_else(|| RpcError::task_not_found(id))?;
    let owned = Owned::of(&record);
    let live = state.a2a.follow(id).map(|rx| rx.borrow().clone());
    let task = live
        .or_else(|| tasks::parse(&record))
        .ok_or_else(|| RpcError::internal(format!("task {id} is stored unreadable")))?;
    Ok((task, owned))
}

/// `task` with at most `length` messages of history (`None`: all).
pub fn trimmed(mut task: Task, length: Option<i32>) -> Task {
    if let (Some(n), Some(history)) = (length, task.history.as_mut()) {
        let keep = usize::try_from(n.max(0)).unwrap_or(0);
        let drop = history.len().saturating_sub(keep);
        history.drain(..drop);
    }
    task
}

fn to_value(v: impl serde::Serialize) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(RpcError::internal)
}

async fn get_task(
    state: &AppState,
    caller: &Principal,
    request: GetTaskRequest,
) -> Result<Value, RpcError> {
    let (task, _) = visible_task(state, caller, &request.id).await?;
    to_value(trimmed(task, request.history_length))
}

/// The page cursor: the last task's creation time and id, hex-encoded.
fn cursor(created_at: &str, id: &str) -> String {
    qunimbus_ledger::hex::encode(format!("{created_at}\n{id}").as_bytes())
}

fn parse_cursor(token: &str) -> Result<(String, String), RpcError> {
    let bad = || RpcError::invalid_params("pageToken is not a token this node gave");
    let bytes = qunimbus_ledger::hex::decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, id) = text.split_once('\n').ok_or_else(bad)?;
    Ok((at.to_string(), id.to_string()))
}

async fn list_tasks(
    state: &AppState,
    caller: &Principal,
    request: ListTasksRequest,
) -> Result<Value, RpcError> {
    let page_size = request.page_size.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&page_size) {
        return Err(RpcError::invalid_params(format!(
            "pageSize must be between 1 and {MAX_PAGE}, got {page_size}"
        )));
    }
    if request.status_timestamp_after.is_some() {
        return Err(RpcError::invalid_params(
            "statusTimestampAfter is not supported; page with pageToken",
        ));
    }
    let filter = TaskFilter {
        owner: (!caller.is_admin()).then(|| caller.credential.to_string()),
        context_id: request.context_id.clone(),
        state: request.status.as_ref().map(tasks::state_name),
        before: match request.page_token.as_deref() {
            None | Some("") => None,
            Some(token) => Some(parse_cursor(token)?),
        },
    };
    let limit = u32::try_from(page_size).unwrap_or(50);
    let reader = state.node.store.reader();
    let records = reader.a2a_tasks(&filter, limit + 1).await?;
    let total = reader.a2a_task_count(&filter).await?;
    let more = records.len() > limit as usize;
    let page = &records[..records.len().min(limit as usize)];
    let next_page_token = match (more, page.last()) {
        (true, Some(last)) => cursor(&last.created_at, &last.id),
        _ => String::new(),
    };
    let with_artifacts = request.include_artifacts.unwrap_or(false);
    let tasks = page
        .iter()
        .filter_map(|r| {
            let live = state.a2a.follow(&r.id).map(|rx| rx.borrow().clone());
            live.or_else(|| tasks::parse(r))
        })
        .map(|mut t| {
            if !with_artifacts {
                t.artifacts = None;
            }
            trimmed(t, request.history_length)
        })
        .collect();
    to_value(ListTasksResponse {
        tasks,
        next_page_token,
        page_size,
        total_size: i32::try_from(total).unwrap_or(i32::MAX),
    })
}

async fn cancel_task(
    state: &AppState,
    caller: &Principal,
    request: CancelTaskRequest,
) -> Result<Value, RpcError> {
    let (task, _) = visible_task(state, caller, &request.id).await?;
    if task.status.state.is_terminal() {
        return Err(RpcError::new(
            error_code::TASK_NOT_CANCELABLE,
            format!(
                "task {} is {} and cannot be canceled",
                task.id,
                tasks::state_name(&task.status.state)
            ),
        ));
    }
    let Some(mut changes) = state.a2a.follow(&task.id) else {
        return Err(RpcError::new(
            error_code::TASK_NOT_CANCELABLE,
            format!("task {} is not running on this node", task.id),
        ));
    };
    if !state.a2a.cancel(&task.id) {
        return Err(RpcError::new(
            error_code::TASK_NOT_CANCELABLE,
            format!("task {} ended before it could be canceled", task.id),
        ));
    }
    let stopped = tokio::time::timeout(
        CANCEL_WAIT,
        changes.wait_for(|t| t.status.state.is_terminal()),
    )
    .await
    .map(|r| r.map(|t| t.clone()));
    let not_canceled = |t: &Task| {
        RpcError::new(
            error_code::TASK_NOT_CANCELABLE,
            format!(
                "task {} ended {} before it could be canceled",
                t.id,
                tasks::state_name(&t.status.state)
            ),
        )
    };
    match stopped {
        Ok(Ok(t)) if t.status.state != TaskState::Canceled => Err(not_canceled(&t)),
        Ok(Ok(t)) => to_value(t),
        // The runner finished and left: the stored task is the last word.
        Ok(Err(_)) => {
            let (t, _) = visible_task(state, caller, &task.id).await?;
            if t.status.state != TaskState::Canceled {
                return Err(not_canceled(&t));
            }
            to_value(t)
        }
        Err(_) => {
            let now = changes.borrow().clone();
            if now.status.state == TaskState::Working {
                return Err(RpcError::internal(format!(
                    "task {} did not stop within {} s",
                    task.id,
                    CANCEL_WAIT.as_secs()
                )));
            }
            to_value(now)
        }
    }
}
