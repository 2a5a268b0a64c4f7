//! HTTP routes of the Trust Kernel: regions, health events, mesh status,
//! rollouts, compliance and the policy.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::DateTime;
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_trust::health::EventSource;
use qunimbus_trust::requests::{
    parse_command_reason, HealthEventRequest, RegionUpdate, RolloutRequest,
};
use qunimbus_trust::rollout::{Command, Rollout, RolloutError};
use utoipa_axum::routes;

use crate::api::{read_text, rejected};
use crate::error::{ApiError, ErrorBody};
use crate::openapi::requests::{
    CommandReason, HealthEventSchema, RegionUpdateSchema, RolloutRequestSchema,
};
use crate::openapi::responses::{AdminRouteErrors, JsonBodyErrors, RouteErrors};
use crate::openapi::ApiRouter;
use crate::state::AppState;
use crate::trust_views::{
    Attested, ComplianceStatus, Erased, EventRecorded, EventView, RegionChanged, RegionEvents,
    RegionList, RolloutList, RolloutView,
};
use qunimbus_node::trust::{evaluate_now, MeshStatus, PolicyStatus, RegionView, TrustError};

/// Read-only routes.
pub(crate) fn read_routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(list_regions))
        .routes(routes!(get_region))
        .routes(routes!(region_events))
        .routes(routes!(mesh))
        .routes(routes!(list_rollouts))
        .routes(routes!(get_rollout))
        .routes(routes!(compliance))
        .routes(routes!(policy))
}

/// Admin routes.
pub(crate) fn admin_routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(put_region))
        .routes(routes!(post_rollout))
        .routes(routes!(post_event))
        .routes(routes!(rollout_command))
        .routes(routes!(reload_policy))
        .routes(routes!(erase_personal_run))
        .routes(routes!(attest))
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

/// Every configured region, assessed now.
#[utoipa::path(get, path = "/v1/regions", tag = "trust", security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The regions.", body = RegionList),
        RouteErrors,
    )
)]
pub(crate) async fn list_regions(State(state): State<Arc<AppState>>) -> Response {
    Json(RegionList {
        window_hours: state.node.trust.settings.window_hours(),
        regions: state.node.trust.region_views(),
    })
    .into_response()
}

/// One region, assessed now.
#[utoipa::path(get, path = "/v1/regions/{region}", tag = "trust", security((), ("admin_token" = []), ("ingest_token" = [])),
    params(("region" = String, Path, description = "A configured region (case-insensitive).")),
    responses(
        (status = 200, description = "The region.", body = RegionView),
        (status = 404, description = "Not a configured region (`unknown_region`).", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn get_region(
    State(state): State<Arc<AppState>>,
    Path(region): Path<String>,
) -> Result<Response, ApiError> {
    let name = state.node.trust.region_name(&region)?;
    let view = state
        .node
        .trust
        .region_view(&name)
        .ok_or(TrustError::UnknownRegion(region))?;
    Ok(Json(view).into_response())
}

/// Every health event of a region with its source (`operator` or
/// `detected`) and the block holding its evidence.
#[utoipa::path(get, path = "/v1/regions/{region}/events", tag = "trust", security((), ("admin_token" = []), ("ingest_token" = [])),
    params(("region" = String, Path, description = "A configured region (case-insensitive).")),
    responses(
        (status = 200, description = "The events.", body = RegionEvents),
        (status = 404, description = "Not a configured region (`unknown_region`).", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn region_events(
    State(state): State<Arc<AppState>>,
    Path(region): Path<String>,
) -> Result<Response, ApiError> {
    let name = state.node.trust.region_name(&region)?;
    let events = state.node.trust.region_events(&name);
    Ok(Json(RegionEvents {
        region: name,
        events,
    })
    .into_response())
}

/// Sets a region's status and optionally a trust override (an `override` block).
#[utoipa::path(put, path = "/v1/regions/{region}", tag = "trust", security(("admin_token" = [])),
    params(("region" = String, Path, description = "A configured region (case-insensitive).")),
    request_body(content = RegionUpdateSchema, description = "The new status, optionally a trust override."),
    responses(
        (status = 200, description = "Changed.", body = RegionChanged),
        (status = 404, description = "Not a configured region (`unknown_region`).", body = ErrorBody),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn put_region(
    State(state): State<Arc<AppState>>,
    Path(region): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = state.node.trust.region_name(&region)?;
    let text = read_text(&state, &headers, body, state.node.ingest.max_body_bytes).await?;
    let update = RegionUpdate::parse_json(&text).map_err(|e| rejected(&state, e))?;
    let (record, block_index) = state
        .node
        .trust
        .set_region(&name, &update.status, update.trust, update.reason)
        .await?;
    let view = state.node.trust.region_view(&record.name);
    Ok(Json(RegionChanged {
        region: view,
        block_index,
    })
    .into_response())
}

/// Records a failure or recovery of a region (a `health` block).
#[utoipa::path(post, path = "/v1/regions/{region}/events", tag = "trust", security(("admin_token" = [])),
    params(("region" = String, Path, description = "A configured region (case-insensitive).")),
    request_body(content = HealthEventSchema, description = "The event."),
    responses(
        (status = 201, description = "Recorded.", body = EventRecorded),
        (status = 404, description = "Not a configured region (`unknown_region`).", body = ErrorBody),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn post_event(
    State(state): State<Arc<AppState>>,
    Path(region): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = state.node.trust.region_name(&region)?;
    let text = read_text(&state, &headers, body, state.node.ingest.max_body_bytes).await?;
    let now = now_micros().timestamp_micros();
    let event = HealthEventRequest::parse_json(&text, now, state.node.trust.settings.window_micros)
        .map_err(|e| rejected(&state, e))?;
    let block_index = state
        .node
        .trust
        .record_event(
            &name,
            event.kind,
            event.at_micros,
            EventSource::Operator,
            None,
        )
        .await?;
    let view = state.node.trust.region_view(&name);
    let at = DateTime::from_timestamp_micros(event.at_micros).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(EventRecorded {
            region: view,
            event: EventView {
                kind: event.kind.as_str(),
                at: rfc3339_micros(at),
                source: EventSource::Operator.as_str(),
            },
            block_index,
        }),
    )
        .into_response())
}

/// Mesh totals: regions, average trust, MTBF against its target.
#[utoipa::path(get, path = "/v1/mesh", tag = "trust", security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The mesh.", body = MeshStatus),
        RouteErrors,
    )
)]
pub(crate) async fn mesh(State(state): State<Arc<AppState>>) -> Response {
    Json(state.node.trust.mesh()).into_response()
}

/// A rollout as the API shows it.
fn rollout_view<'a>(state: &AppState, r: &'a Rollout) -> RolloutView<'a> {
    let gates = r.gates(
        &state.node.trust.gate_inputs(),
        &state.node.trust.settings.thresholds,
    );
    RolloutView {
        id: &r.id,
        version: &r.version,
        state: r.state,
        canary_region: &r.canary_region,
        phase: r.phase,
        phases: &r.phases,
        deployed_regions: r.deployed_regions(),
        phase_started_at: rfc3339_micros(
            DateTime::from_timestamp_micros(r.phase_started_at).unwrap_or_default(),
        ),
        soak_seconds: r.soak_micros as f64 / 1e6,
        reason: r.reason.as_deref(),
        gates,
        history: &r.history,
    }
}

/// Every rollout.
#[utoipa::path(get, path = "/v1/rollouts", tag = "trust", security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The rollouts.", body = RolloutList),
        RouteErrors,
    )
)]
pub(crate) async fn list_rollouts(State(state): State<Arc<AppState>>) -> Response {
    let rollouts = state.node.trust.rollouts();
    let views: Vec<RolloutView> = rollouts.iter().map(|r| rollout_view(&state, r)).collect();
    Json(RolloutList { rollouts: views }).into_response()
}

/// One rollout with its gates evaluated now.
#[utoipa::path(get, path = "/v1/rollouts/{id}", tag = "trust", security((), ("admin_token" = []), ("ingest_token" = [])),
    params(("id" = String, Path, description = "The rollout's id.")),
    responses(
        (status = 200, description = "The rollout.", body = RolloutView),
        (status = 404, description = "No such rollout (`unknown_rollout`).", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn get_rollout(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rollout = state
        .node
        .trust
        .rollout(&id)
        .ok_or(TrustError::UnknownRollout(id))?;
    Ok(Json(rollout_view(&state, &rollout)).into_response())
}

/// Starts a rollout at its canary phase.
#[utoipa::path(post, path = "/v1/rollouts", tag = "trust", security(("admin_token" = [])),
    request_body(content = RolloutRequestSchema, description = "The version, optionally the canary region."),
    responses(
        (status = 201, description = "Started.", body = RolloutView),
        (status = 409, description = "Another rollout is active (`rollout_active`).", body = ErrorBody),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn post_rollout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let text = read_text(&state, &headers, body, state.node.ingest.max_body_bytes).await?;
    let request = RolloutRequest::parse_json(&text).map_err(|e| rejected(&state, e))?;
    let rollout = state
        .node
        .trust
        .start_rollout(request.version, request.canary_region)
        .await?;
    Ok((StatusCode::CREATED, Json(rollout_view(&state, &rollout))).into_response())
}

/// An operator command: `advance`, `pause`, `resume` or `rollback`.
#[utoipa::path(post, path = "/v1/rollouts/{id}/{command}", tag = "trust", security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "The rollout's id."),
        ("command" = String, Path, description = "`advance`, `pause`, `resume` or `rollback`."),
    ),
    request_body(content = Option<CommandReason>, description = "Optionally a reason; an empty body is none."),
    responses(
        (status = 200, description = "Done.", body = RolloutView),
        (status = 404, description = "No such rollout (`unknown_rollout`) or command (`not_found`).", body = ErrorBody),
        (status = 409, description = "The command does not apply in the rollout's state (`invalid_transition`).", body = ErrorBody),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn rollout_command(
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
    let text = read_text(&state, &headers, body, state.node.ingest.max_body_bytes).await?;
    let reason = parse_command_reason(&text).map_err(|e| rejected(&state, e))?;
    let rollout = state.node.trust.command(&id, command, &reason).await?;
    Ok(Json(rollout_view(&state, &rollout)).into_response())
}

/// The newest compliance evaluation (evaluated now if none ran yet) and the policy in force.
#[utoipa::path(get, path = "/v1/compliance", tag = "trust", security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "Verdicts per framework from evidence.", body = ComplianceStatus),
        RouteErrors,
    )
)]
pub(crate) async fn compliance(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let snapshot = match state.node.trust.compliance() {
        Some(s) => s,
        None => evaluate_now(&state.node).await?,
    };
    Ok(Json(ComplianceStatus {
        compliance: snapshot,
        policy: state.node.trust.policy.status(),
    })
    .into_response())
}

/// Verifies the ledger, evaluates compliance and writes an attestation block now.
#[utoipa::path(post, path = "/v1/compliance/attest", tag = "trust", security(("admin_token" = [])),
    responses(
        (status = 201, description = "Written.", body = Attested),
        AdminRouteErrors,
    )
)]
pub(crate) async fn attest(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    state.node.verify_and_record().await?;
    let snapshot = evaluate_now(&state.node).await?;
    let block_index = state.node.trust.attest(&snapshot, false).await?;
    Ok((
        StatusCode::CREATED,
        Json(Attested {
            block_index,
            compliance: snapshot,
        }),
    )
        .into_response())
}

/// The compliance policy in force.
#[utoipa::path(get, path = "/v1/policy", tag = "trust", security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The policy: file, SHA-256, rules, its config block.", body = PolicyStatus),
        RouteErrors,
    )
)]
pub(crate) async fn policy(State(state): State<Arc<AppState>>) -> Response {
    Json(state.node.trust.policy.status()).into_response()
}

/// Reloads the policy file (a `config` block when it changed).
#[utoipa::path(post, path = "/v1/policy/reload", tag = "trust", security(("admin_token" = [])),
    responses(
        (status = 200, description = "The policy in force.", body = PolicyStatus),
        (status = 422, description = "The file does not validate (`policy_invalid`); the previous policy stays in force.", body = ErrorBody),
        AdminRouteErrors,
    )
)]
pub(crate) async fn reload_policy(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let status = state.node.trust.reload_policy().await?;
    Ok(Json(status).into_response())
}

/// Erases a personal-class run's link to its data subject off-ledger (an `erasure` block).
#[utoipa::path(delete, path = "/v1/valuations/{run_id}", tag = "trust", security(("admin_token" = [])),
    params(("run_id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "Erased.", body = Erased),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = 409, description = "The run is not personal-class (`not_personal_data`).", body = ErrorBody),
        AdminRouteErrors,
    )
)]
pub(crate) async fn erase_personal_run(
    State(state): State<Arc<AppState>>,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    let (run_ref, block_index) = state.node.trust.erase_personal_run(&run_id).await?;
    Ok(Json(Erased {
        erased: true,
        run_ref,
        block_index,
    })
    .into_response())
}
