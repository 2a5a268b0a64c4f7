//! What the ingest and valuation endpoints answer, as typed JSON (their
//! OpenAPI schemas are derived from these types).

use qunimbus_core::time::rfc3339_micros;
use qunimbus_core::DataClass;
use qunimbus_storage::RunRecord;
use qunimbus_valuation::{PhiStats, Valuation};
use serde::Serialize;
use utoipa::ToSchema;

/// A valuation as returned by the API. A personal-class run shows its
/// `run_ref`; its `run_id` only to admin callers (SPEC §11).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RunValuation)]
pub struct ValuationView<'a> {
    /// The caller's id of the run (absent for a personal-class run unless
    /// the caller is an admin).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = String)]
    run_id: Option<&'a str>,
    /// The salted reference of a personal-class run.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = String)]
    run_ref: Option<String>,
    /// Canonical region name.
    region: &'a str,
    /// Regulatory class of the run's data.
    #[schema(value_type = DataClass)]
    data_class: &'a str,
    /// Entanglement efficiency, 0–1.
    eta_ent: f64,
    /// Coherence variance as a fraction.
    coherence_variance: f64,
    /// Wall time of the run, hours.
    runtime_hours: f64,
    /// Entanglement pair-hours delivered.
    eph_delivered: f64,
    /// The priced figures.
    #[serde(flatten)]
    valuation: &'a Valuation,
    /// When the node accepted the run (RFC 3339 UTC, µs).
    accepted_at: String,
    /// The run's ledger block (`null` until known).
    block_index: Option<u64>,
}

impl<'a> ValuationView<'a> {
    /// The view of `r` for a caller who is (`admin`) or is not an admin.
    pub fn of(r: &'a RunRecord, admin: bool) -> Self {
        let t = &r.telemetry;
        Self {
            run_id: (admin || !r.is_personal()).then(|| t.run_id.as_str()),
            run_ref: r.run_ref(),
            region: &t.region,
            data_class: t.data_class.as_str(),
            eta_ent: t.metrics.eta_ent,
            coherence_variance: t.metrics.coherence_variance,
            runtime_hours: t.metrics.runtime_hours,
            eph_delivered: t.metrics.eph_delivered,
            valuation: &r.valuation,
            accepted_at: rfc3339_micros(r.accepted_at),
            block_index: r.block_index,
        }
    }
}

/// The stored batch.
#[derive(Serialize, ToSchema)]
pub(crate) struct BatchResponse<'a> {
    /// Runs stored now.
    pub(crate) accepted: usize,
    /// Runs whose `run_id` was accepted before (their original result).
    pub(crate) duplicates: usize,
    /// Every run of the batch, in order.
    pub(crate) runs: Vec<ValuationView<'a>>,
}

/// A price computed without recording anything.
#[derive(Serialize, ToSchema)]
pub(crate) struct QuoteResponse {
    /// The canonical region, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = String)]
    pub(crate) region: Option<String>,
    /// Entanglement efficiency, 0–1.
    pub(crate) eta_ent: f64,
    /// Coherence variance as a fraction.
    pub(crate) coherence_variance: f64,
    /// Wall time of the run, hours.
    pub(crate) runtime_hours: f64,
    /// Entanglement pair-hours delivered.
    pub(crate) eph_delivered: f64,
    /// The priced figures.
    #[serde(flatten)]
    pub(crate) valuation: Valuation,
}

/// Stored valuations, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct ListResponse<'a> {
    /// Valuations returned.
    pub(crate) count: usize,
    /// The valuations.
    pub(crate) valuations: Vec<ValuationView<'a>>,
}

/// `phi_qevf` statistics over every stored run, and over the recent window.
#[derive(Serialize, ToSchema)]
pub(crate) struct StatsResponse {
    /// Over every stored run.
    #[serde(flatten)]
    pub(crate) all: PhiStats,
    /// Over the most recent runs.
    pub(crate) recent: RecentStats,
}

/// Statistics of the recent window.
#[derive(Serialize, ToSchema)]
pub(crate) struct RecentStats {
    /// The window's capacity (runs).
    pub(crate) window: usize,
    /// Its statistics.
    #[serde(flatten)]
    pub(crate) stats: PhiStats,
}

/// What `POST /v1/valuations/history/reset` cleared.
#[derive(Serialize, ToSchema)]
pub(crate) struct ResetResponse {
    /// Always `true`.
    pub(crate) reset: bool,
    /// Values the recent window held.
    pub(crate) cleared: u64,
}
