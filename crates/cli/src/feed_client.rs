//! A QMP partner client: connects to a node's feed over WebSocket with its
//! API key, acknowledges every valuation at once, and resumes with
//! `?from_seq=` after a disconnect. Used by the demo's simulated partners
//! and by `qunimbus bench feed`.

use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
}

/// Runs one partner until `stop` turns true: connect, ack, and reconnect
/// (from the first seq not received) after any disconnect.
pub async fn run_partner(
    ws_url: String,
    api_key: String,
    stats: Arc<PartnerStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut from_seq: Option<u64> = None;
    while !*stop.borrow() {
        let url = match from_seq {
            Some(seq) => format!("{ws_url}?from_seq={seq}"),
            None => ws_url.clone(),
        };
        let session = tokio::select! {
            result = session(&url, &api_key, &stats) => result,
            _ = stop.wait_for(|s| *s) => return,
        };
        if let Err(e) = session {
            tracing::debug!(error = %e, "partner session ended");
        }
        let last = stats.last_seq.load(Ordering::Relaxed);
        from_seq = (last > 0).then_some(last + 1);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn session(url: &str, api_key: &str, stats: &PartnerStats) -> Result<(), String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    let bearer = format!("Bearer {api_key}")
        .parse()
        .map_err(|_| "bad API key".to_string())?;
    request.headers_mut().insert("authorization", bearer);
    // Nagle off and no write buffering: each ack leaves at once.
    let config = WebSocketConfig::default().write_buffer_size(0);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .map_err(|e| e.to_string())?;
    while let Some(message) = socket.next().await {
        let text = match message.map_err(|e| e.to_string())? {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let seq = value["seq"].as_u64();
        match value["type"].as_str() {
            Some("valuation") => {
                if let Some(seq) = seq {
                    let ack = format!(r#"{{"type":"ack","seq":{seq}}}"#);
                    socket
                        .send(Message::Text(ack.into()))
                        .await
                        .map_err(|e| e.to_string())?;
                    stats.valuations.fetch_add(1, Ordering::Relaxed);
                    stats.last_seq.fetch_max(seq, Ordering::Relaxed);
                }
            }
            Some("withheld") => {
                stats.withheld.fetch_add(1, Ordering::Relaxed);
                if let Some(seq) = seq {
                    stats.last_seq.fetch_max(seq, Ordering::Relaxed);
                }
            }
            Some("disconnect") => {
                stats.disconnects.fetch_add(1, Ordering::Relaxed);
                break;
            }
            _ => {}
        }
    }
    Ok(())
}
