//! RFC 3161 over HTTP (`POST /tsa`), the built-in TSA's certificates, and
//! the time-stamp token of a checkpoint.

use crate::api::{query_params, rate_limited, read_body, rejected};
use crate::error::ApiError;
use crate::limits::RateClass;
use crate::state::AppState;
use crate::tsa::random_serial;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use qunimbus_core::time::now_micros;
use qunimbus_core::{FieldError, FieldErrorCode};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest accepted TimeStampReq.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Open RFC 3161 routes.
pub(crate) fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/tsa", rate_limited(state, RateClass::Tsa, post(timestamp)))
        .route("/tsa/certs", get(certificates))
        .route("/v1/ledger/checkpoint/timestamp", get(checkpoint_token))
}

/// Answers a DER `TimeStampReq` with a `TimeStampResp` (granted, or a
/// rejection naming the failure for a request it cannot honour).
async fn timestamp(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(kind) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        if !kind.starts_with("application/timestamp-query") {
            state.metrics.reject("unsupported_media_type");
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("expected application/timestamp-query, got {kind}"),
            ));
        }
    }
    let request = read_body(&state, &headers, body, MAX_REQUEST_BYTES).await?;
    let reply = state
        .authority
        .respond(&request, now_micros().timestamp_micros(), random_serial());
    Ok((
        [(header::CONTENT_TYPE, "application/timestamp-reply")],
        reply,
    )
        .into_response())
}

async fn certificates(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
        state.authority.chain_pem(),
    )
        .into_response()
}

/// The DER token over the checkpoint of `tree_size` (default: the newest).
async fn checkpoint_token(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query_params(&state, query, &["tree_size"])?;
    let reader = state.store.reader();
    let size = match params.get("tree_size") {
        Some(text) => text.parse::<u64>().map_err(|_| {
            rejected(
                &state,
                FieldError::field(
                    "tree_size",
                    FieldErrorCode::OutOfRange,
                    format!("tree_size must be a positive integer, got {text:?}"),
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
