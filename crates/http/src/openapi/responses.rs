//! The error responses operations share, as reusable OpenAPI response
//! components. Each is the JSON error body of [`crate::error::ErrorBody`]
//! with the status its description names.

use crate::error::ErrorBody;
use std::collections::BTreeMap;
use utoipa::openapi::{Ref, RefOr, Response};
use utoipa::ToResponse;

/// Malformed request: the body is not JSON / not UTF-8 (`malformed_json`),
/// could not be read (`unreadable_body`), or the query string cannot be
/// parsed (`malformed_query`).
#[derive(ToResponse)]
#[response(
    description = "Malformed request (`malformed_json`, `unreadable_body`, `malformed_query`)."
)]
pub struct BadRequest(#[allow(dead_code)] ErrorBody<'static>);

/// No valid bearer token (`unauthorized`), with `WWW-Authenticate: Bearer`.
#[derive(ToResponse)]
#[response(
    description = "No valid bearer token (`unauthorized`). Open reads answer this only when the node sets `auth.protect_reads`.",
    headers(("WWW-Authenticate" = String, description = "`Bearer`."))
)]
pub struct Unauthorized(#[allow(dead_code)] ErrorBody<'static>);

/// The token is valid but not enough (`forbidden`: this route needs the
/// admin token).
#[derive(ToResponse)]
#[response(description = "The token is valid but this route needs the admin token (`forbidden`).")]
pub struct Forbidden(#[allow(dead_code)] ErrorBody<'static>);

/// An unknown resource (`not_found` and kin).
#[derive(ToResponse)]
#[response(description = "No such resource (`not_found`); `field` names the parameter.")]
pub struct NotFound(#[allow(dead_code)] ErrorBody<'static>);

/// The body did not arrive within `limits.body_read_timeout_ms`.
#[derive(ToResponse)]
#[response(
    description = "The request body did not arrive within `limits.body_read_timeout_ms` (`body_timeout`)."
)]
pub struct RequestTimeout(#[allow(dead_code)] ErrorBody<'static>);

/// The change conflicts with the current state.
#[derive(ToResponse)]
#[response(description = "The change conflicts with the current state (`conflict` and kin).")]
pub struct Conflict(#[allow(dead_code)] ErrorBody<'static>);

/// The body (or batch) is over its limit; answered as soon as the declared
/// length says so.
#[derive(ToResponse)]
#[response(
    description = "The body or batch is over its limit (`body_too_large`, `batch_too_large`)."
)]
pub struct PayloadTooLarge(#[allow(dead_code)] ErrorBody<'static>);

/// The body's content type is not the one the route takes.
#[derive(ToResponse)]
#[response(
    description = "The `Content-Type` is not the one this route takes (`unsupported_media_type`)."
)]
pub struct UnsupportedMediaType(#[allow(dead_code)] ErrorBody<'static>);

/// A value is invalid; `field` names it.
#[derive(ToResponse)]
#[response(
    description = "A value is invalid (`out_of_range`, `missing_field`, `unknown_field`, `wrong_type`, `invalid_choice`, …); `field` names it."
)]
pub struct Unprocessable(#[allow(dead_code)] ErrorBody<'static>);

/// A per-client (or per-partner) limit was reached.
#[derive(ToResponse)]
#[response(
    description = "A per-client or per-partner limit was reached (`rate_limited`, `too_many_connections`, `too_many_tickets`). Callers with the admin or ingest token are not rate limited.",
    headers(("Retry-After" = u32, description = "Seconds until a retry may succeed."))
)]
pub struct TooManyRequests(#[allow(dead_code)] ErrorBody<'static>);

/// The node cannot serve the request now.
#[derive(ToResponse)]
#[response(
    description = "The node cannot serve the request now: `overloaded` (concurrency limit), `request_timeout`, `busy` (write queue full), `too_many_connections`, `not_ready`, `shutting_down`.",
    headers(("Retry-After" = u32, description = "Seconds until a retry may succeed (absent for `shutting_down`)."))
)]
pub struct Unavailable(#[allow(dead_code)] ErrorBody<'static>);

/// Declares a set of the error responses above that many operations share,
/// for `responses(...)` of `#[utoipa::path]`.
macro_rules! response_set {
    ($(#[$doc:meta])* $name:ident { $($status:literal => $component:ident),+ $(,)? }) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([$((
                    $status.to_string(),
                    Ref::from_response_name(stringify!($component)).into(),
                )),+])
            }
        }
    };
}

response_set! {
    /// What any route may answer before it runs: no valid token (when the
    /// route or `auth.protect_reads` asks for one) and the node's own limits.
    RouteErrors { "401" => Unauthorized, "503" => Unavailable }
}

response_set! {
    /// What an admin route may answer before it runs.
    AdminRouteErrors { "401" => Unauthorized, "403" => Forbidden, "503" => Unavailable }
}

response_set! {
    /// What reading and parsing a JSON body may answer.
    JsonBodyErrors {
        "400" => BadRequest,
        "408" => RequestTimeout,
        "413" => PayloadTooLarge,
        "422" => Unprocessable,
    }
}
