//! Shared state of a running node.

use crate::auth::Credentials;
use crate::config::IngestConfig;
use crate::metrics::Metrics;
use qunimbus_core::RegionSet;
use qunimbus_storage::Store;
use qunimbus_valuation::{PhiHistory, PhiStats, ValuationEngine};
use std::sync::{Arc, Mutex, PoisonError};

/// Everything handlers need, shared behind an `Arc`.
pub struct AppState {
    /// Configured regions.
    pub regions: RegionSet,
    /// The valuation engine.
    pub engine: ValuationEngine,
    /// Durable storage.
    pub store: Store,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Tokens.
    pub credentials: Credentials,
    /// Whether read-only endpoints need a token.
    pub protect_reads: bool,
    /// Ingest size limits.
    pub limits: IngestConfig,
    /// Recent `phi_qevf` values; seed it with the most recent stored values.
    pub(crate) history: Mutex<PhiHistory>,
}

impl AppState {
    fn history(&self) -> std::sync::MutexGuard<'_, PhiHistory> {
        // The history holds plain numbers; a panic elsewhere cannot leave it inconsistent.
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a newly accepted `phi_qevf` to the recent window.
    pub fn record_history(&self, phi: f64) {
        self.history().record(phi);
    }

    /// The recent window's length and statistics.
    pub fn recent_stats(&self) -> (usize, PhiStats) {
        let h = self.history();
        (h.capacity(), h.stats())
    }

    /// Clears the recent window, returning how many values it held.
    pub fn reset_history(&self) -> u64 {
        let mut h = self.history();
        let cleared = h.stats().count;
        h.reset();
        cleared
    }
}
