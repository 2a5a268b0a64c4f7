//! What the QMP endpoints answer, as typed JSON (their OpenAPI schemas are
//! derived from these types).

use qunimbus_market::{LatencyReport, Measured, Quantiles, Targets};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A partner just registered; its key is shown this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct PartnerCreated {
    /// Identifier (`p_…`).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Home region.
    pub region: String,
    /// The API key (`qmp_…`); only its SHA-256 is stored.
    pub api_key: String,
    /// When it was registered (RFC 3339 UTC, µs).
    pub created_at: String,
}

/// A registered partner.
#[derive(Serialize, ToSchema)]
pub(crate) struct PartnerView {
    /// Identifier.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Home region.
    pub region: String,
    /// When it was registered.
    pub created_at: String,
    /// Whether its key was disabled.
    pub disabled: bool,
    /// When it was disabled.
    pub disabled_at: Option<String>,
    /// Feed sessions open now.
    pub connections: usize,
}

/// `GET /v1/partners`.
#[derive(Serialize, ToSchema)]
pub(crate) struct PartnerList {
    /// Partners registered.
    pub count: usize,
    /// Every partner.
    pub partners: Vec<PartnerView>,
}

/// `POST /v1/partners/{id}/disable`.
#[derive(Serialize, ToSchema)]
pub(crate) struct PartnerDisabled {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// Always `true`.
    pub disabled: bool,
}

/// Whether the feed publishes.
#[derive(Serialize, ToSchema)]
pub(crate) struct FeedActive {
    /// The new state (persisted).
    pub active: bool,
}

/// A partner with feed sessions open now.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConnectedPartner<'a> {
    /// Identifier.
    pub id: &'a str,
    /// Name (`null` if it was removed meanwhile).
    pub name: Option<&'a str>,
    /// Sessions open.
    pub connections: usize,
}

/// Measured feed latency (receipt of the telemetry → the partner's ack).
#[derive(Serialize, ToSchema)]
pub(crate) struct LatencyStatus {
    /// Overall p99 against its target.
    #[schema(value_type = MeasuredF64)]
    pub p99_ms: Measured<f64>,
    /// All partners together; `null` before any ack.
    pub overall: Option<Quantiles>,
    /// Per partner name.
    pub per_partner: BTreeMap<String, Quantiles>,
}

impl LatencyStatus {
    /// The status of `report` against `targets`.
    pub fn of(report: LatencyReport, targets: &Targets) -> Self {
        Self {
            p99_ms: qunimbus_market::latency_status(&report, targets),
            overall: report.overall,
            per_partner: report.per_partner,
        }
    }
}

/// A measured value beside its target.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct MeasuredF64 {
    /// What was measured; `null` when nothing was.
    value: Option<f64>,
    /// The target.
    target: f64,
    /// Whether the value meets the target; `null` when nothing was measured.
    met: Option<bool>,
}

/// `GET /v1/market/status`: what was measured.
#[derive(Serialize, ToSchema)]
pub(crate) struct MarketStatus<'a> {
    /// This node's origin.
    pub origin: &'a str,
    /// Whether the feed publishes.
    pub active: bool,
    /// Partners with a session open now.
    pub partners_connected: usize,
    /// Those partners.
    pub connected: Vec<ConnectedPartner<'a>>,
    /// Measured latency over the last `latency_window_seconds`.
    pub latency: LatencyStatus,
    /// The sliding window the latency percentiles cover, seconds.
    pub latency_window_seconds: f64,
    /// EPH this node delivered per hour over the sliding window, against its target.
    #[schema(value_type = MeasuredF64)]
    pub eph_throughput_per_hour: Measured<f64>,
    /// With NATS: EPH per hour over the window summed over every origin
    /// seen (this node's and each relayed node's); `null` on a single node.
    pub cluster_eph_throughput_per_hour: Option<f64>,
    /// The sliding window, seconds.
    pub throughput_window_seconds: f64,
    /// The targets.
    pub targets: &'a Targets,
}

/// `POST /v1/market/ticket`.
#[derive(Serialize, ToSchema)]
pub(crate) struct TicketIssued {
    /// Single use: `?ticket=` on `/v1/market/feed` or `/v1/market/stream`.
    pub ticket: String,
    /// It expires after this many seconds.
    pub expires_in_seconds: u64,
}

/// `POST /v1/market/ack`.
#[derive(Serialize, ToSchema)]
pub(crate) struct AckResult {
    /// The acknowledged seq.
    pub seq: u64,
    /// Live messages this ack acknowledged (0 for a repeated or unknown seq).
    pub acked: u64,
    /// Latency of the newest of them, ms.
    pub latency_ms: Option<f64>,
}
