//! RFC 3161 for the node: the built-in TSA (key and chain on disk), the
//! stamper that obtains a verified token for every signed checkpoint from
//! the external TSA or the built-in one, and the retrying background task.

use crate::config::TsaConfig;
use crate::metrics::Metrics;
use qunimbus_core::time::now_micros;
use qunimbus_ledger::checkpoint::note_body;
use qunimbus_storage::{StorageError, Store, TimestampOutcome};
use qunimbus_timestamp::{
    build_request, generate_authority, token_from_response, verify_response, Authority,
    TrustAnchors,
};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{watch, Notify};

/// Folder of the generated built-in TSA inside the data dir.
pub const TSA_DIR: &str = "tsa";
/// The built-in TSA's private key (PKCS#8 PEM, mode 0600).
pub const TSA_KEY_FILE: &str = "tsa.key";
/// Its certificate chain (PEM, TSA certificate first).
pub const TSA_CHAIN_FILE: &str = "chain.pem";
/// Its root certificate alone (the trust anchor to give verifiers).
pub const TSA_ROOT_FILE: &str = "root.pem";

/// Problems setting up time-stamping.
#[derive(Debug, Error)]
pub enum TsaError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Keys or certificates are unusable.
    #[error("{what}: {message}")]
    Invalid {
        /// Which file or setting.
        what: String,
        /// Why.
        message: String,
    },
    /// `tsa init` would overwrite an existing TSA.
    #[error("{0} already exists; remove it first to create a new TSA")]
    Exists(PathBuf),
}

fn read(path: &Path) -> Result<String, TsaError> {
    std::fs::read_to_string(path).map_err(|source| TsaError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Where `qunimbus tsa init` put the files.
#[derive(Debug, Clone)]
pub struct TsaFiles {
    /// Private key.
    pub key: PathBuf,
    /// Chain, TSA certificate first.
    pub chain: PathBuf,
    /// Root certificate.
    pub root: PathBuf,
}

/// Creates a root CA and a TSA certificate (ECDSA P-256, ten years) in
/// `DATA_DIR/tsa/`. Refuses to overwrite an existing key.
pub fn init_files(data_dir: &Path, name: &str) -> Result<TsaFiles, TsaError> {
    let dir = data_dir.join(TSA_DIR);
    let files = TsaFiles {
        key: dir.join(TSA_KEY_FILE),
        chain: dir.join(TSA_CHAIN_FILE),
        root: dir.join(TSA_ROOT_FILE),
    };
    if files.key.exists() {
        return Err(TsaError::Exists(files.key));
    }
    std::fs::create_dir_all(&dir).map_err(|source| TsaError::Io {
        path: dir.clone(),
        source,
    })?;
    let not_before = now_micros().timestamp() - 60;
    let generated = generate_authority(
        &format!("{name} root CA"),
        &format!("{name} TSA"),
        not_before,
        3650,
    )
    .map_err(|e| TsaError::Invalid {
        what: "generating the TSA".into(),
        message: e.to_string(),
    })?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TsaError::Io { path, source }
    };
    crate::credentials::write_private(&files.key, &generated.tsa_key_pem)
        .map_err(io(&files.key))?;
    std::fs::write(&files.chain, &generated.chain_pem).map_err(io(&files.chain))?;
    std::fs::write(&files.root, &generated.root_cert_pem).map_err(io(&files.root))?;
    Ok(files)
}

/// Loads the built-in TSA from `tsa.key_file`/`tsa.chain_file`, or from
/// `DATA_DIR/tsa/`, generating it there on first start.
pub fn load_authority(
    config: &TsaConfig,
    data_dir: &Path,
    name: &str,
) -> Result<Authority, TsaError> {
    let (key, chain) = match (&config.key_file, &config.chain_file) {
        (Some(key), Some(chain)) => (key.clone(), chain.clone()),
        _ => {
            let dir = data_dir.join(TSA_DIR);
            let key = dir.join(TSA_KEY_FILE);
            if !key.exists() {
                let files = init_files(data_dir, name)?;
                tracing::info!(key = %files.key.display(), root = %files.root.display(), "generated the built-in TSA");
            }
            (key, dir.join(TSA_CHAIN_FILE))
        }
    };
    Authority::from_pem(&read(&key)?, &read(&chain)?).map_err(|e| TsaError::Invalid {
        what: format!("{} / {}", key.display(), chain.display()),
        message: e.to_string(),
    })
}

/// Reads PEM trust anchors.
pub fn load_anchors(path: &Path) -> Result<TrustAnchors, TsaError> {
    let anchors = TrustAnchors::from_pem(&read(path)?).map_err(|e| TsaError::Invalid {
        what: path.display().to_string(),
        message: e.to_string(),
    })?;
    if anchors.is_empty() {
        return Err(TsaError::Invalid {
            what: path.display().to_string(),
            message: "no certificates".into(),
        });
    }
    Ok(anchors)
}

/// SHA-256 of a checkpoint's body (the signed text, without the signature
/// lines): the RFC 3161 imprint of its token.
pub fn checkpoint_digest(note: &str) -> Option<[u8; 32]> {
    note_body(note).map(|body| Sha256::digest(body.as_bytes()).into())
}

/// Where checkpoint tokens come from.
pub enum Stamper {
    /// The node's own TSA.
    BuiltIn {
        /// The authority.
        authority: Arc<Authority>,
        /// Its root, to verify what it issued.
        anchors: TrustAnchors,
    },
    /// An RFC 3161 TSA over HTTP.
    External {
        /// Its URL.
        url: String,
        /// HTTP client with the configured timeout.
        client: reqwest::Client,
        /// Roots its tokens must chain to.
        anchors: TrustAnchors,
    },
}

impl Stamper {
    /// The stamper the configuration asks for.
    pub fn from_config(config: &TsaConfig, authority: Arc<Authority>) -> Result<Self, TsaError> {
        match (&config.url, &config.roots_file) {
            (Some(url), Some(roots)) => Ok(Self::External {
                url: url.clone(),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_millis(config.timeout_ms))
                    .build()
                    .map_err(|e| TsaError::Invalid {
                        what: "tsa.url".into(),
                        message: e.to_string(),
                    })?,
                anchors: load_anchors(roots)?,
            }),
            _ => {
                let anchors = TrustAnchors::from_pem(&authority.root_pem()).map_err(|e| {
                    TsaError::Invalid {
                        what: "built-in TSA root".into(),
                        message: e.to_string(),
                    }
                })?;
                Ok(Self::BuiltIn { authority, anchors })
            }
        }
    }

    /// The roots that checkpoint tokens are verified against.
    pub fn anchors(&self) -> &TrustAnchors {
        match self {
            Self::BuiltIn { anchors, .. } | Self::External { anchors, .. } => anchors,
        }
    }

    /// A name for where tokens come from.
    pub fn source(&self) -> String {
        match self {
            Self::BuiltIn { .. } => "built-in".into(),
            Self::External { url, .. } => url.clone(),
        }
    }

    /// Requests a token over `digest` and verifies it completely (status,
    /// imprint, nonce, signature, signing certificate, chain, EKU, time)
    /// before returning it.
    pub async fn stamp(&self, digest: &[u8; 32]) -> Result<Vec<u8>, String> {
        let request = build_request(digest).map_err(|e| format!("building the request: {e}"))?;
        let response = match self {
            Self::BuiltIn { authority, .. } => authority.respond(
                &request.der,
                now_micros().timestamp_micros(),
                random_serial(),
            ),
            Self::External { url, client, .. } => {
                let reply = client
                    .post(url)
                    .header("content-type", "application/timestamp-query")
                    .body(request.der.clone())
                    .send()
                    .await
                    .map_err(|e| format!("TSA request failed: {e}"))?;
                if !reply.status().is_success() {
                    return Err(format!("TSA answered HTTP {}", reply.status()));
                }
                read_reply(reply).await?
            }
        };
        verify_response(&response, digest, Some(&request.nonce), self.anchors())
            .map_err(|e| format!("TSA response rejected: {e}"))?;
        token_from_response(&response).map_err(|e| format!("TSA response has no token: {e}"))
    }
}

/// Largest TSA reply read: a token with its certificate chain is a few KB.
const MAX_REPLY_BYTES: usize = 256 * 1024;

/// Reads a TSA reply of at most [`MAX_REPLY_BYTES`], refusing a bigger one
/// as it arrives (a hostile TSA cannot make the node buffer without limit).
async fn read_reply(mut reply: reqwest::Response) -> Result<Vec<u8>, String> {
    if reply
        .content_length()
        .is_some_and(|n| n > MAX_REPLY_BYTES as u64)
    {
        return Err(format!("TSA reply larger than {MAX_REPLY_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = reply
        .chunk()
        .await
        .map_err(|e| format!("reading the TSA reply: {e}"))?
    {
        if body.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(format!("TSA reply larger than {MAX_REPLY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A random positive serial number for a token (126 bits).
pub fn random_serial() -> u128 {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    u128::from_be_bytes(bytes) >> 2
}

/// Pending checkpoints fetched per pass.
const PASS_SIZE: u32 = 100;

/// Obtains a token for every checkpoint that lacks one, oldest first, until
/// `stop`. Woken by `wake` after each new checkpoint; a failing TSA is retried
/// with exponential backoff between `retry_initial` and `retry_max`. Appends
/// and checkpoint signing never wait for this task.
pub async fn run_timestamper(
    store: Arc<Store>,
    stamper: Arc<Stamper>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    retry_initial: Duration,
    retry_max: Duration,
) {
    let mut delay = retry_initial;
    loop {
        let (failed, more) = match stamp_pending(&store, &stamper, &metrics).await {
            Ok(pass) => pass,
            Err(e) => {
                tracing::error!(error = %e, "reading pending checkpoints failed");
                (true, false)
            }
        };
        if let Ok(pending) = store.reader().pending_timestamp_count().await {
            metrics
                .ledger
                .tsa_pending
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
        }
        if more && !failed {
            continue;
        }
        let wait = if failed {
            let wait = delay;
            delay = (delay * 2).min(retry_max);
            tokio::time::sleep(wait)
        } else {
            delay = retry_initial;
            tokio::time::sleep(Duration::from_secs(3600))
        };
        tokio::select! {
            () = wait => {}
            () = wake.notified(), if !failed => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

/// One pass over the pending checkpoints: (a request failed, more may be pending).
async fn stamp_pending(
    store: &Store,
    stamper: &Stamper,
    metrics: &Metrics,
) -> Result<(bool, bool), StorageError> {
    let pending = store
        .reader()
        .checkpoint_timestamps(0, PASS_SIZE, true)
        .await?;
    let more = pending.len() as u32 == PASS_SIZE;
    for checkpoint in pending {
        let Some(digest) = checkpoint_digest(&checkpoint.note) else {
            let outcome = TimestampOutcome::Failed {
                error: "stored checkpoint note has no body".into(),
            };
            store.save_timestamp(checkpoint.size, outcome).await?;
            metrics.ledger.tsa_failures.inc();
            return Ok((true, more));
        };
        match stamper.stamp(&digest).await {
            Ok(token) => {
                let outcome = TimestampOutcome::Token {
                    token,
                    source: stamper.source(),
                };
                store.save_timestamp(checkpoint.size, outcome).await?;
                metrics.ledger.tsa_tokens.inc();
            }
            Err(error) => {
                tracing::warn!(size = checkpoint.size, %error, attempts = checkpoint.attempts + 1, "checkpoint time-stamp pending");
                store
                    .save_timestamp(checkpoint.size, TimestampOutcome::Failed { error })
                    .await?;
                metrics.ledger.tsa_failures.inc();
                return Ok((true, more));
            }
        }
    }
    Ok((false, more))
}
