//! `[nats]` and the NATS credentials, which come from the environment only.

use super::{at_least_one, ConfigError};
use qunimbus_ledger::checkpoint::NoteVerifier;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// NATS JetStream scale-out of the market feed.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// Checks `url` (the top-level `nats_url`) and the `[nats]` section.
    pub(super) fn validate(&self, url: Option<&str>) -> Result<(), ConfigError> {
        if let Some(url) = url {
            if !(url.starts_with("nats://") || url.starts_with("tls://") || url.is_empty()) {
                return Err(ConfigError::invalid(
                    "nats_url",
                    format!("{url:?} is not a nats:// or tls:// URL"),
                ));
            }
        }
        self.peer_verifiers()?;
        self.auth.validate()?;
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
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
        if !token_ok(&self.stream) {
            return Err(ConfigError::invalid(
                "nats.stream",
                "must be 1+ characters of [A-Za-z0-9_-]",
            ));
        }
        if !self.subject_prefix.split('.').all(token_ok) {
            return Err(ConfigError::invalid(
                "nats.subject_prefix",
                "must be dot-separated tokens of [A-Za-z0-9_-]",
            ));
        }
        at_least_one("nats.max_age_hours", self.max_age_hours)
    }

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
