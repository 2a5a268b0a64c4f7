//! The C2SP tlog-tiles read API: `/tlog/checkpoint` and the hash and
//! entry-bundle tiles under `/tlog/tile/`.

use crate::error::{ApiError, ErrorBody};
use crate::ledger_api::{checkpoint, storage_error};
use crate::openapi::responses::RouteErrors;
use crate::openapi::{ApiRouter, Binary};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use qunimbus_ledger::tiles::{self, TileRequest};
use std::sync::Arc;
use utoipa_axum::routes;

/// The tlog-tiles routes (reads).
pub(crate) fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(tlog_checkpoint))
        .routes(routes!(tile))
}

/// The C2SP tlog-tiles checkpoint endpoint (the same note as
/// `/v1/ledger/checkpoint`).
#[utoipa::path(
    get,
    path = "/tlog/checkpoint",
    tag = "tlog",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The newest signed note.", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "No checkpoint has been signed yet.", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn tlog_checkpoint(state: State<Arc<AppState>>) -> Result<Response, ApiError> {
    checkpoint(state).await
}

/// A C2SP tlog-tiles tile: `<L>/<N>[.p/<W>]` (hash tiles, 32-byte hashes
/// of one level) or `entries/<N>[.p/<W>]` (entry bundles: uint16 length +
/// the block's JCS), with `N` in the spec's `x001/234` form.
#[utoipa::path(
    get,
    path = "/tlog/tile/{*path}",
    tag = "tlog",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    params(("path" = String, Path, description = "The tile path after `/tlog/tile/`, slashes included, e.g. `0/000.p/5` or `entries/000.p/5`.")),
    responses(
        (status = 200, description = "The tile's bytes.", body = Binary, content_type = "application/octet-stream"),
        (status = 404, description = "Not a tile path, or the tile is not in the tree.", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn tile(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let request = tiles::parse_tile_path(&path)
        .map_err(|e| ApiError::not_found(format!("not a tile path: {e}")))?;
    let size = state.node.store.tree_head().size;
    let unavailable = || {
        ApiError::not_found(format!(
            "tile {path} is not available in a tree of {size} entries"
        ))
    };
    let reader = state.node.store.reader();
    let body = match request {
        TileRequest::Hashes {
            level,
            index,
            width,
        } => {
            let available = tiles::tile_width_at(level, index, size).ok_or_else(unavailable)?;
            let width = width.unwrap_or(tiles::TILE_WIDTH);
            if width > available {
                return Err(unavailable());
            }
            let level_in_tree = level
                .checked_mul(tiles::TILE_HEIGHT)
                .ok_or_else(unavailable)?;
            reader
                .level_hashes(level_in_tree, index * tiles::TILE_WIDTH, width)
                .await
                .map_err(storage_error)?
        }
        TileRequest::Entries { index, width } => {
            let available = tiles::tile_width_at(0, index, size).ok_or_else(unavailable)?;
            let width = width.unwrap_or(tiles::TILE_WIDTH);
            if width > available {
                return Err(unavailable());
            }
            let blocks = reader
                .blocks(index * tiles::TILE_WIDTH, width as u32)
                .await
                .map_err(storage_error)?;
            let mut entries = Vec::with_capacity(blocks.len());
            for block in blocks {
                let block = block.map_err(storage_error)?;
                entries.push(block.leaf_bytes().map_err(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "ledger_corrupt",
                        e.to_string(),
                    )
                })?);
            }
            tiles::entry_bundle(&entries).map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ledger_corrupt",
                    e.to_string(),
                )
            })?
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}
