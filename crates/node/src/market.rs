//! The node's side of QMP: the hub that receives committed runs from the
//! store, fans them out to partner sessions, measures ack latency and EPH
//! throughput, and one partner session (shared by WebSocket and SSE).

use crate::lock;
use crate::metrics::{Metrics, PartnerLabel};
use bytes::Bytes;
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_market::{
    ClientAck, DistributionPolicy, FeedValuation, LatencyRecorder, LatencyReport, ServerMessage,
    Targets, ThroughputWindow,
};
use qunimbus_storage::{CommittedRun, PartnerRecord, RunRecord};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};

/// `node_state` key of the persisted activation flag.
pub const ACTIVE_KEY: &str = "market_active";

/// One message queued for a partner connection: its `"type"` (the SSE event
/// name) and its JSON text, which partners share without copying.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The message's type tag.
    pub kind: &'static str,
    /// The message as one JSON text (always UTF-8: made from a `String`).
    text: Bytes,
}

impl Outgoing {
    /// Serializes a message once.
    pub fn new(message: &ServerMessage) -> Self {
        Self {
            kind: message.kind(),
            text: Bytes::from(message.to_json()),
        }
    }

    /// The JSON text, shared (a transport may check it is UTF-8 again).
    pub fn bytes(&self) -> Bytes {
        self.text.clone()
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text).unwrap_or_default()
    }
}

/// A committed run on its way to partners.
#[derive(Debug)]
pub struct Live {
    /// The message (with `server_time` = when the hub published it).
    pub valuation: FeedValuation,
    /// The same message serialized once for every partner.
    pub message: Outgoing,
    /// When this node received the run's request.
    pub received: Option<Instant>,
}

/// Per-partner live bookkeeping.
struct PartnerLive {
    name: String,
    /// This partner's latency histogram in the metrics registry.
    histogram: prometheus_client::metrics::histogram::Histogram,
    connections: usize,
    /// Live messages sent and not yet acknowledged: seq → receipt time.
    unacked: BTreeMap<u64, Instant>,
    /// Tells this partner's sessions to stop or when (disabled, key rotated).
    standing: watch::Sender<Standing>,
}

/// What a partner's running sessions are told.
#[derive(Debug, Clone, Default, PartialEq)]
struct Standing {
    /// The partner was disabled: every session ends.
    disabled: bool,
    /// Its key was rotated: sessions opened with a key other than this
    /// (hash) end at this time (Unix µs).
    rotated: Option<(String, i64)>,
}

/// Fan-out, measurement and activation state of the market feed.
pub struct MarketHub {
    /// The log whose seq space this node publishes (its checkpoint origin).
    pub origin: String,
    /// Who may receive which data classes.
    pub policy: Arc<dyn DistributionPolicy>,
    /// Latency and throughput targets.
    pub targets: Targets,
    /// Messages a session may have queued before it is cut off as slow.
    pub queue_capacity: usize,
    active: AtomicBool,
    sender: broadcast::Sender<Arc<Live>>,
    latency: Mutex<LatencyRecorder>,
    throughput: Mutex<ThroughputWindow>,
    /// EPH delivered per other origin, relayed through NATS.
    remote_throughput: Mutex<HashMap<String, ThroughputWindow>>,
    window: Duration,
    /// Set once the NATS relay attached: the cluster figure exists.
    clustered: AtomicBool,
    /// Partners with a latency gauge published at the last scrape.
    gauged: Mutex<std::collections::BTreeSet<String>>,
    epoch: Instant,
    partners: Mutex<HashMap<String, PartnerLive>>,
    metrics: Arc<Metrics>,
    /// Woken after each commit (the NATS publisher waits on it).
    pub committed: Arc<tokio::sync::Notify>,
}

impl MarketHub {
    /// A hub publishing in `origin`'s seq space, as `[market]` configures it
    /// (active until the persisted flag says otherwise).
    pub fn from_config(
        config: &crate::config::MarketConfig,
        origin: &str,
        policy: Arc<dyn DistributionPolicy>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::new(
            origin.to_string(),
            true,
            policy,
            Targets {
                latency_p99_ms: config.latency_target_ms,
                eph_per_hour: config.eph_per_hour_target,
            },
            config.queue_capacity,
            Duration::from_secs(config.throughput_window_secs),
            Duration::from_secs(config.latency_window_secs),
            metrics,
        )
    }

    /// A hub; `active` is the persisted activation state; throughput is
    /// measured over `window`, latency percentiles over `latency_window`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        origin: String,
        active: bool,
        policy: Arc<dyn DistributionPolicy>,
        targets: Targets,
        queue_capacity: usize,
        window: Duration,
        latency_window: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (sender, _) = broadcast::channel(queue_capacity.max(16) * 4);
        Self {
            origin,
            policy,
            targets,
            queue_capacity: queue_capacity.max(2),
            active: AtomicBool::new(active),
            sender,
            latency: Mutex::new(LatencyRecorder::new(latency_window)),
            throughput: Mutex::new(ThroughputWindow::new(window)),
            remote_throughput: Mutex::new(HashMap::new()),
            window,
            clustered: AtomicBool::new(false),
            gauged: Mutex::new(std::collections::BTreeSet::new()),
            epoch: Instant::now(),
            partners: Mutex::new(HashMap::new()),
            metrics,
            committed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A receiver of the live valuations this hub broadcasts while the feed
    /// is active. Holding one makes the hub serialize each committed run,
    /// exactly as one connected partner does.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Live>> {
        self.sender.subscribe()
    }

    /// Whether valuations are being published.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// Switches publishing on or off (the caller persists it).
    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::SeqCst);
    }

    /// Called by the store after each commit, with the new runs in feed order.
    pub fn on_committed(&self, runs: Vec<CommittedRun>) {
        let now = self.now_ms();
        {
            let mut throughput = lock(&self.throughput);
            for run in &runs {
                throughput.record(now, run.record.telemetry.metrics.eph_delivered);
            }
        }
        self.committed.notify_one();
        // This runs in the storage writer's task: do no serialization when
        // nobody listens. A session that subscribes later reads anything
        // committed before it from the database.
        if !self.is_active() || self.sender.receiver_count() == 0 {
            return;
        }
        let server_time = rfc3339_micros(now_micros());
        for run in runs {
            if let Some(mut valuation) = feed_valuation(&self.origin, &run.record) {
                valuation.server_time = server_time.clone();
                let message = Outgoing::new(&ServerMessage::Valuation(valuation.clone()));
                // No receiver is fine: nobody is connected.
                let _ = self.sender.send(Arc::new(Live {
                    valuation,
                    message,
                    received: run.received,
                }));
            }
        }
    }

    /// Relays a valuation accepted by another node (through NATS) to this
    /// node's partners. Its latency is not measured here: the receipt time
    /// belongs to the other node's clock.
    pub fn publish_remote(&self, valuation: FeedValuation) {
        self.record_remote(&valuation);
        if !self.is_active() {
            return;
        }
        let valuation = crate::relay::remote_valuation(valuation);
        let message = Outgoing::new(&ServerMessage::Valuation(valuation.clone()));
        let _ = self.sender.send(Arc::new(Live {
            valuation,
            message,
            received: None,
        }));
        self.metrics.relay.relayed_in.inc();
    }

    /// Counts another origin's delivery in its own window, placed at the
    /// run's acceptance time (a relayed backlog older than the window is
    /// not counted as delivered now).
    fn record_remote(&self, valuation: &FeedValuation) {
        let age_ms = chrono::DateTime::parse_from_rfc3339(&valuation.accepted_at)
            .ok()
            .map_or(0, |at| {
                (now_micros() - at.with_timezone(&chrono::Utc)).num_milliseconds()
            })
            .max(0);
        let Some(at) = self
            .now_ms()
            .checked_sub(u64::try_from(age_ms).unwrap_or(u64::MAX))
        else {
            return;
        };
        lock(&self.remote_throughput)
            .entry(valuation.origin.clone())
            .or_insert_with(|| ThroughputWindow::new(self.window))
            .record(at, valuation.eph_delivered);
    }

    /// Reports whether the NATS relay consumer is attached.
    pub fn set_relay_connected(&self, connected: bool) {
        if connected {
            self.clustered.store(true, Ordering::SeqCst);
        }
        self.metrics.relay.relay_connected.set(i64::from(connected));
    }

    /// With NATS: EPH per hour over the window summed over every origin
    /// seen (this node's and each relayed one's). `None` on a single node,
    /// or before the relay first attached.
    pub fn cluster_eph_per_hour(&self) -> Option<f64> {
        if !self.clustered.load(Ordering::SeqCst) {
            return None;
        }
        let now = self.now_ms();
        let remote: f64 = lock(&self.remote_throughput)
            .values()
            .map(|w| w.eph_per_hour(now))
            .sum();
        Some(self.eph_per_hour().0 + remote)
    }

    /// Counts a valuation published to NATS.
    pub fn note_relayed(&self) {
        self.metrics.relay.relayed_out.inc();
    }

    /// Measured EPH per hour over the sliding window, and whether the window
    /// holds any delivery at all.
    pub fn eph_per_hour(&self) -> (f64, bool) {
        let now = self.now_ms();
        let throughput = lock(&self.throughput);
        (throughput.eph_per_hour(now), throughput.has_samples(now))
    }

    /// The throughput window length.
    pub fn window(&self) -> Duration {
        lock(&self.throughput).window()
    }

    /// Latency quantiles over the latency window.
    pub fn latency(&self) -> LatencyReport {
        lock(&self.latency).report(self.now_ms())
    }

    /// Notes the partners whose latency gauges are published now; returns
    /// those published last time and not now (to remove).
    pub fn regauge(&self, now: std::collections::BTreeSet<String>) -> Vec<String> {
        let mut gauged = lock(&self.gauged);
        let gone = gauged.difference(&now).cloned().collect();
        *gauged = now;
        gone
    }

    /// The window latency quantiles cover.
    pub fn latency_window(&self) -> Duration {
        lock(&self.latency).window()
    }

    /// Connected sessions per partner id.
    pub fn connections(&self) -> HashMap<String, usize> {
        lock(&self.partners)
            .iter()
            .map(|(id, p)| (id.clone(), p.connections))
            .collect()
    }

    /// Registers a session; the guard unregisters it. Returns the partner's standing watch.
    fn connect(
        self: &Arc<Self>,
        partner: &PartnerRecord,
    ) -> (SessionGuard, watch::Receiver<Standing>) {
        let mut partners = lock(&self.partners);
        let entry = partners
            .entry(partner.id.clone())
            .or_insert_with(|| PartnerLive {
                name: partner.name.clone(),
                histogram: self
                    .metrics
                    .market
                    .market_latency_seconds
                    .get_or_create(&PartnerLabel {
                        partner: partner.name.clone(),
                    })
                    .clone(),
                connections: 0,
                unacked: BTreeMap::new(),
                standing: watch::channel(Standing::default()).0,
            });
        entry.connections += 1;
        let standing = entry.standing.subscribe();
        drop(partners);
        self.update_connected_metric();
        (
            SessionGuard {
                hub: self.clone(),
                partner_id: partner.id.clone(),
            },
            standing,
        )
    }

    fn update_connected_metric(&self) {
        let total: usize = lock(&self.partners).values().map(|p| p.connections).sum();
        self.metrics
            .market
            .partners_connected
            .set(i64::try_from(total).unwrap_or(i64::MAX));
    }

    /// Ends every session of a partner (it was disabled).
    pub fn revoke(&self, partner_id: &str) {
        if let Some(p) = lock(&self.partners).get(partner_id) {
            p.standing.send_modify(|s| s.disabled = true);
        }
    }

    /// A partner's key was rotated: its sessions opened with another key
    /// than `new_hash` end at `until_us`.
    pub fn key_rotated(&self, partner_id: &str, new_hash: &str, until_us: i64) {
        if let Some(p) = lock(&self.partners).get(partner_id) {
            p.standing
                .send_modify(|s| s.rotated = Some((new_hash.to_string(), until_us)));
        }
    }

    fn note_sent(&self, partner_id: &str, seq: u64, received: Instant) {
        let mut partners = lock(&self.partners);
        if let Some(p) = partners.get_mut(partner_id) {
            p.unacked.insert(seq, received);
            while p.unacked.len() > self.queue_capacity * 4 {
                p.unacked.pop_first();
            }
        }
    }

    /// Records a partner's ack. An ack is cumulative, like a TCP ack or a
    /// consumer offset: `seq` N acknowledges every live message up to N this
    /// partner was sent and had not acked yet, and each of them is measured
    /// from its telemetry receipt to now. A partner that has several messages
    /// waiting may answer them with one ack. Returns how many messages the
    /// ack covered and the latency of the newest of them. An ack naming
    /// another node's origin is not measured here (its receipt time belongs
    /// to that node's clock).
    pub fn ack(&self, partner_id: &str, ack: &ClientAck) -> Acked {
        let now = Instant::now();
        if ack.origin_or(&self.origin) != self.origin {
            return Acked::default();
        }
        let seq = ack.seq;
        let mut partners = lock(&self.partners);
        let Some(p) = partners.get_mut(partner_id) else {
            return Acked::default();
        };
        let newer = p.unacked.split_off(&seq.saturating_add(1));
        let covered = std::mem::replace(&mut p.unacked, newer);
        let mut latency = lock(&self.latency);
        // Read under the lock, so recordings reach the window in time order.
        let now_ms = self.now_ms();
        let mut acked = Acked::default();
        for received in covered.into_values() {
            let took = now.saturating_duration_since(received);
            p.histogram.observe(took.as_secs_f64());
            latency.record(&p.name, took, now_ms);
            acked.messages += 1;
            acked.newest = Some(took);
        }
        acked
    }
}

/// What one ack covered.
#[derive(Debug, Default, Clone, Copy)]
pub struct Acked {
    /// Live messages it acknowledged (0 for a repeated or unknown seq).
    pub messages: u64,
    /// Latency of the newest of them.
    pub newest: Option<Duration>,
}

/// Unregisters a session when dropped.
pub struct SessionGuard {
    hub: Arc<MarketHub>,
    partner_id: String,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(p) = lock(&self.hub.partners).get_mut(&self.partner_id) {
            p.connections = p.connections.saturating_sub(1);
        }
        self.hub.update_connected_metric();
    }
}

/// The feed message of a stored run (None for a run without a feed seq).
pub fn feed_valuation(origin: &str, record: &RunRecord) -> Option<FeedValuation> {
    let t = &record.telemetry;
    let v = &record.valuation;
    Some(FeedValuation {
        origin: origin.to_string(),
        seq: record.feed_seq?,
        server_time: String::new(),
        accepted_at: rfc3339_micros(record.accepted_at),
        region: t.region.clone(),
        data_class: t.data_class,
        run_id: (!record.is_personal()).then(|| t.run_id.as_str().to_string()),
        run_ref: record.run_ref(),
        eta_ent: t.metrics.eta_ent,
        coherence_variance: t.metrics.coherence_variance,
        runtime_hours: t.metrics.runtime_hours,
        eph_delivered: t.metrics.eph_delivered,
        phi_qevf: v.phi_qevf,
        price_multiplier: v.price_multiplier,
        market_value: v.market_value,
        eph_price: v.eph_price,
        block_index: record.block_index?,
    })
}

mod session;
pub use session::{run_session, SessionEnd, SessionKey};
