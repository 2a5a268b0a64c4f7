//! One partner's feed session: the snapshot, the replay from the ledger,
//! then live messages without gaps or duplicates, until the partner goes,
//! is disabled, its key's grace ends, or the node stops.

use super::{feed_valuation, Live, MarketHub, Outgoing, Standing};
use crate::Node;
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_core::DataClass;
use qunimbus_market::{FeedValuation, Offer, SeqCursor, ServerMessage};
use qunimbus_storage::{PartnerRecord, StorageError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

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

/// The key a session was opened with: its hash (none for a ticket) and,
/// when it is a rotated key in its grace period, when that ends.
#[derive(Debug, Clone, Default)]
pub struct SessionKey {
    /// SHA-256 of the key, hex.
    pub hash: Option<String>,
    /// End of the key's grace (Unix µs).
    pub expires_at_us: Option<i64>,
}

/// The tokio instant of a wall-clock time (Unix µs); far away for none.
fn instant_of(at_us: Option<i64>) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    match at_us {
        Some(at) => {
            let left = at.saturating_sub(now_micros().timestamp_micros());
            now + Duration::from_micros(u64::try_from(left).unwrap_or(0))
        }
        None => now + Duration::from_secs(100 * 365 * 86_400),
    }
}

/// Writes one partner's feed into `out` (JSON texts), which the transport
/// (WebSocket or SSE) drains: snapshot, replay from `from_seq` (from the
/// ledger), then live messages without gaps or duplicates. A queue that fills
/// up (a stalled partner) ends the session with a `disconnect` message that
/// says where to resume; it never slows other partners. A session opened
/// with a key that is rotated ends when the key's grace period does.
pub async fn run_session(
    state: Arc<Node>,
    partner: PartnerRecord,
    (from_seq, key): (Option<u64>, SessionKey),
    out: mpsc::Sender<Outgoing>,
    mut stop: watch::Receiver<bool>,
) -> SessionEnd {
    let hub = state.market.clone();
    let mut live = hub.sender.subscribe();
    let (_guard, mut standing) = hub.connect(&partner);
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
    let mut deadline = key.expires_at_us;
    let expiry = tokio::time::sleep_until(instant_of(deadline));
    tokio::pin!(expiry);
    loop {
        let item = tokio::select! {
            item = live.recv() => item,
            changed = standing.changed() => {
                let now: Standing = standing.borrow_and_update().clone();
                if changed.is_err() || now.disabled {
                    return session.drop_with("partner disabled", session.cursor.next());
                }
                if let Some((new_hash, until)) = now.rotated {
                    if key.hash.as_deref() != Some(new_hash.as_str()) {
                        deadline = Some(deadline.map_or(until, |d| d.min(until)));
                        expiry.as_mut().reset(instant_of(deadline));
                    }
                }
                continue;
            }
            () = &mut expiry => {
                return session.drop_with(
                    "the key of this connection was rotated and its grace period ended; reconnect with the new key",
                    session.cursor.next(),
                );
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
