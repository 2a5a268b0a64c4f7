//! The node's side of QMP: the hub that receives committed runs from the
//! store, fans them out to partner sessions, measures ack latency and EPH
//! throughput, and one partner session (shared by WebSocket and SSE).

use crate::metrics::{Metrics, PartnerLabel};
use crate::{lock, Node};
use bytes::Bytes;
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_core::DataClass;
use qunimbus_market::{
    ClientAck, DistributionPolicy, FeedValuation, LatencyRecorder, LatencyReport, Offer, SeqCursor,
    ServerMessage, Targets, ThroughputWindow,
};
use qunimbus_storage::{CommittedRun, PartnerRecord, RunRecord, StorageError};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};

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
    /// Tells this partner's sessions to stop (partner disabled).
    revoked: watch::Sender<bool>,
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
            metrics,
        )
    }

    /// A hub; `active` is the persisted activation state.
    pub fn new(
        origin: String,
        active: bool,
        policy: Arc<dyn DistributionPolicy>,
        targets: Targets,
        queue_capacity: usize,
        window: Duration,
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
            latency: Mutex::new(LatencyRecorder::new()),
            throughput: Mutex::new(ThroughputWindow::new(window)),
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

    /// Reports whether the NATS relay consumer is attached.
    pub fn set_relay_connected(&self, connected: bool) {
        self.metrics.relay.relay_connected.set(i64::from(connected));
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

    /// Latency quantiles measured so far.
    pub fn latency(&self) -> LatencyReport {
        lock(&self.latency).report()
    }

    /// Connected sessions per partner id.
    pub fn connections(&self) -> HashMap<String, usize> {
        lock(&self.partners)
            .iter()
            .map(|(id, p)| (id.clone(), p.connections))
            .collect()
    }

    /// Registers a session; the guard unregisters it. Returns the partner's revocation watch.
    fn connect(self: &Arc<Self>, partner: &PartnerRecord) -> (SessionGuard, watch::Receiver<bool>) {
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
                revoked: watch::channel(false).0,
            });
        entry.connections += 1;
        let revoked = entry.revoked.subscribe();
        drop(partners);
        self.update_connected_metric();
        (
            SessionGuard {
                hub: self.clone(),
                partner_id: partner.id.clone(),
            },
            revoked,
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
            p.revoked.send_replace(true);
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
        let mut acked = Acked::default();
        for received in covered.into_values() {
            let took = now.saturating_duration_since(received);
            p.histogram.observe(took.as_secs_f64());
            latency.record(&p.name, took);
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

/// Why a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The client went away or the node is stopping.
    Closed,
    /// Cut off (slow consumer, partner disabled); already told the client.
    Dropped,
    /// Reading the ledger failed.
    Storage(StorageError),
}

impl From<StorageError> for SessionEnd {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

/// Writes one partner's feed into `out` (JSON texts), which the transport
/// (WebSocket or SSE) drains: snapshot, replay from `from_seq` (from the
/// ledger), then live messages without gaps or duplicates. A queue that fills
/// up (a stalled partner) ends the session with a `disconnect` message that
/// says where to resume; it never slows other partners.
pub async fn run_session(
    state: Arc<Node>,
    partner: PartnerRecord,
    from_seq: Option<u64>,
    out: mpsc::Sender<Outgoing>,
    mut stop: watch::Receiver<bool>,
) -> SessionEnd {
    let hub = state.market.clone();
    let mut live = hub.sender.subscribe();
    let (_guard, mut revoked) = hub.connect(&partner);
    let mut session = Session {
        state: state.clone(),
        partner,
        out,
        cursor: SeqCursor::new(1),
        remote: HashMap::new(),
    };
    // A disable that landed between authentication and registration reached
    // no session: look again now that this one would be told.
    match state.store.reader().partner(&session.partner.id).await {
        Ok(Some(p)) if p.disabled_at.is_none() => {}
        Ok(_) => return session.drop_with("partner disabled", 1),
        Err(e) => return SessionEnd::Storage(e),
    }
    match session.start(from_seq).await {
        Ok(()) => {}
        Err(end) => return end,
    }
    loop {
        let item = tokio::select! {
            item = live.recv() => item,
            _ = revoked.wait_for(|r| *r) => {
                return session.drop_with("partner disabled", session.cursor.next());
            }
            _ = stop.wait_for(|s| *s) => return SessionEnd::Closed,
            () = session.out.closed() => return SessionEnd::Closed,
        };
        let result = match item {
            Ok(live) => session.deliver(&live).await,
            Err(broadcast::error::RecvError::Lagged(missed)) => Err(session.drop_with(
                &format!("too slow: {missed} messages behind"),
                session.cursor.next(),
            )),
            Err(broadcast::error::RecvError::Closed) => Err(SessionEnd::Closed),
        };
        if let Err(end) = result {
            return end;
        }
    }
}

struct Session {
    state: Arc<Node>,
    partner: PartnerRecord,
    out: mpsc::Sender<Outgoing>,
    cursor: SeqCursor,
    /// Last seq sent per other origin (relayed through NATS, in stream order).
    remote: HashMap<String, u64>,
}

/// Runs read per query while replaying.
const REPLAY_PAGE: u32 = 1000;

/// How long a replay waits for room in a partner's queue before the partner
/// is treated as stalled.
const REPLAY_STALL: Duration = Duration::from_secs(5);

impl Session {
    fn hub(&self) -> &MarketHub {
        &self.state.market
    }

    /// Queues a message; a full queue cuts the partner off, telling it to
    /// resume from `resume_from` (the first seq it has not been sent).
    fn push(&self, message: &ServerMessage, resume_from: u64) -> Result<(), SessionEnd> {
        self.push_out(Outgoing::new(message), resume_from)
    }

    fn push_out(&self, message: Outgoing, resume_from: u64) -> Result<(), SessionEnd> {
        if self.out.capacity() <= 1 {
            return Err(self.drop_with(
                &format!("send queue full ({} messages)", self.hub().queue_capacity),
                resume_from,
            ));
        }
        self.out.try_send(message).map_err(|_| SessionEnd::Closed)
    }

    /// Replay is read from the ledger at the partner's pace: waits until the
    /// queue has room (keeping the slot reserved for `disconnect`) rather than
    /// cutting off a partner for a backlog it asked for; only a partner that
    /// takes nothing for [`REPLAY_STALL`] is disconnected.
    async fn wait_for_room(&self, resume_from: u64) -> Result<(), SessionEnd> {
        while self.out.capacity() <= 1 {
            match tokio::time::timeout(REPLAY_STALL, self.out.reserve_many(2)).await {
                Ok(Ok(permits)) => drop(permits),
                Ok(Err(_)) => return Err(SessionEnd::Closed),
                Err(_) => return Err(self.drop_with("too slow: replay stalled", resume_from)),
            }
        }
        Ok(())
    }

    /// Sends `disconnect` in the reserved last slot and ends the session.
    fn drop_with(&self, reason: &str, resume_from: u64) -> SessionEnd {
        tracing::warn!(partner = %self.partner.name, reason, resume_from, "disconnecting partner");
        self.state.metrics.market.partner_disconnects.inc();
        let message = ServerMessage::Disconnect {
            reason: reason.to_string(),
            resume_from_seq: resume_from,
        };
        let _ = self.out.try_send(Outgoing::new(&message));
        SessionEnd::Dropped
    }

    /// Sends the snapshot, then the replay asked for. While publishing is
    /// switched off the snapshot is empty and nothing is replayed: the
    /// session waits at `from_seq`, and what it missed is replayed once the
    /// feed is switched on again (as gap repair).
    async fn start(&mut self, from_seq: Option<u64>) -> Result<(), SessionEnd> {
        let reader = self.state.store.reader();
        let newest = reader.max_feed_seq().await?;
        let active = self.hub().is_active();
        let mut latest = Vec::new();
        if active {
            for record in reader.latest_run_per_region().await? {
                if let Some(mut v) = feed_valuation(&self.hub().origin, &record) {
                    if self.allows(&v) {
                        v.server_time = rfc3339_micros(now_micros());
                        latest.push(v);
                    }
                }
            }
        }
        let resume = from_seq.unwrap_or(newest + 1).max(1);
        self.push(
            &ServerMessage::Snapshot {
                origin: self.hub().origin.clone(),
                server_time: rfc3339_micros(now_micros()),
                active,
                next_seq: newest + 1,
                latest,
            },
            resume,
        )?;
        self.cursor = SeqCursor::new(resume);
        if let (Some(from), true) = (from_seq, active) {
            let from = from.max(1);
            self.replay(from, newest).await?;
            self.wait_for_room(newest + 1).await?;
            self.push(
                &ServerMessage::Replayed {
                    origin: self.hub().origin.clone(),
                    from_seq: from,
                    to_seq: newest,
                },
                newest + 1,
            )?;
        }
        Ok(())
    }

    /// Sends stored messages `from..=to` (replay or gap repair).
    async fn replay(&mut self, from: u64, to: u64) -> Result<(), SessionEnd> {
        let mut next = from;
        while next <= to {
            let page = self
                .state
                .store
                .reader()
                .runs_from_feed_seq(next, REPLAY_PAGE)
                .await?;
            if page.is_empty() {
                break;
            }
            for record in page {
                let Some(v) = feed_valuation(&self.hub().origin, &record) else {
                    continue;
                };
                if v.seq > to {
                    return Ok(());
                }
                next = v.seq + 1;
                self.wait_for_room(v.seq).await?;
                self.send_stored(v)?;
            }
        }
        Ok(())
    }

    fn allows(&self, v: &FeedValuation) -> bool {
        self.hub()
            .policy
            .allows(v.data_class, &v.region, &self.partner.region)
    }

    /// Queues the `withheld` notice that keeps a seq space gap-free where
    /// policy keeps a valuation from this partner.
    fn push_withheld(&self, v: &FeedValuation, resume_from: u64) -> Result<(), SessionEnd> {
        self.state.metrics.market.withheld_messages.inc();
        self.push(
            &ServerMessage::Withheld {
                origin: v.origin.clone(),
                seq: v.seq,
                reason: withheld_reason(v.data_class),
            },
            resume_from,
        )
    }

    /// Sends one stored valuation (replay or gap repair), or its `withheld`
    /// notice, and advances the cursor.
    fn send_stored(&mut self, mut v: FeedValuation) -> Result<(), SessionEnd> {
        let seq = v.seq;
        if self.allows(&v) {
            v.server_time = rfc3339_micros(now_micros());
            self.push(&ServerMessage::Valuation(v), seq)?;
        } else {
            self.push_withheld(&v, seq)?;
        }
        self.cursor.advance_to(seq);
        Ok(())
    }

    /// Sends one live valuation as the hub serialized it (shared by every
    /// partner), or its `withheld` notice, and advances the cursor.
    fn send_live(&mut self, live: &Live) -> Result<(), SessionEnd> {
        let v = &live.valuation;
        if self.allows(v) {
            if let Some(received) = live.received {
                self.hub().note_sent(&self.partner.id, v.seq, received);
            }
            self.push_out(live.message.clone(), v.seq)?;
        } else {
            self.push_withheld(v, v.seq)?;
        }
        self.cursor.advance_to(v.seq);
        Ok(())
    }

    async fn deliver(&mut self, live: &Live) -> Result<(), SessionEnd> {
        if live.valuation.origin != self.hub().origin {
            return self.deliver_remote(live);
        }
        match self.cursor.offer(live.valuation.seq) {
            Offer::Skip => Ok(()),
            Offer::Send => self.send_live(live),
            Offer::Gap { from, to } => {
                self.replay(from, to).await?;
                self.send_live(live)
            }
        }
    }
}

impl Session {
    /// Forwards another origin's valuation once: JetStream delivers each
    /// origin in order, so only repeats (after a relay reconnect) are dropped.
    fn deliver_remote(&mut self, live: &Live) -> Result<(), SessionEnd> {
        let v = &live.valuation;
        let last = self.remote.get(&v.origin).copied().unwrap_or(0);
        if v.seq <= last {
            return Ok(());
        }
        self.remote.insert(v.origin.clone(), v.seq);
        let resume = self.cursor.next();
        if self.allows(v) {
            self.push_out(live.message.clone(), resume)
        } else {
            self.push_withheld(v, resume)
        }
    }
}

fn withheld_reason(class: DataClass) -> String {
    format!(
        "{} records are not distributed to this partner's home region",
        class.as_str()
    )
}
