//! What every handler reads from a request: bearer authentication (the
//! admin, ingest and reader middleware), bounded bodies, query parameters,
//! and field errors turned into counted API errors.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use qunimbus_core::{FieldError, FieldErrorCode};
use qunimbus_node::credentials::Role;
use std::collections::HashMap;
use std::sync::Arc;

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
        state.node.metrics.reject("unauthorized");
        ApiError::unauthorized("missing `Authorization: Bearer <token>` header")
    })?;
    state.node.credentials.role_of(token).ok_or_else(|| {
        state.node.metrics.reject("unauthorized");
        ApiError::unauthorized("the bearer token is not valid")
    })
}

/// Whether the request carries the admin token (reads then show what only
/// operators may see).
pub(crate) fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    bearer(headers).and_then(|t| state.node.credentials.role_of(t)) == Some(Role::Admin)
}

/// Lets a request through with a token of the ingest or admin scope (401
/// without a valid token, 403 with a client token of neither).
pub(crate) async fn require_ingest(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match authenticate(&state, request.headers()) {
        Ok(Role::Admin | Role::Ingest) => next.run(request).await,
        Ok(Role::Client) => {
            state.node.metrics.reject("forbidden");
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this endpoint needs the ingest scope",
            )
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Lets a request through with the admin token (401 without a valid
/// token, 403 with the ingest token).
pub(crate) async fn require_admin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match authenticate(&state, request.headers()) {
        Ok(Role::Admin) => next.run(request).await,
        Ok(_) => {
            state.node.metrics.reject("forbidden");
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

/// Lets every request through unless `auth.protect_reads` is set; then a
/// valid token is needed (401).
pub(crate) async fn require_reader(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if !state.node.protect_reads {
        return next.run(request).await;
    }
    match authenticate(&state, request.headers()) {
        Ok(_) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Reads a whole body of at most `limit` bytes as UTF-8 text.
pub(crate) async fn read_text(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<String, ApiError> {
    let bytes = read_body(state, headers, body, limit).await?;
    String::from_utf8(bytes).map_err(|_| {
        state.node.metrics.reject("malformed_json");
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
        state.node.metrics.reject("body_too_large");
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
            state.node.metrics.reject("unreadable_body");
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("could not read the request body: {e}"),
            ))
        }
        Err(_) => {
            state.node.metrics.reject("body_timeout");
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

/// Counts a refused input by its code and turns it into its API error.
pub(crate) fn rejected(state: &AppState, e: FieldError) -> ApiError {
    state.node.metrics.reject(e.code.as_str());
    e.into()
}

/// The query parameters of a request: 400 when the query cannot be parsed,
/// 422 naming the first parameter that is not in `allowed`.
pub(crate) fn query_params(
    state: &AppState,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let Query(params) = query.map_err(|e| {
        state.node.metrics.reject("malformed_query");
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
