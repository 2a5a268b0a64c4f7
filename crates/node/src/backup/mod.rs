//! Backup and restore of a node's SQLite store (issue 19). A backup is one
//! SQLite file: a consistent online copy of the database (taken while the
//! node runs) carrying the data-dir files a node needs to come back and a
//! manifest naming the ledger's signed checkpoint. It is verified before it
//! is reported, and a restore verifies it again, against the key the
//! operator expects, before anything is written. A restored store gets a
//! `restore` block naming the backup's checkpoint: the log continues from
//! that checkpoint (never forking it) and an auditor sees the gap.
//!
//! PostgreSQL stores are backed up with `pg_dump`/`pg_restore` (README).
//! The node's own backups (scheduled, and `POST /v1/admin/backup`) are in
//! [`service`].

mod restore;
mod service;

pub use restore::restore;
pub use service::{run_schedule, Backups, TakenBackup, BACKUP_PREFIX};

use qunimbus_ledger::hex::sha256_hex;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_ledger::checkpoint::{NoteSigner, NoteVerifier};
use qunimbus_storage::backup::{self as files, BackupFile};
use qunimbus_storage::{DbTarget, Reader, StorageError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ledger::{verify_ledger, SignatureCheck, SIGNING_KEY_FILE};

/// The manifest format this build writes and reads.
pub const FORMAT: &str = "qunimbus-backup/1";

/// The database file of a data dir.
pub const DATABASE_FILE: &str = "qunimbus.db";

/// Why a backup or restore did nothing.
#[derive(Debug, Error)]
pub enum BackupError {
    /// Reading or writing the store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A data-dir file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The ledger does not verify (the copy is not kept, or not restored).
    #[error("the ledger in {file} does not verify: block {index}: {reason}")]
    Unverified {
        /// The backup (or copy).
        file: PathBuf,
        /// The first bad block.
        index: u64,
        /// Why.
        reason: String,
    },
    /// No signed checkpoint, or not one signed by the expected key.
    #[error("{0}")]
    Unsigned(String),
    /// The data dir to restore into is not empty.
    #[error("{dir} is not empty (it holds {entries}); restore only into an empty data dir")]
    NotEmpty {
        /// The data dir.
        dir: PathBuf,
        /// What is there.
        entries: String,
    },
    /// The backup file is not a backup this build reads.
    #[error("{0}")]
    Malformed(String),
    /// The node is taking a backup already.
    #[error("a backup is running already; try again when it has finished")]
    Busy,
    /// The node's store is not SQLite.
    #[error("the store is PostgreSQL: back it up with pg_dump (README, Backup and restore)")]
    NotSqlite,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// What a backup carries besides the database.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackupOptions {
    /// The ledger signing key and the built-in TSA's key and chain (kept 0600).
    pub include_keys: bool,
    /// `credentials.toml` (the node's tokens).
    pub include_credentials: bool,
}

/// One carried file as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManifestFile {
    /// Path relative to the data dir.
    pub path: String,
    /// Unix permission bits.
    pub mode: u32,
    /// SHA-256 of its bytes (hex).
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What a backup says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// When the copy was verified (RFC 3339 UTC µs).
    pub created_at: String,
    /// The node version that wrote it.
    pub qunimbus_version: String,
    /// Blocks in the copy.
    pub blocks: u64,
    /// The newest signed checkpoint's tree size.
    pub tree_size: u64,
    /// Its root hash (hex).
    pub root: String,
    /// The signed checkpoint note.
    pub checkpoint: String,
    /// The note verifier key the backup's checkpoint was verified with.
    pub public_key: String,
    /// The carried files.
    pub files: Vec<ManifestFile>,
}

/// What a backup or restore did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// The backup file's size in bytes.
    pub bytes: u64,
    /// How long it took.
    pub took: Duration,
    /// Whether the checkpoint was checked against a key the caller gave
    /// (`false`: the key came from the data dir or the backup itself).
    pub key_given: bool,
    /// The `restore` block (restores only).
    pub restore_block: Option<u64>,
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

/// Reads `rel` (a file, or every file under a directory) of `data_dir`.
fn collect(data_dir: &Path, rel: &str, out: &mut Vec<BackupFile>) -> Result<(), BackupError> {
    let path = data_dir.join(rel);
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(());
    };
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(&path)
            .map_err(io(&path))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        for name in entries {
            collect(data_dir, &format!("{rel}/{name}"), out)?;
        }
        return Ok(());
    }
    out.push(BackupFile {
        path: rel.to_string(),
        mode: mode_of(&meta),
        content: std::fs::read(&path).map_err(io(&path))?,
    });
    Ok(())
}

/// The policy file, always carried.
const POLICY_FILE: &str = "policy.cedar";
/// The agent's recordings, always carried.
const AGENT_DIR: &str = "agent";
/// The built-in TSA's key and chain, carried with the keys.
const TSA_DIR: &str = "tsa";

/// The data-dir files a backup carries.
fn data_dir_files(data_dir: &Path, options: BackupOptions) -> Result<Vec<BackupFile>, BackupError> {
    let mut out = Vec::new();
    collect(data_dir, POLICY_FILE, &mut out)?;
    collect(data_dir, AGENT_DIR, &mut out)?;
    if options.include_keys {
        collect(data_dir, SIGNING_KEY_FILE, &mut out)?;
        collect(data_dir, TSA_DIR, &mut out)?;
    }
    if options.include_credentials {
        collect(data_dir, crate::credentials::CREDENTIALS_FILE, &mut out)?;
    }
    Ok(out)
}

/// Whether `path` is one [`data_dir_files`] can carry: a restore writes no
/// other (not the database, its journal, or anything outside the data dir).
fn is_carried_path(path: &str) -> bool {
    let plain = !path.is_empty()
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    let in_dir = |dir: &str| {
        path.strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
    };
    plain
        && ([
            POLICY_FILE,
            SIGNING_KEY_FILE,
            crate::credentials::CREDENTIALS_FILE,
        ]
        .contains(&path)
            || in_dir(AGENT_DIR)
            || in_dir(TSA_DIR))
}

/// The ledger's verifier: the one given, else the data dir's signing key's.
fn verifier_of(
    data_dir: &Path,
    given: Option<&NoteVerifier>,
) -> Result<Option<NoteVerifier>, BackupError> {
    if let Some(v) = given {
        return Ok(Some(v.clone()));
    }
    let path = data_dir.join(SIGNING_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => NoteSigner::from_skey(text.trim())
            .map(|s| Some(s.verifier()))
            .map_err(|e| BackupError::Malformed(format!("{}: {e}", path.display()))),
        Err(_) => Ok(None),
    }
}

/// Verifies the ledger in the SQLite file `db` (named `label` in errors)
/// with `verifier`, requiring a checkpoint signed by it; returns the block
/// count and that checkpoint.
async fn verify_file(
    db: &Path,
    label: &Path,
    verifier: &NoteVerifier,
) -> Result<(u64, qunimbus_storage::CheckpointRecord), BackupError> {
    let reader = Reader::open(&DbTarget::Sqlite(db.to_path_buf()), 2).await?;
    let checked = async {
        let report = verify_ledger(&reader, Some(verifier), |_| {}).await?;
        let checkpoint = reader.latest_checkpoint().await?;
        Ok::<_, BackupError>((report, checkpoint))
    }
    .await;
    reader.close().await;
    let (report, checkpoint) = checked?;
    if let Some(f) = report.failure {
        return Err(BackupError::Unverified {
            file: label.to_path_buf(),
            index: f.index,
            reason: f.reason,
        });
    }
    match (checkpoint, report.signature) {
        (Some(c), Some(SignatureCheck::Verified)) => Ok((report.blocks_checked, c)),
        (None, _) => Err(BackupError::Unsigned(format!(
            "{} holds no signed checkpoint",
            label.display()
        ))),
        (Some(_), _) => Err(BackupError::Unsigned(format!(
            "the checkpoint in {} is not signed by the key {}",
            label.display(),
            verifier.name()
        ))),
    }
}

/// Backs up the SQLite store of `data_dir` (database `db`) to `out` while
/// the node may keep running: the copy is verified (the ledger against its
/// newest checkpoint, signed by `expect` or the data dir's key) before it
/// is moved to `out`. `progress(bytes, of)` follows the copy.
pub async fn backup(
    data_dir: &Path,
    db: &Path,
    out: &Path,
    options: BackupOptions,
    expect: Option<&NoteVerifier>,
    progress: impl FnMut(u64, u64) + Send + 'static,
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    let verifier = verifier_of(data_dir, expect)?.ok_or_else(|| {
        BackupError::Unsigned(format!(
            "no key to verify the checkpoint with: {} has no {SIGNING_KEY_FILE}; give the published verifier key",
            data_dir.display()
        ))
    })?;
    if out.exists() {
        return Err(BackupError::Malformed(format!(
            "{} already exists; a backup never overwrites a file",
            out.display()
        )));
    }
    // The snapshot creates it, 0600 from the first byte; an existing one
    // (another backup running, or one a crash interrupted) is not touched.
    let partial = out.with_extension("partial");
    if partial.exists() {
        return Err(BackupError::Malformed(format!(
            "{} exists: another backup is writing it, or one was interrupted (remove it)",
            partial.display()
        )));
    }
    let (source, copy) = (db.to_path_buf(), partial.clone());
    let result = match tokio::task::spawn_blocking(move || {
        files::snapshot(&source, &copy, progress)
    })
    .await
    {
        Ok(Ok(())) => finish_backup(data_dir, &partial, out, options, &verifier).await,
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(BackupError::Malformed(format!("the copy task failed: {e}"))),
    };
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let (manifest, bytes) = result?;
    Ok(BackupReport {
        manifest,
        bytes,
        took: started.elapsed(),
        key_given: expect.is_some(),
        restore_block: None,
    })
}

async fn finish_backup(
    data_dir: &Path,
    partial: &Path,
    out: &Path,
    options: BackupOptions,
    verifier: &NoteVerifier,
) -> Result<(Manifest, u64), BackupError> {
    let (blocks, checkpoint) = verify_file(partial, out, verifier).await?;
    let carried = data_dir_files(data_dir, options)?;
    let manifest = Manifest {
        format: FORMAT.into(),
        created_at: rfc3339_micros(now_micros()),
        qunimbus_version: env!("CARGO_PKG_VERSION").into(),
        blocks,
        tree_size: checkpoint.size,
        root: qunimbus_ledger::hex::encode(&checkpoint.root),
        checkpoint: checkpoint.note,
        public_key: verifier.to_vkey(),
        files: carried
            .iter()
            .map(|f| ManifestFile {
                path: f.path.clone(),
                mode: f.mode,
                sha256: sha256_hex(&f.content),
                bytes: f.content.len() as u64,
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| BackupError::Malformed(format!("manifest: {e}")))?;
    files::attach_files(partial, &text, &carried)?;
    std::fs::rename(partial, out).map_err(io(out))?;
    let bytes = std::fs::metadata(out).map_err(io(out))?.len();
    Ok((manifest, bytes))
}
