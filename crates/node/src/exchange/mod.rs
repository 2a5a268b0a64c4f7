//! The agent's exchange adapter: Binance spot's REST API (or one that
//! follows its documentation), every call through a rate limiter sized in
//! request weight (`governor`), a timeout and a circuit breaker; every
//! outcome and the breaker's state are metrics. API keys come from the
//! environment (`QBTC_API_KEY`, `QBTC_API_SECRET`) or the admin API, never
//! from a file, and are never logged. Signed requests carry `timestamp`,
//! `recvWindow` and the HMAC-SHA256 `signature` of the query string, per
//! Binance's documentation. Orders are not placed: the agent trades on paper.

pub mod breaker;

use crate::config::ExchangeConfig;
use crate::lock;
use crate::metrics::{Metrics, ModeLabel, OutcomeLabel};
use breaker::{Breaker, State, Verdict};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Environment variable holding the API key.
pub const API_KEY_ENV: &str = "QBTC_API_KEY";
/// Environment variable holding the API secret.
pub const API_SECRET_ENV: &str = "QBTC_API_SECRET";

/// Every outcome a call can have (each counted from 0).
const OUTCOMES: [&str; 10] = [
    "ok",
    "http_4xx",
    "http_429",
    "http_418",
    "http_5xx",
    "timeout",
    "transport_error",
    "bad_body",
    "breaker_open",
    "rate_limited",
];

/// Request weights of the endpoints used (Binance spot REST API).
const PING_WEIGHT: u32 = 1;
const ACCOUNT_WEIGHT: u32 = 20;

/// Why an exchange call failed.
#[derive(Debug, Error)]
pub enum ExchangeError {
    /// The URL is unusable.
    #[error("exchange URL: {0}")]
    Url(String),
    /// No API keys are loaded (signed endpoints need them).
    #[error("no API keys: set {API_KEY_ENV} and {API_SECRET_ENV}, or POST /v1/agent/credentials")]
    NoKeys,
    /// The breaker is open; retry after this long.
    #[error("circuit breaker open; retry in {0:?}")]
    BreakerOpen(Duration),
    /// Over the request-weight budget; retry after this long.
    #[error("request-weight limit reached; retry in {0:?}")]
    RateLimited(Duration),
    /// The exchange answered an error.
    #[error("exchange answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Its body (Binance: `{"code", "msg"}`), cut short.
        body: String,
    },
    /// No answer in time.
    #[error("exchange did not answer within {0:?}")]
    Timeout(Duration),
    /// The request failed (connection, body).
    #[error("exchange request failed: {0}")]
    Transport(String),
}

/// API keys; the secret never leaves this struct except as a signature.
struct Keys {
    key: String,
    secret: String,
}

/// HMAC-SHA256 of `query` under `secret`, lower-case hex.
pub fn sign(secret: &str, query: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(query.as_bytes());
    qunimbus_ledger::hex::encode(&mac.finalize().into_bytes())
}

/// A non-zero balance.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Balance {
    /// The asset.
    pub asset: String,
    /// Free amount (as the exchange wrote it).
    pub free: String,
    /// Locked amount.
    pub locked: String,
}

/// The adapter's state, and the account when asked.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExchangeStatus {
    /// The REST API's base URL.
    pub url: String,
    /// `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    /// While open: milliseconds until the probe.
    pub retry_in_ms: Option<u64>,
    /// Whether API keys are loaded.
    pub keys_loaded: bool,
    /// The account's non-zero balances (signed `GET /api/v3/account`), or
    /// `null` when the call failed.
    pub balances: Option<Vec<Balance>>,
    /// Whether the account may trade.
    pub can_trade: Option<bool>,
    /// Why the account could not be read.
    pub error: Option<String>,
}

/// The adapter.
pub struct Exchange {
    base: reqwest::Url,
    http: reqwest::Client,
    timeout: Duration,
    limiter: DefaultDirectRateLimiter,
    breaker: Mutex<Breaker>,
    keys: RwLock<Option<Keys>>,
    recv_window_ms: u64,
    metrics: Arc<Metrics>,
}

impl Exchange {
    /// An adapter for `config.url`, keys from the environment if set.
    pub fn new(
        config: &ExchangeConfig,
        url: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ExchangeError> {
        let base = reqwest::Url::parse(url).map_err(|e| ExchangeError::Url(e.to_string()))?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ExchangeError::Url(e.to_string()))?;
        let weight = NonZeroU32::new(config.weight_per_minute).unwrap_or(NonZeroU32::MIN);
        let exchange = Self {
            base,
            http,
            timeout,
            limiter: RateLimiter::direct(Quota::per_minute(weight)),
            breaker: Mutex::new(Breaker::new(
                config.breaker_failures,
                Duration::from_secs(config.breaker_open_secs),
            )),
            keys: RwLock::new(None),
            recv_window_ms: config.recv_window_ms,
            metrics,
        };
        exchange.set_circuit(false);
        for outcome in OUTCOMES {
            exchange.count_by(outcome, 0);
        }
        exchange.load_keys_from_env();
        Ok(exchange)
    }

    /// Re-reads the keys from the environment; whether both are set.
    pub fn load_keys_from_env(&self) -> bool {
        match (std::env::var(API_KEY_ENV), std::env::var(API_SECRET_ENV)) {
            (Ok(key), Ok(secret)) if !key.is_empty() && !secret.is_empty() => {
                self.set_keys(key, secret);
                true
            }
            _ => false,
        }
    }

    /// Replaces the keys (an operator's rotation).
    pub fn set_keys(&self, key: String, secret: String) {
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Keys { key, secret });
    }

    fn keys_loaded(&self) -> bool {
        self.keys.read().map(|k| k.is_some()).unwrap_or(false)
    }

    /// The breaker's state as (name, milliseconds to the probe).
    fn breaker_state(&self) -> (&'static str, Option<u64>) {
        match lock(&self.breaker).state() {
            State::Closed(_) => ("closed", None),
            State::HalfOpen => ("half_open", None),
            State::Open(until) => (
                "open",
                Some(
                    u64::try_from(until.saturating_duration_since(Instant::now()).as_millis())
                        .unwrap_or(u64::MAX),
                ),
            ),
        }
    }

    /// The adapter's state with the account read now.
    pub async fn status(&self) -> ExchangeStatus {
        let account = self
            .call("/api/v3/account", Vec::new(), ACCOUNT_WEIGHT, true)
            .await;
        let (breaker, retry_in_ms) = self.breaker_state();
        let (balances, can_trade, error) = match account {
            Ok(v) => (
                Some(balances(&v)),
                v.get("canTrade").and_then(Value::as_bool),
                None,
            ),
            Err(e) => (None, None, Some(e.to_string())),
        };
        ExchangeStatus {
            url: self.base.to_string(),
            breaker,
            retry_in_ms,
            keys_loaded: self.keys_loaded(),
            balances,
            can_trade,
            error,
        }
    }

    /// `GET /api/v3/ping`: whether the exchange answers.
    pub async fn ping(&self) -> Result<(), ExchangeError> {
        self.call("/api/v3/ping", Vec::new(), PING_WEIGHT, false)
            .await
            .map(|_| ())
    }

    fn count(&self, outcome: &str) {
        self.count_by(outcome, 1);
    }

    fn count_by(&self, outcome: &str, by: u64) {
        self.metrics
            .agent
            .exchange_requests
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc_by(by);
    }

    fn set_circuit(&self, open: bool) {
        self.metrics
            .agent
            .circuit_open
            .get_or_create(&ModeLabel {
                mode: crate::agent::MODE.into(),
            })
            .set(i64::from(open));
    }

    /// One call through the breaker, the limiter and the timeout.
    async fn call(
        &self,
        path: &str,
        mut query: Vec<(String, String)>,
        weight: u32,
        signed: bool,
    ) -> Result<Value, ExchangeError> {
        let key = if signed {
            let keys = self
                .keys
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let keys = keys.as_ref().ok_or(ExchangeError::NoKeys)?;
            let now_ms = chrono::Utc::now().timestamp_millis();
            query.push(("recvWindow".into(), self.recv_window_ms.to_string()));
            query.push(("timestamp".into(), now_ms.to_string()));
            let text = encode(&query);
            query.push(("signature".into(), sign(&keys.secret, &text)));
            Some(keys.key.clone())
        } else {
            None
        };
        let weight = NonZeroU32::new(weight).unwrap_or(NonZeroU32::MIN);
        match self.limiter.check_n(weight) {
            Ok(Ok(())) => {}
            Ok(Err(not_until)) => {
                self.count("rate_limited");
                return Err(ExchangeError::RateLimited(
                    not_until.wait_time_from(DefaultClock::default().now()),
                ));
            }
            Err(_) => {
                self.count("rate_limited");
                return Err(ExchangeError::RateLimited(Duration::from_secs(60)));
            }
        }
        if let Err(wait) = lock(&self.breaker).permit(Instant::now()) {
            self.count("breaker_open");
            return Err(ExchangeError::BreakerOpen(wait));
        }
        let mut url = self
            .base
            .join(path)
            .map_err(|e| ExchangeError::Url(e.to_string()))?;
        url.set_query(Some(&encode(&query)));
        let mut request = self.http.get(url);
        if let Some(key) = key {
            request = request.header("X-MBX-APIKEY", key);
        }
        let (verdict, outcome, result) = self.classify(request.send().await).await;
        lock(&self.breaker).record(verdict, Instant::now());
        let open = !matches!(lock(&self.breaker).state(), State::Closed(_));
        self.set_circuit(open);
        self.count(outcome);
        result
    }

    /// A request that got no (whole) answer: a timeout or a transport error.
    fn failed(&self, e: &reqwest::Error) -> (Verdict, &'static str, Result<Value, ExchangeError>) {
        if e.is_timeout() {
            (
                Verdict::Failure,
                "timeout",
                Err(ExchangeError::Timeout(self.timeout)),
            )
        } else {
            (
                Verdict::Failure,
                "transport_error",
                Err(ExchangeError::Transport(e.to_string())),
            )
        }
    }

    async fn classify(
        &self,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> (Verdict, &'static str, Result<Value, ExchangeError>) {
        let response = match sent {
            Ok(r) => r,
            Err(e) => return self.failed(&e),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match response.text().await {
            Ok(b) => b,
            Err(e) => return self.failed(&e),
        };
        let error = || ExchangeError::Status {
            status,
            body: body.chars().take(300).collect(),
        };
        match status {
            200..=299 => match serde_json::from_str(&body) {
                Ok(v) => (Verdict::Success, "ok", Ok(v)),
                Err(e) => (
                    Verdict::Failure,
                    "bad_body",
                    Err(ExchangeError::Transport(format!("not JSON: {e}"))),
                ),
            },
            429 => (Verdict::BackOff(retry_after), "http_429", Err(error())),
            418 => (Verdict::BackOff(retry_after), "http_418", Err(error())),
            500..=599 => (Verdict::Failure, "http_5xx", Err(error())),
            _ => (Verdict::Success, "http_4xx", Err(error())),
        }
    }
}

/// `k=v&…`, each part percent-encoded (what is signed is what is sent).
fn encode(query: &[(String, String)]) -> String {
    let mut out = reqwest::Url::parse("http://x/").expect("a valid URL");
    out.query_pairs_mut()
        .extend_pairs(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    out.query().unwrap_or_default().to_string()
}

fn balances(account: &Value) -> Vec<Balance> {
    let text = |b: &Value, k: &str| b.get(k).and_then(Value::as_str).unwrap_or("0").to_string();
    account
        .get("balances")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|b| {
            let amount = |k| text(b, k).parse::<f64>().unwrap_or(0.0);
            amount("free") != 0.0 || amount("locked") != 0.0
        })
        .map(|b| Balance {
            asset: text(b, "asset"),
            free: text(b, "free"),
            locked: text(b, "locked"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The HMAC example of Binance's documentation ("SIGNED endpoint
    /// examples for POST /api/v3/order"), also checked with `openssl dgst
    /// -sha256 -hmac`.
    #[test]
    fn signs_the_documented_example() {
        let secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
        let query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(
            sign(secret, query),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
        let pairs: Vec<(String, String)> = query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(encode(&pairs), query, "the query sent is the query signed");
    }
}
