//! Schemas of the JSON request bodies. The node parses every body with a
//! bounded, hand-written parser in the domain crates (unknown and duplicate
//! fields stop the parse, counts are checked while parsing), so these types
//! are not deserialized: each one states, field by field, what its parser
//! accepts, and names that parser.

// The fields are read only by the generated schema.
#![allow(dead_code)]

use qunimbus_core::DataClass;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The request schemas whose parser refuses unknown fields: the document
/// gives them `additionalProperties: false`.
pub const CLOSED: &[&str] = &[
    "TelemetryRequest",
    "QuoteRequest",
    "PartnerRequest",
    "RegionUpdate",
    "HealthEvent",
    "RolloutRequest",
    "CommandReason",
    "AgentCommandReason",
    "AgentReload",
    "ApiKeysRequest",
    "ClientTokenRequest",
    "RotateRequest",
    "RotateKeyRequest",
];

/// One run's telemetry (`qunimbus_core::Telemetry::parse_json`).
#[derive(ToSchema)]
pub struct TelemetryRequest {
    /// The caller's id of the run; its idempotency key.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$", example = "r1")]
    run_id: String,
    /// One of the configured regions (case-insensitive), e.g. `Americas`, `EU`.
    #[schema(example = "Americas")]
    region: String,
    /// Entanglement efficiency, 0–1.
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.97)]
    eta_ent: f64,
    /// Coherence variance as a fraction (0.015 = 1.5 %).
    #[schema(minimum = 0.0, example = 0.015)]
    coherence_variance: f64,
    /// Wall time of the run, hours (0 gives phi 0).
    #[schema(minimum = 0.0, example = 100.0)]
    runtime_hours: f64,
    /// Entanglement pair-hours delivered.
    #[schema(exclusive_minimum = 0.0, example = 1000.0)]
    eph_delivered: f64,
    /// Regulatory class (default `public`).
    #[schema(required = false)]
    data_class: Option<DataClass>,
}

/// A run to price without recording it
/// (`qunimbus_core::telemetry::QuoteRequest::parse_json`).
#[derive(ToSchema)]
#[schema(as = QuoteRequest)]
pub struct QuoteRequestSchema {
    /// Checked like a telemetry `run_id` when given.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$", required = false)]
    run_id: Option<String>,
    /// One of the configured regions (case-insensitive), when given.
    #[schema(required = false)]
    region: Option<String>,
    /// Entanglement efficiency, 0–1.
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.97)]
    eta_ent: f64,
    /// Coherence variance as a fraction.
    #[schema(minimum = 0.0, example = 0.015)]
    coherence_variance: f64,
    /// Wall time of the run, hours.
    #[schema(minimum = 0.0, example = 100.0)]
    runtime_hours: f64,
    /// Entanglement pair-hours delivered.
    #[schema(exclusive_minimum = 0.0, example = 1000.0)]
    eph_delivered: f64,
    /// Regulatory class (default `public`).
    #[schema(required = false)]
    data_class: Option<DataClass>,
}

/// A status an operator may attest for a framework (`genesis` is the
/// genesis block's own).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AttestedStatus {
    /// The framework's controls were verified.
    Verified,
    /// Verification failed.
    Failed,
    /// Verification has not completed.
    Pending,
    /// The framework was waived.
    Waived,
}

/// Framework → status, at least one configured framework
/// (`qunimbus_ledger::attestation::parse_attestation_request`).
#[derive(ToSchema)]
#[schema(example = json!({"ISO-27001": "verified", "ITAR": "failed"}))]
pub struct AttestationRequest(BTreeMap<String, AttestedStatus>);

/// A partner to register (`qunimbus_market::PartnerRequest::parse_json`).
#[derive(ToSchema)]
#[schema(as = PartnerRequest)]
pub struct PartnerRequestSchema {
    /// Unique name, 1–64 characters.
    #[schema(min_length = 1, max_length = 64, example = "partner_eu")]
    name: String,
    /// The partner's home region (a configured region).
    #[schema(max_length = 64, example = "EU")]
    region: String,
}

/// A region status an operator may set.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum RegionStatus {
    /// Serving.
    Active,
    /// Serving with problems.
    Degraded,
    /// Not serving.
    Down,
    /// Being emptied.
    Draining,
}

/// `PUT /v1/regions/{region}` (`qunimbus_trust::requests::RegionUpdate`).
#[derive(ToSchema)]
#[schema(as = RegionUpdate)]
pub struct RegionUpdateSchema {
    /// The new status.
    status: RegionStatus,
    /// A trust override (clamped to 0–1; needs a `reason`), or `null` to
    /// clear the override; absent leaves it as it is.
    #[schema(required = false)]
    trust_score: Option<f64>,
    /// Why (at most 1000 characters; required with an override).
    #[schema(required = false, max_length = 1000)]
    reason: Option<String>,
}

/// Failure or recovery.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[schema(as = HealthEventKind)]
pub enum HealthEventKindSchema {
    /// The region stopped serving.
    Failure,
    /// The region serves again.
    Recovery,
}

/// `POST /v1/regions/{region}/events`
/// (`qunimbus_trust::requests::HealthEventRequest`).
#[derive(ToSchema)]
#[schema(as = HealthEvent)]
pub struct HealthEventSchema {
    /// What happened.
    kind: HealthEventKindSchema,
    /// When (RFC 3339; default now); not in the future nor before the trust window.
    #[schema(required = false, format = DateTime)]
    at: Option<String>,
}

/// `POST /v1/rollouts` (`qunimbus_trust::requests::RolloutRequest`).
#[derive(ToSchema)]
#[schema(as = RolloutRequest)]
pub struct RolloutRequestSchema {
    /// The version to roll out.
    #[schema(pattern = "^[A-Za-z0-9._+-]{1,64}$", example = "v2.1.0")]
    version: String,
    /// The canary region (default the first phase's).
    #[schema(required = false, max_length = 64)]
    canary_region: Option<String>,
}

/// The optional body of a rollout command
/// (`qunimbus_trust::requests::parse_command_reason`); an empty body is no reason.
#[derive(ToSchema)]
pub struct CommandReason {
    /// Why (at most 1000 characters).
    #[schema(required = false, max_length = 1000)]
    reason: Option<String>,
}

/// The body of an agent command (`POST /v1/agent/{command}`): the reason
/// is required, it goes on the ledger.
#[derive(ToSchema)]
pub struct AgentCommandReason {
    /// Why (1–1000 characters, not blank).
    #[schema(min_length = 1, max_length = 1000, example = "end of session")]
    reason: String,
}

/// The body of `PUT /v1/agent/config`.
#[derive(ToSchema)]
pub struct AgentReload {
    /// Why (1–1000 characters, not blank; it goes on the ledger).
    #[schema(
        min_length = 1,
        max_length = 1000,
        example = "tighter limits for the news"
    )]
    reason: String,
    /// `[agent]` keys and their new values: kelly_fraction, min_trades,
    /// probe_fraction, max_gross_exposure, daily_loss_limit,
    /// orders_per_second, order_burst, yellow_drawdown, orange_drawdown,
    /// red_drawdown, black_drawdown, vol_multiple, ladder_cooldown_secs,
    /// confidence_rise_trades.
    #[schema(value_type = Object, example = json!({"daily_loss_limit": 0.02}))]
    settings: BTreeMap<String, serde_json::Value>,
}

/// The body of `POST /v1/agent/credentials`: new exchange API keys.
#[derive(ToSchema)]
pub struct ApiKeysRequest {
    /// The API key (sent as `X-MBX-APIKEY`).
    #[schema(min_length = 1, max_length = 512)]
    api_key: String,
    /// The secret that signs requests (never shown again).
    #[schema(min_length = 1, max_length = 512)]
    api_secret: String,
    /// Why (1–1000 characters; it goes on the ledger, the keys never do).
    #[schema(min_length = 1, max_length = 1000)]
    reason: String,
}

/// `ack`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AckType {
    /// An acknowledgement.
    Ack,
}

/// A cumulative acknowledgement (`qunimbus_market::parse_client_message`);
/// other keys are ignored.
#[derive(ToSchema)]
pub struct AckRequest {
    /// Always `ack`.
    #[schema(rename = "type")]
    kind: AckType,
    /// The newest seq received (acknowledges every earlier one).
    #[schema(minimum = 1)]
    seq: u64,
    /// The origin of a relayed message (default the node's own; `null` is
    /// absent): 1–256 bytes of UTF-8.
    #[schema(required = false, min_length = 1, max_length = 256)]
    origin: Option<String>,
}

/// The body of `POST /v1/credentials/clients`: a client token of its own.
#[derive(ToSchema)]
pub struct ClientTokenRequest {
    /// Its name (1–64 of A-Z, a-z, 0-9, `.`, `_`, `-`); the credential is `client:NAME`.
    #[schema(min_length = 1, max_length = 64, example = "pricing-bot")]
    name: String,
    /// Its scopes: `read`, `ingest`, `agent`, `admin`.
    #[schema(min_items = 1, example = json!(["read"]))]
    scopes: Vec<String>,
    /// Why (1–1000 characters; it goes on the ledger).
    #[schema(min_length = 1, max_length = 1000)]
    reason: String,
}

/// The body of `POST /v1/admin/backup` (every field optional; an empty
/// body takes the `[backup]` configuration).
#[derive(ToSchema)]
pub struct BackupRequest {
    /// Carry the ledger signing key and the TSA key material (kept 0600).
    #[schema(required = false)]
    include_keys: Option<bool>,
    /// Carry `credentials.toml` (the node's tokens).
    #[schema(required = false)]
    include_credentials: Option<bool>,
}

/// The body of `POST /v1/credentials/rotate`.
#[derive(ToSchema)]
pub struct RotateRequest {
    /// `admin`, `ingest` or `client:NAME`.
    #[schema(example = "admin")]
    credential: String,
    /// How long the old secret keeps working, seconds (0–2592000; default 3600).
    #[schema(required = false, minimum = 0, maximum = 2592000)]
    grace_secs: Option<u64>,
    /// Why (1–1000 characters; it goes on the ledger).
    #[schema(min_length = 1, max_length = 1000)]
    reason: String,
}

/// The body of `POST /v1/partners/{id}/rotate-key`.
#[derive(ToSchema)]
pub struct RotateKeyRequest {
    /// How long the old key keeps working, seconds (0–2592000; default 3600).
    #[schema(required = false, minimum = 0, maximum = 2592000)]
    grace_secs: Option<u64>,
    /// Why (1–1000 characters; it goes on the ledger).
    #[schema(min_length = 1, max_length = 1000)]
    reason: String,
}
