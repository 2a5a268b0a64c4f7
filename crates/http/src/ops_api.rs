//! Operations endpoints: liveness, readiness, Prometheus metrics, the
//! OpenAPI document, and the answers for unknown routes and methods.

use crate::error::ApiError;
use crate::openapi::responses::{RouteErrors, Unavailable};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use qunimbus_node::supervise::TaskStatus;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

/// `GET /healthz`: the process answers.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// `GET /readyz` when ready.
#[derive(Serialize, ToSchema)]
pub(crate) struct Ready {
    /// Always `ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// Every supervised background task by name.
    tasks: BTreeMap<&'static str, TaskStatus>,
}

/// The process answers (no check of the database or the tasks).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "The node process is up.", body = Health),
        (status = 503, response = Unavailable),
    )
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// 200 when the database answers and every background task runs; 503
/// naming what is not (a task that died is down until its restart).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "The database answers and every background task runs.", body = Ready),
        (status = 503, response = Unavailable),
    )
)]
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if let Err(e) = state.node.store.ready().await {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string())
            .into_response();
    }
    let down = state.node.tasks.down();
    if !down.is_empty() {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("background task down: {}", down.join(", ")),
        );
        e.retry_after = Some(1);
        return e.into_response();
    }
    Json(Ready {
        status: "ready",
        tasks: state.node.tasks.statuses(),
    })
    .into_response()
}

/// OpenMetrics for clients that accept it (Prometheus asks for it first),
/// else the Prometheus text format 0.0.4 (curl, `promtool check metrics`).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "Every `qunimbus_*` metric: OpenMetrics 1.0 when the `Accept` header asks for `application/openmetrics-text`, else the Prometheus text format 0.0.4.",
            content(
                (String = "text/plain; version=0.0.4; charset=utf-8"),
                (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
            )),
        RouteErrors,
    )
)]
pub(crate) async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    state.node.refresh_market_metrics();
    state.node.trust.refresh_metrics();
    let head = state.node.store.tree_head();
    let checkpoint = state.node.store.reader().latest_checkpoint().await?;
    if let Some(checkpoint) = &checkpoint {
        if let Ok(signed) = chrono::DateTime::parse_from_rfc3339(&checkpoint.signed_at) {
            let age = (chrono::Utc::now() - signed.with_timezone(&chrono::Utc)).num_milliseconds()
                as f64
                / 1000.0;
            state.node.metrics.ledger.checkpoint_age.set(age.max(0.0));
        }
    }
    let signed = checkpoint.map_or(0, |c| c.size);
    state
        .node
        .metrics
        .ledger
        .unsigned_blocks
        .set(i64::try_from(head.size.saturating_sub(signed)).unwrap_or(i64::MAX));
    state
        .node
        .metrics
        .ledger
        .ledger_blocks
        .set(i64::try_from(head.size).unwrap_or(i64::MAX));
    let encoded = if openmetrics {
        state.node.metrics.encode()
    } else {
        state.node.metrics.encode_text()
    };
    let text = encoded.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics_error",
            format!("encoding metrics failed: {e}"),
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            if openmetrics {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            } else {
                "text/plain; version=0.0.4; charset=utf-8"
            },
        )],
        text,
    )
        .into_response())
}

/// This document: the OpenAPI 3.1 description of every route, generated
/// from the handlers' annotations and types.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object),
        RouteErrors,
    )
)]
pub(crate) async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}

/// 404 for a path no route matches.
pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// 405 for a method a matched path does not take.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
