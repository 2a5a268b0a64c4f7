//! Views the Trust Kernel computes: the chain verification that evidence
//! used, and the mesh status over every region.

use serde::Serialize;

/// The chain verification a compliance evaluation used.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerEvidence {
    /// Whether the chain verified.
    pub ok: bool,
    /// Blocks it checked.
    pub blocks_checked: u64,
    /// The signed checkpoint it checked the root against.
    pub checkpoint_size: Option<u64>,
    /// When it finished.
    pub checked_at: String,
}

/// Mesh totals over every region (`GET /v1/mesh`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeshStatus {
    /// Regions configured.
    pub total_regions: usize,
    /// Regions whose status is `active`.
    pub active_regions: usize,
    /// Mean trust score.
    pub average_trust: f64,
    /// Mesh MTBF hours (`null` without failures).
    pub mtbf_hours: Option<f64>,
    /// Without failures: the mesh MTBF is at least this.
    pub mtbf_at_least_hours: Option<f64>,
    /// Failures in the window, all regions.
    pub failures: u32,
    /// The MTBF target.
    pub mtbf_target_hours: f64,
    /// Whether the mesh MTBF meets it (`null` until the evidence can tell).
    pub mtbf_compliant: Option<bool>,
    /// The window, hours.
    pub window_hours: f64,
    /// Per region.
    pub regions: Vec<MeshRegion>,
}

/// One region's MTBF in the mesh status.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeshRegion {
    /// Canonical name.
    pub name: String,
    /// MTBF hours (`null` without failures).
    pub mtbf_hours: Option<f64>,
    /// Without failures: MTBF is at least this.
    pub mtbf_at_least_hours: Option<f64>,
    /// Failures in the window.
    pub failures: u32,
    /// Whether MTBF meets the target.
    pub mtbf_compliant: Option<bool>,
}
