//! Prometheus metrics (SPEC §7), every value measured by the node itself.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Label set `{region="americas"}` (lower-case region name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabel {
    /// Lower-case region name.
    pub region: String,
}

/// Label set `{partner="partner_eu"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartnerLabel {
    /// Partner name.
    pub partner: String,
}

/// Label set `{reason="out_of_range"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The error code of the rejection.
    pub reason: String,
}

/// Label set `{rule="itar-accept-region"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    /// The policy rule's `@id`.
    pub rule: String,
}

/// Label set `{framework="ITAR"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameworkLabel {
    /// Compliance framework.
    pub framework: String,
}

/// Label set `{outcome="completed"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `started`, `completed`, `rolled_back` or `paused`.
    pub outcome: String,
}

/// The Trust Kernel's gauges and counters.
pub struct TrustMetrics {
    /// Trust score per region.
    pub trust_score: Family<RegionLabel, Gauge<f64, AtomicU64>>,
    /// 1 unless the region is down.
    pub region_up: Family<RegionLabel, Gauge>,
    /// Availability over the window.
    pub availability: Family<RegionLabel, Gauge<f64, AtomicU64>>,
    /// Failures in the window.
    pub failures: Family<RegionLabel, Gauge>,
    /// MTBF hours (only regions with failures in the window).
    pub mtbf_hours: Family<RegionLabel, Gauge<f64, AtomicU64>>,
    /// Mesh MTBF hours (absent without failures).
    pub mesh_mtbf_hours: Family<RegionLabel, Gauge<f64, AtomicU64>>,
    /// Rollout transitions by outcome.
    pub rollouts: Family<OutcomeLabel, Counter>,
    /// Requests rejected by a policy rule.
    pub violations: Family<RuleLabel, Counter>,
    /// 1 compliant, 0 not (absent when not evaluated).
    pub compliance: Family<FrameworkLabel, Gauge>,
}

impl TrustMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self {
            trust_score: Family::default(),
            region_up: Family::default(),
            availability: Family::default(),
            failures: Family::default(),
            mtbf_hours: Family::default(),
            mesh_mtbf_hours: Family::default(),
            rollouts: Family::default(),
            violations: Family::default(),
            compliance: Family::default(),
        };
        registry.register(
            "qunimbus_trust_score",
            "Trust score per region (0-1; override or computed from availability and findings)",
            m.trust_score.clone(),
        );
        registry.register(
            "qunimbus_region_up",
            "1 unless the region is down",
            m.region_up.clone(),
        );
        registry.register(
            "qunimbus_region_availability",
            "Up time / observed time over the trust window",
            m.availability.clone(),
        );
        registry.register(
            "qunimbus_region_failures",
            "Failures in the trust window",
            m.failures.clone(),
        );
        registry.register(
            "qunimbus_region_mtbf_hours",
            "Mean time between failures over the window, hours (regions with failures only)",
            m.mtbf_hours.clone(),
        );
        registry.register(
            "qunimbus_mesh_mtbf_hours",
            "Mean time between failures of all regions, hours (absent without failures)",
            m.mesh_mtbf_hours.clone(),
        );
        registry.register(
            "qunimbus_rollouts",
            "Rollout transitions by resulting state",
            m.rollouts.clone(),
        );
        registry.register(
            "qunimbus_compliance_violations",
            "Requests rejected by a compliance policy rule",
            m.violations.clone(),
        );
        registry.register(
            "qunimbus_compliance_status",
            "1 when the framework is compliant by the latest evaluation, 0 when not",
            m.compliance.clone(),
        );
        m
    }
}

/// The node's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// Trust Kernel figures.
    pub trust: TrustMetrics,
    /// Share of the fleet on the active rollout's version.
    pub rollout_phase_percent: Gauge,
    /// Seconds since the newest checkpoint (set at scrape).
    pub checkpoint_age: Gauge<f64, AtomicU64>,
    /// Last accepted `phi_qevf` per region (USD).
    pub phi_qevf: Family<RegionLabel, Gauge<f64, AtomicU64>>,
    /// Runs newly accepted per region.
    pub runs_accepted: Family<RegionLabel, Counter>,
    /// Re-sent runs answered from the store (idempotent replays).
    pub runs_duplicate: Counter,
    /// Rejected inputs by reason.
    pub rejected: Family<ReasonLabel, Counter>,
    /// Time from receiving an ingest request to having its durable answer (seconds).
    pub ingest_latency: Histogram,
    /// Rows per group commit.
    pub commit_rows: Histogram,
    /// Duration of each group commit including fsync (seconds).
    pub commit_seconds: Histogram,
    /// Runs in the database.
    pub stored_runs: Gauge,
    /// Blocks in the ledger (tree size).
    pub ledger_blocks: Gauge,
    /// Checkpoints signed and stored.
    pub checkpoints_signed: Counter,
    /// Checkpoints refused or failed.
    pub checkpoint_failures: Counter,
    /// Unix time (seconds) of the newest signed checkpoint.
    pub checkpoint_timestamp: Gauge<f64, AtomicU64>,
    /// Chain verifications that found a problem.
    pub verify_failures: Counter,
    /// Checkpoint time-stamp tokens obtained and verified.
    pub tsa_tokens: Counter,
    /// Failed attempts to obtain a checkpoint token.
    pub tsa_failures: Counter,
    /// Checkpoints still waiting for a token.
    pub tsa_pending: Gauge,
    /// Partner feed sessions connected now.
    pub partners_connected: Gauge,
    /// Receipt-to-ack latency per partner (seconds).
    pub market_latency_seconds: Family<PartnerLabel, Histogram>,
    /// p99 receipt-to-ack latency per partner (ms), refreshed at scrape.
    pub market_latency_ms: Family<PartnerLabel, Gauge<f64, AtomicU64>>,
    /// Measured EPH per hour over the sliding window, refreshed at scrape.
    pub eph_throughput: Family<RegionLabel, Gauge<f64, AtomicU64>>,
    /// Partner sessions cut off (slow, disabled).
    pub partner_disconnects: Counter,
    /// Feed messages withheld from a partner by the distribution policy.
    pub withheld_messages: Counter,
    /// Local valuations published to NATS.
    pub relayed_out: Counter,
    /// Other nodes' valuations received through NATS.
    pub relayed_in: Counter,
    /// 1 while the NATS relay consumer is attached.
    pub relay_connected: Gauge,
    /// Messages from NATS the relay dropped, by reason.
    pub relay_rejected: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let phi_qevf = Family::<RegionLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "qunimbus_phi_qevf",
            "Last accepted phi_qevf per region (USD)",
            phi_qevf.clone(),
        );
        let runs_accepted = Family::<RegionLabel, Counter>::default();
        registry.register(
            "qunimbus_runs_accepted",
            "Telemetry runs newly accepted",
            runs_accepted.clone(),
        );
        let runs_duplicate = Counter::default();
        registry.register(
            "qunimbus_runs_duplicate",
            "Telemetry runs re-sent with an already accepted run_id",
            runs_duplicate.clone(),
        );
        let rejected = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "qunimbus_rejected_inputs",
            "Rejected inputs by reason",
            rejected.clone(),
        );
        let ingest_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 18));
        registry.register(
            "qunimbus_ingest_latency_seconds",
            "Time from receiving a telemetry request to its durable answer",
            ingest_latency.clone(),
        );
        let commit_rows = Histogram::new(exponential_buckets(1.0, 2.0, 15));
        registry.register(
            "qunimbus_commit_rows",
            "Rows written per group commit",
            commit_rows.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 18));
        registry.register(
            "qunimbus_commit_seconds",
            "Duration of a group commit including fsync",
            commit_seconds.clone(),
        );
        let stored = Gauge::default();
        registry.register(
            "qunimbus_stored_runs",
            "Runs stored in the database",
            stored.clone(),
        );
        let ledger_blocks = Gauge::default();
        registry.register(
            "qunimbus_ledger_blocks",
            "Blocks in the verification ledger",
            ledger_blocks.clone(),
        );
        let checkpoints_signed = Counter::default();
        registry.register(
            "qunimbus_checkpoints_signed",
            "Signed checkpoints stored",
            checkpoints_signed.clone(),
        );
        let checkpoint_failures = Counter::default();
        registry.register(
            "qunimbus_checkpoint_failures",
            "Checkpoints refused (inconsistent) or failed to store",
            checkpoint_failures.clone(),
        );
        let checkpoint_timestamp = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "qunimbus_checkpoint_timestamp_seconds",
            "Unix time of the newest signed checkpoint",
            checkpoint_timestamp.clone(),
        );
        let verify_failures = Counter::default();
        registry.register(
            "qunimbus_ledger_verify_failures",
            "Ledger verifications that failed",
            verify_failures.clone(),
        );
        let tsa_tokens = Counter::default();
        registry.register(
            "qunimbus_tsa_tokens",
            "Checkpoint time-stamp tokens obtained and verified",
            tsa_tokens.clone(),
        );
        let tsa_failures = Counter::default();
        registry.register(
            "qunimbus_tsa_failures",
            "Failed attempts to obtain a checkpoint time-stamp token",
            tsa_failures.clone(),
        );
        let tsa_pending = Gauge::default();
        registry.register(
            "qunimbus_tsa_pending",
            "Checkpoints waiting for a time-stamp token",
            tsa_pending.clone(),
        );
        let partners_connected = Gauge::default();
        registry.register(
            "qunimbus_partners_connected",
            "Partner feed sessions connected now",
            partners_connected.clone(),
        );
        let market_latency_seconds =
            Family::<PartnerLabel, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
            });
        registry.register(
            "qunimbus_market_latency_seconds",
            "Telemetry receipt to partner ack, per partner",
            market_latency_seconds.clone(),
        );
        let market_latency_ms = Family::<PartnerLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "qunimbus_market_latency_ms",
            "Measured p99 feed latency (receipt to ack) per partner, ms",
            market_latency_ms.clone(),
        );
        let eph_throughput = Family::<RegionLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "qunimbus_eph_throughput",
            "Measured EPH per hour over the sliding window",
            eph_throughput.clone(),
        );
        let partner_disconnects = Counter::default();
        registry.register(
            "qunimbus_partner_disconnects",
            "Partner sessions cut off (slow or disabled)",
            partner_disconnects.clone(),
        );
        let withheld_messages = Counter::default();
        registry.register(
            "qunimbus_feed_withheld",
            "Feed messages withheld from partners by the distribution policy",
            withheld_messages.clone(),
        );
        let relayed_out = Counter::default();
        registry.register(
            "qunimbus_feed_published_nats",
            "Local valuations published to NATS JetStream",
            relayed_out.clone(),
        );
        let relayed_in = Counter::default();
        registry.register(
            "qunimbus_feed_relayed_nats",
            "Valuations of other nodes relayed from NATS",
            relayed_in.clone(),
        );
        let relay_connected = Gauge::default();
        registry.register(
            "qunimbus_feed_relay_connected",
            "1 while the NATS relay consumer is attached",
            relay_connected.clone(),
        );
        let relay_rejected = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "qunimbus_relay_rejected",
            "Messages from NATS dropped by the relay: unsigned, unknown_key, bad_signature, origin_mismatch, malformed",
            relay_rejected.clone(),
        );
        let trust = TrustMetrics::register(&mut registry);
        let rollout_phase_percent = Gauge::default();
        registry.register(
            "qunimbus_rollout_phase_percent",
            "Share of the fleet on the active rollout's version (0 without an active rollout)",
            rollout_phase_percent.clone(),
        );
        let checkpoint_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "qunimbus_checkpoint_age_seconds",
            "Seconds since the newest signed checkpoint",
            checkpoint_age.clone(),
        );
        Self {
            registry,
            trust,
            rollout_phase_percent,
            checkpoint_age,
            relay_connected,
            relay_rejected,
            relayed_out,
            relayed_in,
            partners_connected,
            market_latency_seconds,
            market_latency_ms,
            eph_throughput,
            partner_disconnects,
            withheld_messages,
            tsa_tokens,
            tsa_failures,
            tsa_pending,
            ledger_blocks,
            checkpoints_signed,
            checkpoint_failures,
            checkpoint_timestamp,
            verify_failures,
            phi_qevf,
            runs_accepted,
            runs_duplicate,
            rejected,
            ingest_latency,
            commit_rows,
            commit_seconds,
            stored_runs: stored,
        }
    }

    /// The registry, for parts of the node that register their own metrics
    /// before the node starts.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Counts a rejected input.
    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Adds `by` (0 creates the series) to the relay's rejections for
    /// `reason` and returns the new total.
    pub fn relay_rejected(&self, reason: &str, by: u64) -> u64 {
        self.relay_rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc_by(by)
            + by
    }

    /// Records one group commit.
    pub fn observe_commit(&self, rows: usize, took: Duration) {
        self.commit_rows.observe(rows as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// Records the outcome of one checkpoint attempt.
    pub fn observe_checkpoint(&self, signed: bool) {
        if signed {
            self.checkpoints_signed.inc();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.checkpoint_timestamp.set(now);
        } else {
            self.checkpoint_failures.inc();
        }
    }

    /// Counts a request rejected by policy rule `rule`.
    pub fn compliance_violation(&self, rule: &str) {
        self.trust
            .violations
            .get_or_create(&RuleLabel {
                rule: rule.to_string(),
            })
            .inc();
    }

    /// Publishes a framework's verdict (`None`: not evaluated, no series).
    pub fn compliance_status(&self, framework: &str, compliant: Option<bool>) {
        let label = FrameworkLabel {
            framework: framework.to_string(),
        };
        match compliant {
            Some(c) => {
                self.trust
                    .compliance
                    .get_or_create(&label)
                    .set(i64::from(c));
            }
            None => {
                self.trust.compliance.remove(&label);
            }
        }
    }

    /// Publishes one region's trust figures.
    pub fn region(
        &self,
        region: &str,
        trust: f64,
        up: bool,
        availability: f64,
        failures: u32,
        mtbf_hours: Option<f64>,
    ) {
        let label = RegionLabel {
            region: qunimbus_core::region::metric_label(region),
        };
        let t = &self.trust;
        t.trust_score.get_or_create(&label).set(trust);
        t.region_up.get_or_create(&label).set(i64::from(up));
        t.availability.get_or_create(&label).set(availability);
        t.failures.get_or_create(&label).set(i64::from(failures));
        match mtbf_hours {
            Some(h) => {
                t.mtbf_hours.get_or_create(&label).set(h);
            }
            None => {
                t.mtbf_hours.remove(&label);
            }
        }
    }

    /// Publishes the mesh MTBF (`None`: no failures, no series).
    pub fn mesh_mtbf(&self, hours: Option<f64>) {
        let label = RegionLabel {
            region: "global".into(),
        };
        match hours {
            Some(h) => {
                self.trust.mesh_mtbf_hours.get_or_create(&label).set(h);
            }
            None => {
                self.trust.mesh_mtbf_hours.remove(&label);
            }
        }
    }

    /// Counts a started rollout.
    pub fn rollout_started(&self) {
        self.rollout_transition("started");
    }

    /// Counts a rollout transition into `state`.
    pub fn rollout_transition(&self, state: &str) {
        self.trust
            .rollouts
            .get_or_create(&OutcomeLabel {
                outcome: state.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The Prometheus text format 0.0.4 (for clients that do not ask for
    /// OpenMetrics, e.g. `promtool check metrics`): the same samples, with a
    /// counter's HELP and TYPE under its `_total` sample name and no `# EOF`.
    pub fn encode_text(&self) -> Result<String, std::fmt::Error> {
        Ok(openmetrics_to_text(&self.encode()?))
    }
}

fn openmetrics_to_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let header = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match header {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) {
                    format!("{name}_total")
                } else {
                    name.to_string()
                };
                let tail = if tail == "unknown" { "untyped" } else { tail };
                out.push_str(&format!("{prefix}{name} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_format_names_counters_by_their_samples() {
        let m = super::Metrics::new();
        m.reject("out_of_range");
        let text = m.encode_text().unwrap();
        assert!(text.contains("# HELP qunimbus_rejected_inputs_total Rejected inputs by reason.\n"));
        assert!(text.contains("# TYPE qunimbus_rejected_inputs_total counter\n"));
        assert!(text.contains("qunimbus_rejected_inputs_total{reason=\"out_of_range\"} 1\n"));
        assert!(text.contains("# TYPE qunimbus_commit_seconds histogram\n"));
        assert!(text.contains("# TYPE qunimbus_stored_runs gauge\n"));
        assert!(!text.contains("# EOF") && m.encode().unwrap().ends_with("# EOF\n"));
    }
}
