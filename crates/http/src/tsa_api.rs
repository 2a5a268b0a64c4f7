//! RFC 3161 over HTTP (`POST /tsa`), the built-in TSA's certificates, and
//! the time-stamp token of a checkpoint.

use crate::api::{query_params, rate_limited, read_body, rejected};
use crate::error::{ApiError, ErrorBody};
use crate::limits::RateClass;
use crate::openapi::responses::{
    BadRequest, PayloadTooLarge, RequestTimeout, RouteErrors, TooManyRequests, Unprocessable,
    UnsupportedMediaType,
};
use crate::openapi::{ApiRouter, Binary};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use qunimbus_core::time::now_micros;
use qunimbus_core::{FieldError, FieldErrorCode};
use qunimbus_node::tsa::random_serial;
use std::collections::HashMap;
use std::sync::Arc;
use utoipa_axum::routes;

/// Largest accepted TimeStampReq.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Open RFC 3161 routes.
pub(crate) fn routes(state: &Arc<AppState>) -> ApiRouter {
    ApiRouter::new()
        .routes(rate_limited(state, RateClass::Tsa, routes!(timestamp)))
        .routes(routes!(certificates))
        .routes(routes!(checkpoint_token))
}

/// Answers a DER `TimeStampReq` with a `TimeStampResp` (granted, or a
/// rejection naming the failure for a request it cannot honour).
#[utoipa::path(
    post,
    path = "/tsa",
    tag = "timestamps",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    request_body(content = Binary, content_type = "application/timestamp-query", description = "A DER `TimeStampReq` (RFC 3161), at most 64 KiB."),
    responses(
        (status = 200, description = "A DER `TimeStampResp`: granted, or a rejection whose PKIStatusInfo names the failure.", body = Binary, content_type = "application/timestamp-reply"),
        (status = 400, response = BadRequest),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        RouteErrors,
    )
)]
pub(crate) async fn timestamp(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(kind) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        if !kind.starts_with("application/timestamp-query") {
            state.node.metrics.reject("unsupported_media_type");
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("expected application/timestamp-query, got {kind}"),
            ));
        }
    }
    let request = read_body(&state, &headers, body, MAX_REQUEST_BYTES).await?;
    let reply =
        state
            .node
            .authority
            .respond(&request, now_micros().timestamp_micros(), random_serial());
    Ok((
        [(header::CONTENT_TYPE, "application/timestamp-reply")],
        reply,
    )
        .into_response())
}

/// The built-in TSA's certificate chain (TSA certificate first, root last).
#[utoipa::path(
    get,
    path = "/tsa/certs",
    tag = "timestamps",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The chain, PEM.", body = String, content_type = "application/pem-certificate-chain"),
        RouteErrors,
    )
)]
pub(crate) async fn certificates(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
        state.node.authority.chain_pem(),
    )
        .into_response()
}

/// The DER token over the checkpoint of `tree_size` (default: the newest).
#[utoipa::path(
    get,
    path = "/v1/ledger/checkpoint/timestamp",
    tag = "timestamps",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    params(("tree_size" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807_u64, description = "The checkpoint's tree size (default the newest checkpoint).")),
    responses(
        (status = 200, description = "The DER RFC 3161 token over SHA-256 of the checkpoint body.", body = Binary, content_type = "application/timestamp-token"),
        (status = 400, response = BadRequest),
        (status = 404, description = "No such checkpoint (`not_found`), or its token is still pending (`timestamp_pending`).", body = ErrorBody),
        (status = 422, response = Unprocessable),
        RouteErrors,
    )
)]
pub(crate) async fn checkpoint_token(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query_params(&state, query, &["tree_size"])?;
    let reader = state.node.store.reader();
    let size = match params.get("tree_size") {
        // Sizes are stored as SQL integers: past i64::MAX is out of range
        // (it was a 500 from the database before).
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= i64::MAX as u64)
            .ok_or_else(|| {
                rejected(
                    &state,
                    FieldError::field(
                        "tree_size",
                        FieldErrorCode::OutOfRange,
                        format!(
                            "tree_size must be an integer from 0 to {}, got {text:?}",
                            i64::MAX
                        ),
                    ),
                )
            })?,
        None => reader
            .latest_checkpoint()
            .await?
            .map(|c| c.size)
            .ok_or_else(|| ApiError::not_found("no checkpoint has been signed yet"))?,
    };
    let stamp = reader.checkpoint_timestamp(size).await?.ok_or_else(|| {
        ApiError::not_found(format!("no checkpoint of size {size}")).with_field("tree_size")
    })?;
    match stamp.token {
        Some(token) => Ok((
            [(header::CONTENT_TYPE, "application/timestamp-token")],
            token,
        )
            .into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "timestamp_pending",
            format!(
                "the token for checkpoint {size} is pending after {} attempt(s){}",
                stamp.attempts,
                stamp
                    .error
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ),
        )),
    }
}
