//! What the Trust Kernel's endpoints answer, as typed JSON (their OpenAPI
//! schemas are derived from these types).

use qunimbus_node::trust::{ComplianceSnapshot, PolicyStatus, RegionEventView, RegionView};
use qunimbus_trust::rollout::{GateResult, Phase, RolloutState, Transition};
use serde::Serialize;
use utoipa::ToSchema;

/// `GET /v1/regions`.
#[derive(Serialize, ToSchema)]
pub(crate) struct RegionList {
    /// The availability/MTBF window, hours.
    pub window_hours: f64,
    /// Every configured region, assessed now.
    pub regions: Vec<RegionView>,
}

/// `GET /v1/regions/{region}/events`.
#[derive(Serialize, ToSchema)]
pub(crate) struct RegionEvents {
    /// The region.
    pub region: String,
    /// Every recorded failure and recovery, oldest recorded first.
    pub events: Vec<RegionEventView>,
}

/// `PUT /v1/regions/{region}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct RegionChanged {
    /// The region after the change.
    pub region: Option<RegionView>,
    /// The `override` block recording it.
    pub block_index: u64,
}

/// A recorded health event.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventView {
    /// `failure` or `recovery`.
    pub kind: &'static str,
    /// When it happened (RFC 3339 UTC, µs).
    pub at: String,
    /// `operator` (this request) or `detected`.
    pub source: &'static str,
}

/// `POST /v1/regions/{region}/events`.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventRecorded {
    /// The region after the event.
    pub region: Option<RegionView>,
    /// The event.
    pub event: EventView,
    /// The `health` block recording it.
    pub block_index: u64,
}

/// A rollout as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct RolloutView<'a> {
    /// Identifier.
    pub id: &'a str,
    /// The version being rolled out.
    pub version: &'a str,
    /// Where it stands.
    pub state: RolloutState,
    /// The canary region.
    pub canary_region: &'a str,
    /// Index of the newest deployed phase.
    pub phase: usize,
    /// The phase plan.
    pub phases: &'a [Phase],
    /// Regions running the new version now.
    pub deployed_regions: Vec<&'a str>,
    /// When the current phase was deployed or last resumed (RFC 3339 UTC, µs).
    pub phase_started_at: String,
    /// Soak time per phase, seconds.
    pub soak_seconds: f64,
    /// Why it is paused, rolled back or completed.
    pub reason: Option<&'a str>,
    /// The automatic gates, evaluated now.
    pub gates: Vec<GateResult>,
    /// Every transition so far.
    pub history: &'a [Transition],
}

/// `GET /v1/rollouts`.
#[derive(Serialize, ToSchema)]
pub(crate) struct RolloutList<'a> {
    /// Every rollout.
    pub rollouts: Vec<RolloutView<'a>>,
}

/// `GET /v1/compliance`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ComplianceStatus {
    /// The newest evaluation.
    pub compliance: ComplianceSnapshot,
    /// The policy in force.
    pub policy: PolicyStatus,
}

/// `POST /v1/compliance/attest`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Attested {
    /// The attestation block.
    pub block_index: u64,
    /// The evaluation it records.
    pub compliance: ComplianceSnapshot,
}

/// `DELETE /v1/valuations/{run_id}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Erased {
    /// Always `true`.
    pub erased: bool,
    /// The run's salted reference, as on its valuation block.
    pub run_ref: String,
    /// The `erasure` block.
    pub block_index: u64,
}
