//! The OpenAPI 3.1 document of the HTTP API (SPEC §11), served at
//! `GET /openapi.json`.
//!
//! Everything in it comes from the code: each handler's `#[utoipa::path]`
//! (path, method, parameters, request body, every response and the security
//! it needs), the `ToSchema` types handlers serialize, the shared error
//! responses in [`responses`] and the request schemas in [`requests`]. The
//! router registers each handler through the same annotation
//! (`routes!(handler)` in [`crate::api::router_and_operations`]), and the
//! dashboard's static assets come from one table for both. The `openapi`
//! integration test checks that the routes registered in the router and the
//! operations of [`ApiDoc`] are the same set.

pub mod requests;
pub mod responses;

use crate::state::AppState;
use std::sync::{Arc, OnceLock};
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Schema};
use utoipa::{Modify, OpenApi};

/// The router type every route module builds: an axum router that records
/// the OpenAPI operation of each route it registers.
pub type ApiRouter = utoipa_axum::router::OpenApiRouter<Arc<AppState>>;

/// One handler's routes as `routes!` gives them (schemas, paths, method router).
pub type MethodRoutes = utoipa_axum::router::UtoipaMethodRouter<Arc<AppState>>;

/// One operation: an upper-case HTTP method and an OpenAPI path template.
pub type Operation = (String, String);

use crate::{
    a2a, agent_api, api, backup_api, credentials_api, dashboard, ledger_api, market_api, ops_api,
    tlog_api, trust_api, tsa_api,
};

/// Raw bytes in a body (a DER RFC 3161 message, a tlog tile).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(#[allow(dead_code)] Vec<u8>);

/// The document's operations, components and metadata.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "QuNimbus node API",
        description = "The HTTP API of a QuNimbus quantum-economic network node: telemetry ingest, \
valuations, the verification ledger (checkpoints, proofs, C2SP tlog-tiles, RFC 3161 \
timestamps), the QMP market feed, the Trust Kernel, the QBTC trading agent and the dashboard.\n\n\
Every error is JSON: `{\"error\": {\"code\", \"message\", \"field\"?, \"items\"?}}` \
(schema `ErrorBody`). A method a documented path does not take is answered 405 \
(`method_not_allowed`), an unknown path 404 (`not_found`). Any request may be answered \
503 with `Retry-After` when the node is at its concurrency limit (`overloaded`) or the \
request ran past `limits.request_timeout_ms` (`request_timeout`). Open reads need no token \
unless the node sets `auth.protect_reads`; then any valid token.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        api::post_telemetry,
        api::post_telemetry_batch,
        api::quote,
        api::list_valuations,
        api::get_valuation,
        api::valuation_stats,
        api::reset_history,
        ops_api::healthz,
        ops_api::readyz,
        ops_api::metrics,
        ops_api::openapi_json,
        backup_api::post_backup,
        ledger_api::summary,
        ledger_api::list_blocks,
        ledger_api::get_block,
        ledger_api::checkpoint,
        tlog_api::tlog_checkpoint,
        ledger_api::public_key,
        ledger_api::inclusion_proof,
        ledger_api::consistency_proof,
        ledger_api::verify,
        ledger_api::attestation_history,
        ledger_api::export_grafana,
        tlog_api::tile,
        ledger_api::post_attestation,
        tsa_api::timestamp,
        tsa_api::certificates,
        tsa_api::checkpoint_token,
        market_api::create_partner,
        market_api::list_partners,
        market_api::disable_partner,
        market_api::activate,
        market_api::deactivate,
        market_api::feed_ws,
        market_api::feed_sse,
        market_api::ack,
        market_api::ticket,
        market_api::status,
        trust_api::list_regions,
        trust_api::get_region,
        trust_api::region_events,
        trust_api::put_region,
        trust_api::post_event,
        trust_api::mesh,
        trust_api::list_rollouts,
        trust_api::get_rollout,
        trust_api::post_rollout,
        trust_api::rollout_command,
        trust_api::compliance,
        trust_api::attest,
        trust_api::policy,
        trust_api::reload_policy,
        trust_api::erase_personal_run,
        agent_api::agent_status,
        agent_api::agent_positions,
        agent_api::agent_orders,
        agent_api::agent_trades,
        agent_api::agent_equity,
        agent_api::agent_risk,
        agent_api::agent_command,
        agent_api::agent_reload,
        agent_api::agent_exchange,
        agent_api::agent_credentials,
        a2a::agent_card,
        a2a::a2a_rpc,
        credentials_api::list_credentials,
        credentials_api::create_client,
        credentials_api::rotate,
        credentials_api::rotate_partner_key,
        dashboard::stream,
    ),
    components(
        schemas(crate::error::ErrorBody, dashboard::PointsEvent, dashboard::StatusEvent),
        responses(
            responses::BadRequest,
            responses::Unauthorized,
            responses::Forbidden,
            responses::NotFound,
            responses::RequestTimeout,
            responses::Conflict,
            responses::PayloadTooLarge,
            responses::UnsupportedMediaType,
            responses::Unprocessable,
            responses::TooManyRequests,
            responses::Unavailable,
        )
    ),
    modifiers(&Security),
    tags(
        (name = "telemetry", description = "Runs reported by quantum runtimes."),
        (name = "valuations", description = "Priced runs and quotes."),
        (name = "ledger", description = "The verification ledger: blocks, checkpoints, proofs, verification, attestations, export."),
        (name = "tlog", description = "The C2SP tlog-tiles read API."),
        (name = "timestamps", description = "RFC 3161: the built-in TSA and checkpoint tokens."),
        (name = "market", description = "QMP: partners, the live feed, acknowledgements, measured status."),
        (name = "trust", description = "The Trust Kernel: regions, health events, rollouts, compliance, policy."),
        (name = "agent", description = "QBTC, the paper-trading agent: state, positions, orders, fills, risk controls and operator commands."),
        (name = "credentials", description = "Client tokens and the rotation of every credential, with a grace period; each change a ledger block."),
        (name = "a2a", description = "The node as an A2A 1.0 agent: its card and the JSON-RPC binding (see the card's skills)."),
        (name = "operations", description = "Health, readiness, metrics and this document."),
        (name = "dashboard", description = "The built-in web dashboard."),
    )
)]
pub struct ApiDoc;

/// The bearer schemes of SPEC §9 and the feed ticket.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "admin_token",
            bearer("The admin token (`QUNIMBUS_ADMIN_TOKEN`, or generated into `DATA_DIR/credentials.toml`)."),
        );
        components.add_security_scheme(
            "ingest_token",
            bearer("The ingest token (`QUNIMBUS_INGEST_TOKEN`, or generated into `DATA_DIR/credentials.toml`)."),
        );
        components.add_security_scheme(
            "partner_key",
            bearer("A partner's API key (`qmp_…`), shown once by `POST /v1/partners`."),
        );
        components.add_security_scheme(
            "feed_ticket",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "ticket",
                "A single-use ticket from `POST /v1/market/ticket`, for clients that cannot send headers (a browser's EventSource).",
            ))),
        );
    }
}

/// Axum's wildcard segment `{*name}` as an OpenAPI template `{name}`.
fn template(path: &str) -> String {
    path.replace("{*", "{")
}

/// The whole document: [`ApiDoc`], the dashboard's assets, wildcard paths
/// as OpenAPI templates, and `additionalProperties: false` on the request
/// schemas whose parser refuses unknown fields.
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    doc.paths.paths.extend(dashboard::asset_paths().paths);
    doc.paths.paths = std::mem::take(&mut doc.paths.paths)
        .into_iter()
        .map(|(path, item)| (template(&path), item))
        .collect();
    if let Some(components) = doc.components.as_mut() {
        for name in requests::CLOSED {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*name) {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
    doc
}

/// [`document`] as JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document().to_json().unwrap_or_else(|e| {
            serde_json::json!({ "error": format!("the OpenAPI document did not serialize: {e}") })
                .to_string()
        })
    })
}

/// Every (method, path) of `doc`, sorted, with paths as OpenAPI templates.
pub fn operations(doc: &Document) -> Vec<Operation> {
    let mut operations: Vec<Operation> = doc
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
                ("OPTIONS", item.options.is_some()),
                ("HEAD", item.head.is_some()),
                ("PATCH", item.patch.is_some()),
                ("TRACE", item.trace.is_some()),
            ];
            methods
                .into_iter()
                .filter(|(_, present)| *present)
                .map(move |(method, _)| (method.to_string(), template(path)))
        })
        .collect();
    operations.sort();
    operations
}
