//! `[ledger]` and `[tsa]`: the verification ledger and the time-stamping
//! of its checkpoints.

use super::{at_least_one, ConfigError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Verification ledger settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// Log origin (first checkpoint line, also the signing key's name).
    /// Default: `qunimbus/<key id>` chosen when the key is generated.
    pub origin: Option<String>,
    /// Operator-supplied signing key (note `PRIVATE+KEY+…` format). Default:
    /// `DATA_DIR/ledger.key`, generated on first start.
    pub signing_key_file: Option<PathBuf>,
    /// Minimum time between signed checkpoints, in milliseconds.
    pub checkpoint_interval_ms: u64,
    /// Compliance frameworks recorded on every block.
    pub frameworks: Vec<String>,
    /// Keep every Merkle node in memory (64 bytes per block) while the log has
    /// at most this many blocks, so proofs need no database read; 0 = off.
    pub node_cache_max_blocks: u64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            origin: None,
            signing_key_file: None,
            checkpoint_interval_ms: 1000,
            frameworks: qunimbus_ledger::block::DEFAULT_FRAMEWORKS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            node_cache_max_blocks: 4 << 20,
        }
    }
}

/// RFC 3161 time-stamping of checkpoints.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsaConfig {
    /// External TSA (`http://…`, RFC 3161 over HTTP). Unset: the node's
    /// built-in TSA stamps its checkpoints.
    pub url: Option<String>,
    /// PEM trust anchors for the external TSA's tokens (required with `url`).
    pub roots_file: Option<PathBuf>,
    /// Built-in TSA key (PKCS#8 PEM, ECDSA P-256); with `chain_file`.
    /// Unset: `DATA_DIR/tsa/`, generated on first start (`qunimbus tsa init`).
    pub key_file: Option<PathBuf>,
    /// Built-in TSA certificate chain (PEM: TSA certificate first, root last).
    pub chain_file: Option<PathBuf>,
    /// First delay before retrying a failed TSA request, in milliseconds.
    pub retry_initial_ms: u64,
    /// Longest delay between retries, in milliseconds.
    pub retry_max_ms: u64,
    /// Time limit of one request to the external TSA, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for TsaConfig {
    fn default() -> Self {
        Self {
            url: None,
            roots_file: None,
            key_file: None,
            chain_file: None,
            retry_initial_ms: 500,
            retry_max_ms: 60_000,
            timeout_ms: 10_000,
        }
    }
}

impl LedgerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.checkpoint_interval_ms < 10 {
            return Err(ConfigError::invalid(
                "ledger.checkpoint_interval_ms",
                "must be at least 10",
            ));
        }
        if self.frameworks.is_empty() {
            return Err(ConfigError::invalid(
                "ledger.frameworks",
                "at least one framework is required",
            ));
        }
        for (i, f) in self.frameworks.iter().enumerate() {
            let ok = !f.is_empty()
                && f.len() <= 64
                && f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
            if !ok || self.frameworks[..i].contains(f) {
                return Err(ConfigError::invalid(
                    "ledger.frameworks",
                    format!("{f:?} is empty, malformed or repeated"),
                ));
            }
        }
        if let Some(origin) = &self.origin {
            if origin.is_empty() || origin.contains(char::is_whitespace) || origin.contains('+') {
                return Err(ConfigError::invalid(
                    "ledger.origin",
                    "must be non-empty without spaces or '+'",
                ));
            }
        }
        Ok(())
    }
}

impl TsaConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            if !url.starts_with("http://") {
                return Err(ConfigError::invalid(
                    "tsa.url",
                    "must be an http:// URL (RFC 3161 responses are signed; this build has no TLS client)",
                ));
            }
            if self.roots_file.is_none() {
                return Err(ConfigError::invalid(
                    "tsa.roots_file",
                    "is required when tsa.url is set",
                ));
            }
        }
        if self.key_file.is_some() != self.chain_file.is_some() {
            return Err(ConfigError::invalid(
                "tsa.key_file",
                "tsa.key_file and tsa.chain_file go together",
            ));
        }
        for (key, value) in [
            ("tsa.retry_initial_ms", self.retry_initial_ms),
            ("tsa.retry_max_ms", self.retry_max_ms),
            ("tsa.timeout_ms", self.timeout_ms),
        ] {
            at_least_one(key, value)?;
        }
        if self.retry_max_ms < self.retry_initial_ms {
            return Err(ConfigError::invalid(
                "tsa.retry_max_ms",
                "must be at least tsa.retry_initial_ms",
            ));
        }
        Ok(())
    }
}
