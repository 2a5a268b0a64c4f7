//! `[agent.exchange]`: the exchange the agent's adapter talks to (Binance
//! spot's REST API or one that follows its documentation).

use super::ConfigError;
use serde::{Deserialize, Serialize};

/// The exchange adapter's settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeConfig {
    /// Base URL of the REST API (`https://api.binance.com`); unset: no exchange.
    pub url: Option<String>,
    /// Per-request timeout, milliseconds.
    pub timeout_ms: u64,
    /// Request weight allowed per minute (Binance spot: 6000 per IP).
    pub weight_per_minute: u32,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before a probe, seconds.
    pub breaker_open_secs: u64,
    /// `recvWindow` of signed requests, milliseconds (Binance: at most 60000).
    pub recv_window_ms: u64,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            url: None,
            timeout_ms: 5000,
            weight_per_minute: 6000,
            breaker_failures: 5,
            breaker_open_secs: 30,
            recv_window_ms: 5000,
        }
    }
}

impl ExchangeConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| ConfigError::invalid("agent.exchange.url", format!("{url:?}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::invalid(
                    "agent.exchange.url",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        for (key, value, max) in [
            ("agent.exchange.timeout_ms", self.timeout_ms, 600_000),
            (
                "agent.exchange.weight_per_minute",
                u64::from(self.weight_per_minute),
                1_000_000,
            ),
            (
                "agent.exchange.breaker_failures",
                u64::from(self.breaker_failures),
                1000,
            ),
            (
                "agent.exchange.breaker_open_secs",
                self.breaker_open_secs,
                86_400,
            ),
            ("agent.exchange.recv_window_ms", self.recv_window_ms, 60_000),
        ] {
            if value == 0 || value > max {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be between 1 and {max}, got {value}"),
                ));
            }
        }
        Ok(())
    }
}
