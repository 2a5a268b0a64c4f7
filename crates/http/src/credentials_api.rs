//! Credentials (SPEC §12), admin only: the stored tokens (no secrets),
//! client tokens of their own scopes, and the rotation of every credential
//! (the admin and ingest tokens, client tokens, partner keys) with a grace
//! period during which the old secret still works.

use crate::api::{bearer, read_text, rejected};
use crate::error::{ApiError, ErrorBody};
use crate::openapi::requests::{ClientTokenRequest, RotateKeyRequest, RotateRequest};
use crate::openapi::responses::{AdminRouteErrors, JsonBodyErrors, NotFound};
use crate::openapi::ApiRouter;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use qunimbus_core::validation::RawObject;
use qunimbus_core::{FieldError, FieldErrorCode};
use qunimbus_node::rotation::{CredentialItem, Issued, RotationError, DEFAULT_GRACE_SECS};
use qunimbus_node::tokens::Principal;
use std::sync::Arc;
use utoipa_axum::routes;

/// The credential routes (behind the admin check).
pub(crate) fn admin_routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(list_credentials))
        .routes(routes!(create_client))
        .routes(routes!(rotate))
        .routes(routes!(rotate_partner_key))
}

/// The stored tokens.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct CredentialList {
    /// Every token the node issued or retired, oldest first (the secrets
    /// are not stored; the tokens the node started with appear once
    /// rotated).
    credentials: Vec<CredentialItem>,
}

/// The admin making the change (the middleware let only an admin through).
fn caller(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    bearer(headers)
        .and_then(|t| state.node.credentials.principal_of(t))
        .ok_or_else(|| ApiError::unauthorized("the bearer token is not valid"))
}

fn rotation_error(state: &AppState, e: RotationError) -> ApiError {
    match e {
        RotationError::Unknown(_) | RotationError::NoPartner(_) => {
            ApiError::not_found(e.to_string())
        }
        RotationError::Taken(_) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()).with_field("name")
        }
        RotationError::Invalid { field, message } => rejected(
            state,
            FieldError::field(field, FieldErrorCode::OutOfRange, message),
        ),
        RotationError::Storage(e) => e.into(),
    }
}

/// The body's fields (only `allowed`; 422 naming a bad one).
fn fields<'a>(
    state: &AppState,
    text: &'a str,
    allowed: &'a [&'a str],
) -> Result<RawObject<'a>, ApiError> {
    RawObject::parse(text, allowed).map_err(|e| rejected(state, e))
}

/// The body's required `reason` (1–1000 characters; it goes on the ledger).
fn reason(state: &AppState, object: &RawObject<'_>) -> Result<String, ApiError> {
    object
        .bounded_string("reason", 1000)
        .map_err(|e| rejected(state, e))
}

/// A grace period from the body (default one hour).
fn grace(state: &AppState, object: &RawObject<'_>) -> Result<u64, ApiError> {
    if object.get("grace_secs").is_none() {
        return Ok(DEFAULT_GRACE_SECS);
    }
    let n = object
        .number("grace_secs")
        .map_err(|e| rejected(state, e))?;
    if n.fract() != 0.0 || !(0.0..=9.0e15).contains(&n) {
        return Err(rejected(
            state,
            FieldError::field(
                "grace_secs",
                FieldErrorCode::OutOfRange,
                format!("must be a whole number of seconds ≥ 0, got {n}"),
            ),
        ));
    }
    Ok(n as u64)
}

/// The tokens the node issued and retired (never a secret or a hash).
#[utoipa::path(get, path = "/v1/credentials", tag = "credentials", security(("admin_token" = [])),
    responses(
        (status = 200, description = "The stored tokens.", body = CredentialList),
        AdminRouteErrors,
    )
)]
pub(crate) async fn list_credentials(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let credentials = state.node.credentials_list().await?;
    Ok(Json(CredentialList { credentials }).into_response())
}

/// Issues a client token with its own scopes; its secret is shown this once.
#[utoipa::path(post, path = "/v1/credentials/clients", tag = "credentials", security(("admin_token" = [])),
    request_body = ClientTokenRequest,
    responses(
        (status = 201, description = "Issued: the secret, shown once, and the `config` block.", body = Issued),
        (status = 409, description = "A client of that name exists (`conflict`).", body = ErrorBody),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn create_client(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let by = caller(&state, &headers)?;
    let text = read_text(&state, &headers, body, 16 * 1024).await?;
    let object = fields(&state, &text, &["name", "scopes", "reason"])?;
    let name = object
        .bounded_string("name", 64)
        .map_err(|e| rejected(&state, e))?;
    let reason = reason(&state, &object)?;
    let scopes: Vec<String> = object
        .get("scopes")
        .map(|raw| serde_json::from_str(raw.get()))
        .transpose()
        .ok()
        .flatten()
        .filter(|s: &Vec<String>| s.len() <= 4)
        .ok_or_else(|| {
            rejected(
                &state,
                FieldError::field(
                    "scopes",
                    FieldErrorCode::WrongType,
                    "scopes must be a list of scope names (read, ingest, agent, admin)",
                ),
            )
        })?;
    let issued = state
        .node
        .issue_client_token(&name, &scopes, &reason, &by)
        .await
        .map_err(|e| rotation_error(&state, e))?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// Rotates the admin, ingest or a client token: a new secret, shown once;
/// the old one keeps working for `grace_secs`.
#[utoipa::path(post, path = "/v1/credentials/rotate", tag = "credentials", security(("admin_token" = [])),
    request_body = RotateRequest,
    responses(
        (status = 200, description = "Rotated: the new secret, shown once, when the old one stops, and the `config` block.", body = Issued),
        (status = 404, response = NotFound),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn rotate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let by = caller(&state, &headers)?;
    let text = read_text(&state, &headers, body, 16 * 1024).await?;
    let object = fields(&state, &text, &["credential", "grace_secs", "reason"])?;
    let credential = object
        .bounded_string("credential", 100)
        .map_err(|e| rejected(&state, e))?;
    let reason = reason(&state, &object)?;
    let grace = grace(&state, &object)?;
    let issued = state
        .node
        .rotate_credential(&credential, grace, &reason, &by)
        .await
        .map_err(|e| rotation_error(&state, e))?;
    Ok(Json(issued).into_response())
}

/// Gives a partner a new API key, shown once; the old key keeps working
/// (and its connections open) for `grace_secs`.
#[utoipa::path(post, path = "/v1/partners/{id}/rotate-key", tag = "market", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The partner's id (`p_…`).")),
    request_body = RotateKeyRequest,
    responses(
        (status = 200, description = "Rotated: the new key, shown once, and when the old one stops.", body = Issued),
        (status = 404, response = NotFound),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn rotate_partner_key(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let by = caller(&state, &headers)?;
    let text = read_text(&state, &headers, body, 16 * 1024).await?;
    let object = fields(&state, &text, &["grace_secs", "reason"])?;
    let reason = reason(&state, &object)?;
    let grace = grace(&state, &object)?;
    let issued = state
        .node
        .rotate_partner_key(&id, grace, &reason, &by)
        .await
        .map_err(|e| rotation_error(&state, e))?;
    Ok(Json(issued).into_response())
}
