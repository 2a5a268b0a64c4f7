//! HTTP routes of the trading agent: its state, positions, orders, fills
//! and risk controls (reads), and the operator's commands (admin, with a
//! reason that goes on the ledger).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use qunimbus_core::validation::{check_length, RawObject};
use qunimbus_core::{FieldError, FieldErrorCode};
use qunimbus_node::agent::views::{
    AgentStatus, CommandOutcome, EquityCurve, FillList, OrderItem, PositionItem, RiskStatus,
};
use qunimbus_node::agent::{Agent, AgentError, Command};
use qunimbus_node::config::ConfigError;
use qunimbus_node::exchange::ExchangeStatus;
use qunimbus_trust::requests::{parse_command_reason, REASON_MAX_CHARS};
use serde_json::{Map, Value};
use utoipa_axum::routes;

use crate::api::{query_params, read_text, rejected};
use crate::error::{ApiError, ErrorBody};
use crate::ledger_api::int_param;
use crate::openapi::requests::{AgentCommandReason, AgentReload, ApiKeysRequest};
use crate::openapi::responses::{
    AdminRouteErrors, BadRequest, JsonBodyErrors, RouteErrors, Unprocessable,
};
use crate::openapi::ApiRouter;
use crate::state::AppState;

/// Most fills one `GET /v1/agent/trades` returns.
const MAX_FILLS: u64 = 1000;

/// Read-only routes.
pub(crate) fn read_routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(agent_status))
        .routes(routes!(agent_positions))
        .routes(routes!(agent_orders))
        .routes(routes!(agent_trades))
        .routes(routes!(agent_equity))
        .routes(routes!(agent_risk))
}

/// Admin routes.
pub(crate) fn admin_routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(agent_command))
        .routes(routes!(agent_reload))
        .routes(routes!(agent_exchange))
        .routes(routes!(agent_credentials))
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        let message = e.to_string();
        match e {
            AgentError::NotEnabled => {
                ApiError::new(StatusCode::NOT_FOUND, "agent_disabled", message)
            }
            AgentError::ReasonRequired => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                FieldErrorCode::MissingField.as_str(),
                message,
            )
            .with_field("reason"),
            AgentError::Refused(_) => ApiError::new(StatusCode::CONFLICT, "agent_refused", message),
            AgentError::Resuming => ApiError::unavailable("agent_resuming", message, 1),
            AgentError::NoExchange => ApiError::new(StatusCode::NOT_FOUND, "no_exchange", message),
            AgentError::LedgerUnavailable(_) => {
                ApiError::unavailable("ledger_unavailable", message, 1)
            }
            AgentError::NotBlack(_) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", message)
            }
            AgentError::UnknownCommand(_) => ApiError::not_found(message),
            AgentError::Config(ConfigError::Invalid { key, .. }) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting", message)
                    .with_field(key)
            }
            AgentError::Config(_)
            | AgentError::Interrupted(_)
            | AgentError::NoRiskDesk
            | AgentError::Engine(_)
            | AgentError::Candle(_)
            | AgentError::Recording { .. } => {
                tracing::error!(error = %message, "trading agent failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "agent_error", message)
            }
        }
    }
}

fn agent(state: &AppState) -> Result<&Arc<Agent>, ApiError> {
    state
        .node
        .agent
        .as_ref()
        .ok_or_else(|| AgentError::NotEnabled.into())
}

/// The agent's state: mode, trading state, emergency and confidence levels, equity, drawdown, daily P&L, exposure.
#[utoipa::path(get, path = "/v1/agent", tag = "agent", security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The agent's state now.", body = AgentStatus),
        (status = 404, description = "The agent is not enabled (`agent_disabled`).", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn agent_status(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    Ok(Json(agent(&state)?.status().await?).into_response())
}

/// Open positions.
#[utoipa::path(get, path = "/v1/agent/positions", tag = "agent", security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "Every open position.", body = Vec<PositionItem>),
        (status = 404, description = "The agent is not enabled (`agent_disabled`).", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn agent_positions(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    Ok(Json(agent(&state)?.positions().await?).into_response())
}

/// Working orders.
#[utoipa::path(get, path = "/v1/agent/orders", tag = "agent", security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "Every working order.", body = Vec<OrderItem>),
        (status = 404, description = "The agent is not enabled (`agent_disabled`).", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn agent_orders(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    Ok(Json(agent(&state)?.orders().await?).into_response())
}

/// The newest fills, newest first, each with its `trade` block.
#[utoipa::path(get, path = "/v1/agent/trades", tag = "agent", security((), ("admin_token" = []), ("ingest_token" = [])),
    params(("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100).")),
    responses(
        (status = 200, description = "Recent fills.", body = FillList),
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
        (status = 404, description = "The agent is not enabled (`agent_disabled`).", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn agent_trades(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query_params(&state, query, &["limit"])?;
    let limit = int_param(&state, &params, "limit", 1, MAX_FILLS)?.unwrap_or(100);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    Ok(Json(agent(&state)?.fills(limit).await).into_response())
}

/// The recent equity curve: equity and drawdown after each bar time (at most one market day).
#[utoipa::path(get, path = "/v1/agent/equity", tag = "agent", security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The equity curve.", body = EquityCurve),
        (status = 404, description = "The agent is not enabled (`agent_disabled`).", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn agent_equity(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    Ok(Json(agent(&state)?.equity().await).into_response())
}

/// The risk limits in force, denials by reason, the ladder's measures and history.
#[utoipa::path(get, path = "/v1/agent/risk", tag = "agent", security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The risk controls.", body = RiskStatus),
        (status = 404, description = "The agent is not enabled (`agent_disabled`).", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn agent_risk(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    Ok(Json(agent(&state)?.risk().await?).into_response())
}

/// An operator's command with its reason: `pause` (no new entries), `resume`, `flatten` (sell everything at the next open), `kill` (flatten, BLACK, HALTED) or `reset` (leave BLACK). Recorded as a `risk` block when it changes anything.
#[utoipa::path(post, path = "/v1/agent/{command}", tag = "agent", security(("admin_token" = [])),
    params(("command" = String, Path, description = "`pause`, `resume`, `flatten`, `kill` or `reset`.")),
    request_body(content = AgentCommandReason, description = "The operator's reason (required)."),
    responses(
        (status = 200, description = "Done (or nothing to change).", body = CommandOutcome),
        (status = 404, description = "No such command (`not_found`) or the agent is not enabled (`agent_disabled`).", body = ErrorBody),
        (status = 409, description = "`reset` outside BLACK (`invalid_transition`).", body = ErrorBody),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn agent_command(
    State(state): State<Arc<AppState>>,
    Path(command): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let command = Command::parse(&command)?;
    let agent = agent(&state)?;
    let text = read_text(&state, &headers, body, state.node.ingest.max_body_bytes).await?;
    let reason = parse_command_reason(&text).map_err(|e| rejected(&state, e))?;
    Ok(Json(agent.command(command, &reason).await?).into_response())
}

/// `{"reason": "…", "settings": {…}}`, nothing else.
fn parse_reload(state: &AppState, text: &str) -> Result<(String, Map<String, Value>), ApiError> {
    let bad = |field: &str, code: FieldErrorCode, message: String| {
        rejected(state, FieldError::field(field, code, message))
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        rejected(
            state,
            FieldError::document(
                FieldErrorCode::MalformedJson,
                format!("malformed JSON: {e}"),
            ),
        )
    })?;
    let Value::Object(mut body) = value else {
        return Err(bad(
            "(body)",
            FieldErrorCode::WrongType,
            "the body must be a JSON object".into(),
        ));
    };
    if let Some(key) = body
        .keys()
        .find(|k| !["reason", "settings"].contains(&k.as_str()))
    {
        return Err(bad(
            key,
            FieldErrorCode::UnknownField,
            format!("unknown field {key:?}; expected reason, settings"),
        ));
    }
    let reason = match body.remove("reason") {
        Some(Value::String(r)) if r.chars().count() <= REASON_MAX_CHARS => r,
        Some(Value::String(_)) => {
            return Err(bad(
                "reason",
                FieldErrorCode::TooLong,
                format!("at most {REASON_MAX_CHARS} characters"),
            ))
        }
        Some(_) => {
            return Err(bad(
                "reason",
                FieldErrorCode::WrongType,
                "reason must be a string".into(),
            ))
        }
        None => {
            return Err(bad(
                "reason",
                FieldErrorCode::MissingField,
                "a reload needs a reason".into(),
            ))
        }
    };
    let settings = match body.remove("settings") {
        Some(Value::Object(s)) => s,
        Some(_) => {
            return Err(bad(
                "settings",
                FieldErrorCode::WrongType,
                "settings must be an object".into(),
            ))
        }
        None => {
            return Err(bad(
                "settings",
                FieldErrorCode::MissingField,
                "settings is required".into(),
            ))
        }
    };
    Ok((reason, settings))
}

/// Reloads the agent's reloadable settings (sizing, gate limits, ladder thresholds, confidence pace) with a reason; recorded as a `config` block. An invalid value changes nothing and names its key; a key that shapes the session answers 422 saying it takes a restart.
#[utoipa::path(put, path = "/v1/agent/config", tag = "agent", security(("admin_token" = [])),
    request_body(content = AgentReload, description = "The reason and the settings to change."),
    responses(
        (status = 200, description = "Reloaded (or nothing to change).", body = CommandOutcome),
        (status = 404, description = "The agent is not enabled (`agent_disabled`).", body = ErrorBody),
        (status = 409, description = "The agent refuses to trade (`agent_refused`).", body = ErrorBody),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn agent_reload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let agent = agent(&state)?;
    let text = read_text(&state, &headers, body, state.node.ingest.max_body_bytes).await?;
    let (reason, settings) = parse_reload(&state, &text)?;
    Ok(Json(agent.reload(&settings, &reason).await?).into_response())
}

/// The exchange adapter: breaker state, whether keys are loaded, and the account read now (signed `GET /api/v3/account`; an error says why it could not be read).
#[utoipa::path(get, path = "/v1/agent/exchange", tag = "agent", security(("admin_token" = [])),
    responses(
        (status = 200, description = "The adapter's state and the account.", body = ExchangeStatus),
        (status = 404, description = "The agent is not enabled (`agent_disabled`) or no exchange is configured (`no_exchange`).", body = ErrorBody),
        AdminRouteErrors,
    )
)]
pub(crate) async fn agent_exchange(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let exchange = agent(&state)?.exchange()?.clone();
    Ok(Json(exchange.status().await).into_response())
}

/// Whether keys are loaded after a credentials change.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct CredentialsLoaded {
    /// Whether both the key and the secret are loaded.
    keys_loaded: bool,
    /// `request` (the body's keys) or `environment` (QBTC_API_KEY / QBTC_API_SECRET re-read).
    source: &'static str,
    /// The `config` block recording the change (when keys were loaded).
    block_index: Option<u64>,
}

/// Replaces the exchange API keys without a restart: the body's `api_key` and `api_secret` (with the operator's `reason`), or with an empty body the environment's `QBTC_API_KEY` and `QBTC_API_SECRET` re-read. Each change is a `config` block; the keys are never shown, logged or recorded.
#[utoipa::path(post, path = "/v1/agent/credentials", tag = "agent", security(("admin_token" = [])),
    request_body(content = Option<ApiKeysRequest>, description = "The new keys; an empty body re-reads the environment."),
    responses(
        (status = 200, description = "Loaded.", body = CredentialsLoaded),
        (status = 404, description = "The agent is not enabled (`agent_disabled`) or no exchange is configured (`no_exchange`).", body = ErrorBody),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn agent_credentials(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let agent = agent(&state)?.clone();
    let exchange = agent.exchange()?.clone();
    let by = crate::api::bearer(&headers)
        .and_then(|t| state.node.credentials.principal_of(t))
        .map_or_else(|| "admin".to_string(), |p| p.credential);
    let text = read_text(&state, &headers, body, state.node.ingest.max_body_bytes).await?;
    if text.trim().is_empty() {
        let keys_loaded = exchange.load_keys_from_env();
        let reason = "the keys were re-read from the environment";
        let block_index = match keys_loaded {
            true => Some(
                agent
                    .record_exchange_keys("environment", &by, reason)
                    .await?,
            ),
            false => None,
        };
        return Ok(Json(CredentialsLoaded {
            keys_loaded,
            source: "environment",
            block_index,
        })
        .into_response());
    }
    let object = RawObject::parse(&text, &["api_key", "api_secret", "reason"])
        .map_err(|e| rejected(&state, e))?;
    let reason = object
        .bounded_string("reason", 1000)
        .map_err(|e| rejected(&state, e))?;
    let field = |name: &str| -> Result<String, ApiError> {
        let value = object.string(name).map_err(|e| rejected(&state, e))?;
        check_length(name, &value, 512).map_err(|e| rejected(&state, e))?;
        if value.trim().is_empty() {
            return Err(rejected(
                &state,
                FieldError::field(
                    name,
                    FieldErrorCode::MissingField,
                    format!("{name} is empty"),
                ),
            ));
        }
        Ok(value)
    };
    let (key, secret) = (field("api_key")?, field("api_secret")?);
    exchange.set_keys(key, secret);
    let block_index = Some(agent.record_exchange_keys("request", &by, &reason).await?);
    Ok(Json(CredentialsLoaded {
        keys_loaded: true,
        source: "request",
        block_index,
    })
    .into_response())
}
