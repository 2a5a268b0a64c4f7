//! `[limits]`: what one request, client or connection may cost the node
//! (SPEC §11). Every limit answers with its own status: 408 for a body that
//! does not arrive in time, 429 with `Retry-After` for a client or partner
//! over its share, 503 with `Retry-After` when the node is at capacity.

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A per-client request rate: `per_minute` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per minute, sustained.
    pub per_minute: u32,
    /// Requests allowed at once before the rate applies.
    pub burst: u32,
}

impl RateLimit {
    const fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_minute, burst }
    }
}

/// Limits of the HTTP server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest a request may take from its headers to its response headers
    /// (503 `request_timeout` past it). Streams count until they start.
    pub request_timeout_ms: u64,
    /// Longest a request body may take to arrive (408 `body_timeout`).
    pub body_read_timeout_ms: u64,
    /// Longest a client may take to send a request's headers; the
    /// connection is closed past it.
    pub header_read_timeout_ms: u64,
    /// Longest one write to a client may stall (a client that stopped
    /// reading); the connection is closed past it. Covers feed and
    /// dashboard streams too.
    pub send_timeout_ms: u64,
    /// Requests in progress at once; more get 503 `overloaded`.
    pub max_concurrent_requests: usize,
    /// Open client connections; further connections wait to be accepted.
    pub max_connections: usize,
    /// After an early answer (401, 413, …) the node reads and discards at
    /// most this much of a body still being sent, so that the client sees
    /// the answer instead of a reset connection.
    pub linger_max_bytes: u64,
    /// How long it reads and discards such a body at most.
    pub linger_timeout_ms: u64,
    /// Feed connections (WebSocket + SSE) one partner may hold (429 past it).
    pub max_feed_connections_per_partner: usize,
    /// Feed connections the node holds at once (503 past it).
    pub max_feed_connections: usize,
    /// Dashboard streams one client address may hold (429 past it).
    pub max_dashboard_streams_per_client: usize,
    /// Dashboard streams the node holds at once (503 past it).
    pub max_dashboard_streams: usize,
    /// `POST /v1/valuation/quote` per client.
    pub quote: RateLimit,
    /// `GET /v1/valuations/stats` per client.
    pub stats: RateLimit,
    /// `GET /v1/ledger/verify` per client.
    pub verify: RateLimit,
    /// `GET /v1/ledger/export/*` per client.
    pub export: RateLimit,
    /// `POST /tsa` per client.
    pub tsa: RateLimit,
    /// `POST /a2a` per client without the admin or ingest token.
    pub a2a: RateLimit,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            request_timeout_ms: 60_000,
            body_read_timeout_ms: 10_000,
            header_read_timeout_ms: 10_000,
            send_timeout_ms: 10_000,
            max_concurrent_requests: 512,
            max_connections: 10_000,
            linger_max_bytes: 32 * 1024 * 1024,
            linger_timeout_ms: 5_000,
            max_feed_connections_per_partner: 200,
            max_feed_connections: 5_000,
            max_dashboard_streams_per_client: 4,
            max_dashboard_streams: 64,
            quote: RateLimit::new(6_000, 200),
            stats: RateLimit::new(120, 20),
            verify: RateLimit::new(12, 4),
            export: RateLimit::new(60, 10),
            tsa: RateLimit::new(1_200, 100),
            a2a: RateLimit::new(600, 60),
        }
    }
}

impl LimitsConfig {
    /// Checks every value, naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("send_timeout_ms", self.send_timeout_ms),
            ("linger_timeout_ms", self.linger_timeout_ms),
            (
                "max_concurrent_requests",
                self.max_concurrent_requests as u64,
            ),
            ("max_connections", self.max_connections as u64),
            (
                "max_feed_connections_per_partner",
                self.max_feed_connections_per_partner as u64,
            ),
            ("max_feed_connections", self.max_feed_connections as u64),
            (
                "max_dashboard_streams_per_client",
                self.max_dashboard_streams_per_client as u64,
            ),
            ("max_dashboard_streams", self.max_dashboard_streams as u64),
        ] {
            super::at_least_one(&format!("limits.{key}"), value)?;
        }
        if self.body_read_timeout_ms > self.request_timeout_ms {
            return Err(ConfigError::invalid(
                "limits.body_read_timeout_ms",
                "must not exceed limits.request_timeout_ms",
            ));
        }
        for (key, rate) in self.rates() {
            if rate.per_minute == 0 || rate.burst == 0 {
                return Err(ConfigError::invalid(
                    format!("limits.{key}"),
                    "per_minute and burst must each be at least 1",
                ));
            }
        }
        Ok(())
    }

    /// Every per-client rate with its key.
    pub fn rates(&self) -> [(&'static str, RateLimit); 6] {
        [
            ("quote", self.quote),
            ("stats", self.stats),
            ("verify", self.verify),
            ("export", self.export),
            ("tsa", self.tsa),
            ("a2a", self.a2a),
        ]
    }

    /// [`Self::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// [`Self::body_read_timeout_ms`] as a duration.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    /// [`Self::send_timeout_ms`] as a duration.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }

    /// [`Self::linger_timeout_ms`] as a duration.
    pub fn linger_timeout(&self) -> Duration {
        Duration::from_millis(self.linger_timeout_ms)
    }

    /// [`Self::header_read_timeout_ms`] as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_is_named() {
        LimitsConfig::default().validate().unwrap();
        let zero = LimitsConfig {
            max_feed_connections_per_partner: 0,
            ..LimitsConfig::default()
        };
        let e = zero.validate().unwrap_err().to_string();
        assert!(e.contains("limits.max_feed_connections_per_partner"), "{e}");
        let no_rate = LimitsConfig {
            verify: RateLimit::new(0, 1),
            ..LimitsConfig::default()
        };
        let e = no_rate.validate().unwrap_err().to_string();
        assert!(e.contains("limits.verify"), "{e}");
    }
}
