//! The node's router, and the ingest and valuation handlers.
//!
//! Every route is registered with `routes!(handler)`: the path and method
//! come from the handler's `#[utoipa::path]`, the same annotation that
//! documents it in the OpenAPI document (`crate::openapi`), so the router
//! and the document cannot name different routes.

use crate::error::{ApiError, ErrorBody, ItemError};
use crate::limits::{self, RateClass};
use crate::openapi::requests::{QuoteRequestSchema, TelemetryRequest};
use crate::openapi::responses::{
    AdminRouteErrors, BadRequest, JsonBodyErrors, RouteErrors, TooManyRequests, Unprocessable,
};
use crate::openapi::{ApiRouter, MethodRoutes, Operation};
use crate::ops_api::{self, method_not_allowed, not_found};
pub(crate) use crate::request::{
    bearer, is_admin, query_params, read_body, read_text, rejected, require_admin, require_ingest,
    require_reader,
};
use crate::state::AppState;
pub use crate::valuation_views::ValuationView;
use crate::valuation_views::{
    BatchResponse, ListResponse, QuoteResponse, RecentStats, ResetResponse, StatsResponse,
};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use qunimbus_core::telemetry::{parse_region, QuoteRequest};
use qunimbus_core::{FieldError, FieldErrorCode, Telemetry};
use qunimbus_node::ingest::{IngestError, ItemRefusal, Refusal};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

/// Builds the node's router.
pub fn router(state: Arc<AppState>) -> Router {
    router_and_operations(state).0
}

/// Builds the node's router and lists the operations it registered
/// (method and path of each, as the OpenAPI document spells them).
pub fn router_and_operations(state: Arc<AppState>) -> (Router, Vec<Operation>) {
    let ingest = ApiRouter::new()
        .routes(routes!(post_telemetry))
        .routes(routes!(post_telemetry_batch))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_ingest,
        ));
    let admin = ApiRouter::new()
        .routes(routes!(reset_history))
        .merge(crate::ledger_api::admin_routes())
        .merge(crate::market_api::admin_routes())
        .merge(crate::trust_api::admin_routes())
        .merge(crate::agent_api::admin_routes())
        .merge(crate::credentials_api::admin_routes())
        .merge(crate::backup_api::admin_routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let reads = ApiRouter::new()
        .routes(rate_limited(&state, RateClass::Quote, routes!(quote)))
        .routes(routes!(list_valuations))
        .routes(rate_limited(
            &state,
            RateClass::Stats,
            routes!(valuation_stats),
        ))
        .routes(routes!(get_valuation))
        .routes(routes!(ops_api::metrics))
        .routes(routes!(ops_api::openapi_json))
        .merge(crate::ledger_api::read_routes(&state))
        .merge(crate::tlog_api::routes())
        .merge(crate::tsa_api::routes(&state))
        .merge(crate::market_api::read_routes())
        .merge(crate::trust_api::read_routes())
        .merge(crate::agent_api::read_routes())
        .merge(crate::dashboard::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_reader,
        ));
    let (router, registered) = ApiRouter::new()
        .routes(routes!(ops_api::healthz))
        .routes(routes!(ops_api::readyz))
        .merge(ingest)
        .merge(admin)
        .merge(crate::market_api::feed_routes())
        .merge(crate::a2a::routes(&state))
        .merge(reads)
        .split_for_parts();
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::overload,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::linger,
        ))
        .with_state(state);
    (router, crate::openapi::operations(&registered))
}

/// `route` limited per client as `class` (see [`limits::rate_limited`]).
pub(crate) fn rate_limited(
    state: &Arc<AppState>,
    class: RateClass,
    route: MethodRoutes,
) -> MethodRoutes {
    let state = state.clone();
    route.map(|r| {
        r.route_layer(middleware::from_fn_with_state(
            (state, class),
            limits::rate_limited,
        ))
    })
}

/// The API error of a run the ingest service refused (counted).
fn refusal_error(state: &AppState, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Invalid(e) => rejected(state, e),
        Refusal::Policy(message) => {
            state.node.metrics.reject("policy_violation");
            ApiError::new(StatusCode::FORBIDDEN, "policy_violation", message).with_field("region")
        }
    }
}

/// The API error of an ingest that stored nothing.
fn ingest_error(state: &AppState, error: IngestError) -> ApiError {
    match error {
        IngestError::Refused(refusal) => refusal_error(state, refusal),
        IngestError::Storage(e) => e.into(),
        IngestError::Batch(refused, total) => batch_error(state, refused, total),
    }
}

/// 422 (invalid items) or 403 (a policy forbids some), listing every
/// refused item; the first names the error's `field`.
fn batch_error(state: &AppState, refused: Vec<ItemRefusal>, total: usize) -> ApiError {
    let forbidden = refused
        .iter()
        .any(|r| matches!(r.refusal, Refusal::Policy(_)));
    let items: Vec<ItemError> = refused
        .into_iter()
        .map(|ItemRefusal { index, refusal }| match refusal {
            Refusal::Invalid(e) => {
                state.node.metrics.reject(e.code.as_str());
                ItemError {
                    index,
                    field: e.field,
                    code: e.code.as_str(),
                    message: e.message,
                }
            }
            Refusal::Policy(message) => {
                state.node.metrics.reject("policy_violation");
                ItemError {
                    index,
                    field: Some("region".into()),
                    code: "policy_violation",
                    message,
                }
            }
        })
        .collect();
    let (status, code) = if forbidden {
        (StatusCode::FORBIDDEN, "policy_violation")
    } else {
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch")
    };
    let mut error = ApiError::new(
        status,
        code,
        format!(
            "{} of {total} runs are invalid; nothing was stored",
            items.len()
        ),
    );
    error.field = items.first().map(|first| match &first.field {
        Some(f) => format!("[{}].{f}", first.index),
        None => format!("[{}]", first.index),
    });
    error.items = items;
    error
}

// ---- ingest ---------------------------------------------------------------

/// Ingests one run: validated, checked against the compliance policy,
/// priced, and stored durably with its ledger block before the answer.
#[utoipa::path(
    post,
    path = "/v1/telemetry",
    tag = "telemetry",
    security(("ingest_token" = []), ("admin_token" = [])),
    request_body(content = TelemetryRequest, description = "One run (at most `ingest.max_body_bytes`, default 1 MiB)."),
    responses(
        (status = 201, description = "Stored now.", body = ValuationView),
        (status = 200, description = "The `run_id` was accepted before: its original result.", body = ValuationView),
        (status = 403, description = "A compliance rule forbids this data class in this region (`policy_violation`); nothing was stored.", body = ErrorBody),
        (status = 429, description = "Ingest backpressure (`busy`): more than `ingest.max_queued_rows` runs wait for the writer; retry after `Retry-After`.", body = ErrorBody),
        JsonBodyErrors,
        RouteErrors,
    )
)]
pub(crate) async fn post_telemetry(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    let text = read_text(&state, &headers, body, state.node.ingest.max_body_bytes).await?;
    // The telemetry is received once its body is: feed latency starts here.
    let telemetry_received = Instant::now();
    let telemetry =
        Telemetry::parse_json(&text, &state.node.regions).map_err(|e| rejected(&state, e))?;
    let outcome = state
        .node
        .ingest(telemetry, telemetry_received)
        .await
        .map_err(|e| ingest_error(&state, e))?;
    state
        .node
        .metrics
        .ingest
        .ingest_latency
        .observe(received.elapsed().as_secs_f64());
    let status = if outcome.is_created() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = ValuationView::of(outcome.record(), is_admin(&state, &headers));
    Ok((status, Json(view)).into_response())
}

/// Ingests a batch: all valid → all stored in one transaction; any invalid
/// → every bad item listed and nothing stored.
#[utoipa::path(
    post,
    path = "/v1/telemetry/batch",
    tag = "telemetry",
    security(("ingest_token" = []), ("admin_token" = [])),
    request_body(content = Vec<TelemetryRequest>, description = "At most `ingest.max_batch_runs` runs (default 10,000) in at most `ingest.max_batch_body_bytes` (default 16 MiB)."),
    responses(
        (status = 201, description = "At least one run was stored now.", body = BatchResponse),
        (status = 200, description = "Every run was accepted before.", body = BatchResponse),
        (status = 403, description = "A compliance rule forbids one or more runs (`policy_violation`, `items` lists them); nothing was stored.", body = ErrorBody),
        (status = 429, description = "Ingest backpressure (`busy`): more than `ingest.max_queued_rows` runs wait for the writer; retry after `Retry-After`.", body = ErrorBody),
        JsonBodyErrors,
        RouteErrors,
    )
)]
pub(crate) async fn post_telemetry_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    let text = read_text(
        &state,
        &headers,
        body,
        state.node.ingest.max_batch_body_bytes,
    )
    .await?;
    let telemetry_received = Instant::now();
    let max_runs = state.node.ingest.max_batch_runs;
    let items = Telemetry::parse_json_batch(&text, &state.node.regions, max_runs).map_err(|e| {
        if e.code == FieldErrorCode::TooManyItems {
            state.node.metrics.reject("batch_too_large");
            ApiError::too_large(
                "batch_too_large",
                format!(
                    "the batch holds more than {max_runs} runs; at most {max_runs} are allowed"
                ),
            )
        } else {
            rejected(&state, e)
        }
    })?;
    if items.is_empty() {
        state.node.metrics.reject("empty_batch");
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_batch",
            "the batch holds no runs",
        ));
    }
    let stored = state
        .node
        .ingest_batch(items, telemetry_received)
        .await
        .map_err(|e| ingest_error(&state, e))?;
    state
        .node
        .metrics
        .ingest
        .ingest_latency
        .observe(received.elapsed().as_secs_f64());
    let accepted = stored.iter().filter(|s| s.is_created()).count();
    let admin = is_admin(&state, &headers);
    let response = BatchResponse {
        accepted,
        duplicates: stored.len() - accepted,
        runs: stored
            .iter()
            .map(|s| ValuationView::of(s.record(), admin))
            .collect(),
    };
    let status = if accepted > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(response)).into_response())
}

// ---- valuation reads --------------------------------------------------------

/// Prices a run without recording anything.
#[utoipa::path(
    post,
    path = "/v1/valuation/quote",
    tag = "valuations",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    request_body(content = QuoteRequestSchema, description = "The run's figures; `run_id`, `region` and `data_class` are optional but checked when given."),
    responses(
        (status = 200, description = "The price.", body = QuoteResponse),
        (status = 429, response = TooManyRequests),
        JsonBodyErrors,
        RouteErrors,
    )
)]
pub(crate) async fn quote(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let text = read_text(&state, &headers, body, state.node.ingest.max_body_bytes).await?;
    Ok(Json(quote_of(&state, &text)?).into_response())
}

/// The quote of a request's JSON (`POST /v1/valuation/quote`, the `valuation.quote`
/// A2A skill).
pub(crate) fn quote_of(state: &AppState, text: &str) -> Result<QuoteResponse, ApiError> {
    let request =
        QuoteRequest::parse_json(text, &state.node.regions).map_err(|e| rejected(state, e))?;
    let m = request.metrics;
    let valuation = state.node.quote(&m).map_err(|e| rejected(state, e))?;
    Ok(QuoteResponse {
        region: request.region,
        eta_ent: m.eta_ent,
        coherence_variance: m.coherence_variance,
        runtime_hours: m.runtime_hours,
        eph_delivered: m.eph_delivered,
        valuation,
    })
}

/// Largest `limit` accepted by `GET /v1/valuations`.
const MAX_LIST_LIMIT: u32 = 1000;

/// Stored valuations, newest first.
#[utoipa::path(
    get,
    path = "/v1/valuations",
    tag = "valuations",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    params(
        ("region" = Option<String>, Query, description = "Only this region (case-insensitive)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)."),
    ),
    responses(
        (status = 200, description = "The valuations.", body = ListResponse),
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
        RouteErrors,
    )
)]
pub(crate) async fn list_valuations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query_params(&state, query, &["region", "limit"])?;
    let region = params
        .get("region")
        .map(|r| parse_region(r, &state.node.regions))
        .transpose()
        .map_err(|e| rejected(&state, e))?;
    let limit = match params.get("limit") {
        None => 100,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
            .ok_or_else(|| {
                rejected(
                    &state,
                    FieldError::field(
                        "limit",
                        FieldErrorCode::OutOfRange,
                        format!(
                            "limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {text:?}"
                        ),
                    ),
                )
            })?,
    };
    let records = state
        .node
        .store
        .reader()
        .list_runs(region.as_deref(), limit)
        .await?;
    Ok(Json(ListResponse {
        count: records.len(),
        valuations: records
            .iter()
            .map(|r| ValuationView::of(r, is_admin(&state, &headers)))
            .collect(),
    })
    .into_response())
}

/// `GET /v1/valuations/{run_id}`: a personal-class run is found only by
/// admin callers (to anyone else its id is unknown, SPEC §11).
#[utoipa::path(
    get,
    path = "/v1/valuations/{run_id}",
    tag = "valuations",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    params(("run_id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run.", body = ValuationView),
        (status = 404, description = "No such run (or a personal-class run and the caller is not an admin).", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn get_valuation(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    let admin = is_admin(&state, &headers);
    let found = state.node.store.reader().get_run(&run_id).await?;
    match found.filter(|r| admin || !r.is_personal()) {
        Some(record) => Ok(Json(ValuationView::of(&record, admin)).into_response()),
        None => {
            Err(ApiError::not_found(format!("no run with run_id {run_id:?}")).with_field("run_id"))
        }
    }
}

/// `phi_qevf` statistics (nearest-rank percentiles).
#[utoipa::path(
    get,
    path = "/v1/valuations/stats",
    tag = "valuations",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The statistics.", body = StatsResponse),
        (status = 429, response = TooManyRequests),
        RouteErrors,
    )
)]
pub(crate) async fn valuation_stats(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let all = state.node.store.reader().phi_stats().await?;
    let (window, stats) = state.node.recent_stats();
    Ok(Json(StatsResponse {
        all,
        recent: RecentStats { window, stats },
    })
    .into_response())
}

/// Clears the recent window of `phi_qevf` values.
#[utoipa::path(
    post,
    path = "/v1/valuations/history/reset",
    tag = "valuations",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Cleared.", body = ResetResponse),
        AdminRouteErrors,
    )
)]
pub(crate) async fn reset_history(State(state): State<Arc<AppState>>) -> Response {
    let cleared = state.node.reset_history();
    tracing::info!(cleared, "valuation history reset by admin");
    Json(ResetResponse {
        reset: true,
        cleared,
    })
    .into_response()
}
