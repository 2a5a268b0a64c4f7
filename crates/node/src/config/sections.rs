//! The smaller sections: `[auth]`, `[ingest]`, `[history]`, `[market]`,
//! each with its own validation.

use super::{at_least_one, ConfigError};
use qunimbus_valuation::PhiHistory;
use serde::{Deserialize, Serialize};

/// Authentication settings (SPEC §9).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Bearer token for admin endpoints; generated into `credentials.toml` when absent.
    /// Secret: never part of the recorded configuration.
    #[serde(skip_serializing)]
    pub admin_token: Option<String>,
    /// Bearer token for telemetry ingest; generated when absent. Secret.
    #[serde(skip_serializing)]
    pub ingest_token: Option<String>,
    /// Require a valid token on read-only endpoints too.
    pub protect_reads: bool,
    /// Allow listening on a non-loopback address with generated tokens.
    pub allow_generated_tokens_on_public_listen: bool,
}

/// Limits on telemetry ingest.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest accepted body of `POST /v1/telemetry`, in bytes.
    pub max_body_bytes: usize,
    /// Largest accepted body of `POST /v1/telemetry/batch`, in bytes.
    pub max_batch_body_bytes: usize,
    /// Most runs in one batch.
    pub max_batch_runs: usize,
    /// Write jobs that may wait for the writer before ingest answers 429.
    pub queue_depth: usize,
    /// Runs that may wait for the writer before ingest answers 429 `busy`
    /// (bounds the time from submission to a signed checkpoint).
    pub max_queued_rows: usize,
    /// Rows after which the writer stops adding jobs to one transaction.
    pub max_group_rows: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_batch_body_bytes: 16 * 1024 * 1024,
            max_batch_runs: 10_000,
            queue_depth: 8192,
            max_queued_rows: 4096,
            max_group_rows: 4096,
        }
    }
}

/// The in-memory history of recent valuations.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// How many recent `phi_qevf` values the engine keeps.
    pub capacity: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            capacity: PhiHistory::DEFAULT_CAPACITY,
        }
    }
}

/// The QMP market feed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketConfig {
    /// Target p99 latency from telemetry receipt to partner ack, ms.
    pub latency_target_ms: f64,
    /// Target EPH throughput per hour.
    pub eph_per_hour_target: f64,
    /// Messages a partner session may have queued before it is disconnected.
    pub queue_capacity: usize,
    /// Length of the sliding window the EPH throughput is measured over, seconds.
    pub throughput_window_secs: u64,
    /// Length of the sliding window the status page's latency percentiles
    /// cover, seconds (the Prometheus histogram stays cumulative).
    pub latency_window_secs: u64,
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            latency_target_ms: 10.0,
            eph_per_hour_target: 5e9,
            queue_capacity: 1024,
            throughput_window_secs: 300,
            latency_window_secs: 300,
        }
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, token) in [
            ("auth.admin_token", &self.admin_token),
            ("auth.ingest_token", &self.ingest_token),
        ] {
            if let Some(token) = token {
                if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ConfigError::invalid(
                        key,
                        "must be at least 16 printable ASCII characters without spaces",
                    ));
                }
            }
        }
        Ok(())
    }
}

impl IngestConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("ingest.max_body_bytes", self.max_body_bytes),
            ("ingest.max_batch_body_bytes", self.max_batch_body_bytes),
            ("ingest.max_batch_runs", self.max_batch_runs),
            ("ingest.queue_depth", self.queue_depth),
            ("ingest.max_queued_rows", self.max_queued_rows),
            ("ingest.max_group_rows", self.max_group_rows),
        ] {
            at_least_one(key, value as u64)?;
        }
        Ok(())
    }
}

impl HistoryConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        at_least_one("history.capacity", self.capacity as u64)
    }
}

impl MarketConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("market.latency_target_ms", self.latency_target_ms),
            ("market.eph_per_hour_target", self.eph_per_hour_target),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be a finite number greater than 0, got {value}"),
                ));
            }
        }
        if self.queue_capacity < 2 {
            return Err(ConfigError::invalid(
                "market.queue_capacity",
                "must be at least 2",
            ));
        }
        at_least_one("market.latency_window_secs", self.latency_window_secs)?;
        at_least_one("market.throughput_window_secs", self.throughput_window_secs)
    }
}
