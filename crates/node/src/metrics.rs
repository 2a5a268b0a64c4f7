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

/// A label set of one fixed pair.
pub type FixedLabel = [(&'static str, &'static str); 1];

/// `qunimbus_eph_throughput{scope="node"}`: this node's own deliveries.
pub const EPH_NODE: FixedLabel = [("scope", "node")];

/// `qunimbus_eph_throughput{region="global"}` (the seed's name): with NATS,
/// the sum over every origin seen in the window; absent on a single node.
pub const EPH_CLUSTER: FixedLabel = [("region", "global")];

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

/// Declares a set of metrics: a struct with one documented public field per
/// metric and a `register` that registers each under its Prometheus name
/// and help text, so a metric is declared in one place.
macro_rules! metric_set {
    (
        $(#[$doc:meta])*
        pub struct $set:ident {
            $(
                $(#[$field_doc:meta])*
                $field:ident: $ty:ty = $init:expr => $name:literal, $help:literal;
            )*
        }
    ) => {
        $(#[$doc])*
        pub struct $set {
            $($(#[$field_doc])* pub $field: $ty,)*
        }

        impl $set {
            fn register(registry: &mut Registry) -> Self {
                $(
                    let $field: $ty = $init;
                    registry.register($name, $help, $field.clone());
                )*
                Self { $($field,)* }
            }
        }
    };
}

/// Latency buckets from 50 µs to about 6.5 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

metric_set! {
    /// Ingest and the group commits that make runs durable.
    pub struct IngestMetrics {
        /// Last accepted `phi_qevf` per region (USD).
        phi_qevf: Family<RegionLabel, Gauge<f64, AtomicU64>> = Family::default()
            => "qunimbus_phi_qevf", "Last accepted phi_qevf per region (USD)";
        /// Runs newly accepted per region.
        runs_accepted: Family<RegionLabel, Counter> = Family::default()
            => "qunimbus_runs_accepted", "Telemetry runs newly accepted";
        /// Re-sent runs answered from the store (idempotent replays).
        runs_duplicate: Counter = Counter::default()
            => "qunimbus_runs_duplicate", "Telemetry runs re-sent with an already accepted run_id";
        /// Rejected inputs by reason.
        rejected: Family<ReasonLabel, Counter> = Family::default()
            => "qunimbus_rejected_inputs", "Rejected inputs by reason";
        /// Time from receiving an ingest request to having its durable answer (seconds).
        ingest_latency: Histogram = latency_histogram()
            => "qunimbus_ingest_latency_seconds", "Time from receiving a telemetry request to its durable answer";
        /// Rows per group commit.
        commit_rows: Histogram = Histogram::new(exponential_buckets(1.0, 2.0, 15))
            => "qunimbus_commit_rows", "Rows written per group commit";
        /// Duration of each group commit including fsync (seconds).
        commit_seconds: Histogram = latency_histogram()
            => "qunimbus_commit_seconds", "Duration of a group commit including fsync";
        /// Runs in the database.
        stored_runs: Gauge = Gauge::default()
            => "qunimbus_stored_runs", "Runs stored in the database";
    }
}

metric_set! {
    /// The ledger, its checkpoints and their time-stamps.
    pub struct LedgerMetrics {
        /// Blocks in the ledger (tree size).
        ledger_blocks: Gauge = Gauge::default()
            => "qunimbus_ledger_blocks", "Blocks in the verification ledger";
        /// Checkpoints signed and stored.
        checkpoints_signed: Counter = Counter::default()
            => "qunimbus_checkpoints_signed", "Signed checkpoints stored";
        /// Checkpoints refused or failed.
        checkpoint_failures: Counter = Counter::default()
            => "qunimbus_checkpoint_failures", "Checkpoints refused (inconsistent) or failed to store";
        /// Unix time (seconds) of the newest signed checkpoint.
        checkpoint_timestamp: Gauge<f64, AtomicU64> = Gauge::default()
            => "qunimbus_checkpoint_timestamp_seconds", "Unix time of the newest signed checkpoint";
        /// Seconds since the newest checkpoint (set at scrape).
        checkpoint_age: Gauge<f64, AtomicU64> = Gauge::default()
            => "qunimbus_checkpoint_age_seconds", "Seconds since the newest signed checkpoint";
        /// Blocks the newest checkpoint does not cover (set at scrape): an
        /// old checkpoint matters only when the log grew past it.
        unsigned_blocks: Gauge = Gauge::default()
            => "qunimbus_ledger_unsigned_blocks", "Blocks not yet covered by a signed checkpoint";
        /// Chain verifications that found a problem.
        verify_failures: Counter = Counter::default()
            => "qunimbus_ledger_verify_failures", "Ledger verifications that failed";
        /// Checkpoint time-stamp tokens obtained and verified.
        tsa_tokens: Counter = Counter::default()
            => "qunimbus_tsa_tokens", "Checkpoint time-stamp tokens obtained and verified";
        /// Failed attempts to obtain a checkpoint token.
        tsa_failures: Counter = Counter::default()
            => "qunimbus_tsa_failures", "Failed attempts to obtain a checkpoint time-stamp token";
        /// Checkpoints still waiting for a token.
        tsa_pending: Gauge = Gauge::default()
            => "qunimbus_tsa_pending", "Checkpoints waiting for a time-stamp token";
    }
}

metric_set! {
    /// The partner feed.
    pub struct MarketMetrics {
        /// Partner feed sessions connected now.
        partners_connected: Gauge = Gauge::default()
            => "qunimbus_partners_connected", "Partner feed sessions connected now";
        /// Receipt-to-ack latency per partner (seconds).
        market_latency_seconds: Family<PartnerLabel, Histogram> =
            Family::new_with_constructor(latency_histogram)
            => "qunimbus_market_latency_seconds", "Telemetry receipt to partner ack, per partner";
        /// p99 receipt-to-ack latency per partner (ms), refreshed at scrape.
        market_latency_ms: Family<PartnerLabel, Gauge<f64, AtomicU64>> = Family::default()
            => "qunimbus_market_latency_ms", "Measured p99 feed latency (receipt to ack) per partner, ms";
        /// Measured EPH per hour over the sliding window, refreshed at scrape.
        eph_throughput: Family<FixedLabel, Gauge<f64, AtomicU64>> = Family::default()
            => "qunimbus_eph_throughput", "Measured EPH per hour over the sliding window: scope=\"node\" this node's deliveries; region=\"global\" (with NATS only) the sum over every origin seen";
        /// Partner sessions cut off (slow, disabled).
        partner_disconnects: Counter = Counter::default()
            => "qunimbus_partner_disconnects", "Partner sessions cut off (slow or disabled)";
        /// Feed messages withheld from a partner by the distribution policy.
        withheld_messages: Counter = Counter::default()
            => "qunimbus_feed_withheld", "Feed messages withheld from partners by the distribution policy";
    }
}

metric_set! {
    /// The NATS relay between nodes.
    pub struct RelayMetrics {
        /// Local valuations published to NATS.
        relayed_out: Counter = Counter::default()
            => "qunimbus_feed_published_nats", "Local valuations published to NATS JetStream";
        /// Other nodes' valuations received through NATS.
        relayed_in: Counter = Counter::default()
            => "qunimbus_feed_relayed_nats", "Valuations of other nodes relayed from NATS";
        /// 1 while the NATS relay consumer is attached.
        relay_connected: Gauge = Gauge::default()
            => "qunimbus_feed_relay_connected", "1 while the NATS relay consumer is attached";
        /// Messages from NATS the relay dropped, by reason.
        relay_rejected: Family<ReasonLabel, Counter> = Family::default()
            => "qunimbus_relay_rejected", "Messages from NATS dropped by the relay: unsigned, unknown_key, bad_signature, origin_mismatch, malformed";
    }
}

metric_set! {
    /// The Trust Kernel's gauges and counters.
    pub struct TrustMetrics {
        /// Trust score per region.
        trust_score: Family<RegionLabel, Gauge<f64, AtomicU64>> = Family::default()
            => "qunimbus_trust_score", "Trust score per region (0-1; override or computed from availability and findings)";
        /// 1 unless the region is down.
        region_up: Family<RegionLabel, Gauge> = Family::default()
            => "qunimbus_region_up", "1 unless the region is down";
        /// Availability over the window.
        availability: Family<RegionLabel, Gauge<f64, AtomicU64>> = Family::default()
            => "qunimbus_region_availability", "Up time / observed time over the trust window";
        /// Failures in the window.
        failures: Family<RegionLabel, Gauge> = Family::default()
            => "qunimbus_region_failures", "Failures in the trust window";
        /// MTBF hours (only regions with failures in the window).
        mtbf_hours: Family<RegionLabel, Gauge<f64, AtomicU64>> = Family::default()
            => "qunimbus_region_mtbf_hours", "Mean time between failures over the window, hours (regions with failures only)";
        /// Mesh MTBF hours (absent without failures).
        mesh_mtbf_hours: Family<RegionLabel, Gauge<f64, AtomicU64>> = Family::default()
            => "qunimbus_mesh_mtbf_hours", "Mean time between failures of all regions, hours (absent without failures)";
        /// Rollout transitions by outcome.
        rollouts: Family<OutcomeLabel, Counter> = Family::default()
            => "qunimbus_rollouts", "Rollout transitions by resulting state";
        /// Share of the fleet on the active rollout's version.
        rollout_phase_percent: Gauge = Gauge::default()
            => "qunimbus_rollout_phase_percent", "Share of the fleet on the active rollout's version (0 without an active rollout)";
        /// Requests rejected by a policy rule.
        violations: Family<RuleLabel, Counter> = Family::default()
            => "qunimbus_compliance_violations", "Requests rejected by a compliance policy rule";
        /// 1 compliant, 0 not (absent when not evaluated).
        compliance: Family<FrameworkLabel, Gauge> = Family::default()
            => "qunimbus_compliance_status", "1 when the framework is compliant by the latest evaluation, 0 when not";
    }
}

/// Label set `{mode="paper"}` (the agent's trading mode).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    /// `paper` (or `live`).
    pub mode: String,
}

/// Label set `{strategy="sma_cross"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StrategyLabel {
    /// The strategy's name (with its parameters when set).
    pub strategy: String,
}

metric_set! {
    /// The QBTC trading agent; its series appear only while the agent runs.
    pub struct AgentMetrics {
        /// Equity (cash plus positions at their last closes).
        equity: Family<ModeLabel, Gauge<f64, AtomicU64>> = Family::default()
            => "qbtc_equity", "Agent equity in the quote asset: cash plus positions at their last closes";
        /// 1 − equity / peak equity.
        drawdown: Family<ModeLabel, Gauge<f64, AtomicU64>> = Family::default()
            => "qbtc_drawdown_ratio", "Drawdown from the all-time equity peak, 1 - equity / peak, marked on every bar";
        /// Equity change since the market day began.
        daily_pnl: Family<ModeLabel, Gauge<f64, AtomicU64>> = Family::default()
            => "qbtc_daily_pnl", "Equity change since the start of the UTC day of market time, quote asset";
        /// Today's loss as the ladder measures it.
        daily_loss: Family<ModeLabel, Gauge<f64, AtomicU64>> = Family::default()
            => "qbtc_daily_loss_ratio", "Loss since the start of the UTC day of market time, a fraction of start-of-day equity (negative for a gain)";
        /// The daily loss limit in force.
        daily_loss_limit: Family<ModeLabel, Gauge<f64, AtomicU64>> = Family::default()
            => "qbtc_daily_loss_limit_ratio", "The daily loss limit in force, a fraction of start-of-day equity";
        /// Ladder level 0–4.
        emergency_level: Family<ModeLabel, Gauge> = Family::default()
            => "qbtc_emergency_level", "Emergency ladder level: 0 GREEN, 1 YELLOW, 2 ORANGE, 3 RED, 4 BLACK";
        /// Confidence level 1–7 per strategy.
        confidence_level: Family<StrategyLabel, Gauge> = Family::default()
            => "qbtc_confidence_level", "Confidence level 1-7 of each strategy, from its measured recent trades";
        /// Trading state 0–2.
        trading_state: Family<ModeLabel, Gauge> = Family::default()
            => "qbtc_trading_state", "Trading state: 0 ACTIVE, 1 REDUCING, 2 HALTED";
        /// Orders by outcome.
        orders: Family<OutcomeLabel, Counter> = Family::default()
            => "qbtc_orders", "Orders by outcome: approved or denied by the pre-trade gate, filled";
        /// Gate denials by reason.
        denied: Family<ReasonLabel, Counter> = Family::default()
            => "qbtc_orders_denied", "Orders denied by the pre-trade gate, by reason code";
        /// Bar to sized entry decision.
        sizing_seconds: Histogram = Histogram::new(exponential_buckets(1e-7, 2.0, 20))
            => "qbtc_sizing_seconds", "Bar arrival to a sized entry decision (strategy, Kelly sizing, pre-trade gate), seconds";
        /// Bar to decision, every bar.
        decision_seconds: Histogram = Histogram::new(exponential_buckets(1e-7, 2.0, 20))
            => "qbtc_decision_seconds", "Bar arrival to the agent's decision on it (fills, strategy, sizing, gate), seconds";
        /// Bars processed.
        bars: Counter = Counter::default()
            => "qbtc_bars", "Market bars the agent processed";
        /// Exchange calls by outcome.
        exchange_requests: Family<OutcomeLabel, Counter> = Family::default()
            => "qbtc_exchange_requests", "Exchange REST calls by outcome: ok, http_4xx, http_429, http_418, http_5xx, timeout, transport_error, bad_body, breaker_open, rate_limited";
        /// 1 while the exchange circuit breaker is open or probing.
        circuit_open: Family<ModeLabel, Gauge> = Family::default()
            => "qbtc_circuit_open", "1 while the exchange circuit breaker is open or half-open, 0 when closed";
        /// Ledger writes that failed (retried next bar).
        ledger_failures: Counter = Counter::default()
            => "qbtc_ledger_write_failures", "Agent ledger writes that failed; the agent does not trade until they are written";
    }
}

/// No labels: a family of one series that exists only once measured
/// (`qunimbus_backup_last_success_timestamp_seconds` is absent until a
/// backup succeeded, never a made-up 0).
pub type Unlabelled = [(&'static str, &'static str); 0];

metric_set! {
    /// Backups the node takes itself (scheduled, or `POST /v1/admin/backup`).
    pub struct BackupMetrics {
        /// Backups by outcome (`ok`, `failed`).
        backups: Family<OutcomeLabel, Counter> = Family::default()
            => "qunimbus_backups", "Backups the node took (scheduled or POST /v1/admin/backup), by outcome: ok (copied and verified) or failed";
        /// When the newest verified backup was written.
        last_success: Family<Unlabelled, Gauge<f64, AtomicU64>> = Family::default()
            => "qunimbus_backup_last_success_timestamp_seconds", "Unix time the newest verified backup in the backup dir was written (absent before the first)";
        /// When the newest failed backup attempt ended.
        last_failure: Family<Unlabelled, Gauge<f64, AtomicU64>> = Family::default()
            => "qunimbus_backup_last_failure_timestamp_seconds", "Unix time the newest failed backup attempt ended (absent before the first failure)";
        /// How long the newest verified backup took.
        last_duration: Family<Unlabelled, Gauge<f64, AtomicU64>> = Family::default()
            => "qunimbus_backup_last_duration_seconds", "Copy and verification time of the newest verified backup, seconds";
        /// The newest verified backup's size.
        last_bytes: Family<Unlabelled, Gauge> = Family::default()
            => "qunimbus_backup_last_bytes", "Size of the newest verified backup file, bytes";
        /// The configured schedule (0: none).
        interval: Gauge = Gauge::default()
            => "qunimbus_backup_interval_seconds", "Configured seconds between scheduled backups (backup.interval_secs; 0: none scheduled)";
    }
}

/// The node's metrics, by area, and their registry.
pub struct Metrics {
    registry: Registry,
    /// Ingest and group commits.
    pub ingest: IngestMetrics,
    /// Ledger, checkpoints and time-stamps.
    pub ledger: LedgerMetrics,
    /// The partner feed.
    pub market: MarketMetrics,
    /// The NATS relay.
    pub relay: RelayMetrics,
    /// Trust Kernel figures.
    pub trust: TrustMetrics,
    /// The trading agent.
    pub agent: AgentMetrics,
    /// Backups.
    pub backup: BackupMetrics,
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
        Self {
            ingest: IngestMetrics::register(&mut registry),
            ledger: LedgerMetrics::register(&mut registry),
            market: MarketMetrics::register(&mut registry),
            relay: RelayMetrics::register(&mut registry),
            trust: TrustMetrics::register(&mut registry),
            agent: AgentMetrics::register(&mut registry),
            backup: BackupMetrics::register(&mut registry),
            registry,
        }
    }

    /// The registry, for parts of the node that register their own metrics
    /// before the node starts.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Counts a rejected input.
    pub fn reject(&self, reason: &str) {
        self.ingest
            .rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Adds `by` (0 creates the series) to the relay's rejections for
    /// `reason` and returns the new total.
    pub fn relay_rejected(&self, reason: &str, by: u64) -> u64 {
        self.relay
            .relay_rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc_by(by)
            + by
    }

    /// Records one group commit.
    pub fn observe_commit(&self, rows: usize, took: Duration) {
        self.ingest.commit_rows.observe(rows as f64);
        self.ingest.commit_seconds.observe(took.as_secs_f64());
    }

    /// Records the outcome of one checkpoint attempt.
    pub fn observe_checkpoint(&self, signed: bool) {
        if signed {
            self.ledger.checkpoints_signed.inc();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.ledger.checkpoint_timestamp.set(now);
        } else {
            self.ledger.checkpoint_failures.inc();
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
