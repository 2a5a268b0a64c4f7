//! The node as an A2A 1.0 agent (SPEC §12): the agent card at
//! `/.well-known/agent-card.json` and the JSON-RPC 2.0 binding at
//! `POST /a2a` (`SendMessage`, `SendStreamingMessage`, `GetTask`,
//! `ListTasks`, `CancelTask`). A call needs a bearer token before any
//! JSON-RPC is read (401 otherwise); its scopes decide which skills it may
//! run. JSON-RPC errors answer HTTP 200 with the spec's codes.

mod rpc;
mod run;
pub mod skills;
pub mod tasks;

use crate::api::{bearer, rate_limited, read_text};
use crate::error::{ApiError, ErrorBody};
use crate::limits::RateClass;
use crate::openapi::responses::{
    BadRequest, PayloadTooLarge, RequestTimeout, RouteErrors, TooManyRequests,
};
use crate::openapi::ApiRouter;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use qunimbus_node::tokens::Principal;
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa_axum::routes;

/// The protocol version this node speaks.
pub const VERSION: &str = "1.0";

/// The JSON-RPC endpoint's path.
pub const RPC_PATH: &str = "/a2a";

/// The card and the JSON-RPC endpoint (a client token is rate limited per
/// client address, like any client; the admin and ingest tokens are not).
pub fn routes(state: &Arc<AppState>) -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(agent_card))
        .routes(rate_limited(state, RateClass::A2a, routes!(a2a_rpc)))
}

/// The base URL the node is reached at: configured or bound, else (a
/// wildcard listen address) the host the caller asked for.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// The node's A2A agent card: its JSON-RPC interface, bearer security and
/// the skills that work on this node (none of the agent's when it is off).
#[utoipa::path(get, path = "/.well-known/agent-card.json", tag = "a2a",
    responses(
        (status = 200, description = "The A2A 1.0 agent card.", body = Object),
        RouteErrors,
    )
)]
pub(crate) async fn agent_card(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let skills: Vec<Value> = skills::ALL
        .iter()
        .filter(|s| s.available(&state))
        .map(|s| s.card_entry())
        .collect();
    Json(json!({
        "name": format!("QuNimbus node {}", state.node.signer.name()),
        "description": "A quantum-economic network node: prices runs, proves its ledger and, when enabled, runs the QBTC paper-trading agent. Every answer is measured or read from the signed ledger.",
        "version": env!("CARGO_PKG_VERSION"),
        "supportedInterfaces": [{
            "url": format!("{}{RPC_PATH}", base_url(&state, &headers)),
            "protocolBinding": "JSONRPC",
            "protocolVersion": VERSION,
        }],
        "provider": {"organization": "QuNimbus", "url": "https://github.com/qunimbus"},
        "capabilities": {"streaming": true, "pushNotifications": false, "extendedAgentCard": false},
        "defaultInputModes": ["application/json"],
        "defaultOutputModes": ["application/json"],
        "skills": skills,
        "securitySchemes": {
            "bearer": {"httpAuthSecurityScheme": {
                "scheme": "Bearer",
                "description": "The node's admin token (every scope), its ingest token (read, ingest) or a client token (its own scopes: read, ingest, agent, admin)",
            }}
        },
        "securityRequirements": [{"schemes": {"bearer": {"list": []}}}],
    }))
    .into_response()
}

/// The caller named by the bearer token (its tasks are those of its
/// credential); 401 before any JSON-RPC is read.
fn caller(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = bearer(headers)
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>` header"))?;
    state
        .node
        .credentials
        .principal_of(token)
        .ok_or_else(|| ApiError::unauthorized("the bearer token is not valid"))
}

/// The A2A JSON-RPC 2.0 endpoint (`SendMessage`, `SendStreamingMessage`,
/// `GetTask`, `ListTasks`, `CancelTask`); send `A2A-Version: 1.0`.
#[utoipa::path(post, path = "/a2a", tag = "a2a", security(("admin_token" = []), ("ingest_token" = [])),
    request_body(content = Object, description = "A JSON-RPC 2.0 request."),
    responses(
        (status = 200, description = "A JSON-RPC 2.0 response (errors included, with the A2A codes), or for SendStreamingMessage a text/event-stream of them.", body = Object),
        (status = 400, response = BadRequest),
        (status = 401, description = "No valid bearer token.", body = ErrorBody),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 429, response = TooManyRequests),
        RouteErrors,
    )
)]
pub(crate) async fn a2a_rpc(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    let text = read_text(&state, &headers, body, state.node.ingest.max_body_bytes).await?;
    let version = headers
        .get("a2a-version")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let mut response = rpc::handle(state.clone(), &caller, version, &text).await;
    response
        .headers_mut()
        .insert("a2a-version", HeaderValue::from_static(VERSION));
    Ok(response)
}
