//! What one request, client or connection may cost (SPEC §11), as axum
//! middleware around every route: a lingering close for early answers, a
//! global concurrency limit, a request timeout, per-client rate limits on
//! the open expensive routes, and capped pools of long-lived streams.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http_body_util::BodyExt;
use qunimbus_node::config::{LimitsConfig, RateLimit};
use qunimbus_node::credentials::Role;
use qunimbus_node::lock;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The open routes whose cost justifies a per-client rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateClass {
    /// `POST /v1/valuation/quote`.
    Quote,
    /// `GET /v1/valuations/stats`.
    Stats,
    /// `GET /v1/ledger/verify`.
    Verify,
    /// `GET /v1/ledger/export/*`.
    Export,
    /// `POST /tsa`.
    Tsa,
    /// `POST /a2a`.
    A2a,
}

/// Checks rate-limiter memory once per this many checks.
const PRUNE_EVERY: u64 = 1024;

/// The node's request limits and their live state.
pub struct Limits {
    /// The configured values.
    pub config: LimitsConfig,
    in_flight: Arc<Semaphore>,
    rates: [DefaultKeyedRateLimiter<IpAddr>; 6],
    checks: AtomicU64,
    /// Open dashboard streams per client address.
    pub dashboard_streams: SlotPool<IpAddr>,
    /// Open feed connections per partner id.
    pub feed_connections: SlotPool<String>,
}

impl Limits {
    /// The limits of `config`, with nothing in use.
    pub fn new(config: &LimitsConfig) -> Self {
        let rates = config
            .rates()
            .map(|(_, rate)| RateLimiter::keyed(quota(rate)));
        Self {
            in_flight: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            rates,
            checks: AtomicU64::new(0),
            dashboard_streams: SlotPool::new(
                config.max_dashboard_streams_per_client,
                config.max_dashboard_streams,
            ),
            feed_connections: SlotPool::new(
                config.max_feed_connections_per_partner,
                config.max_feed_connections,
            ),
            config: config.clone(),
        }
    }

    /// Takes one request from `client`'s share of `class`; when it is used
    /// up, how long until the next request would be allowed.
    pub fn check_rate(&self, class: RateClass, client: IpAddr) -> Result<(), Duration> {
        let limiter = &self.rates[class as usize];
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY)
        {
            for limiter in &self.rates {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
        limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

fn quota(rate: RateLimit) -> Quota {
    let per_minute = rate.per_minute.max(1);
    let period = Duration::from_secs(60) / per_minute;
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// The client's address as the server loop recorded it.
pub fn client_ip(request: &Request) -> IpAddr {
    ip_of(request.extensions())
}

fn ip_of(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Extracts the client's IP address (unspecified when the request did not
/// come through the server loop, as in router unit tests).
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(ip_of(&parts.extensions)))
    }
}

/// Whole seconds to announce in `Retry-After` for a wait.
pub fn retry_after_secs(wait: Duration) -> u32 {
    u32::try_from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).unwrap_or(u32::MAX)
}

// ---- middleware -------------------------------------------------------------------

/// Outermost layer: when a handler answered without reading the whole body
/// (an early 401, 413, 429 …), read and discard what the client is still
/// sending — at most `limits.linger_max_bytes` for `limits.linger_timeout_ms`
/// — before the answer goes out, as nginx's lingering close does. A client
/// that sends its whole body before reading (Python's urllib) then reads the
/// answer instead of a reset connection. A client that asked
/// `Expect: 100-continue` and was never told to continue has sent nothing,
/// and a body that was too slow to arrive (408) is not waited for again.
pub async fn linger(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let expects_continue = expects_continue(&parts.headers);
    let shared = SharedBody::new(body);
    let response = next
        .run(Request::from_parts(parts, Body::new(shared.clone())))
        .await;
    let config = &state.limits.config;
    let told_to_send = !expects_continue || shared.was_polled();
    // A body too slow to arrive (408) is not waited for a second time.
    let drain = told_to_send
        && response.status() != axum::http::StatusCode::REQUEST_TIMEOUT
        && !shared.is_end_stream()
        && declared.is_none_or(|n| n <= config.linger_max_bytes);
    if drain {
        let discard = shared.discard(config.linger_max_bytes);
        let _ = tokio::time::timeout(config.linger_timeout(), discard).await;
    }
    response
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

/// Past `limits.max_concurrent_requests` requests in progress, 503
/// `overloaded` with `Retry-After` at once (no queue).
pub async fn overload(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match state.limits.in_flight.clone().try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(_) => {
            state.node.metrics.reject("overloaded");
            ApiError::unavailable(
                "overloaded",
                format!(
                    "the node is serving {} requests; retry shortly",
                    state.limits.config.max_concurrent_requests
                ),
                1,
            )
            .into_response()
        }
    }
}

/// A request that has not produced its response headers within
/// `limits.request_timeout_ms` gets 503 `request_timeout`.
pub async fn request_timeout(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let timeout = state.limits.config.request_timeout();
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            state.node.metrics.reject("request_timeout");
            ApiError::unavailable(
                "request_timeout",
                format!("the request took longer than {} ms", timeout.as_millis()),
                1,
            )
            .into_response()
        }
    }
}

/// Per-client rate limit of one route class (429 with `Retry-After`).
/// Callers presenting a valid admin or ingest token are not limited (a
/// client token is limited like any client).
pub async fn rate_limited(
    State((state, class)): State<(Arc<AppState>, RateClass)>,
    request: Request,
    next: Next,
) -> Response {
    let trusted = crate::api::bearer(request.headers())
        .and_then(|t| state.node.credentials.role_of(t))
        .is_some_and(|role| role != Role::Client);
    if trusted {
        return next.run(request).await;
    }
    match state.limits.check_rate(class, client_ip(&request)) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            state.node.metrics.reject("rate_limited");
            ApiError::too_many(
                "rate_limited",
                format!("too many requests from this client to this route; retry in {wait:?}"),
                retry_after_secs(wait),
            )
            .into_response()
        }
    }
}

// ---- the shared body of `linger` --------------------------------------------------

/// A request body that the handler reads while the lingering layer keeps
/// hold of it (to discard the rest afterwards).
#[derive(Clone)]
struct SharedBody {
    inner: Arc<Mutex<Body>>,
    polled: Arc<AtomicBool>,
}

impl SharedBody {
    fn new(body: Body) -> Self {
        Self {
            inner: Arc::new(Mutex::new(body)),
            polled: Arc::new(AtomicBool::new(false)),
        }
    }

    fn was_polled(&self) -> bool {
        self.polled.load(Ordering::Relaxed)
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&*lock(&self.inner))
    }

    /// Reads and drops up to `max` more bytes (or until the body ends).
    async fn discard(mut self, max: u64) {
        let mut read = 0u64;
        while read <= max {
            match self.frame().await {
                Some(Ok(frame)) => {
                    read += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                _ => return,
            }
        }
    }
}

impl http_body::Body for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        self.polled.store(true, Ordering::Relaxed);
        Pin::new(&mut *lock(&self.inner)).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        SharedBody::is_end_stream(self)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        lock(&self.inner).size_hint()
    }
}

// ---- capped pools of long-lived connections ----------------------------------------

/// Which cap of a [`SlotPool`] refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefusal {
    /// The key holds its share (answer 429).
    PerKey(usize),
    /// The pool is full (answer 503).
    Total(usize),
}

impl SlotRefusal {
    /// The API error for a refused stream of `what` (e.g. "feed connections").
    pub fn into_api_error(self, what: &str) -> ApiError {
        match self {
            Self::PerKey(cap) => ApiError::too_many(
                "too_many_connections",
                format!("{cap} {what} are open for this client; close one first"),
                5,
            ),
            Self::Total(cap) => ApiError::unavailable(
                "too_many_connections",
                format!("the node holds {cap} {what}; retry later"),
                5,
            ),
        }
    }
}

/// Counts open long-lived connections per key and in total, with a cap on
/// each; a slot is given back when its [`Slot`] is dropped.
pub struct SlotPool<K: Hash + Eq + Clone> {
    per_key: usize,
    total: usize,
    open: Arc<Mutex<PoolCounts<K>>>,
}

struct PoolCounts<K> {
    per_key: HashMap<K, usize>,
    total: usize,
}

impl<K: Hash + Eq + Clone> SlotPool<K> {
    /// A pool allowing `per_key` slots per key and `total` in all.
    pub fn new(per_key: usize, total: usize) -> Self {
        Self {
            per_key,
            total,
            open: Arc::new(Mutex::new(PoolCounts {
                per_key: HashMap::new(),
                total: 0,
            })),
        }
    }

    /// Takes a slot for `key`, unless a cap is reached.
    pub fn acquire(&self, key: K) -> Result<Slot<K>, SlotRefusal> {
        let mut open = lock(&self.open);
        if open.total >= self.total {
            return Err(SlotRefusal::Total(self.total));
        }
        let held = open.per_key.entry(key.clone()).or_insert(0);
        if *held >= self.per_key {
            return Err(SlotRefusal::PerKey(self.per_key));
        }
        *held += 1;
        open.total += 1;
        Ok(Slot {
            pool: self.open.clone(),
            key,
        })
    }
}

/// One open connection's place in a [`SlotPool`].
pub struct Slot<K: Hash + Eq + Clone> {
    pool: Arc<Mutex<PoolCounts<K>>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = lock(&self.pool);
        open.total = open.total.saturating_sub(1);
        if let Some(held) = open.per_key.get_mut(&self.key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.per_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_cap_per_key_and_in_total_and_give_slots_back() {
        let pool = SlotPool::new(2, 3);
        let a1 = pool.acquire("a").unwrap();
        let _a2 = pool.acquire("a").unwrap();
        assert_eq!(pool.acquire("a").err(), Some(SlotRefusal::PerKey(2)));
        let _b1 = pool.acquire("b").unwrap();
        assert_eq!(pool.acquire("c").err(), Some(SlotRefusal::Total(3)));
        drop(a1);
        assert!(pool.acquire("c").is_ok());
    }

    #[test]
    fn rates_allow_the_burst_then_name_the_wait() {
        let limits = Limits::new(&LimitsConfig {
            verify: RateLimit {
                per_minute: 60,
                burst: 2,
            },
            ..LimitsConfig::default()
        });
        let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert!(limits.check_rate(RateClass::Verify, client).is_ok());
        assert!(limits.check_rate(RateClass::Verify, client).is_ok());
        let wait = limits.check_rate(RateClass::Verify, client).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert_eq!(retry_after_secs(wait), 1);
        assert!(
            limits.check_rate(RateClass::Verify, other).is_ok(),
            "per client"
        );
        assert!(
            limits.check_rate(RateClass::Quote, client).is_ok(),
            "per class"
        );
    }
}
