//! HTTP routes of the Trust Kernel: regions, health events, mesh status,
//! rollouts, compliance and the policy.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::DateTime;
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_trust::requests::{
    parse_command_reason, HealthEventRequest, RegionUpdate, RolloutRequest,
};
use qunimbus_trust::rollout::{Command, Rollout, RolloutError};
use serde_json::json;

use crate::api::{read_text, rejected};
use crate::error::ApiError;
use crate::state::AppState;
use crate::trust::{evaluate_now, TrustError};

/// Read-only routes.
pub(crate) fn read_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/regions", get(list_regions))
        .route("/v1/regions/{region}", get(get_region))
        .route("/v1/mesh", get(mesh))
        .route("/v1/rollouts", get(list_rollouts))
        .route("/v1/rollouts/{id}", get(get_rollout))
        .route("/v1/compliance", get(compliance))
        .route("/v1/policy", get(policy))
}

/// Admin routes.
pub(crate) fn admin_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/regions/{region}", axum::routing::put(put_region))
        .route("/v1/rollouts", post(post_rollout))
        .route("/v1/regions/{region}/events", post(post_event))
        .route("/v1/rollouts/{id}/{command}", post(rollout_command))
        .route("/v1/policy/reload", post(reload_policy))
        .route(
            "/v1/valuations/{run_id}",
            axum::routing::delete(erase_personal_run),
        )
        .route("/v1/compliance/attest", post(attest))
}

impl From<TrustError> for ApiError {
    fn from(e: TrustError) -> Self {
        let message = e.to_string();
        match e {
            TrustError::UnknownRegion(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_region", message)
            }
            TrustError::UnknownRun(_) => ApiError::not_found(message).with_field("run_id"),
            TrustError::NotPersonal(..) => {
                ApiError::new(StatusCode::CONFLICT, "not_personal_data", message)
            }
            TrustError::UnknownRollout(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_rollout", message)
            }
            TrustError::RolloutActive(_) => {
                ApiError::new(StatusCode::CONFLICT, "rollout_active", message)
            }
            TrustError::Rollout(RolloutError::InvalidCommand { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", message)
            }
            TrustError::Rollout(RolloutError::UnknownCanary(_)) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_region", message)
                    .with_field("canary_region")
            }
            TrustError::Policy { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "policy_invalid", message)
            }
            TrustError::Storage(s) => s.into(),
            TrustError::Rollout(RolloutError::InvalidPlan(_))
            | TrustError::PolicyFile { .. }
            | TrustError::Corrupt(_) => {
                tracing::error!(error = %message, "trust kernel failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "trust_error", message)
            }
        }
    }
}

async fn list_regions(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({
        "window_hours": state.trust.settings.window_hours(),
        "regions": state.trust.region_views(),
    }))
    .into_response()
}

async fn get_region(
    State(state): State<Arc<AppState>>,
    Path(region): Path<String>,
) -> Result<Response, ApiError> {
    let name = state.trust.region_name(&region)?;
    let view = state
        .trust
        .region_view(&name)
        .ok_or(TrustError::UnknownRegion(region))?;
    Ok(Json(view).into_response())
}

async fn put_region(
    State(state): State<Arc<AppState>>,
    Path(region): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = state.trust.region_name(&region)?;
    let text = read_text(&state, &headers, body, state.ingest.max_body_bytes).await?;
    let update = RegionUpdate::parse_json(&text).map_err(|e| rejected(&state, e))?;
    let (record, block_index) = state
        .trust
        .set_region(&name, &update.status, update.trust, update.reason)
        .await?;
    let view = state.trust.region_view(&record.name);
    Ok(Json(json!({ "region": view, "block_index": block_index })).into_response())
}

async fn post_event(
    State(state): State<Arc<AppState>>,
    Path(region): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = state.trust.region_name(&region)?;
    let text = read_text(&state, &headers, body, state.ingest.max_body_bytes).await?;
    let now = now_micros().timestamp_micros();
    let event = HealthEventRequest::parse_json(&text, now, state.trust.settings.window_micros)
        .map_err(|e| rejected(&state, e))?;
    let block_index = state
        .trust
        .record_event(&name, event.kind, event.at_micros)
        .await?;
    let view = state.trust.region_view(&name);
    let at = DateTime::from_timestamp_micros(event.at_micros).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "region": view,
            "event": { "kind": event.kind.as_str(), "at": rfc3339_micros(at) },
            "block_index": block_index,
        })),
    )
        .into_response())
}

async fn mesh(State(state): State<Arc<AppState>>) -> Response {
    Json(state.trust.mesh()).into_response()
}

/// A rollout as the API shows it.
fn rollout_view(state: &AppState, r: &Rollout) -> serde_json::Value {
    let gates = r.gates(&state.trust.gate_inputs(), &state.trust.settings.thresholds);
    json!({
        "id": r.id,
        "version": r.version,
        "state": r.state,
        "canary_region": r.canary_region,
        "phase": r.phase,
        "phases": r.phases,
        "deployed_regions": r.deployed_regions(),
        "phase_started_at": rfc3339_micros(DateTime::from_timestamp_micros(r.phase_started_at).unwrap_or_default()),
        "soak_seconds": r.soak_micros as f64 / 1e6,
        "reason": r.reason,
        "gates": gates,
        "history": r.history,
    })
}

async fn list_rollouts(State(state): State<Arc<AppState>>) -> Response {
    let views: Vec<_> = state
        .trust
        .rollouts()
        .iter()
        .map(|r| rollout_view(&state, r))
        .collect();
    Json(json!({ "rollouts": views })).into_response()
}

async fn get_rollout(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rollout = state
        .trust
        .rollout(&id)
        .ok_or(TrustError::UnknownRollout(id))?;
    Ok(Json(rollout_view(&state, &rollout)).into_response())
}

async fn post_rollout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let text = read_text(&state, &headers, body, state.ingest.max_body_bytes).await?;
    let request = RolloutRequest::parse_json(&text).map_err(|e| rejected(&state, e))?;
    let rollout = state
        .trust
        .start_rollout(request.version, request.canary_region)
        .await?;
    Ok((StatusCode::CREATED, Json(rollout_view(&state, &rollout))).into_response())
}

async fn rollout_command(
    State(state): State<Arc<AppState>>,
    Path((id, command)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let command = Command::parse(&command).ok_or_else(|| {
        ApiError::not_found(format!(
            "unknown rollout command {command:?}; use advance, pause, resume or rollback"
        ))
    })?;
    let text = read_text(&state, &headers, body, state.ingest.max_body_bytes).await?;
    let reason = parse_command_reason(&text).map_err(|e| rejected(&state, e))?;
    let rollout = state.trust.command(&id, command, &reason).await?;
    Ok(Json(rollout_view(&state, &rollout)).into_response())
}

async fn compliance(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let snapshot = match state.trust.compliance() {
        Some(s) => s,
        None => evaluate_now(&state).await?,
    };
    Ok(Json(json!({
        "compliance": snapshot,
        "policy": state.trust.policy.status(),
    }))
    .into_response())
}

async fn attest(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    crate::ledger_api::verify_and_record(&state).await?;
    let snapshot = evaluate_now(&state).await?;
    let block_index = state.trust.attest(&snapshot, false).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "block_index": block_index, "compliance": snapshot })),
    )
        .into_response())
}

async fn policy(State(state): State<Arc<AppState>>) -> Response {
    Json(state.trust.policy.status()).into_response()
}

async fn reload_policy(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let status = state.trust.reload_policy().await?;
    Ok(Json(status).into_response())
}

async fn erase_personal_run(
    State(state): State<Arc<AppState>>,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    let (run_ref, block_index) = state.trust.erase_personal_run(&run_id).await?;
    Ok(
        Json(json!({ "erased": true, "run_ref": run_ref, "block_index": block_index }))
            .into_response(),
    )
}
