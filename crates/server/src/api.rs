//! HTTP routes and handlers.

use crate::auth::Role;
use crate::error::{ApiError, ItemError};
use crate::ledger::valuation_draft;
use crate::limits::{self, RateClass};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use http_body_util::BodyExt;
use qunimbus_core::region::metric_label;
use qunimbus_core::telemetry::{parse_region, QuoteRequest};
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_core::{FieldError, FieldErrorCode, Telemetry};
use qunimbus_storage::{RunEntry, RunRecord, Stored};
use qunimbus_valuation::{PhiStats, Valuation};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Builds the node's router.
pub fn router(state: Arc<AppState>) -> Router {
    let ingest = Router::new()
        .route("/v1/telemetry", post(post_telemetry))
        .route("/v1/telemetry/batch", post(post_telemetry_batch))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_ingest,
        ));
    let admin = Router::new()
        .route("/v1/valuations/history/reset", post(reset_history))
        .merge(crate::ledger_api::admin_routes())
        .merge(crate::market_api::admin_routes())
        .merge(crate::trust_api::admin_routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let reads = Router::new()
        .route(
            "/v1/valuation/quote",
            rate_limited(&state, RateClass::Quote, post(quote)),
        )
        .route("/v1/valuations", get(list_valuations))
        .route(
            "/v1/valuations/stats",
            rate_limited(&state, RateClass::Stats, get(valuation_stats)),
        )
        .route("/v1/valuations/{run_id}", get(get_valuation))
        .route("/metrics", get(metrics))
        .merge(crate::ledger_api::read_routes(&state))
        .merge(crate::tsa_api::routes(&state))
        .merge(crate::market_api::read_routes())
        .merge(crate::trust_api::read_routes())
        .merge(crate::dashboard::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_reader,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(ingest)
        .merge(admin)
        .merge(crate::market_api::feed_routes())
        .merge(reads)
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
        .with_state(state)
}

/// `route` limited per client as `class` (see [`limits::rate_limited`]).
pub(crate) fn rate_limited(
    state: &Arc<AppState>,
    class: RateClass,
    route: MethodRouter<Arc<AppState>>,
) -> MethodRouter<Arc<AppState>> {
    route.route_layer(middleware::from_fn_with_state(
        (state.clone(), class),
        limits::rate_limited,
    ))
}

// ---- authentication -------------------------------------------------------

/// The token of an `Authorization: Bearer` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Role, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        state.metrics.reject("unauthorized");
        ApiError::unauthorized("missing `Authorization: Bearer <token>` header")
    })?;
    state.credentials.role_of(token).ok_or_else(|| {
        state.metrics.reject("unauthorized");
        ApiError::unauthorized("the bearer token is not valid")
    })
}

/// Whether the request carries the admin token (reads then show what only
/// operators may see).
pub(crate) fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    bearer(headers).and_then(|t| state.credentials.role_of(t)) == Some(Role::Admin)
}

async fn require_ingest(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match authenticate(&state, request.headers()) {
        Ok(_) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

async fn require_admin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match authenticate(&state, request.headers()) {
        Ok(Role::Admin) => next.run(request).await,
        Ok(_) => {
            state.metrics.reject("forbidden");
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this endpoint needs the admin token",
            )
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn require_reader(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if !state.protect_reads {
        return next.run(request).await;
    }
    match authenticate(&state, request.headers()) {
        Ok(_) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

// ---- responses ------------------------------------------------------------

/// A valuation as returned by the API. A personal-class run shows its
/// `run_ref`; its `run_id` only to admin callers (SPEC §11).
#[derive(Debug, Serialize)]
pub struct ValuationView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_ref: Option<String>,
    region: &'a str,
    data_class: &'a str,
    eta_ent: f64,
    coherence_variance: f64,
    runtime_hours: f64,
    eph_delivered: f64,
    #[serde(flatten)]
    valuation: &'a Valuation,
    accepted_at: String,
    block_index: Option<u64>,
}

impl<'a> ValuationView<'a> {
    /// The view of `r` for a caller who is (`admin`) or is not an admin.
    pub fn of(r: &'a RunRecord, admin: bool) -> Self {
        let t = &r.telemetry;
        Self {
            run_id: (admin || !r.is_personal()).then(|| t.run_id.as_str()),
            run_ref: r.run_ref(),
            region: &t.region,
            data_class: t.data_class.as_str(),
            eta_ent: t.metrics.eta_ent,
            coherence_variance: t.metrics.coherence_variance,
            runtime_hours: t.metrics.runtime_hours,
            eph_delivered: t.metrics.eph_delivered,
            valuation: &r.valuation,
            accepted_at: rfc3339_micros(r.accepted_at),
            block_index: r.block_index,
        }
    }
}

// ---- helpers --------------------------------------------------------------

/// Reads a whole body of at most `limit` bytes as UTF-8 text.
pub(crate) async fn read_text(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<String, ApiError> {
    let bytes = read_body(state, headers, body, limit).await?;
    String::from_utf8(bytes).map_err(|_| {
        state.metrics.reject("malformed_json");
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "request body is not UTF-8",
        )
    })
}

/// Reads a whole body of at most `limit` bytes within
/// `limits.body_read_timeout_ms`: 413 past the size (at once when the
/// declared length says so), 408 past the time. Holds one copy of the body.
pub(crate) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        state.metrics.reject("body_too_large");
        ApiError::too_large(
            "body_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let capacity = declared.map_or(0, |n| n as usize);
    let read = async move {
        let mut body = body;
        let mut bytes = Vec::with_capacity(capacity);
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            if bytes.len() + data.len() > limit {
                return Ok(None);
            }
            bytes.extend_from_slice(&data);
        }
        Ok::<_, axum::Error>(Some(bytes))
    };
    let timeout = state.limits.config.body_read_timeout();
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(Some(bytes))) => Ok(bytes),
        Ok(Ok(None)) => Err(too_large()),
        Ok(Err(e)) => {
            state.metrics.reject("unreadable_body");
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("could not read the request body: {e}"),
            ))
        }
        Err(_) => {
            state.metrics.reject("body_timeout");
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    timeout.as_millis()
                ),
            ))
        }
    }
}

pub(crate) fn rejected(state: &AppState, e: FieldError) -> ApiError {
    state.metrics.reject(e.code.as_str());
    e.into()
}

/// Why a run was not accepted.
enum Refusal {
    /// A field is invalid (400/422).
    Invalid(FieldError),
    /// A compliance rule forbids it (403).
    Policy(String),
}

impl Refusal {
    fn into_api_error(self, state: &AppState) -> ApiError {
        match self {
            Refusal::Invalid(e) => rejected(state, e),
            Refusal::Policy(message) => {
                state.metrics.reject("policy_violation");
                ApiError::new(StatusCode::FORBIDDEN, "policy_violation", message)
                    .with_field("region")
            }
        }
    }
}

/// Checks a run against the compliance policy, prices it and drafts its
/// ledger block (personal-class runs get a fresh salt for their reference).
fn value_run(state: &AppState, telemetry: Telemetry) -> Result<RunEntry, Refusal> {
    let checked = state
        .trust
        .check_accept(telemetry.data_class, &telemetry.region);
    let verified = checked.map_err(|decision| {
        let rule = if decision.errors.is_empty() {
            format!("rule {}", decision.rules.join(", "))
        } else {
            format!("policy evaluation error ({})", decision.errors.join("; "))
        };
        let frameworks = if decision.frameworks.is_empty() {
            String::new()
        } else {
            format!(" ({})", decision.frameworks.join(", "))
        };
        Refusal::Policy(format!(
            "{rule}{frameworks} forbids accepting {} runs in region {}; nothing was stored",
            telemetry.data_class.as_str(),
            telemetry.region
        ))
    })?;
    let valuation = finite_value(state, &telemetry.metrics).map_err(Refusal::Invalid)?;
    let erasure_salt = (telemetry.data_class == qunimbus_core::DataClass::Personal).then(|| {
        let salt: [u8; 16] = rand::random();
        qunimbus_ledger::hex::encode(&salt)
    });
    let record = RunRecord {
        valuation,
        telemetry,
        accepted_at: now_micros(),
        block_index: None,
        feed_seq: None,
        erasure_salt,
    };
    let draft = valuation_draft(&record, &state.frameworks, &verified);
    Ok((record, draft))
}

/// Prices `metrics`, refusing inputs whose figures would not be finite.
fn finite_value(
    state: &AppState,
    metrics: &qunimbus_core::RunMetrics,
) -> Result<Valuation, FieldError> {
    let valuation = state.engine.value(metrics);
    if valuation.is_finite() {
        Ok(valuation)
    } else {
        Err(FieldError::field(
            "eph_delivered",
            FieldErrorCode::OutOfRange,
            format!(
                "eph_delivered {} is too small: eph_price = phi_qevf / eph_delivered is not a finite number",
                metrics.eph_delivered
            ),
        ))
    }
}

// ---- ingest ---------------------------------------------------------------

async fn post_telemetry(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    let text = read_text(&state, &headers, body, state.ingest.max_body_bytes).await?;
    // The telemetry is received once its body is: feed latency starts here.
    let telemetry_received = Instant::now();
    let telemetry =
        Telemetry::parse_json(&text, &state.regions).map_err(|e| rejected(&state, e))?;
    let record = value_run(&state, telemetry).map_err(|e| e.into_api_error(&state))?;
    let stored = state
        .store
        .append_runs_received(vec![record], Some(telemetry_received))
        .await?;
    state.note_stored(&stored);
    state
        .metrics
        .ingest_latency
        .observe(received.elapsed().as_secs_f64());
    let outcome = stored.first().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            "store returned no outcome",
        )
    })?;
    let status = if outcome.is_created() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = ValuationView::of(outcome.record(), is_admin(&state, &headers));
    Ok((status, Json(view)).into_response())
}

#[derive(Serialize)]
struct BatchResponse<'a> {
    accepted: usize,
    duplicates: usize,
    runs: Vec<ValuationView<'a>>,
}

async fn post_telemetry_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received = Instant::now();
    let text = read_text(&state, &headers, body, state.ingest.max_batch_body_bytes).await?;
    let telemetry_received = Instant::now();
    let max_runs = state.ingest.max_batch_runs;
    let items = Telemetry::parse_json_batch(&text, &state.regions, max_runs).map_err(|e| {
        if e.code == FieldErrorCode::TooManyItems {
            state.metrics.reject("batch_too_large");
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
        state.metrics.reject("empty_batch");
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_batch",
            "the batch holds no runs",
        ));
    }
    let mut runs = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    let mut forbidden = false;
    for (index, item) in items.into_iter().enumerate() {
        match item
            .map_err(Refusal::Invalid)
            .and_then(|t| value_run(&state, t))
        {
            Ok(entry) => runs.push(entry),
            Err(Refusal::Invalid(e)) => {
                state.metrics.reject(e.code.as_str());
                errors.push(ItemError {
                    index,
                    field: e.field,
                    code: e.code.as_str(),
                    message: e.message,
                });
            }
            Err(Refusal::Policy(message)) => {
                state.metrics.reject("policy_violation");
                forbidden = true;
                errors.push(ItemError {
                    index,
                    field: Some("region".into()),
                    code: "policy_violation",
                    message,
                });
            }
        }
    }
    if let Some(first) = errors.first() {
        let (status, code) = if forbidden {
            (StatusCode::FORBIDDEN, "policy_violation")
        } else {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch")
        };
        let mut error = ApiError::new(
            status,
            code,
            format!(
                "{} of {} runs are invalid; nothing was stored",
                errors.len(),
                errors.len() + runs.len()
            ),
        );
        error.field = Some(match &first.field {
            Some(f) => format!("[{}].{f}", first.index),
            None => format!("[{}]", first.index),
        });
        error.items = errors;
        return Err(error);
    }
    let stored = state
        .store
        .append_runs_received(runs, Some(telemetry_received))
        .await?;
    state.note_stored(&stored);
    state
        .metrics
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

#[derive(Serialize)]
struct QuoteResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    eta_ent: f64,
    coherence_variance: f64,
    runtime_hours: f64,
    eph_delivered: f64,
    #[serde(flatten)]
    valuation: Valuation,
}

async fn quote(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let text = read_text(&state, &headers, body, state.ingest.max_body_bytes).await?;
    let request =
        QuoteRequest::parse_json(&text, &state.regions).map_err(|e| rejected(&state, e))?;
    let m = request.metrics;
    let valuation = finite_value(&state, &m).map_err(|e| rejected(&state, e))?;
    Ok(Json(QuoteResponse {
        region: request.region,
        eta_ent: m.eta_ent,
        coherence_variance: m.coherence_variance,
        runtime_hours: m.runtime_hours,
        eph_delivered: m.eph_delivered,
        valuation,
    })
    .into_response())
}

/// Largest `limit` accepted by `GET /v1/valuations`.
const MAX_LIST_LIMIT: u32 = 1000;

pub(crate) fn query_params(
    state: &AppState,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let Query(params) = query.map_err(|e| {
        state.metrics.reject("malformed_query");
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_query", e.body_text())
    })?;
    if let Some(unknown) = params.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(rejected(
            state,
            FieldError::field(
                unknown,
                FieldErrorCode::UnknownField,
                format!(
                    "unknown query parameter {unknown:?}; expected one of {}",
                    allowed.join(", ")
                ),
            ),
        ));
    }
    Ok(params)
}

#[derive(Serialize)]
struct ListResponse<'a> {
    count: usize,
    valuations: Vec<ValuationView<'a>>,
}

async fn list_valuations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query_params(&state, query, &["region", "limit"])?;
    let region = params
        .get("region")
        .map(|r| parse_region(r, &state.regions))
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
async fn get_valuation(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    let admin = is_admin(&state, &headers);
    let found = state.store.reader().get_run(&run_id).await?;
    match found.filter(|r| admin || !r.is_personal()) {
        Some(record) => Ok(Json(ValuationView::of(&record, admin)).into_response()),
        None => {
            Err(ApiError::not_found(format!("no run with run_id {run_id:?}")).with_field("run_id"))
        }
    }
}

#[derive(Serialize)]
struct StatsResponse {
    #[serde(flatten)]
    all: PhiStats,
    recent: RecentStats,
}

#[derive(Serialize)]
struct RecentStats {
    window: usize,
    #[serde(flatten)]
    stats: PhiStats,
}

async fn valuation_stats(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let all = state.store.reader().phi_stats().await?;
    let (window, stats) = state.recent_stats();
    Ok(Json(StatsResponse {
        all,
        recent: RecentStats { window, stats },
    })
    .into_response())
}

async fn reset_history(State(state): State<Arc<AppState>>) -> Response {
    let cleared = state.reset_history();
    tracing::info!(cleared, "valuation history reset by admin");
    Json(serde_json::json!({ "reset": true, "cleared": cleared })).into_response()
}

// ---- operations ---------------------------------------------------------------

async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// 200 when the database answers and every background task runs; 503
/// naming what is not (a task that died is down until its restart).
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if let Err(e) = state.store.ready().await {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string())
            .into_response();
    }
    let down = state.tasks.down();
    if !down.is_empty() {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("background task down: {}", down.join(", ")),
        );
        e.retry_after = Some(1);
        return e.into_response();
    }
    Json(serde_json::json!({ "status": "ready", "tasks": state.tasks.statuses() })).into_response()
}

/// OpenMetrics for clients that accept it (Prometheus asks for it first),
/// else the Prometheus text format 0.0.4 (curl, `promtool check metrics`).
async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    state.refresh_market_metrics();
    state.trust.refresh_metrics();
    if let Some(checkpoint) = state.store.reader().latest_checkpoint().await? {
        if let Ok(signed) = chrono::DateTime::parse_from_rfc3339(&checkpoint.signed_at) {
            let age = (chrono::Utc::now() - signed.with_timezone(&chrono::Utc)).num_milliseconds()
                as f64
                / 1000.0;
            state.metrics.checkpoint_age.set(age.max(0.0));
        }
    }
    let head = state.store.tree_head();
    state
        .metrics
        .ledger_blocks
        .set(i64::try_from(head.size).unwrap_or(i64::MAX));
    let encoded = if openmetrics {
        state.metrics.encode()
    } else {
        state.metrics.encode_text()
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

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

impl AppState {
    /// Updates metrics and the recent history for newly stored runs.
    fn note_stored(&self, stored: &[Stored]) {
        let mut created = 0;
        for s in stored {
            let record = s.record();
            if s.is_created() {
                created += 1;
                let label = crate::metrics::RegionLabel {
                    region: metric_label(&record.telemetry.region),
                };
                self.metrics.runs_accepted.get_or_create(&label).inc();
                self.metrics
                    .phi_qevf
                    .get_or_create(&label)
                    .set(record.valuation.phi_qevf);
                self.record_history(record.valuation.phi_qevf);
            } else {
                self.metrics.runs_duplicate.inc();
            }
        }
        self.metrics.stored_runs.inc_by(created);
    }
}
