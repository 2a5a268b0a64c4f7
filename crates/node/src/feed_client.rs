//! A QMP partner client: connects to a node's feed over WebSocket with its
//! API key, acknowledges every valuation at once, and resumes with
//! `?from_seq=` after a disconnect. The trading agent reads its EPH prices
//! through it; the demo's simulated partners and `qunimbus bench feed` use
//! it too.

use futures_util::{FutureExt, SinkExt, StreamExt};
use qunimbus_market::ClientAck;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// What a partner client has seen.
#[derive(Default)]
pub struct PartnerStats {
    /// Valuations received (and acked).
    pub valuations: AtomicU64,
    /// Messages withheld by policy.
    pub withheld: AtomicU64,
    /// Times the node disconnected it.
    pub disconnects: AtomicU64,
    /// Highest seq received.
    pub last_seq: AtomicU64,
    /// Whether a connection is open now.
    pub connected: AtomicBool,
    /// Why the last connection attempt or session failed (cleared when one opens).
    pub last_error: Mutex<Option<String>>,
}

/// What a client does with each valuation's price, besides acking it.
pub trait PriceObserver: Send + Sync {
    /// A valuation of `region` at `eph_price` USD per EPH, for `eph` EPH.
    fn valuation(&self, region: &str, eph_price: f64, eph: f64);
}

/// Runs one partner until `stop` turns true: connect, ack, and reconnect
/// (from the first seq not received) after any disconnect. Each valuation
/// is shown to `observer`, when there is one.
pub async fn run_partner(
    ws_url: String,
    api_key: String,
    stats: Arc<PartnerStats>,
    observer: Option<Arc<dyn PriceObserver>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut from_seq: Option<u64> = None;
    let mut delay = RETRY_FIRST / 2;
    while !*stop.borrow() {
        let url = match from_seq {
            Some(seq) => format!("{ws_url}?from_seq={seq}"),
            None => ws_url.clone(),
        };
        let session = tokio::select! {
            result = session(&url, &api_key, &stats, observer.as_deref()) => result,
            _ = stop.wait_for(|s| *s) => return,
        };
        stats.connected.store(false, Ordering::Relaxed);
        if let Err(e) = &session {
            *crate::lock(&stats.last_error) = Some(e.clone());
        }
        // A refused or failing connection is retried ever more slowly.
        delay = match session {
            Ok(()) => RETRY_FIRST,
            Err(e) => {
                tracing::debug!(error = %e, "partner session ended");
                (delay * 2).min(RETRY_MAX)
            }
        };
        let last = stats.last_seq.load(Ordering::Relaxed);
        from_seq = (last > 0).then_some(last + 1);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The wait before a reconnect after a clean end; doubled after each
/// failure up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(200);

/// The longest wait between reconnects.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Read buffer per connection: feed messages are well under 1 KiB.
const READ_BUFFER: usize = 8 * 1024;

/// The fields of a feed message this client acts on; the rest is skipped
/// without being built into a value.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    seq: Option<u64>,
    #[serde(borrow)]
    origin: Option<&'a str>,
    #[serde(borrow)]
    region: Option<&'a str>,
    eph_price: Option<f64>,
    eph_delivered: Option<f64>,
}

fn ack_message(ack: &ClientAck) -> Message {
    Message::Text(ack.to_json().into())
}

async fn session(
    url: &str,
    api_key: &str,
    stats: &PartnerStats,
    observer: Option<&dyn PriceObserver>,
) -> Result<(), String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    let bearer = format!("Bearer {api_key}")
        .parse()
        .map_err(|_| "bad API key".to_string())?;
    request.headers_mut().insert("authorization", bearer);
    // Nagle off and no write buffering: each ack leaves at once. A small read
    // buffer: tungstenite zero-fills its free part before every read.
    let config = WebSocketConfig::default()
        .write_buffer_size(0)
        .read_buffer_size(READ_BUFFER);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .map_err(|e| e.to_string())?;
    stats.connected.store(true, Ordering::Relaxed);
    *crate::lock(&stats.last_error) = None;
    let mut feed = FeedState {
        observer,
        ..FeedState::default()
    };
    while let Some(message) = socket.next().await {
        let mut next = Some(message);
        // Everything that has already arrived is read before acking: acks
        // are cumulative, so one ack answers a burst.
        while let Some(message) = next {
            let message = message.map_err(|e| e.to_string())?;
            if let Some(ack) = feed.handle(&message, stats) {
                socket
                    .send(ack_message(&ack))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if feed.ended {
                break;
            }
            next = socket.next().now_or_never().flatten();
        }
        // What was received is acknowledged, also before a disconnect.
        if let Some(ack) = feed.pending.take() {
            let sent = socket.send(ack_message(&ack)).await;
            if feed.ended {
                return Ok(());
            }
            sent.map_err(|e| e.to_string())?;
        }
        if feed.ended {
            return Ok(());
        }
    }
    Ok(())
}

/// What one connection has learned from the node.
#[derive(Default)]
struct FeedState<'o> {
    /// Shown every valuation's price.
    observer: Option<&'o dyn PriceObserver>,
    /// The node's own seq space (from the snapshot); resumption follows it.
    origin: Option<String>,
    /// The newest valuation received and not yet acknowledged.
    pending: Option<ClientAck>,
    /// The node closed or is closing the connection.
    ended: bool,
}

impl FeedState<'_> {
    /// Counts one message and keeps the newest valuation as the pending ack.
    /// Returns an ack to send first: the pending one of another origin's seq
    /// space.
    fn handle(&mut self, message: &Message, stats: &PartnerStats) -> Option<ClientAck> {
        let Message::Text(text) = message else {
            self.ended |= matches!(message, Message::Close(_));
            return None;
        };
        let Ok(head) = serde_json::from_str::<Head>(text) else {
            return None;
        };
        let Head {
            kind, seq, origin, ..
        } = head;
        let mut flush = None;
        let own = origin.is_some() && origin == self.origin.as_deref();
        match (kind, seq) {
            ("snapshot", _) => self.origin = origin.map(str::to_string),
            ("valuation", Some(seq)) => {
                stats.valuations.fetch_add(1, Ordering::Relaxed);
                if let (Some(observer), Some(region), Some(price), Some(eph)) = (
                    self.observer,
                    head.region,
                    head.eph_price,
                    head.eph_delivered,
                ) {
                    observer.valuation(region, price, eph);
                }
                if own {
                    stats.last_seq.fetch_max(seq, Ordering::Relaxed);
                }
                let origin = origin.map(str::to_string);
                flush = self.pending.take().filter(|p| p.origin != origin);
                self.pending = Some(ClientAck { seq, origin });
            }
            ("withheld", Some(seq)) => {
                stats.withheld.fetch_add(1, Ordering::Relaxed);
                if own {
                    stats.last_seq.fetch_max(seq, Ordering::Relaxed);
                }
            }
            ("disconnect", _) => {
                stats.disconnects.fetch_add(1, Ordering::Relaxed);
                self.ended = true;
            }
            _ => {}
        }
        flush
    }
}
