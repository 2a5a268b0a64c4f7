//! The JSON error body every endpoint uses (SPEC §9):
//! `{"error": {"code", "message", "field"?, "items"?}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use qunimbus_core::{FieldError, FieldErrorCode};
use qunimbus_storage::StorageError;
use serde::Serialize;
use utoipa::ToSchema;

/// One invalid element of a batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemError {
    /// Position in the submitted array (0-based).
    #[schema(minimum = 0)]
    pub index: usize,
    /// The offending field, when one is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// The offending field, if any.
    pub field: Option<String>,
    /// Per-item errors of a batch.
    pub items: Vec<ItemError>,
    /// Seconds after which a retry may succeed (sets `Retry-After`).
    pub retry_after: Option<u32>,
}

/// The body of every error response: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong.
    pub error: ErrorDetail<'a>,
}

/// The `error` member of an [`ErrorBody`].
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail<'a> {
    /// Machine-readable code, e.g. `out_of_range`, `unauthorized`, `busy`.
    pub code: &'a str,
    /// Human-readable message.
    pub message: &'a str,
    /// The offending field (a body field, a query or path parameter, or
    /// `[i].field` for a batch item), when one is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
    /// Every invalid item of a rejected batch.
    #[serde(skip_serializing_if = "<[ItemError]>::is_empty")]
    #[schema(required = false)]
    pub items: &'a [ItemError],
}

impl ApiError {
    /// A plain error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            items: Vec::new(),
            retry_after: None,
        }
    }

    /// Sets the offending field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 404 for an unknown route or resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401 with a `WWW-Authenticate` challenge.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 429 with `Retry-After`: a limit per client or partner was reached.
    pub fn too_many(code: &'static str, message: impl Into<String>, retry_after: u32) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }

    /// 503 with `Retry-After`: the node is at a capacity limit.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u32) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// 413 for a body or batch over its limit.
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }
}

impl From<FieldError> for ApiError {
    /// Malformed documents are 400; every other validation failure is 422.
    fn from(e: FieldError) -> Self {
        let status = match e.code {
            FieldErrorCode::MalformedJson => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self {
            status,
            code: e.code.as_str(),
            message: e.message,
            field: e.field,
            items: Vec::new(),
            retry_after: None,
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            // Backpressure on ingest: the client is asked to slow down.
            StorageError::Busy => Self::too_many("busy", e.to_string(), 1),
            StorageError::Closed => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                e.to_string(),
            ),
            StorageError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            StorageError::InvalidBlock(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_block",
                e.to_string(),
            ),
            other => {
                tracing::error!(error = %other, "storage failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage_error",
                    "the run could not be stored; nothing was written",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
                items: &self.items,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
