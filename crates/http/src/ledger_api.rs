//! Ledger endpoints: summary, blocks, checkpoints, proofs, verification,
//! attestations and the Grafana export (the C2SP tlog-tiles read API is in
//! `tlog_api.rs`).

use crate::api::{query_params, rate_limited, read_text, rejected};
use crate::error::{ApiError, ErrorBody};
use crate::ledger_views::{
    AttestationEntry, AttestationHistory, BlockPage, BlockView, CheckpointSummary,
    ConsistencyProof, InclusionProof, LedgerSummary,
};
use crate::limits::RateClass;
use crate::openapi::requests::AttestationRequest;
use crate::openapi::responses::{
    AdminRouteErrors, BadRequest, JsonBodyErrors, NotFound, RouteErrors, TooManyRequests,
    Unprocessable,
};
use crate::openapi::ApiRouter;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use qunimbus_core::{FieldError, FieldErrorCode};
use qunimbus_ledger::attestation::parse_attestation_request;
use qunimbus_node::ledger::{grafana_row, GrafanaRow, VerifyReport};
use qunimbus_node::lock;
use qunimbus_storage::StorageError;
use std::collections::HashMap;
use std::sync::Arc;
use utoipa_axum::routes;

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// Read-only ledger routes.
pub(crate) fn read_routes(state: &Arc<AppState>) -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(summary))
        .routes(routes!(list_blocks))
        .routes(routes!(get_block))
        .routes(routes!(checkpoint))
        .routes(routes!(public_key))
        .routes(routes!(inclusion_proof))
        .routes(routes!(consistency_proof))
        .routes(rate_limited(state, RateClass::Verify, routes!(verify)))
        .routes(routes!(attestation_history))
        .routes(rate_limited(
            state,
            RateClass::Export,
            routes!(export_grafana),
        ))
}

/// Admin ledger routes.
pub(crate) fn admin_routes() -> ApiRouter {
    ApiRouter::new().routes(routes!(post_attestation))
}

/// A storage error as the ledger endpoints answer it (422 for a range the
/// stored tree does not have, 500 for a corrupt block).
pub(crate) fn storage_error(e: StorageError) -> ApiError {
    match e {
        StorageError::OutOfRange(message) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "out_of_range", message)
        }
        StorageError::CorruptBlock { index, reason } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ledger_corrupt",
            format!("stored block {index} is corrupt: {reason}"),
        ),
        other => other.into(),
    }
}

/// Reads an optional unsigned integer query parameter within `[min, max]`.
pub(crate) fn int_param(
    state: &AppState,
    params: &HashMap<String, String>,
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ApiError> {
    let Some(text) = params.get(name) else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(rejected(
            state,
            FieldError::field(
                name,
                FieldErrorCode::OutOfRange,
                format!("{name} must be an integer from {min} to {max}, got {text:?}"),
            ),
        )),
    }
}

fn required(state: &AppState, value: Option<u64>, name: &str) -> Result<u64, ApiError> {
    value.ok_or_else(|| {
        rejected(
            state,
            FieldError::field(
                name,
                FieldErrorCode::MissingField,
                format!("query parameter {name} is required"),
            ),
        )
    })
}

fn b64(hash: &[u8]) -> String {
    B64.encode(hash)
}

// ---- summary and blocks -----------------------------------------------------

/// The ledger at a glance.
#[utoipa::path(
    get,
    path = "/v1/ledger",
    tag = "ledger",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "Length, latest figures, hashes, the newest checkpoint and the last verification.", body = LedgerSummary),
        RouteErrors,
    )
)]
pub(crate) async fn summary(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    Ok(Json(ledger_summary(&state).await?).into_response())
}

/// The ledger's summary (`GET /v1/ledger`, the `ledger.status` A2A skill).
pub(crate) async fn ledger_summary(state: &AppState) -> Result<LedgerSummary<'_>, ApiError> {
    let reader = state.node.store.reader();
    let head = state.node.store.tree_head();
    let genesis = reader.block(0).await.map_err(storage_error)?;
    let latest = match head.size {
        0 => None,
        n => reader.block(n - 1).await.map_err(storage_error)?,
    };
    let latest_valuation = reader
        .latest_blocks_of_kind("valuation", 1)
        .await
        .map_err(storage_error)?
        .pop();
    let checkpoint = reader
        .latest_checkpoint()
        .await
        .map_err(storage_error)?
        .map(|c| CheckpointSummary {
            tree_size: c.size,
            root_hash: b64(&c.root),
            signed_at: c.signed_at,
        });
    let last_verification = lock(&state.node.last_verification).clone();
    Ok(LedgerSummary {
        origin: state.node.signer.name(),
        chain_length: head.size,
        root_hash: b64(&head.root),
        genesis_hash: genesis.map(|b| b.hash),
        latest_hash: latest.map(|b| b.hash),
        latest_phi_qevf: latest_valuation.as_ref().and_then(|b| b.phi_qevf),
        latest_eta_ent: latest_valuation.as_ref().and_then(|b| b.eta_ent),
        latest_valuation_timestamp: latest_valuation.map(|b| b.timestamp),
        compliance_frameworks: &state.node.frameworks,
        checkpoint,
        public_key: state.node.verifier.to_vkey(),
        last_verification,
    })
}

/// One block.
#[utoipa::path(
    get,
    path = "/v1/ledger/blocks/{index}",
    tag = "ledger",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    params(("index" = u64, Path, minimum = 0, maximum = 9223372036854775807_u64, description = "The block's index (0 is the genesis block).")),
    responses(
        (status = 200, description = "The block.", body = BlockView),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        RouteErrors,
    )
)]
pub(crate) async fn get_block(
    State(state): State<Arc<AppState>>,
    Path(index): Path<String>,
) -> Result<Response, ApiError> {
    // Indexes are stored as SQL integers: past i64::MAX is out of range
    // (it was a 500 from the database before).
    let index: u64 = index
        .parse()
        .ok()
        .filter(|i| *i <= i64::MAX as u64)
        .ok_or_else(|| {
            rejected(
                &state,
                FieldError::field(
                    "index",
                    FieldErrorCode::OutOfRange,
                    format!(
                        "index must be an integer from 0 to {}, got {index:?}",
                        i64::MAX
                    ),
                ),
            )
        })?;
    match state
        .node
        .store
        .reader()
        .block(index)
        .await
        .map_err(storage_error)?
    {
        Some(block) => Ok(Json(BlockView::of(&block)).into_response()),
        None => Err(ApiError::not_found(format!(
            "no block {index}; the ledger has {} blocks",
            state.node.store.tree_head().size
        ))
        .with_field("index")),
    }
}

/// Largest page of `GET /v1/ledger/blocks`.
const MAX_BLOCK_PAGE: u64 = 1000;

/// Blocks in index order.
#[utoipa::path(
    get,
    path = "/v1/ledger/blocks",
    tag = "ledger",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    params(
        ("from" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807_u64, description = "First index (default 0)."),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)."),
    ),
    responses(
        (status = 200, description = "The page.", body = BlockPage),
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
        RouteErrors,
    )
)]
pub(crate) async fn list_blocks(
    State(state): State<Arc<AppState>>,
    query: Params,
) -> Result<Response, ApiError> {
    let params = query_params(&state, query, &["from", "limit"])?;
    let from = int_param(&state, &params, "from", 0, i64::MAX as u64)?.unwrap_or(0);
    let limit = int_param(&state, &params, "limit", 1, MAX_BLOCK_PAGE)?.unwrap_or(100);
    let blocks = state
        .node
        .store
        .reader()
        .blocks(from, limit as u32)
        .await
        .map_err(storage_error)?;
    let blocks = blocks
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(storage_error)?;
    let blocks: Vec<BlockView> = blocks.iter().map(BlockView::of).collect();
    Ok(Json(BlockPage {
        from,
        count: blocks.len(),
        blocks,
    })
    .into_response())
}

// ---- checkpoints and keys ---------------------------------------------------

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// The newest signed checkpoint (C2SP signed note).
#[utoipa::path(
    get,
    path = "/v1/ledger/checkpoint",
    tag = "ledger",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The signed note: origin line, tree size, base64 root hash, blank line, signature lines.", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "No checkpoint has been signed yet.", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn checkpoint(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    match state
        .node
        .store
        .reader()
        .latest_checkpoint()
        .await
        .map_err(storage_error)?
    {
        Some(c) => Ok(text(c.note)),
        None => Err(ApiError::not_found("no checkpoint has been signed yet")),
    }
}

/// The note verifier key of the checkpoints.
#[utoipa::path(
    get,
    path = "/v1/ledger/public-key",
    tag = "ledger",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "`name+keyid+base64(0x01 ‖ Ed25519 public key)` and a newline.", body = String, content_type = "text/plain; charset=utf-8"),
        RouteErrors,
    )
)]
pub(crate) async fn public_key(State(state): State<Arc<AppState>>) -> Response {
    text(format!("{}\n", state.node.verifier.to_vkey()))
}

// ---- proofs -------------------------------------------------------------------

async fn default_tree_size(state: &AppState) -> Result<u64, ApiError> {
    Ok(
        match state
            .node
            .store
            .reader()
            .latest_checkpoint()
            .await
            .map_err(storage_error)?
        {
            Some(c) => c.size,
            None => state.node.store.tree_head().size,
        },
    )
}

/// An RFC 6962 inclusion proof (audit path) of a block.
#[utoipa::path(
    get,
    path = "/v1/ledger/proof/inclusion",
    tag = "ledger",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    params(
        ("index" = u64, Query, minimum = 0, maximum = 9223372036854775807_u64, description = "The block's index."),
        ("tree_size" = Option<u64>, Query, minimum = 1, maximum = 9223372036854775807_u64, description = "The tree to prove against (default the newest checkpoint's size); above `index`."),
    ),
    responses(
        (status = 200, description = "The audit path.", body = InclusionProof),
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
        RouteErrors,
    )
)]
pub(crate) async fn inclusion_proof(
    State(state): State<Arc<AppState>>,
    query: Params,
) -> Result<Response, ApiError> {
    let params = query_params(&state, query, &["index", "tree_size"])?;
    let index = required(
        &state,
        int_param(&state, &params, "index", 0, i64::MAX as u64)?,
        "index",
    )?;
    let tree_size = int_param(&state, &params, "tree_size", 1, i64::MAX as u64)?;
    Ok(Json(inclusion(&state, index, tree_size).await?).into_response())
}

/// Block `index`'s inclusion proof in the tree of `tree_size` (default:
/// the newest checkpoint's); `GET /v1/ledger/proof/inclusion` and the
/// `ledger.prove` A2A skill.
pub(crate) async fn inclusion(
    state: &AppState,
    index: u64,
    tree_size: Option<u64>,
) -> Result<InclusionProof, ApiError> {
    let tree_size = match tree_size {
        Some(n) => n,
        None => default_tree_size(state).await?,
    };
    if index >= tree_size {
        return Err(rejected(
            state,
            FieldError::field(
                "index",
                FieldErrorCode::OutOfRange,
                format!("index {index} is not below tree_size {tree_size}"),
            ),
        ));
    }
    let reader = state.node.store.reader();
    let stored = state.node.store.tree_head().size;
    let (leaf, proof) = reader
        .inclusion_proof(index, tree_size, stored)
        .await
        .map_err(storage_error)?;
    let root = reader.root_at(tree_size).await.map_err(storage_error)?;
    Ok(InclusionProof {
        index,
        tree_size,
        leaf_hash: b64(&leaf),
        root_hash: b64(&root),
        hashes: proof.iter().map(|h| b64(h)).collect(),
    })
}

/// An RFC 6962 consistency proof between two tree sizes.
#[utoipa::path(
    get,
    path = "/v1/ledger/proof/consistency",
    tag = "ledger",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    params(
        ("first" = u64, Query, minimum = 1, maximum = 9223372036854775807_u64, description = "The older tree size."),
        ("second" = Option<u64>, Query, minimum = 1, maximum = 9223372036854775807_u64, description = "The newer tree size (default the newest checkpoint's); not below `first`."),
    ),
    responses(
        (status = 200, description = "The proof.", body = ConsistencyProof),
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
        RouteErrors,
    )
)]
pub(crate) async fn consistency_proof(
    State(state): State<Arc<AppState>>,
    query: Params,
) -> Result<Response, ApiError> {
    let params = query_params(&state, query, &["first", "second"])?;
    let first = required(
        &state,
        int_param(&state, &params, "first", 1, i64::MAX as u64)?,
        "first",
    )?;
    let second = match int_param(&state, &params, "second", 1, i64::MAX as u64)? {
        Some(n) => n,
        None => default_tree_size(&state).await?,
    };
    if first > second {
        return Err(rejected(
            &state,
            FieldError::field(
                "first",
                FieldErrorCode::OutOfRange,
                format!("first {first} is larger than second {second}"),
            ),
        ));
    }
    let reader = state.node.store.reader();
    let stored = state.node.store.tree_head().size;
    let proof = reader
        .consistency_proof(first, second, stored)
        .await
        .map_err(storage_error)?;
    Ok(Json(ConsistencyProof {
        first,
        second,
        first_root: b64(&reader.root_at(first).await.map_err(storage_error)?),
        second_root: b64(&reader.root_at(second).await.map_err(storage_error)?),
        hashes: proof.iter().map(|h| b64(h)).collect(),
    })
    .into_response())
}

// ---- verification and attestations ---------------------------------------------

/// Re-checks every block, link, the Merkle root against the newest signed
/// checkpoint, and the newest checkpoint's RFC 3161 token, now.
#[utoipa::path(
    get,
    path = "/v1/ledger/verify",
    tag = "ledger",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    responses(
        (status = 200, description = "The report (`ok` false names the first bad block).", body = VerifyReport),
        (status = 429, response = TooManyRequests),
        RouteErrors,
    )
)]
pub(crate) async fn verify(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let report = state
        .node
        .verify_and_record()
        .await
        .map_err(storage_error)?;
    Ok(Json(report).into_response())
}

/// Appends an `attestation` block with the given framework statuses.
#[utoipa::path(
    post,
    path = "/v1/ledger/attestations",
    tag = "ledger",
    security(("admin_token" = [])),
    request_body(content = AttestationRequest, description = "Framework → status for at least one configured framework."),
    responses(
        (status = 201, description = "The new block.", body = BlockView),
        JsonBodyErrors,
        AdminRouteErrors,
    )
)]
pub(crate) async fn post_attestation(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let text = read_text(&state, &headers, body, state.node.ingest.max_body_bytes).await?;
    let names: Vec<&str> = state.node.frameworks.iter().map(String::as_str).collect();
    let statuses = parse_attestation_request(&text, &names).map_err(|e| rejected(&state, e))?;
    let block = state.node.attest_manually(statuses).await?;
    Ok((StatusCode::CREATED, Json(BlockView::of(&block))).into_response())
}

/// Attestation blocks read for one framework's history (newest first);
/// `truncated` in the answer says when older ones were left out.
const ATTESTATION_HISTORY_LIMIT: u32 = 1000;

/// One framework's attestation history, newest first.
#[utoipa::path(
    get,
    path = "/v1/ledger/attestations/{framework}",
    tag = "ledger",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    params(("framework" = String, Path, description = "A configured framework, e.g. `ISO-27001`.")),
    responses(
        (status = 200, description = "The history.", body = AttestationHistory),
        (status = 404, description = "Not a configured framework.", body = ErrorBody),
        RouteErrors,
    )
)]
pub(crate) async fn attestation_history(
    State(state): State<Arc<AppState>>,
    Path(framework): Path<String>,
) -> Result<Response, ApiError> {
    if !state.node.frameworks.contains(&framework) {
        return Err(ApiError::not_found(format!(
            "unknown framework {framework:?}; configured: {}",
            state.node.frameworks.join(", ")
        ))
        .with_field("framework"));
    }
    let blocks = state
        .node
        .store
        .reader()
        .latest_blocks_of_kind("attestation", ATTESTATION_HISTORY_LIMIT)
        .await
        .map_err(storage_error)?;
    let truncated = blocks.len() as u32 == ATTESTATION_HISTORY_LIMIT;
    let history: Vec<AttestationEntry> = blocks
        .iter()
        .filter_map(|b| {
            b.compliance_attestations
                .get(&framework)
                .map(|s| AttestationEntry {
                    index: b.index,
                    timestamp: &b.timestamp,
                    status: s.as_str(),
                    hash: &b.hash,
                })
        })
        .collect();
    Ok(Json(AttestationHistory {
        framework: &framework,
        count: history.len(),
        truncated,
        history,
    })
    .into_response())
}

// ---- Grafana export -------------------------------------------------------------

/// Largest page of the Grafana export.
const MAX_EXPORT_PAGE: u64 = 100_000;

/// The blocks as flat rows for Grafana (Infinity data source): `time` in
/// epoch milliseconds, one `attestation_<framework>` per framework, scalar
/// payload members as `payload_<key>`.
#[utoipa::path(
    get,
    path = "/v1/ledger/export/grafana",
    tag = "ledger",
    security((), ("admin_token" = []), ("ingest_token" = [])),
    params(
        ("from" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807_u64, description = "First index (default 0)."),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 100000, description = "At most this many rows (default 10,000)."),
    ),
    responses(
        (status = 200, description = "The rows, in index order.", body = Vec<GrafanaRow>),
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        RouteErrors,
    )
)]
pub(crate) async fn export_grafana(
    State(state): State<Arc<AppState>>,
    query: Params,
) -> Result<Response, ApiError> {
    let params = query_params(&state, query, &["from", "limit"])?;
    let mut from = int_param(&state, &params, "from", 0, i64::MAX as u64)?.unwrap_or(0);
    let limit = int_param(&state, &params, "limit", 1, MAX_EXPORT_PAGE)?.unwrap_or(10_000);
    let mut rows = Vec::new();
    while (rows.len() as u64) < limit {
        let page = (limit - rows.len() as u64).min(MAX_BLOCK_PAGE * 10) as u32;
        let blocks = state
            .node
            .store
            .reader()
            .blocks(from, page)
            .await
            .map_err(storage_error)?;
        if blocks.is_empty() {
            break;
        }
        for block in blocks {
            rows.push(grafana_row(&block.map_err(storage_error)?));
        }
        from = rows
            .last()
            .and_then(|r| r["index"].as_u64())
            .map_or(from, |i| i + 1);
    }
    Ok(Json(rows).into_response())
}
