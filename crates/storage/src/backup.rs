//! Online backups of a SQLite store. The copy is taken with `VACUUM INTO`:
//! one read transaction, so it is consistent while the node keeps writing
//! (the writer is never blocked; WAL readers and writers do not wait for
//! each other). The data-dir files a node needs to come back travel inside
//! the copy, in two tables of the backup's own (`backup_manifest`,
//! `backup_files`), so a backup is one SQLite file that `qunimbus ledger
//! verify --database-url sqlite:FILE` reads as it is.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags};

use crate::StorageError;

/// A file of the data dir carried in a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFile {
    /// Its path relative to the data dir (`/`-separated).
    pub path: String,
    /// Its Unix permission bits (0600 for keys).
    pub mode: u32,
    /// Its bytes.
    pub content: Vec<u8>,
}

fn backup_error(what: &str) -> impl Fn(rusqlite::Error) -> StorageError + '_ {
    move |e| StorageError::Backup(format!("{what}: {e}"))
}

/// Copies the SQLite database `db` to `out` (which must not exist) as one
/// consistent snapshot, calling `progress(bytes written, bytes expected)`
/// about ten times a second while it runs.
pub fn snapshot(
    db: &Path,
    out: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<(), StorageError> {
    if !db.exists() {
        return Err(StorageError::Missing(db.display().to_string()));
    }
    create_private_empty(out)?;
    let target = out
        .to_str()
        .ok_or_else(|| StorageError::Backup(format!("{} is not valid UTF-8", out.display())))?
        .to_string();
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(backup_error("opening the database"))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(backup_error("setting the busy timeout"))?;
    let pages: u64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(backup_error("reading the page count"))?;
    let page_size: u64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(backup_error("reading the page size"))?;
    let expected = pages * page_size;
    let done = AtomicBool::new(false);
    let copied = std::thread::scope(|scope| {
        let done = &done;
        let copy = scope.spawn(move || {
            let result = conn.execute("VACUUM INTO ?1", params![target]);
            done.store(true, Ordering::SeqCst);
            result
        });
        while !done.load(Ordering::SeqCst) {
            let written = std::fs::metadata(out).map_or(0, |m| m.len());
            progress(written.min(expected), expected);
            std::thread::sleep(Duration::from_millis(100));
        }
        copy.join()
    });
    match copied {
        Ok(result) => result.map_err(backup_error("VACUUM INTO"))?,
        Err(_) => return Err(StorageError::Backup("the copy thread panicked".into())),
    };
    progress(expected, expected);
    Ok(())
}

/// Creates `out` empty and readable by its owner only (0600) before
/// `VACUUM INTO` fills it, so the copy of every run is never readable by
/// others, not even while it is written; an existing file is refused.
fn create_private_empty(out: &Path) -> Result<(), StorageError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(out) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(StorageError::Backup(format!(
                "{} already exists; a backup never overwrites a file",
                out.display()
            )))
        }
        Err(source) => Err(StorageError::File {
            path: out.display().to_string(),
            source,
        }),
    }
}

/// Adds the manifest (JSON text) and the data-dir `files` to the backup
/// copy `out`, in one transaction.
pub fn attach_files(out: &Path, manifest: &str, files: &[BackupFile]) -> Result<(), StorageError> {
    let mut conn = Connection::open_with_flags(out, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(backup_error("opening the copy"))?;
    let tx = conn.transaction().map_err(backup_error("starting"))?;
    tx.execute_batch(
        "CREATE TABLE backup_manifest (id INTEGER PRIMARY KEY CHECK (id = 1), manifest TEXT NOT NULL);
         CREATE TABLE backup_files (path TEXT PRIMARY KEY, mode INTEGER NOT NULL, content BLOB NOT NULL);",
    )
    .map_err(backup_error("creating the backup tables"))?;
    tx.execute(
        "INSERT INTO backup_manifest (id, manifest) VALUES (1, ?1)",
        params![manifest],
    )
    .map_err(backup_error("writing the manifest"))?;
    for file in files {
        tx.execute(
            "INSERT INTO backup_files (path, mode, content) VALUES (?1, ?2, ?3)",
            params![file.path, file.mode, file.content],
        )
        .map_err(backup_error("writing a file"))?;
    }
    tx.commit().map_err(backup_error("committing"))
}

/// The manifest and files of the backup `path`.
pub fn read_backup(path: &Path) -> Result<(String, Vec<BackupFile>), StorageError> {
    if !path.exists() {
        return Err(StorageError::Missing(path.display().to_string()));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(backup_error("opening the backup"))?;
    let manifest: String = conn
        .query_row(
            "SELECT manifest FROM backup_manifest WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .map_err(|e| {
            StorageError::Backup(format!(
                "{} is not a QuNimbus backup (no manifest: {e})",
                path.display()
            ))
        })?;
    let mut statement = conn
        .prepare("SELECT path, mode, content FROM backup_files ORDER BY path")
        .map_err(backup_error("reading the files"))?;
    let files = statement
        .query_map([], |r| {
            Ok(BackupFile {
                path: r.get(0)?,
                mode: r.get(1)?,
                content: r.get(2)?,
            })
        })
        .map_err(backup_error("reading the files"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backup_error("reading a file"))?;
    Ok((manifest, files))
}

/// Turns a copy of a backup into a node's database: drops the backup's
/// own tables.
pub fn strip_backup_tables(db: &Path) -> Result<(), StorageError> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(backup_error("opening the restored database"))?;
    conn.execute_batch("DROP TABLE backup_files; DROP TABLE backup_manifest;")
        .map_err(backup_error("dropping the backup tables"))
}
