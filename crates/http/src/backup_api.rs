//! `POST /v1/admin/backup` (admin): a verified backup of the running node
//! into its `[backup] dir` (issue 19). The file stays on the node's disk;
//! the answer names it and carries its manifest.

use crate::api::{read_text, rejected};
use crate::error::{ApiError, ErrorBody};
use crate::openapi::requests::BackupRequest;
use crate::openapi::responses::{AdminRouteErrors, JsonBodyErrors};
use crate::openapi::ApiRouter;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use qunimbus_core::validation::RawObject;
use qunimbus_core::{FieldError, FieldErrorCode};
use qunimbus_node::backup::{BackupError, Manifest, TakenBackup};
use std::sync::Arc;
use utoipa_axum::routes;

/// The backup route (behind the admin check).
pub(crate) fn admin_routes() -> ApiRouter {
    ApiRouter::new().routes(routes!(post_backup))
}

/// A backup the node wrote and verified.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct BackupTaken {
    /// The file's name in the backup dir.
    file: String,
    /// Its path on the node.
    path: String,
    /// Its size, bytes.
    bytes: u64,
    /// Copy and verification time, ms.
    took_ms: f64,
    /// What the backup holds: blocks, the signed checkpoint it verified
    /// against (tree size, root, note) and the carried files.
    manifest: Manifest,
    /// Older backups deleted to keep `backup.keep` (file names).
    removed: Vec<String>,
}

impl From<TakenBackup> for BackupTaken {
    fn from(taken: TakenBackup) -> Self {
        let name = |p: &std::path::Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        Self {
            file: name(&taken.path),
            path: taken.path.display().to_string(),
            bytes: taken.report.bytes,
            took_ms: taken.report.took.as_secs_f64() * 1000.0,
            manifest: taken.report.manifest,
            removed: taken.removed,
        }
    }
}

/// An optional boolean field of the body.
fn flag(state: &AppState, object: &RawObject<'_>, name: &str) -> Result<Option<bool>, ApiError> {
    object
        .get(name)
        .map(|raw| {
            serde_json::from_str::<bool>(raw.get()).map_err(|_| {
                rejected(
                    state,
                    FieldError::field(
                        name,
                        FieldErrorCode::WrongType,
                        format!("{name} must be true or false"),
                    ),
                )
            })
        })
        .transpose()
}

fn backup_error(e: BackupError) -> ApiError {
    match e {
        BackupError::Busy => ApiError::new(StatusCode::CONFLICT, "backup_running", e.to_string()),
        BackupError::NotSqlite => ApiError::new(StatusCode::CONFLICT, "not_sqlite", e.to_string()),
        other => {
            tracing::error!(error = %other, "backup failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "backup_failed",
                format!("the backup failed and was not kept: {other}"),
            )
        }
    }
}

/// Takes a backup of the running node into its `[backup] dir`: a
/// consistent copy of the SQLite store whose ledger is verified against
/// its newest signed checkpoint before it is kept, then the oldest beyond
/// `backup.keep` are deleted. The node keeps serving meanwhile. An empty
/// body takes the configured `backup.include_keys` and
/// `backup.include_credentials`.
#[utoipa::path(post, path = "/v1/admin/backup", tag = "operations", security(("admin_token" = [])),
    request_body(content = Option<BackupRequest>, description = "Optional: what to carry besides the database."),
    responses(
        (status = 201, description = "Written and verified.", body = BackupTaken),
        (status = 409, description = "A backup is running already (`backup_running`), or the store is PostgreSQL (`not_sqlite`: use pg_dump).", body = ErrorBody),
        (status = 500, description = "The copy did not verify or could not be written (`backup_failed`); nothing was kept.", body = ErrorBody),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn post_backup(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let text = read_text(&state, &headers, body, 4096).await?;
    let mut options = state.node.backups.defaults;
    if !text.trim().is_empty() {
        let object = RawObject::parse(&text, &["include_keys", "include_credentials"])
            .map_err(|e| rejected(&state, e))?;
        if let Some(keys) = flag(&state, &object, "include_keys")? {
            options.include_keys = keys;
        }
        if let Some(credentials) = flag(&state, &object, "include_credentials")? {
            options.include_credentials = credentials;
        }
    }
    // A task of its own: a client that hangs up does not leave a
    // half-verified copy behind; the backup finishes and is counted.
    let node = state.node.clone();
    let taken = tokio::spawn(async move { node.take_backup(options).await })
        .await
        .map_err(|e| {
            backup_error(BackupError::Malformed(format!(
                "the backup task failed: {e}"
            )))
        })?
        .map_err(backup_error)?;
    Ok((StatusCode::CREATED, Json(BackupTaken::from(taken))).into_response())
}
