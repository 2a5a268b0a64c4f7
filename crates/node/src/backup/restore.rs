//! Restore: a backup verified and unpacked into a private staging dir
//! beside the target, then renamed into place, so a refused or failed
//! restore leaves the target as it was and nothing behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use qunimbus_ledger::block::BlockKind;
use qunimbus_ledger::checkpoint::NoteVerifier;
use qunimbus_ledger::hex::sha256_hex;
use qunimbus_storage::backup::{self as files, BackupFile};
use qunimbus_storage::{DbTarget, Store, StoreOptions};

use super::{
    io, is_carried_path, verify_file, BackupError, BackupReport, Manifest, DATABASE_FILE, FORMAT,
};
use crate::ledger::genesis_block;

/// The backup's manifest and carried files, checked against each other.
fn open_backup(db: &Path, from: &Path) -> Result<(Manifest, Vec<BackupFile>), BackupError> {
    let (text, carried) = files::read_backup(db)?;
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
    let listed: BTreeSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    let held: BTreeSet<&str> = carried.iter().map(|f| f.path.as_str()).collect();
    if listed != held || listed.len() != manifest.files.len() {
        return Err(BackupError::Malformed(format!(
            "{}: the files it carries are not the ones its manifest lists once each",
            from.display()
        )));
    }
    if let Some(bad) = carried.iter().find(|f| !is_carried_path(&f.path)) {
        return Err(BackupError::Malformed(format!(
            "{}: it carries {:?}, which no backup carries; nothing was restored",
            from.display(),
            bad.path
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

/// Writes a carried file with its mode from its creation (a key is never
/// readable by others), in private directories.
fn write_carried(dir: &Path, file: &BackupFile) -> Result<(), BackupError> {
    let path = dir.join(&file.path);
    if let Some(parent) = path.parent() {
        crate::create_private_dir(parent).map_err(io(parent))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(file.mode & 0o777);
    }
    use std::io::Write;
    options
        .open(&path)
        .and_then(|mut f| f.write_all(&file.content).and_then(|()| f.sync_all()))
        .map_err(io(&path))
}

/// A private staging dir beside `data_dir` (same file system, so the final
/// rename is atomic).
fn staging_dir(data_dir: &Path) -> Result<PathBuf, BackupError> {
    let name = data_dir.file_name().ok_or_else(|| {
        BackupError::Malformed(format!("{} names no directory", data_dir.display()))
    })?;
    let staging = data_dir.with_file_name(format!(
        ".{}.restoring-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    if staging.exists() {
        return Err(BackupError::Malformed(format!(
            "{} exists: another restore is running, or one was interrupted (remove it)",
            staging.display()
        )));
    }
    if let Some(parent) = staging.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    crate::create_private_dir(&staging).map_err(io(&staging))?;
    Ok(staging)
}

/// Restores the backup `from` into the empty (or absent) `data_dir`. The
/// copy is verified before it is used: the ledger against `expect` (else
/// the key the backup names), the checkpoint against the manifest, each
/// carried file against its digest and the list of files a backup can
/// carry. Then its files are unpacked and a `restore` block names the
/// backup's checkpoint, attesting the frameworks its newest block names.
pub async fn restore(
    from: &Path,
    data_dir: &Path,
    expect: Option<&NoteVerifier>,
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    require_empty(data_dir)?;
    let staging = staging_dir(data_dir)?;
    let restored = match unpack(from, &staging, expect).await {
        Ok(report) => {
            // An existing empty data dir is replaced by the rename.
            std::fs::rename(&staging, data_dir)
                .map_err(io(data_dir))
                .map(|()| report)
        }
        Err(e) => Err(e),
    };
    if restored.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    let (manifest, restore_block) = restored?;
    let bytes = std::fs::metadata(from).map_err(io(from))?.len();
    Ok(BackupReport {
        manifest,
        bytes,
        took: started.elapsed(),
        key_given: expect.is_some(),
        restore_block: Some(restore_block),
    })
}

/// Copies `from` into `staging`, verifies that copy and unpacks it there.
async fn unpack(
    from: &Path,
    staging: &Path,
    expect: Option<&NoteVerifier>,
) -> Result<(Manifest, u64), BackupError> {
    let db = staging.join(DATABASE_FILE);
    std::fs::copy(from, &db).map_err(io(&db))?;
    let (manifest, carried) = open_backup(&db, from)?;
    let verifier = match expect {
        Some(v) => v.clone(),
        None => NoteVerifier::from_vkey(&manifest.public_key)
            .map_err(|e| BackupError::Malformed(format!("the manifest's public key: {e}")))?,
    };
    let (_, checkpoint) = verify_file(&db, from, &verifier).await?;
    if checkpoint.size != manifest.tree_size || checkpoint.note != manifest.checkpoint {
        return Err(BackupError::Malformed(format!(
            "{}: its newest checkpoint (size {}) is not the one its manifest names (size {})",
            from.display(),
            checkpoint.size,
            manifest.tree_size
        )));
    }
    files::strip_backup_tables(&db)?;
    for file in &carried {
        write_carried(staging, file)?;
    }
    let restore_block = record_restore(&db, &manifest, from).await?;
    std::fs::File::open(&db)
        .and_then(|f| f.sync_all())
        .map_err(io(&db))?;
    Ok((manifest, restore_block))
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
    appended?
        .first()
        .map(|b| b.index)
        .ok_or_else(|| BackupError::Malformed("the store appended no restore block".into()))
}
