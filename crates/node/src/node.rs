//! The node's services in one place, shared behind an `Arc` by the HTTP
//! layer, the background tasks and the partner sessions.

use crate::config::IngestConfig;
use crate::credentials::Credentials;
use crate::ledger::VerifyReport;
use crate::metrics::Metrics;
use qunimbus_core::RegionSet;
use qunimbus_ledger::checkpoint::{NoteSigner, NoteVerifier};
use qunimbus_storage::Store;
use qunimbus_valuation::{PhiHistory, PhiStats, ValuationEngine};
use std::sync::{Arc, Mutex, PoisonError};

/// Every service of a running node.
pub struct Node {
    /// Configured regions.
    pub regions: RegionSet,
    /// The valuation engine.
    pub engine: ValuationEngine,
    /// Durable storage.
    pub store: Arc<Store>,
    /// Signs checkpoints; its name is the log origin.
    pub signer: Arc<NoteSigner>,
    /// Verifies this node's checkpoints.
    pub verifier: NoteVerifier,
    /// Compliance frameworks recorded on blocks.
    pub frameworks: Vec<String>,
    /// The built-in RFC 3161 authority (served at `POST /tsa`).
    pub authority: Arc<qunimbus_timestamp::Authority>,
    /// Where checkpoint tokens come from, and the roots they verify against.
    pub stamper: Arc<crate::tsa::Stamper>,
    /// The Trust Kernel: regions, rollouts, compliance policy.
    pub trust: Arc<crate::trust::TrustKernel>,
    /// The market feed hub.
    pub market: Arc<crate::market::MarketHub>,
    /// The trading agent, when enabled.
    pub agent: Option<Arc<crate::agent::Agent>>,
    /// Becomes true when the node stops (ends long-lived sessions).
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// The result of the most recent chain verification.
    pub last_verification: Mutex<Option<VerifyReport>>,
    /// Held while a verification runs; holds when the last one started.
    pub verification_turn: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Tokens.
    pub credentials: Credentials,
    /// Whether read-only endpoints need a token.
    pub protect_reads: bool,
    /// Ingest size limits.
    pub ingest: IngestConfig,
    /// The supervised background tasks.
    pub tasks: Arc<crate::supervise::Supervisor>,
    /// The node's own backups (on demand and scheduled).
    pub backups: crate::backup::Backups,
    /// Recent `phi_qevf` values; seeded with the most recent stored values.
    pub(crate) history: Mutex<PhiHistory>,
}

impl Node {
    fn history(&self) -> std::sync::MutexGuard<'_, PhiHistory> {
        lock(&self.history)
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

/// Locks a mutex whose data stays valid even if a holder panicked.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Node {
    /// Copies the measured feed figures into their scrape-time gauges.
    pub fn refresh_market_metrics(&self) {
        let report = self.market.latency();
        // Partners without an ack in the latency window (a disabled one,
        // say) leave the gauge with the status page.
        let gone = self
            .market
            .regauge(report.per_partner.keys().cloned().collect());
        for partner in gone {
            self.metrics
                .market
                .market_latency_ms
                .remove(&crate::metrics::PartnerLabel { partner });
        }
        for (partner, q) in &report.per_partner {
            self.metrics
                .market
                .market_latency_ms
                .get_or_create(&crate::metrics::PartnerLabel {
                    partner: partner.clone(),
                })
                .set(q.p99_ms);
        }
        let (eph, _) = self.market.eph_per_hour();
        let throughput = &self.metrics.market.eph_throughput;
        throughput.get_or_create(&crate::metrics::EPH_NODE).set(eph);
        if let Some(cluster) = self.market.cluster_eph_per_hour() {
            throughput
                .get_or_create(&crate::metrics::EPH_CLUSTER)
                .set(cluster);
        }
    }
}
