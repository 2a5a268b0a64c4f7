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

mod service;

pub use service::{run_schedule, Backups, TakenBackup, BACKUP_PREFIX};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_ledger::block::BlockKind;
use qunimbus_ledger::checkpoint::{NoteSigner, NoteVerifier};
use qunimbus_storage::backup::{self as files, BackupFile};
use qunimbus_storage::{DbTarget, Reader, StorageError, Store, StoreOptions};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ledger::{genesis_block, verify_ledger, SignatureCheck, SIGNING_KEY_FILE};

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
    /// The ledger's public key (note verifier key), when the data dir held
    /// the signing key.
    pub public_key: Option<String>,
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

fn sha256_hex(bytes: &[u8]) -> String {
    qunimbus_ledger::hex::encode(&qunimbus_ledger::merkle::sha256(bytes))
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

/// Restricts `path` to its owner (0600).
fn make_private(path: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    }
    Ok(())
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

/// The data-dir files a backup carries.
fn data_dir_files(data_dir: &Path, options: BackupOptions) -> Result<Vec<BackupFile>, BackupError> {
    let mut out = Vec::new();
    collect(data_dir, "policy.cedar", &mut out)?;
    collect(data_dir, "agent", &mut out)?;
    if options.include_keys {
        collect(data_dir, SIGNING_KEY_FILE, &mut out)?;
        collect(data_dir, "tsa", &mut out)?;
    }
    if options.include_credentials {
        collect(data_dir, crate::credentials::CREDENTIALS_FILE, &mut out)?;
    }
    Ok(out)
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

/// Verifies the ledger in the SQLite file `db` with `verifier`, requiring a
/// checkpoint signed by it; returns the block count and that checkpoint.
async fn verify_file(
    db: &Path,
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
            file: db.to_path_buf(),
            index: f.index,
            reason: f.reason,
        });
    }
    match (checkpoint, report.signature) {
        (Some(c), Some(SignatureCheck::Verified)) => Ok((report.blocks_checked, c)),
        (None, _) => Err(BackupError::Unsigned(format!(
            "{} holds no signed checkpoint",
            db.display()
        ))),
        (Some(_), _) => Err(BackupError::Unsigned(format!(
            "the checkpoint in {} is not signed by the key {}",
            db.display(),
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
    let partial = out.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let (source, copy) = (db.to_path_buf(), partial.clone());
    tokio::task::spawn_blocking(move || files::snapshot(&source, &copy, progress))
        .await
        .map_err(|e| BackupError::Malformed(format!("the copy task failed: {e}")))??;
    // The copy holds every run (and, with --include-keys, the keys): as
    // private as the database itself, before anything is added to it.
    let result = match make_private(&partial) {
        Ok(()) => finish_backup(data_dir, &partial, out, options, &verifier).await,
        Err(e) => Err(e),
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
    let (blocks, checkpoint) = verify_file(partial, verifier).await?;
    let carried = data_dir_files(data_dir, options)?;
    let manifest = Manifest {
        format: FORMAT.into(),
        created_at: rfc3339_micros(now_micros()),
        qunimbus_version: env!("CARGO_PKG_VERSION").into(),
        blocks,
        tree_size: checkpoint.size,
        root: qunimbus_ledger::hex::encode(&checkpoint.root),
        checkpoint: checkpoint.note,
        public_key: Some(verifier.to_vkey()),
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

/// The backup's manifest and carried files, checked against each other.
fn open_backup(from: &Path) -> Result<(Manifest, Vec<BackupFile>), BackupError> {
    let (text, carried) = files::read_backup(from)?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| BackupError::Malformed(format!("{}: bad manifest: {e}", from.display())))?;
    if manifest.format != FORMAT {
        return Err(BackupError::Malformed(format!(
            "{} is a {:?} backup; this build reads {FORMAT}",
            from.display(),
            manifest.format
        )));
    }
    for listed in &manifest.files {
        let file = carried.iter().find(|f| f.path == listed.path);
        if file.is_none_or(|f| sha256_hex(&f.content) != listed.sha256) {
            return Err(BackupError::Malformed(format!(
                "{}: the carried file {} does not match its manifest digest",
                from.display(),
                listed.path
            )));
        }
    }
    if carried.len() != manifest.files.len() {
        return Err(BackupError::Malformed(format!(
            "{}: it carries files its manifest does not list",
            from.display()
        )));
    }
    Ok((manifest, carried))
}

/// Refuses a data dir that exists and holds anything, naming what.
fn require_empty(dir: &Path) -> Result<(), BackupError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let shown = names.len().min(8);
    let mut entries = names[..shown].join(", ");
    if names.len() > shown {
        entries.push_str(&format!(" and {} more", names.len() - shown));
    }
    Err(BackupError::NotEmpty {
        dir: dir.to_path_buf(),
        entries,
    })
}

/// Writes a carried file with its mode.
fn write_carried(data_dir: &Path, file: &BackupFile) -> Result<(), BackupError> {
    let path = data_dir.join(&file.path);
    if file
        .path
        .split('/')
        .any(|part| part == ".." || part.is_empty())
    {
        return Err(BackupError::Malformed(format!(
            "the carried path {:?} leaves the data dir",
            file.path
        )));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(&path, &file.content).map_err(io(&path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))
            .map_err(io(&path))?;
    }
    Ok(())
}

/// Restores the backup `from` into the empty (or absent) `data_dir`: the
/// ledger is verified first (against `expect`, else the key the backup
/// names) and nothing is written unless it verifies; then the database and
/// carried files are put in place and a `restore` block names the backup's
/// checkpoint, attesting the frameworks the backup's newest block names.
pub async fn restore(
    from: &Path,
    data_dir: &Path,
    expect: Option<&NoteVerifier>,
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    require_empty(data_dir)?;
    let (manifest, carried) = open_backup(from)?;
    let verifier = match (expect, &manifest.public_key) {
        (Some(v), _) => v.clone(),
        (None, Some(key)) => NoteVerifier::from_vkey(key)
            .map_err(|e| BackupError::Malformed(format!("the manifest's public key: {e}")))?,
        (None, None) => {
            return Err(BackupError::Unsigned(
                "the backup names no public key; give the published verifier key".into(),
            ))
        }
    };
    let (_, checkpoint) = verify_file(from, &verifier).await?;
    if checkpoint.size != manifest.tree_size || checkpoint.note != manifest.checkpoint {
        return Err(BackupError::Malformed(format!(
            "{}: its newest checkpoint (size {}) is not the one its manifest names (size {})",
            from.display(),
            checkpoint.size,
            manifest.tree_size
        )));
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let db = data_dir.join(DATABASE_FILE);
    let staging = data_dir.join(format!("{DATABASE_FILE}.restoring"));
    std::fs::copy(from, &staging).map_err(io(&staging))?;
    files::strip_backup_tables(&staging)?;
    for file in &carried {
        write_carried(data_dir, file)?;
    }
    std::fs::File::open(&staging)
        .and_then(|f| f.sync_all())
        .map_err(io(&staging))?;
    std::fs::rename(&staging, &db).map_err(io(&db))?;
    let restore_block = record_restore(&db, &manifest, from).await?;
    let bytes = std::fs::metadata(from).map_err(io(from))?.len();
    Ok(BackupReport {
        manifest,
        bytes,
        took: started.elapsed(),
        key_given: expect.is_some(),
        restore_block: Some(restore_block),
    })
}

/// Appends the `restore` block to the restored store, with the compliance
/// frameworks of its newest block (the ones the old node recorded).
async fn record_restore(db: &Path, manifest: &Manifest, from: &Path) -> Result<u64, BackupError> {
    let defaults: Vec<String> = qunimbus_ledger::block::DEFAULT_FRAMEWORKS
        .iter()
        .map(|f| f.to_string())
        .collect();
    // The store is not empty, so this genesis is never written.
    let genesis =
        genesis_block(&defaults).map_err(|e| BackupError::Malformed(format!("genesis: {e}")))?;
    let store = Store::open(
        &DbTarget::Sqlite(db.to_path_buf()),
        StoreOptions::default(),
        genesis,
    )
    .await?;
    let appended = async {
        let newest = store.tree_head().size.saturating_sub(1);
        let frameworks: Vec<String> = match store.reader().block(newest).await? {
            Some(block) if !block.compliance_attestations.is_empty() => {
                block.compliance_attestations.into_keys().collect()
            }
            _ => defaults,
        };
        let draft = crate::ledger::event_draft(
            BlockKind::Restore,
            &frameworks,
            serde_json::json!({
                "backup_checkpoint": manifest.checkpoint,
                "backup_tree_size": manifest.tree_size,
                "backup_root": manifest.root,
                "backup_created_at": manifest.created_at,
                "backup_file": from.file_name().map(|n| n.to_string_lossy().into_owned()),
            }),
        );
        store.append_blocks(vec![draft]).await
    }
    .await;
    store.close().await;
    Ok(appended?.first().map_or(0, |b| b.index))
}
