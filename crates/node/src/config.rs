//! Node configuration: a TOML file, overridden by `QUNIMBUS_*` environment
//! variables, overridden by command-line flags (SPEC §9), validated at start
//! with errors that name the offending key.

mod limits;

pub use limits::{LimitsConfig, RateLimit};
use qunimbus_core::RegionSet;
use qunimbus_ledger::checkpoint::NoteVerifier;
use qunimbus_storage::DbTarget;
use qunimbus_valuation::{PhiHistory, ValuationParams};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Authentication settings (SPEC §9).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Bearer token for admin endpoints; generated into `credentials.toml` when absent.
    pub admin_token: Option<String>,
    /// Bearer token for telemetry ingest; generated when absent.
    pub ingest_token: Option<String>,
    /// Require a valid token on read-only endpoints too.
    pub protect_reads: bool,
    /// Allow listening on a non-loopback address with generated tokens.
    pub allow_generated_tokens_on_public_listen: bool,
}

/// Limits on telemetry ingest.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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

/// Verification ledger settings.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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

/// The QMP market feed.
#[derive(Debug, Clone, Deserialize)]
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
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            latency_target_ms: 10.0,
            eph_per_hour_target: 5e9,
            queue_capacity: 1024,
            throughput_window_secs: 300,
        }
    }
}

/// The Trust Kernel (SPEC §6).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Cedar compliance policy. Unset: `DATA_DIR/policy.cedar`, written from
    /// the built-in default on first start.
    pub policy_file: Option<PathBuf>,
    /// Window that availability and MTBF are computed over, hours.
    pub window_hours: f64,
    /// MTBF target of the mesh, hours.
    pub mtbf_target_hours: f64,
    /// A deployed region's MTBF below this pauses a rollout, hours.
    pub pause_mtbf_hours: f64,
    /// A deployed region's trust below this rolls a rollout back.
    pub rollback_trust: f64,
    /// Soak time of each rollout phase, seconds.
    pub soak_secs: f64,
    /// Rollout phases (the first phase's first region is the default canary).
    pub phases: Vec<qunimbus_trust::rollout::Phase>,
    /// Rollout controller tick, milliseconds.
    pub controller_interval_ms: u64,
    /// How often compliance evidence is re-gathered, seconds.
    pub compliance_interval_secs: f64,
    /// How often a compliance attestation block is written, seconds.
    pub attestation_interval_secs: f64,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self {
            policy_file: None,
            window_hours: 720.0,
            mtbf_target_hours: 120.0,
            pause_mtbf_hours: 100.0,
            rollback_trust: 0.7,
            soak_secs: 1800.0,
            phases: qunimbus_trust::rollout::default_phases(),
            controller_interval_ms: 1000,
            compliance_interval_secs: 10.0,
            attestation_interval_secs: 86_400.0,
        }
    }
}

impl TrustConfig {
    fn validate(&self, regions: &RegionSet) -> Result<(), ConfigError> {
        for (key, value) in [
            ("trust.window_hours", self.window_hours),
            ("trust.mtbf_target_hours", self.mtbf_target_hours),
            ("trust.pause_mtbf_hours", self.pause_mtbf_hours),
            ("trust.soak_secs", self.soak_secs),
            (
                "trust.compliance_interval_secs",
                self.compliance_interval_secs,
            ),
            (
                "trust.attestation_interval_secs",
                self.attestation_interval_secs,
            ),
        ] {
            if !(value.is_finite() && value > 0.0 && value < 1e9) {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be a finite number greater than 0, got {value}"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.rollback_trust) {
            return Err(ConfigError::invalid(
                "trust.rollback_trust",
                format!("must be between 0 and 1, got {}", self.rollback_trust),
            ));
        }
        if self.controller_interval_ms < 10 {
            return Err(ConfigError::invalid(
                "trust.controller_interval_ms",
                "must be at least 10",
            ));
        }
        qunimbus_trust::rollout::validate_plan(&self.phases)
            .map_err(|e| ConfigError::invalid("trust.phases", e.to_string()))?;
        for phase in &self.phases {
            if let Some(unknown) = phase
                .regions
                .iter()
                .find(|r| regions.canonical(r).is_none())
            {
                return Err(ConfigError::invalid(
                    "trust.phases",
                    format!("{unknown:?} is not a configured region"),
                ));
            }
        }
        Ok(())
    }

    /// The kernel's settings, with region names in canonical spelling.
    pub fn settings(&self, data_dir: &Path, regions: &RegionSet) -> crate::trust::TrustSettings {
        let phases = self
            .phases
            .iter()
            .map(|p| qunimbus_trust::rollout::Phase {
                percent: p.percent,
                regions: p
                    .regions
                    .iter()
                    .map(|r| regions.canonical(r).unwrap_or(r).to_string())
                    .collect(),
            })
            .collect();
        crate::trust::TrustSettings {
            policy_path: self
                .policy_file
                .clone()
                .unwrap_or_else(|| data_dir.join("policy.cedar")),
            create_default_policy: self.policy_file.is_none(),
            window_micros: (self.window_hours * qunimbus_trust::health::MICROS_PER_HOUR) as i64,
            mtbf_target_hours: self.mtbf_target_hours,
            thresholds: qunimbus_trust::rollout::GateThresholds {
                rollback_trust: self.rollback_trust,
                pause_mtbf_hours: self.pause_mtbf_hours,
            },
            soak_micros: (self.soak_secs * 1e6) as i64,
            phases,
            controller_interval: Duration::from_millis(self.controller_interval_ms),
            compliance_interval: Duration::from_secs_f64(self.compliance_interval_secs),
            attestation_interval: Duration::from_secs_f64(self.attestation_interval_secs),
        }
    }
}

/// NATS JetStream scale-out of the market feed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// JetStream stream holding every node's feed.
    pub stream: String,
    /// Subject prefix; each origin publishes to `<prefix>.<origin token>`.
    pub subject_prefix: String,
    /// How long the stream keeps messages, in hours.
    pub max_age_hours: u64,
    /// Verifier keys of the other nodes whose valuations this node relays,
    /// each `name+keyid+base64` as their `GET /v1/ledger/public-key`
    /// serves. A relayed message must be signed by one of them, and the
    /// key's name must equal the message's `origin`. Empty: nothing is
    /// relayed from other nodes (this node still publishes its own).
    pub peer_keys: Vec<String>,
    /// PEM file of CA certificates that the NATS server's TLS certificate
    /// must chain to (for `tls://` URLs or servers that require TLS).
    /// Unset: the system's trust store.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for servers that verify clients (mutual TLS);
    /// with `tls_key_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file` (PKCS#8, SEC1 or PKCS#1).
    pub tls_key_file: Option<PathBuf>,
    /// NATS credentials, from the environment only (never from the file,
    /// never logged; see [`NatsAuth`]).
    #[serde(skip)]
    pub auth: NatsAuth,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            stream: "QUNIMBUS_FEED".into(),
            subject_prefix: "qunimbus.feed".into(),
            max_age_hours: 24 * 7,
            peer_keys: Vec::new(),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            auth: NatsAuth::default(),
        }
    }
}

impl NatsConfig {
    /// The parsed `peer_keys`; errors name the key `nats.peer_keys` and the
    /// offending entry.
    pub fn peer_verifiers(&self) -> Result<Vec<NoteVerifier>, ConfigError> {
        let mut verifiers: Vec<NoteVerifier> = Vec::with_capacity(self.peer_keys.len());
        for (i, text) in self.peer_keys.iter().enumerate() {
            let verifier = NoteVerifier::from_vkey(text.trim()).map_err(|e| {
                ConfigError::invalid(
                    "nats.peer_keys",
                    format!("entry {i} ({text:?}) is not a verifier key name+keyid+base64: {e}"),
                )
            })?;
            if verifiers.contains(&verifier) {
                return Err(ConfigError::invalid(
                    "nats.peer_keys",
                    format!("entry {i} ({text:?}) is listed twice"),
                ));
            }
            verifiers.push(verifier);
        }
        Ok(verifiers)
    }
}

/// Environment variable: NATS user name (with [`NATS_PASSWORD_ENV`]).
pub const NATS_USER_ENV: &str = "QUNIMBUS_NATS_USER";
/// Environment variable: NATS password (with [`NATS_USER_ENV`]).
pub const NATS_PASSWORD_ENV: &str = "QUNIMBUS_NATS_PASSWORD";
/// Environment variable: NATS authentication token.
pub const NATS_TOKEN_ENV: &str = "QUNIMBUS_NATS_TOKEN";
/// Environment variable: NATS user nkey seed (`SU…`).
pub const NATS_NKEY_SEED_ENV: &str = "QUNIMBUS_NATS_NKEY_SEED";
/// Environment variable: path of a NATS `.creds` file (user JWT + nkey seed).
pub const NATS_CREDS_FILE_ENV: &str = "QUNIMBUS_NATS_CREDS_FILE";

/// The NATS credential variables: read by [`Config::load`] into
/// [`NatsAuth`], not config keys (a file cannot set them).
pub const NATS_AUTH_ENV: [&str; 5] = [
    NATS_USER_ENV,
    NATS_PASSWORD_ENV,
    NATS_TOKEN_ENV,
    NATS_NKEY_SEED_ENV,
    NATS_CREDS_FILE_ENV,
];

/// How the node authenticates to NATS: at most one of user and password,
/// token, nkey seed or creds file. Taken from the `QUNIMBUS_NATS_*`
/// variables in [`NATS_AUTH_ENV`] only; the node never writes them anywhere
/// and its `Debug` output shows only which are set (and the user name).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NatsAuth {
    /// User name (`QUNIMBUS_NATS_USER`).
    pub user: Option<String>,
    /// Password (`QUNIMBUS_NATS_PASSWORD`). Secret.
    pub password: Option<String>,
    /// Token (`QUNIMBUS_NATS_TOKEN`). Secret.
    pub token: Option<String>,
    /// User nkey seed (`QUNIMBUS_NATS_NKEY_SEED`). Secret.
    pub nkey_seed: Option<String>,
    /// Creds file with a user JWT and seed (`QUNIMBUS_NATS_CREDS_FILE`).
    pub creds_file: Option<PathBuf>,
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("NatsAuth")
            .field("user", &self.user)
            .field("password", &set(&self.password))
            .field("token", &set(&self.token))
            .field("nkey_seed", &set(&self.nkey_seed))
            .field("creds_file", &self.creds_file)
            .finish()
    }
}

impl NatsAuth {
    /// Reads the [`NATS_AUTH_ENV`] variables from `env`; an empty value
    /// counts as unset.
    pub fn from_env<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut auth = Self::default();
        for (name, value) in env {
            if value.is_empty() {
                continue;
            }
            let value = Some(value.to_string());
            match name {
                NATS_USER_ENV => auth.user = value,
                NATS_PASSWORD_ENV => auth.password = value,
                NATS_TOKEN_ENV => auth.token = value,
                NATS_NKEY_SEED_ENV => auth.nkey_seed = value,
                NATS_CREDS_FILE_ENV => auth.creds_file = value.map(PathBuf::from),
                _ => {}
            }
        }
        auth
    }

    /// Checks that at most one method is set, that user and password come
    /// together and that an nkey seed looks like one. Errors name the
    /// variable (never its value).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.user, &self.password) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    NATS_PASSWORD_ENV,
                    format!("is required with {NATS_USER_ENV}"),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    NATS_USER_ENV,
                    format!("is required with {NATS_PASSWORD_ENV}"),
                ))
            }
            _ => {}
        }
        let methods: Vec<&str> = [
            (self.user.is_some(), NATS_USER_ENV),
            (self.token.is_some(), NATS_TOKEN_ENV),
            (self.nkey_seed.is_some(), NATS_NKEY_SEED_ENV),
            (self.creds_file.is_some(), NATS_CREDS_FILE_ENV),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        if methods.len() > 1 {
            return Err(ConfigError::invalid(
                methods[1],
                format!(
                    "only one NATS authentication method may be set, got {}",
                    methods.join(" and ")
                ),
            ));
        }
        if let Some(seed) = &self.nkey_seed {
            // An nkey seed is 58 base32 characters starting with 'S' (user
            // seeds 'SU'); the client decodes and checks it when connecting.
            let base32 = |c: char| c.is_ascii_uppercase() || ('2'..='7').contains(&c);
            if seed.len() != 58 || !seed.starts_with('S') || !seed.chars().all(base32) {
                return Err(ConfigError::invalid(
                    NATS_NKEY_SEED_ENV,
                    "is not an nkey seed (58 base32 characters starting with S)",
                ));
            }
        }
        if self
            .creds_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(ConfigError::invalid(NATS_CREDS_FILE_ENV, "is empty"));
        }
        Ok(())
    }

    /// Whether any credential is set.
    pub fn is_set(&self) -> bool {
        *self != Self::default()
    }
}

/// The whole node configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for the database, credentials and keys.
    pub data_dir: PathBuf,
    /// Address the HTTP server binds.
    pub listen: String,
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./qunimbus-data"),
            listen: "127.0.0.1:8080".to_string(),
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
        }
    }
}

/// Keys whose environment values are always strings (never parsed as numbers).
const STRING_KEYS: [&str; 15] = [
    "nats_url",
    "nats.stream",
    "nats.subject_prefix",
    "tsa.url",
    "tsa.roots_file",
    "tsa.key_file",
    "tsa.chain_file",
    "ledger.origin",
    "ledger.signing_key_file",
    "data_dir",
    "listen",
    "database_url",
    "log_format",
    "auth.admin_token",
    "auth.ingest_token",
];

impl Config {
    /// Loads the configuration: defaults, then `file` (if any), then the
    /// `QUNIMBUS_*` variables in `env`, then `overrides` (command-line flags,
    /// as a TOML table), then validates it.
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
            table.insert(key, value);
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

    /// Checks every value that deserialization alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.region_set()?;
        self.database()?;
        self.valuation
            .validate()
            .map_err(|e| ConfigError::invalid(format!("valuation.{}", e.param), e.message))?;
        if self.ledger.checkpoint_interval_ms < 10 {
            return Err(ConfigError::invalid(
                "ledger.checkpoint_interval_ms",
                "must be at least 10",
            ));
        }
        if self.ledger.frameworks.is_empty() {
            return Err(ConfigError::invalid(
                "ledger.frameworks",
                "at least one framework is required",
            ));
        }
        for (i, f) in self.ledger.frameworks.iter().enumerate() {
            let ok = !f.is_empty()
                && f.len() <= 64
                && f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
            if !ok || self.ledger.frameworks[..i].contains(f) {
                return Err(ConfigError::invalid(
                    "ledger.frameworks",
                    format!("{f:?} is empty, malformed or repeated"),
                ));
            }
        }
        if let Some(origin) = &self.ledger.origin {
            if origin.is_empty() || origin.contains(char::is_whitespace) || origin.contains('+') {
                return Err(ConfigError::invalid(
                    "ledger.origin",
                    "must be non-empty without spaces or '+'",
                ));
            }
        }
        if let Some(url) = &self.nats_url {
            if !(url.starts_with("nats://") || url.starts_with("tls://") || url.is_empty()) {
                return Err(ConfigError::invalid(
                    "nats_url",
                    format!("{url:?} is not a nats:// or tls:// URL"),
                ));
            }
        }
        self.nats.peer_verifiers()?;
        self.nats.auth.validate()?;
        if self.nats.tls_cert_file.is_some() != self.nats.tls_key_file.is_some() {
            return Err(ConfigError::invalid(
                "nats.tls_cert_file",
                "nats.tls_cert_file and nats.tls_key_file go together",
            ));
        }
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        };
        if !token_ok(&self.nats.stream) {
            return Err(ConfigError::invalid(
                "nats.stream",
                "must be 1+ characters of [A-Za-z0-9_-]",
            ));
        }
        if !self.nats.subject_prefix.split('.').all(token_ok) {
            return Err(ConfigError::invalid(
                "nats.subject_prefix",
                "must be dot-separated tokens of [A-Za-z0-9_-]",
            ));
        }
        if self.nats.max_age_hours == 0 {
            return Err(ConfigError::invalid(
                "nats.max_age_hours",
                "must be at least 1",
            ));
        }
        let market = &self.market;
        for (key, value) in [
            ("market.latency_target_ms", market.latency_target_ms),
            ("market.eph_per_hour_target", market.eph_per_hour_target),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be a finite number greater than 0, got {value}"),
                ));
            }
        }
        if market.queue_capacity < 2 {
            return Err(ConfigError::invalid(
                "market.queue_capacity",
                "must be at least 2",
            ));
        }
        if market.throughput_window_secs == 0 {
            return Err(ConfigError::invalid(
                "market.throughput_window_secs",
                "must be at least 1",
            ));
        }
        self.trust.validate(&self.region_set()?)?;
        let tsa = &self.tsa;
        if let Some(url) = &tsa.url {
            if !url.starts_with("http://") {
                return Err(ConfigError::invalid(
                    "tsa.url",
                    "must be an http:// URL (RFC 3161 responses are signed; this build has no TLS client)",
                ));
            }
            if tsa.roots_file.is_none() {
                return Err(ConfigError::invalid(
                    "tsa.roots_file",
                    "is required when tsa.url is set",
                ));
            }
        }
        if tsa.key_file.is_some() != tsa.chain_file.is_some() {
            return Err(ConfigError::invalid(
                "tsa.key_file",
                "tsa.key_file and tsa.chain_file go together",
            ));
        }
        for (key, value) in [
            ("tsa.retry_initial_ms", tsa.retry_initial_ms),
            ("tsa.retry_max_ms", tsa.retry_max_ms),
            ("tsa.timeout_ms", tsa.timeout_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if tsa.retry_max_ms < tsa.retry_initial_ms {
            return Err(ConfigError::invalid(
                "tsa.retry_max_ms",
                "must be at least tsa.retry_initial_ms",
            ));
        }
        if self.history.capacity == 0 {
            return Err(ConfigError::invalid(
                "history.capacity",
                "must be at least 1",
            ));
        }
        let ingest = &self.ingest;
        for (key, value) in [
            ("ingest.max_body_bytes", ingest.max_body_bytes),
            ("ingest.max_batch_body_bytes", ingest.max_batch_body_bytes),
            ("ingest.max_batch_runs", ingest.max_batch_runs),
            ("ingest.queue_depth", ingest.queue_depth),
            ("ingest.max_queued_rows", ingest.max_queued_rows),
            ("ingest.max_group_rows", ingest.max_group_rows),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        self.limits.validate()?;
        for (key, token) in [
            ("auth.admin_token", &self.auth.admin_token),
            ("auth.ingest_token", &self.auth.ingest_token),
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

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Maps `QUNIMBUS_SECTION__KEY=value` to (`section.key`, typed value).
/// `QUNIMBUS_ADMIN_TOKEN` and `QUNIMBUS_INGEST_TOKEN` are aliases for the
/// `auth.` keys (SPEC §9). `QUNIMBUS_NATS__PEER_KEYS` takes a TOML array or
/// keys separated by commas or white space. Returns `None` for variables
/// that are not config (the NATS credential variables are taken out before).
fn env_entry(name: &str, value: &str) -> Option<(String, toml::Value)> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    if name == CONFIG_FILE_ENV || rest.is_empty() {
        return None;
    }
    let key = match rest {
        "ADMIN_TOKEN" => "auth.admin_token".to_string(),
        "INGEST_TOKEN" => "auth.ingest_token".to_string(),
        _ => rest.to_ascii_lowercase().replace("__", "."),
    };
    let typed = if key == "nats.peer_keys" && !value.trim_start().starts_with('[') {
        // Also a plain list: keys separated by commas or white space (a key
        // has neither).
        toml::Value::Array(
            value
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|k| !k.is_empty())
                .map(|k| toml::Value::String(k.to_string()))
                .collect(),
        )
    } else if STRING_KEYS.contains(&key.as_str()) || key.starts_with("nats.tls_") {
        toml::Value::String(value.to_string())
    } else {
        format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()))
    };
    Some((key, typed))
}

fn set_key(table: &mut toml::Table, dotted: &str, value: toml::Value) -> Result<(), String> {
    let mut parts = dotted.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return Ok(());
        }
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{part}` is not a section"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None, vec![], toml::Table::new()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.valuation, ValuationParams::default());
        assert_eq!(c.region_set().unwrap().names().len(), 6);
    }

    #[test]
    fn flags_beat_environment_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\ndata_dir = \"/from/file\"\n[valuation]\neta_baseline = 0.9\nprice_sensitivity = 5\n").unwrap();
        let mut flags = toml::Table::new();
        flags.insert("listen".into(), toml::Value::String("127.0.0.1:3".into()));
        let c = Config::load(
            Some(&file),
            env(&[
                ("QUNIMBUS_LISTEN", "127.0.0.1:2"),
                ("QUNIMBUS_DATA_DIR", "/from/env"),
                ("QUNIMBUS_VALUATION__ETA_BASELINE", "0.8"),
                ("QUNIMBUS_ADMIN_TOKEN", "0123456789abcdef0"),
                ("HOME", "/root"),
            ]),
            flags,
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:3");
        assert_eq!(c.data_dir, PathBuf::from("/from/env"));
        assert_eq!(c.valuation.eta_baseline, 0.8);
        assert_eq!(c.valuation.price_sensitivity, 5.0);
        assert_eq!(c.auth.admin_token.as_deref(), Some("0123456789abcdef0"));
    }

    fn key_of(err: ConfigError) -> String {
        match err {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn errors_name_the_key() {
        let cases: [(&str, &str); 12] = [
            ("[trust]\nrollback_trust = 1.5", "trust.rollback_trust"),
            ("[trust]\nsoak_secs = 0", "trust.soak_secs"),
            ("[trust]\nwindow_hours = \"long\"", "trust.window_hours"),
            (
                "[[trust.phases]]\npercent = 100\nregions = [\"Atlantis\"]",
                "trust.phases",
            ),
            (
                "[[trust.phases]]\npercent = 50\nregions = [\"EU\"]",
                "trust.phases",
            ),
            ("[valuation]\neta_baseline = 0.0", "valuation.eta_baseline"),
            (
                "[valuation]\ncoherence_variance_threshold = -1",
                "valuation.coherence_variance_threshold",
            ),
            ("[valuation]\nbogus = 1", "valuation"),
            ("listen = \"nope\"", "listen"),
            ("regions = []", "regions"),
            ("[history]\ncapacity = 0", "history.capacity"),
            (
                "[ingest]\nmax_batch_runs = \"many\"",
                "ingest.max_batch_runs",
            ),
        ];
        for (text, key) in cases {
            let table: toml::Table = text.parse().unwrap();
            let err = Config::from_table(table).unwrap_err();
            let msg = err.to_string();
            assert!(key_of(err).starts_with(key), "{text}: {msg}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let err =
            Config::load(None, env(&[("QUNIMBUS_LISTN", "x")]), toml::Table::new()).unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
    }

    #[test]
    fn database_urls() {
        let c = Config::load(
            None,
            env(&[("QUNIMBUS_DATABASE_URL", "postgres://u@h/db")]),
            toml::Table::new(),
        )
        .unwrap();
        assert_eq!(
            c.database().unwrap(),
            DbTarget::Postgres("postgres://u@h/db".into())
        );
        let c = Config::load(
            None,
            env(&[("QUNIMBUS_DATABASE_URL", "sqlite:/x/y.db")]),
            toml::Table::new(),
        )
        .unwrap();
        assert_eq!(c.database().unwrap(), DbTarget::Sqlite("/x/y.db".into()));
        let err = Config::load(
            None,
            env(&[("QUNIMBUS_DATABASE_URL", "mysql://x")]),
            toml::Table::new(),
        )
        .unwrap_err();
        assert_eq!(key_of(err), "database_url");
    }

    const PEER_A: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PEER_B: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";

    #[test]
    fn peer_keys_from_file_and_environment() {
        let table: toml::Table = format!("[nats]\npeer_keys = [\"{PEER_A}\"]")
            .parse()
            .unwrap();
        let c = Config::from_table(table).unwrap();
        assert_eq!(c.nats.peer_verifiers().unwrap()[0].name(), "PeterNeumann");
        for value in [
            format!("{PEER_A},{PEER_B}"),
            format!(" {PEER_A} \n{PEER_B} "),
            format!("{PEER_A}, {PEER_B},"),
            format!("[\"{PEER_A}\", \"{PEER_B}\"]"),
        ] {
            let c = Config::load(
                None,
                env(&[("QUNIMBUS_NATS__PEER_KEYS", &value)]),
                toml::Table::new(),
            )
            .unwrap();
            assert_eq!(c.nats.peer_keys, vec![PEER_A, PEER_B], "{value:?}");
        }
        let c = Config::load(
            None,
            env(&[("QUNIMBUS_NATS__PEER_KEYS", "")]),
            toml::Table::new(),
        )
        .unwrap();
        assert!(c.nats.peer_keys.is_empty());
    }

    #[test]
    fn bad_peer_keys_are_named() {
        let tampered = PEER_A.replace("c74f20a3", "c74f20a4");
        for (value, needle) in [
            ("nonsense".to_string(), "entry 0"),
            (format!("{PEER_B},{tampered}"), "entry 1"),
            (format!("{PEER_A},{PEER_A}"), "listed twice"),
            (PEER_A.replace("+ARpc", "+AXpc"), "entry 0"),
        ] {
            let err = Config::load(
                None,
                env(&[("QUNIMBUS_NATS__PEER_KEYS", &value)]),
                toml::Table::new(),
            )
            .unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(needle), "{value}: {msg}");
            assert_eq!(key_of(err), "nats.peer_keys", "{value}");
        }
    }

    #[test]
    fn nats_credentials_come_from_the_environment_only() {
        let seed = format!("SU{}", "A".repeat(56));
        let c = Config::load(
            None,
            env(&[
                ("QUNIMBUS_NATS_URL", "tls://nats.example:4222"),
                ("QUNIMBUS_NATS_USER", "node1"),
                ("QUNIMBUS_NATS_PASSWORD", "s3cret-pass"),
            ]),
            toml::Table::new(),
        )
        .unwrap();
        assert_eq!(c.nats.auth.user.as_deref(), Some("node1"));
        assert_eq!(c.nats.auth.password.as_deref(), Some("s3cret-pass"));
        let shown = format!("{c:?}");
        assert!(
            shown.contains("node1") && !shown.contains("s3cret-pass"),
            "{shown}"
        );
        for (name, value) in [
            ("QUNIMBUS_NATS_TOKEN", "tok-en"),
            ("QUNIMBUS_NATS_NKEY_SEED", seed.as_str()),
            ("QUNIMBUS_NATS_CREDS_FILE", "/run/secrets/nats.creds"),
        ] {
            let c = Config::load(None, env(&[(name, value)]), toml::Table::new()).unwrap();
            assert!(c.nats.auth.is_set(), "{name}");
            assert!(!format!("{c:?}").contains("tok-en"));
            assert!(!format!("{c:?}").contains(&seed));
        }
        // Errors name the variable, never the value.
        for (vars, named) in [
            (
                vec![("QUNIMBUS_NATS_USER", "node1")],
                "QUNIMBUS_NATS_PASSWORD",
            ),
            (
                vec![("QUNIMBUS_NATS_PASSWORD", "pw-1")],
                "QUNIMBUS_NATS_USER",
            ),
            (
                vec![
                    ("QUNIMBUS_NATS_TOKEN", "tok-1"),
                    ("QUNIMBUS_NATS_NKEY_SEED", &seed),
                ],
                "QUNIMBUS_NATS_NKEY_SEED",
            ),
            (
                vec![("QUNIMBUS_NATS_NKEY_SEED", "SUshort")],
                "QUNIMBUS_NATS_NKEY_SEED",
            ),
        ] {
            let err = Config::load(None, env(&vars), toml::Table::new()).unwrap_err();
            assert!(!err.to_string().contains("pw-1") && !err.to_string().contains("tok-1"));
            assert_eq!(key_of(err), named, "{vars:?}");
        }
        // The file cannot hold them.
        let table: toml::Table = "[nats]\nauth = { token = \"x\" }".parse().unwrap();
        assert!(Config::from_table(table).is_err());
        let table: toml::Table = "[nats]\ntoken = \"x\"".parse().unwrap();
        assert_eq!(key_of(Config::from_table(table).unwrap_err()), "nats.token");
        let err = Config::load(
            None,
            env(&[("QUNIMBUS_NATS__PASSWORD", "pw-2")]),
            toml::Table::new(),
        )
        .unwrap_err();
        assert_eq!(key_of(err), "nats.password");
        // TLS files are paths (strings) from the environment; cert and key pair.
        let c = Config::load(
            None,
            env(&[
                ("QUNIMBUS_NATS__TLS_CA_FILE", "1234"),
                ("QUNIMBUS_NATS__TLS_CERT_FILE", "/etc/q/client.pem"),
                ("QUNIMBUS_NATS__TLS_KEY_FILE", "/etc/q/client.key"),
            ]),
            toml::Table::new(),
        )
        .unwrap();
        assert_eq!(c.nats.tls_ca_file, Some(PathBuf::from("1234")));
        let err = Config::load(
            None,
            env(&[("QUNIMBUS_NATS__TLS_KEY_FILE", "/etc/q/client.key")]),
            toml::Table::new(),
        )
        .unwrap_err();
        assert_eq!(key_of(err), "nats.tls_cert_file");
        // A URL that is neither nats:// nor tls://.
        let err = Config::load(
            None,
            env(&[("QUNIMBUS_NATS_URL", "http://x:4222")]),
            toml::Table::new(),
        )
        .unwrap_err();
        assert_eq!(key_of(err), "nats_url");
    }

    #[test]
    fn example_config_in_repo_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../qunimbus.example.toml");
        Config::check_file(&path).unwrap();
    }
}
