//! Scale-out of the market feed through NATS JetStream (SPEC §5): each node
//! publishes its own valuations, in feed order and exactly once per
//! `origin:seq` (JetStream de-duplication by `Nats-Msg-Id`), and relays the
//! valuations other nodes published to its own partners. A partner may
//! therefore connect to any node and receive every node's runs, each origin
//! in its own gap-free seq space.
//!
//! NATS is not trusted: every message a node publishes carries a detached
//! Ed25519 signature by its ledger key ([`SIGNATURE_HEADER`],
//! [`KEY_ID_HEADER`]; the JSON payload is unchanged), and the relay accepts a
//! message only when it verifies under one of `nats.peer_keys` whose name is
//! the payload's `origin` ([`check_message`]). Everything else is dropped and
//! counted in `qunimbus_relay_rejected_total{reason}`.

use crate::config::{NatsAuth, NatsConfig, NATS_CREDS_FILE_ENV};
use crate::market::{feed_valuation, MarketHub};
use crate::metrics::Metrics;
use crate::Node;
use async_nats::jetstream::{self, consumer::DeliverPolicy, stream};
use async_nats::HeaderMap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::StreamExt;
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_ledger::checkpoint::{NoteSigner, NoteVerifier};
use qunimbus_ledger::LedgerError;
use qunimbus_market::{FeedValuation, ServerMessage};
use qunimbus_storage::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// `node_state` key: the highest local feed seq published to NATS.
pub const PUBLISHED_KEY: &str = "nats_published_seq";

/// Runs read from the database per publishing pass.
const PUBLISH_PAGE: u32 = 500;

/// NATS header with the standard base64 Ed25519 signature of a feed
/// message (see [`SIGNATURE_CONTEXT`] for what it covers).
pub const SIGNATURE_HEADER: &str = "Qunimbus-Signature";

/// NATS header with the signing key's ID: 8 lowercase hex digits, the
/// signed-note key ID of the origin's ledger key (the middle part of its
/// `name+keyid+base64` public key).
pub const KEY_ID_HEADER: &str = "Qunimbus-Key-Id";

/// Domain-separation context of feed signatures: a node signs
/// `"qunimbus-relay/v1" ‖ 0x00 ‖ payload` (the exact payload bytes) with
/// [`NoteSigner::sign_bytes`], so a feed signature can never pass for a
/// checkpoint signature of the same key.
pub const SIGNATURE_CONTEXT: &str = "qunimbus-relay/v1";

/// Why the relay dropped a message from NATS (the `reason` label of
/// `qunimbus_relay_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// No signature header.
    Unsigned,
    /// No or a malformed key ID header, or a key ID that is not a peer key.
    UnknownKey,
    /// The signature is not base64 of 64 bytes or does not verify under the
    /// peer key (tampered payload, or signed by another key).
    BadSignature,
    /// Validly signed by a peer key whose name is not the payload's `origin`.
    OriginMismatch,
    /// Validly signed, but the payload is not a feed message.
    Malformed,
}

impl RejectReason {
    /// Every reason, in label order.
    pub const ALL: [RejectReason; 5] = [
        Self::Unsigned,
        Self::UnknownKey,
        Self::BadSignature,
        Self::OriginMismatch,
        Self::Malformed,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::OriginMismatch => "origin_mismatch",
            Self::Malformed => "malformed",
        }
    }
}

/// What the relay does with one message from the feed stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A peer's valuation, signed by its origin: relay it.
    Accept(Box<FeedValuation>),
    /// This node's own message (its key ID or origin): skip it silently.
    Own,
    /// A validly signed message that is not a valuation: skip it silently.
    Ignore,
    /// Drop and count it.
    Reject(RejectReason),
}

/// The peer keys the relay verifies against, by key ID, plus this node's
/// own identity (whose messages are skipped).
#[derive(Debug, Clone)]
pub struct PeerKeys {
    own_origin: String,
    own_key_id: [u8; 4],
    by_id: HashMap<[u8; 4], Vec<NoteVerifier>>,
}

impl PeerKeys {
    /// Peer keys for a node whose ledger key is `own`.
    pub fn new(own: &NoteSigner, peers: impl IntoIterator<Item = NoteVerifier>) -> Self {
        let mut by_id: HashMap<[u8; 4], Vec<NoteVerifier>> = HashMap::new();
        for peer in peers {
            by_id.entry(peer.key_id()).or_default().push(peer);
        }
        Self {
            own_origin: own.name().to_string(),
            own_key_id: own.key_id(),
            by_id,
        }
    }

    /// How many peer keys there are.
    pub fn len(&self) -> usize {
        self.by_id.values().map(Vec::len).sum()
    }

    /// Whether there is no peer key.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// The signature headers of a feed message: the signature of `payload`
/// and the key ID, for [`check_message`] on the receiving nodes.
pub fn sign_message(signer: &NoteSigner, payload: &[u8]) -> Result<HeaderMap, LedgerError> {
    let signature = signer.sign_bytes(SIGNATURE_CONTEXT, payload)?;
    let mut headers = HeaderMap::new();
    headers.insert(SIGNATURE_HEADER, STANDARD.encode(signature).as_str());
    headers.insert(
        KEY_ID_HEADER,
        qunimbus_ledger::hex::encode(&signer.key_id()).as_str(),
    );
    Ok(headers)
}

/// Decides what to do with one message of the feed stream. Pure.
///
/// In this order: no [`SIGNATURE_HEADER`] → unsigned; a missing or
/// malformed [`KEY_ID_HEADER`] → unknown key; this node's own key ID → own
/// (skipped without verifying: only this node holds that key); a key ID of
/// no peer key → unknown key; a signature that does not verify over the
/// exact payload bytes → bad signature; a payload that is not a feed message
/// → malformed (parsed only once the signature holds); a valuation whose
/// `origin` differs from the signing key's name → origin mismatch. A
/// valuation of this node's own origin is skipped like today.
pub fn check_message(headers: Option<&HeaderMap>, payload: &[u8], keys: &PeerKeys) -> Verdict {
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
    let Some(signature) = header(SIGNATURE_HEADER) else {
        return Verdict::Reject(RejectReason::Unsigned);
    };
    let key_id = header(KEY_ID_HEADER)
        .filter(|id| id.len() == 8)
        .and_then(|id| qunimbus_ledger::hex::decode(id).ok())
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok());
    let Some(key_id) = key_id else {
        return Verdict::Reject(RejectReason::UnknownKey);
    };
    if key_id == keys.own_key_id {
        return Verdict::Own;
    }
    let Some(candidates) = keys.by_id.get(&key_id) else {
        return Verdict::Reject(RejectReason::UnknownKey);
    };
    // 64 bytes are 88 base64 characters; longer cannot be a signature.
    let signature = match signature.len() {
        0..=88 => STANDARD.decode(signature).ok(),
        _ => None,
    };
    let Some(signature) = signature else {
        return Verdict::Reject(RejectReason::BadSignature);
    };
    let Some(signer) = candidates.iter().find(|k| {
        k.verify_bytes(SIGNATURE_CONTEXT, payload, &signature)
            .is_ok()
    }) else {
        return Verdict::Reject(RejectReason::BadSignature);
    };
    let message = std::str::from_utf8(payload)
        .ok()
        .and_then(|text| ServerMessage::from_json(text).ok());
    match message {
        None => Verdict::Reject(RejectReason::Malformed),
        Some(ServerMessage::Valuation(v)) => {
            if v.origin != signer.name() {
                Verdict::Reject(RejectReason::OriginMismatch)
            } else if v.origin == keys.own_origin {
                Verdict::Own
            } else {
                Verdict::Accept(Box::new(v))
            }
        }
        Some(_) => Verdict::Ignore,
    }
}

/// `url` without user information (`nats://user:pass@host` → `nats://host`),
/// for logs.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// The client options: connection name, TLS roots and client certificate,
/// and the credentials of
/// `auth` (at most one method; [`NatsAuth::validate`] checked that).
async fn connect_options(
    config: &NatsConfig,
    name: &str,
) -> Result<async_nats::ConnectOptions, String> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5));
    if let Some(ca) = &config.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let NatsAuth {
        user,
        password,
        token,
        nkey_seed,
        creds_file,
    } = &config.auth;
    if let (Some(user), Some(password)) = (user, password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = token {
        options = options.token(token.clone());
    }
    if let Some(seed) = nkey_seed {
        options = options.nkey(seed.clone());
    }
    if let Some(path) = creds_file {
        options = options.credentials_file(path).await.map_err(|e| {
            format!(
                "reading the NATS creds file {} ({NATS_CREDS_FILE_ENV}): {e}",
                path.display()
            )
        })?;
    }
    Ok(options)
}

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

/// Starts the publisher (signing with `signer`, the ledger key; woken by
/// `hub.committed`) and the relay consumer (verifying against
/// `config.peer_keys`). Connection problems, including refused credentials,
/// never stop the node: both tasks retry until `stop`, and
/// `qunimbus_feed_relay_connected` stays 0 meanwhile.
pub fn start(
    state: &Node,
    url: String,
    config: NatsConfig,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let tasks = &state.tasks;
    let (signer, metrics) = (state.signer.clone(), state.metrics.clone());
    let (store, hub) = (state.store.clone(), state.market.clone());
    for reason in RejectReason::ALL {
        metrics.relay_rejected(reason.as_str(), 0);
    }
    let peers = config.peer_verifiers().unwrap_or_else(|e| {
        // Config::validate checked them before the node started.
        tracing::error!(error = %e, "ignoring invalid nats.peer_keys");
        Vec::new()
    });
    let keys = PeerKeys::new(&signer, peers);
    if keys.is_empty() {
        tracing::warn!("nats.peer_keys is empty: valuations of other nodes will not be relayed");
    }
    let context = Arc::new(tokio::sync::OnceCell::new());
    let shown_url = redact_url(&url);
    let client_name = format!("qunimbus {}", signer.name());
    let connector = {
        let (url, config, context) = (url.clone(), config.clone(), context.clone());
        move || {
            let (url, shown_url, config, context, client_name) = (
                url.clone(),
                shown_url.clone(),
                config.clone(),
                context.clone(),
                client_name.clone(),
            );
            async move {
                context
                    .get_or_try_init(|| async {
                        // No retry_on_initial_connect: a refused or absent
                        // server fails here and the loops retry with backoff
                        // (a background-retrying client per attempt would
                        // pile up). Once connected, the client reconnects.
                        let client = connect_options(&config, &client_name)
                            .await?
                            .connect(&url)
                            .await
                            .map_err(|e| format!("connecting to {shown_url}: {e}"))?;
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
                        tracing::info!(url = %shown_url, stream = %config.stream, "market feed relay connected to NATS");
                        Ok::<_, String>(js)
                    })
                    .await
                    .cloned()
            }
        }
    };
    let publisher = {
        let (connector, config, hub, stop) =
            (connector.clone(), config.clone(), hub.clone(), stop.clone());
        tasks.spawn("nats_publisher", stop.clone(), move || {
            publish_loop(
                connector.clone(),
                config.clone(),
                signer.clone(),
                store.clone(),
                hub.clone(),
                hub.committed.clone(),
                stop.clone(),
            )
        })
    };
    let consumer = tasks.spawn("nats_relay", stop.clone(), move || {
        relay_loop(
            connector.clone(),
            config.clone(),
            keys.clone(),
            metrics.clone(),
            hub.clone(),
            stop.clone(),
        )
    });
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
    signer: Arc<NoteSigner>,
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
        if !hub.is_active() {
            // Publishing is switched off: nothing leaves the node until it
            // is switched on again, then the backlog goes out in order.
            tokio::select! {
                () = committed.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            continue;
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
            let payload = ServerMessage::Valuation(valuation.clone()).to_json();
            let mut headers = match sign_message(&signer, payload.as_bytes()) {
                Ok(headers) => headers,
                Err(e) => {
                    tracing::error!(error = %e, seq = valuation.seq, "signing a feed message failed");
                    break;
                }
            };
            headers.insert(
                "Nats-Msg-Id",
                format!("{}:{}", valuation.origin, valuation.seq).as_str(),
            );
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
                .set_state(
                    PUBLISHED_KEY,
                    &published.to_string(),
                    &rfc3339_micros(now_micros()),
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
/// stream order (an ordered consumer re-creates itself after any gap), once
/// each: only messages that [`check_message`] accepts, and per origin only a
/// seq above the last one relayed (repeats after a reconnect, or replays of
/// old signed messages, are dropped silently).
async fn relay_loop<F, Fut>(
    connect: F,
    config: NatsConfig,
    keys: PeerKeys,
    metrics: Arc<Metrics>,
    hub: Arc<MarketHub>,
    mut stop: watch::Receiver<bool>,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<jetstream::Context, String>>,
{
    let mut backoff = Duration::from_millis(200);
    // Bounded: only origins of verified messages (one per peer key name).
    let mut relayed: HashMap<String, u64> = HashMap::new();
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
            backoff = Duration::from_millis(200);
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| e.to_string())?;
                match check_message(message.headers.as_ref(), &message.payload, &keys) {
                    Verdict::Accept(v) => {
                        let last = relayed.entry(v.origin.clone()).or_insert(0);
                        if v.seq > *last {
                            *last = v.seq;
                            hub.publish_remote(*v);
                        }
                    }
                    Verdict::Own | Verdict::Ignore => {}
                    Verdict::Reject(reason) => {
                        let count = metrics.relay_rejected(reason.as_str(), 1);
                        // Every rejection at debug; at warn only the 1st,
                        // 2nd, 4th, 8th… of a reason, so a flood cannot
                        // flood the log.
                        let key_id: Option<String> = message
                            .headers
                            .as_ref()
                            .and_then(|h| h.get(KEY_ID_HEADER))
                            .map(|v| v.as_str().chars().take(16).collect());
                        if count.is_power_of_two() {
                            tracing::warn!(reason = reason.as_str(), subject = %message.subject, key_id = ?key_id, rejected = count, "dropped a message from NATS that is not signed by a peer key of its origin");
                        } else {
                            tracing::debug!(reason = reason.as_str(), subject = %message.subject, key_id = ?key_id, "dropped a message from NATS");
                        }
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

#[cfg(test)]
mod tests;
