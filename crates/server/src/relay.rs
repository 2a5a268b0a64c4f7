//! Scale-out of the market feed through NATS JetStream (SPEC §5): each node
//! publishes its own valuations, in feed order and exactly once per
//! `origin:seq` (JetStream de-duplication by `Nats-Msg-Id`), and relays the
//! valuations other nodes published to its own partners. A partner may
//! therefore connect to any node and receive every node's runs, each origin
//! in its own gap-free seq space.

use crate::config::NatsConfig;
use crate::market::{feed_valuation, MarketHub};
use async_nats::jetstream::{self, consumer::DeliverPolicy, stream};
use futures_util::StreamExt;
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_market::{FeedValuation, ServerMessage};
use qunimbus_storage::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// `node_state` key: the highest local feed seq published to NATS.
pub const PUBLISHED_KEY: &str = "nats_published_seq";

/// Runs read from the database per publishing pass.
const PUBLISH_PAGE: u32 = 500;

/// The NATS subject token of an origin: characters NATS treats specially
/// (`.`, `*`, `>`, spaces, `/`…) become `_`.
pub fn origin_token(origin: &str) -> String {
    origin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Starts the publisher and the relay consumer. Connection problems never
/// stop the node: both tasks retry until `stop`.
pub fn start(
    url: String,
    config: NatsConfig,
    store: Arc<Store>,
    hub: Arc<MarketHub>,
    committed: Arc<Notify>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let context = Arc::new(tokio::sync::OnceCell::new());
    let connector = {
        let (url, config, context) = (url.clone(), config.clone(), context.clone());
        move || {
            let (url, config, context) = (url.clone(), config.clone(), context.clone());
            async move {
                context
                    .get_or_try_init(|| async {
                        let client = async_nats::ConnectOptions::new()
                            .retry_on_initial_connect()
                            .connect(&url)
                            .await
                            .map_err(|e| format!("connecting to {url}: {e}"))?;
                        let js = jetstream::new(client);
                        js.get_or_create_stream(stream::Config {
                            name: config.stream.clone(),
                            subjects: vec![format!("{}.>", config.subject_prefix)],
                            max_age: Duration::from_secs(config.max_age_hours * 3600),
                            duplicate_window: Duration::from_secs(120),
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| format!("creating stream {}: {e}", config.stream))?;
                        tracing::info!(%url, stream = %config.stream, "market feed relay connected to NATS");
                        Ok::<_, String>(js)
                    })
                    .await
                    .cloned()
            }
        }
    };
    let publisher = tokio::spawn(publish_loop(
        connector.clone(),
        config.clone(),
        store,
        hub.clone(),
        committed,
        stop.clone(),
    ));
    let consumer = tokio::spawn(relay_loop(connector, config, hub, stop));
    vec![publisher, consumer]
}

async fn wait_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

/// Publishes every local valuation after the persisted cursor, in seq order,
/// waiting for JetStream's acknowledgement of each.
async fn publish_loop<F, Fut>(
    connect: F,
    config: NatsConfig,
    store: Arc<Store>,
    hub: Arc<MarketHub>,
    committed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<jetstream::Context, String>>,
{
    let subject = format!("{}.{}", config.subject_prefix, origin_token(&hub.origin));
    let mut published = match store.reader().state(PUBLISHED_KEY).await {
        Ok(value) => value.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
        Err(e) => {
            tracing::error!(error = %e, "reading the NATS publish cursor failed; starting from 0");
            0
        }
    };
    let mut backoff = Duration::from_millis(200);
    loop {
        if *stop.borrow() {
            return;
        }
        let js = match connect().await {
            Ok(js) => js,
            Err(e) => {
                tracing::warn!(error = %e, "NATS unavailable; retrying");
                if wait_or_stop(backoff, &mut stop).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        let page = match store
            .reader()
            .runs_from_feed_seq(published + 1, PUBLISH_PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "reading runs to publish failed");
                if wait_or_stop(backoff, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        if page.is_empty() {
            tokio::select! {
                () = committed.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            continue;
        }
        let before = published;
        for record in &page {
            let Some(mut valuation) = feed_valuation(&hub.origin, record) else {
                continue;
            };
            valuation.server_time = rfc3339_micros(now_micros());
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                "Nats-Msg-Id",
                format!("{}:{}", valuation.origin, valuation.seq).as_str(),
            );
            let payload = ServerMessage::Valuation(valuation.clone()).to_json();
            let acked = match js
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
            {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = acked {
                tracing::warn!(error = %e, seq = valuation.seq, "publishing to NATS failed; retrying");
                break;
            }
            published = valuation.seq;
            hub.note_relayed();
        }
        if published > before {
            let saved = store
                .execute(
                    "INSERT INTO node_state (key, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    vec![Some(PUBLISHED_KEY.into()), Some(published.to_string()), Some(rfc3339_micros(now_micros()))],
                )
                .await;
            if let Err(e) = saved {
                tracing::warn!(error = %e, "saving the NATS publish cursor failed");
            }
            backoff = Duration::from_millis(200);
        } else if wait_or_stop(backoff, &mut stop).await {
            return;
        }
    }
}

/// Relays valuations published by other nodes to this node's partners, in
/// stream order (an ordered consumer re-creates itself after any gap).
async fn relay_loop<F, Fut>(
    connect: F,
    config: NatsConfig,
    hub: Arc<MarketHub>,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<jetstream::Context, String>>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        let session = async {
            let js = connect().await?;
            let stream = js
                .get_stream(&config.stream)
                .await
                .map_err(|e| e.to_string())?;
            let consumer = stream
                .create_consumer(jetstream::consumer::pull::OrderedConfig {
                    filter_subject: format!("{}.>", config.subject_prefix),
                    deliver_policy: DeliverPolicy::New,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
            hub.set_relay_connected(true);
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| e.to_string())?;
                match ServerMessage::from_json(&String::from_utf8_lossy(&message.payload)) {
                    Ok(ServerMessage::Valuation(v)) if v.origin != hub.origin => {
                        hub.publish_remote(v)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a malformed message on the feed stream")
                    }
                }
            }
            Ok::<(), String>(())
        };
        tokio::select! {
            result = session => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "NATS relay interrupted; reconnecting");
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        hub.set_relay_connected(false);
        if wait_or_stop(backoff, &mut stop).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// A remote valuation's message for this node's partners.
pub fn remote_valuation(mut v: FeedValuation) -> FeedValuation {
    v.server_time = rfc3339_micros(now_micros());
    v
}
