//! Node configuration: a TOML file, overridden by `QUNIMBUS_*` environment
//! variables, overridden by command-line flags (SPEC §9), validated at start
//! with errors that name the offending key.

mod agent;
mod agent_eph;
mod agent_reload;
mod backup;
mod exchange;
mod ledger;
mod limits;
mod nats;
mod sections;
mod sources;
#[cfg(test)]
mod tests;
mod trust;

pub use agent::{AgentConfig, AgentPlan, DecimalSetting, EphPlan, StrategySetting};
pub use agent_eph::{eph_symbol, EphConfig, EPH_TIER};
pub use agent_reload::RELOADABLE;
pub use backup::BackupConfig;
pub use exchange::ExchangeConfig;
pub use ledger::{LedgerConfig, TsaConfig};
pub use limits::{LimitsConfig, RateLimit};
pub use nats::{
    NatsAuth, NatsConfig, NATS_AUTH_ENV, NATS_CREDS_FILE_ENV, NATS_NKEY_SEED_ENV,
    NATS_PASSWORD_ENV, NATS_TOKEN_ENV, NATS_USER_ENV,
};
pub use sections::{AuthConfig, HistoryConfig, IngestConfig, MarketConfig};
pub use trust::TrustConfig;

use qunimbus_core::RegionSet;
use qunimbus_storage::DbTarget;
use qunimbus_valuation::ValuationParams;
use serde::{Deserialize, Serialize};
use sources::{env_entry, read_file, set_key};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Prefix of every configuration environment variable.
pub const ENV_PREFIX: &str = "QUNIMBUS_";

/// Environment variable naming the config file (not itself a config key).
pub const CONFIG_FILE_ENV: &str = "QUNIMBUS_CONFIG";

/// A configuration problem, naming the key (`section.key`) it concerns.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key is unknown, has the wrong type, or an invalid value.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// The key, e.g. `valuation.eta_baseline`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Log output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `text` with the secrets of a URL replaced by `redacted`: the password of
/// its user info (`postgres://u:secret@h/db`), a user info that is only a
/// name or token (`nats://TOKEN@h`), and any `password`, `token` or
/// `secret` query parameter; `None` when there is nothing to redact.
fn redact_url(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:redacted@{host}"),
            // A user info without a password may itself be the secret
            // (NATS's `nats://TOKEN@host`).
            None => format!("redacted@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _))
                        if ["password", "token", "secret"]
                            .iter()
                            .any(|s| key.to_ascii_lowercase().contains(s)) =>
                    {
                        format!("{key}=redacted")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => tail.to_string(),
    };
    let redacted = format!("{scheme}://{authority}{tail}");
    (redacted != text).then_some(redacted)
}

/// Errors unless `value` is at least 1.
fn at_least_one(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be at least 1"));
    }
    Ok(())
}

/// The whole node configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for the database, credentials and keys.
    pub data_dir: PathBuf,
    /// Address the HTTP server binds.
    pub listen: String,
    /// The URL clients reach this node at (`https://node.example` behind a
    /// TLS proxy); the A2A agent card names it. Unset: `http://` and the
    /// listen address (a wildcard address: the host the caller asked for).
    pub public_url: Option<String>,
    /// Database URL; default the SQLite file `qunimbus.db` in `data_dir`.
    pub database_url: Option<String>,
    /// NATS server for feed scale-out (`nats://host:4222`); unset = single node.
    pub nats_url: Option<String>,
    /// NATS stream and subjects.
    pub nats: NatsConfig,
    /// Log output style.
    pub log_format: LogFormat,
    /// Regions this node accepts runs from.
    pub regions: Vec<String>,
    /// Authentication.
    pub auth: AuthConfig,
    /// Valuation engine parameters.
    pub valuation: ValuationParams,
    /// Recent-valuation history.
    pub history: HistoryConfig,
    /// Ingest limits.
    pub ingest: IngestConfig,
    /// HTTP limits: timeouts, concurrency, per-client rates, stream caps.
    pub limits: LimitsConfig,
    /// Verification ledger.
    pub ledger: LedgerConfig,
    /// Trusted time-stamping.
    pub tsa: TsaConfig,
    /// Market feed.
    pub market: MarketConfig,
    /// `[trust]`.
    pub trust: TrustConfig,
    /// `[agent]`: the QBTC trading agent.
    pub agent: AgentConfig,
    /// `[backup]`: scheduled backups and where they go.
    pub backup: BackupConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./qunimbus-data"),
            listen: "127.0.0.1:8080".to_string(),
            public_url: None,
            database_url: None,
            nats_url: None,
            nats: NatsConfig::default(),
            log_format: LogFormat::default(),
            regions: qunimbus_core::DEFAULT_REGIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            auth: AuthConfig::default(),
            valuation: ValuationParams::default(),
            history: HistoryConfig::default(),
            ingest: IngestConfig::default(),
            limits: LimitsConfig::default(),
            ledger: LedgerConfig::default(),
            tsa: TsaConfig::default(),
            market: MarketConfig::default(),
            trust: TrustConfig::default(),
            agent: AgentConfig::default(),
            backup: BackupConfig::default(),
        }
    }
}

impl Config {
    /// The effective configuration as the ledger records it: every key
    /// with its value (defaults included; tokens and NATS credentials left
    /// out, passwords in URLs redacted) and the node's version
    /// (`qunimbus.version`: a new build can change defaults).
    pub fn recorded(&self) -> Result<crate::trust::ConfigMap, ConfigError> {
        let value = serde_json::to_value(self)
            .map_err(|e| ConfigError::invalid("(configuration)", e.to_string()))?;
        let mut map = crate::trust::flatten_config(&value);
        for value in map.values_mut() {
            if let Some(redacted) = value.as_str().and_then(redact_url) {
                *value = redacted.into();
            }
        }
        map.insert("qunimbus.version".into(), env!("CARGO_PKG_VERSION").into());
        Ok(map)
    }

    /// Loads the configuration: defaults, then `file` (if any), then the
    /// `QUNIMBUS_*` variables in `env`, then `overrides` (command-line flags,
    /// as a TOML table of dotted keys), then validates it.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: toml::Table,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        let mut nats_auth = Vec::new();
        for (name, value) in env {
            if NATS_AUTH_ENV.contains(&name.as_str()) {
                nats_auth.push((name, value));
            } else if let Some((key, value)) = env_entry(&name, &value) {
                set_key(&mut table, &key, value).map_err(|m| ConfigError::invalid(&name, m))?;
            }
        }
        for (key, value) in overrides {
            set_key(&mut table, &key, value).map_err(|m| ConfigError::invalid(&key, m))?;
        }
        let mut config = Self::from_table(table)?;
        config.nats.auth =
            NatsAuth::from_env(nats_auth.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        config.nats.auth.validate()?;
        Ok(config)
    }

    /// Parses and validates a TOML document (for `qunimbus config check`).
    pub fn check_file(path: &Path) -> Result<Self, ConfigError> {
        Self::from_table(read_file(path)?)
    }

    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                ConfigError::invalid(
                    if key == "." {
                        "(top level)".into()
                    } else {
                        key
                    },
                    e.into_inner().to_string(),
                )
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that deserialization alone cannot, section by
    /// section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if let Some(url) = &self.public_url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| ConfigError::invalid("public_url", format!("{url:?}: {e}")))?;
            let plain = parsed.path() == "/" && parsed.query().is_none();
            if !matches!(parsed.scheme(), "http" | "https") || !plain || parsed.host().is_none() {
                return Err(ConfigError::invalid(
                    "public_url",
                    "must be an http:// or https:// URL of a host, without a path or query",
                ));
            }
        }
        let regions = self.region_set()?;
        let database = self.database()?;
        self.backup
            .validate(matches!(database, DbTarget::Sqlite(_)))?;
        self.valuation
            .validate()
            .map_err(|e| ConfigError::invalid(format!("valuation.{}", e.param), e.message))?;
        self.ledger.validate()?;
        self.nats.validate(self.nats_url.as_deref())?;
        self.market.validate()?;
        self.trust.validate(&regions)?;
        self.tsa.validate()?;
        self.history.validate()?;
        self.ingest.validate()?;
        self.limits.validate()?;
        self.agent.validate(&regions)?;
        self.auth.validate()
    }

    /// The parsed `listen` address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|e| {
            ConfigError::invalid(
                "listen",
                format!("{:?} is not an IP:port address: {e}", self.listen),
            )
        })
    }

    /// The configured regions as a validated set.
    pub fn region_set(&self) -> Result<RegionSet, ConfigError> {
        RegionSet::new(self.regions.iter().cloned())
            .map_err(|e| ConfigError::invalid("regions", e.to_string()))
    }

    /// Where the database lives, from `database_url` or the data dir.
    pub fn database(&self) -> Result<DbTarget, ConfigError> {
        parse_database_url(self.database_url.as_deref(), &self.data_dir)
    }
}

/// Parses a database URL: unset or empty = `DATA_DIR/qunimbus.db`;
/// Parses a database URL: unset or empty = `DATA_DIR/qunimbus.db`;
/// `sqlite:PATH` or `sqlite://PATH`; `postgres://…` or `postgresql://…`.
pub fn parse_database_url(url: Option<&str>, data_dir: &Path) -> Result<DbTarget, ConfigError> {
    match url {
        None | Some("") => Ok(DbTarget::Sqlite(data_dir.join("qunimbus.db"))),
        Some(url) => {
            if let Some(path) = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
            {
                if path.is_empty() {
                    return Err(ConfigError::invalid(
                        "database_url",
                        "sqlite URL has no file path",
                    ));
                }
                Ok(DbTarget::Sqlite(PathBuf::from(path)))
            } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                Ok(DbTarget::Postgres(url.to_string()))
            } else {
                Err(ConfigError::invalid(
                    "database_url",
                    format!("unsupported URL {url:?}; expected sqlite:PATH or postgres://…"),
                ))
            }
        }
    }
}
