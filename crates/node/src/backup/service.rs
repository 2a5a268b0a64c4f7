//! The node's own backups: taken on demand (`POST /v1/admin/backup`) or on
//! a schedule (`[backup] interval_secs`), into `[backup] dir`, one at a
//! time, keeping the newest `keep`. Every attempt is a metric, so a failing
//! schedule alerts (deploy/prometheus/alerts.yml, `BackupFailed`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use qunimbus_ledger::checkpoint::NoteVerifier;
use qunimbus_storage::DbTarget;
use tokio::sync::watch;

use super::{io, BackupError, BackupOptions, BackupReport};
use crate::config::{Config, ConfigError};
use crate::metrics::{Metrics, OutcomeLabel};
use crate::Node;

/// Every backup the node writes is named `qunimbus-backup-<UTC time>.db`;
/// rotation only ever deletes files named so.
pub const BACKUP_PREFIX: &str = "qunimbus-backup-";
const BACKUP_SUFFIX: &str = ".db";
const PARTIAL_SUFFIX: &str = ".partial";

/// After a failed scheduled backup the next attempt comes after the
/// interval or this, whichever is shorter.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);

/// The node's backup settings and the one-at-a-time turn.
pub struct Backups {
    data_dir: PathBuf,
    /// The SQLite database (`None`: the store is PostgreSQL).
    database: Option<PathBuf>,
    dir: PathBuf,
    keep: usize,
    /// What a backup carries unless the request says otherwise.
    pub defaults: BackupOptions,
    interval: Option<Duration>,
    running: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

/// A backup the node took.
#[derive(Debug)]
pub struct TakenBackup {
    /// The file written.
    pub path: PathBuf,
    /// What it holds and what it took.
    pub report: BackupReport,
    /// Older backups deleted by rotation (file names).
    pub removed: Vec<String>,
}

impl Backups {
    /// The settings of `config`; deletes copies a crash left half-written
    /// and seeds the last-success metric from the newest backup already in
    /// the backup dir.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<Self, ConfigError> {
        let database = match config.database()? {
            DbTarget::Sqlite(path) => Some(path),
            DbTarget::Postgres(_) => None,
        };
        let settings = &config.backup;
        metrics
            .backup
            .interval
            .set(i64::try_from(settings.interval_secs).unwrap_or(i64::MAX));
        let backups = Self {
            data_dir: config.data_dir.clone(),
            database,
            dir: settings.dir_for(&config.data_dir),
            keep: settings.keep,
            defaults: BackupOptions {
                include_keys: settings.include_keys,
                include_credentials: settings.include_credentials,
            },
            interval: (settings.interval_secs > 0)
                .then(|| Duration::from_secs(settings.interval_secs)),
            running: tokio::sync::Mutex::new(()),
            metrics,
        };
        // Before anything serves: no backup of this node can be running.
        backups.remove_partials();
        if let Some(written) = backups.newest_written() {
            backups.gauge_success(unix_secs(written));
        }
        Ok(backups)
    }

    /// The directory backups go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes a backup now into the backup dir (verified against
    /// `verifier`), then deletes the oldest beyond `keep`. Refuses while
    /// another runs ([`BackupError::Busy`]) and on PostgreSQL.
    pub async fn take(
        &self,
        verifier: &NoteVerifier,
        options: BackupOptions,
    ) -> Result<TakenBackup, BackupError> {
        let database = self.database.as_ref().ok_or(BackupError::NotSqlite)?;
        let _turn = self.running.try_lock().map_err(|_| BackupError::Busy)?;
        let result = self.take_now(database, verifier, options).await;
        self.observe(&result);
        result
    }

    async fn take_now(
        &self,
        database: &Path,
        verifier: &NoteVerifier,
        options: BackupOptions,
    ) -> Result<TakenBackup, BackupError> {
        crate::create_private_dir(&self.dir).map_err(io(&self.dir))?;
        let stamp = qunimbus_core::time::now_micros().format("%Y%m%dT%H%M%S%.6fZ");
        let path = self
            .dir
            .join(format!("{BACKUP_PREFIX}{stamp}{BACKUP_SUFFIX}"));
        let report = super::backup(
            &self.data_dir,
            database,
            &path,
            options,
            Some(verifier),
            |_, _| {},
        )
        .await?;
        let removed = self.rotate();
        Ok(TakenBackup {
            path,
            report,
            removed,
        })
    }

    fn observe(&self, result: &Result<TakenBackup, BackupError>) {
        let backup = &self.metrics.backup;
        let outcome = match result {
            Ok(taken) => {
                self.gauge_success(unix_secs(SystemTime::now()));
                backup
                    .last_duration
                    .get_or_create(&[])
                    .set(taken.report.took.as_secs_f64());
                backup
                    .last_bytes
                    .get_or_create(&[])
                    .set(i64::try_from(taken.report.bytes).unwrap_or(i64::MAX));
                "ok"
            }
            Err(BackupError::Busy | BackupError::NotSqlite) => return,
            Err(_) => {
                backup
                    .last_failure
                    .get_or_create(&[])
                    .set(unix_secs(SystemTime::now()));
                "failed"
            }
        };
        backup
            .backups
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }

    fn gauge_success(&self, at: f64) {
        self.metrics.backup.last_success.get_or_create(&[]).set(at);
    }

    /// The node's backups in the backup dir, oldest first (their names
    /// sort by time).
    fn on_disk(&self, suffix: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(BACKUP_PREFIX) && n.ends_with(suffix))
            .collect();
        names.sort();
        names
    }

    /// Deletes the oldest backups beyond `keep`; returns their names.
    fn rotate(&self) -> Vec<String> {
        let names = self.on_disk(BACKUP_SUFFIX);
        let excess = names.len().saturating_sub(self.keep);
        let mut removed = Vec::new();
        for name in names.into_iter().take(excess) {
            match std::fs::remove_file(self.dir.join(&name)) {
                Ok(()) => removed.push(name),
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "could not delete an old backup")
                }
            }
        }
        removed
    }

    /// When the newest backup in the backup dir was written.
    fn newest_written(&self) -> Option<SystemTime> {
        let name = self.on_disk(BACKUP_SUFFIX).pop()?;
        std::fs::metadata(self.dir.join(name))
            .and_then(|m| m.modified())
            .ok()
    }

    /// Deletes copies a crash left half-written (never a finished backup).
    fn remove_partials(&self) {
        for name in self.on_disk(PARTIAL_SUFFIX) {
            match std::fs::remove_file(self.dir.join(&name)) {
                Ok(()) => tracing::info!(file = %name, "deleted an unfinished backup"),
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "could not delete an unfinished backup")
                }
            }
        }
    }

    /// How long until the next scheduled backup: `interval` after the
    /// newest one on disk (at once when there is none).
    fn due_in(&self, interval: Duration) -> Duration {
        self.newest_written()
            .and_then(|at| (at + interval).duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::ZERO)
    }
}

impl Node {
    /// Takes a backup now into the backup dir (see [`Backups::take`]),
    /// verified against this node's own key.
    pub async fn take_backup(&self, options: BackupOptions) -> Result<TakenBackup, BackupError> {
        self.backups.take(&self.verifier, options).await
    }
}

fn unix_secs(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The backup schedule (a supervised task when `backup.interval_secs` > 0):
/// a backup every interval, counted from the newest one on disk so a
/// restart does not postpone it; after a failure it tries again sooner.
pub async fn run_schedule(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let backups = &node.backups;
    let Some(interval) = backups.interval else {
        return;
    };
    let mut wait = backups.due_in(interval);
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        wait = match node.take_backup(backups.defaults).await {
            Ok(taken) => {
                tracing::info!(
                    file = %taken.path.display(),
                    blocks = taken.report.manifest.blocks,
                    tree_size = taken.report.manifest.tree_size,
                    bytes = taken.report.bytes,
                    took_ms = taken.report.took.as_millis() as u64,
                    removed = taken.removed.len(),
                    "scheduled backup written and verified"
                );
                backups.due_in(interval)
            }
            Err(BackupError::Busy) => backups.due_in(interval).max(Duration::from_secs(1)),
            Err(e) => {
                tracing::error!(error = %e, "scheduled backup failed");
                interval.min(RETRY_AFTER_FAILURE)
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qunimbus_ledger::checkpoint::NoteSigner;

    fn backups(dir: &Path, keep: usize) -> Backups {
        let mut config = Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        };
        config.backup.keep = keep;
        Backups::new(&config, Arc::new(Metrics::new())).unwrap()
    }

    #[tokio::test]
    async fn a_second_backup_while_one_runs_is_refused_as_busy() {
        let dir = tempfile::tempdir().unwrap();
        let backups = backups(dir.path(), 1);
        let verifier = NoteSigner::new("test.example", [7; 32]).unwrap().verifier();
        let _running = backups.running.lock().await;
        let refused = backups.take(&verifier, BackupOptions::default()).await;
        assert!(matches!(refused, Err(BackupError::Busy)), "{refused:?}");
        assert!(!backups.dir().exists(), "nothing written");
    }

    #[test]
    fn rotation_deletes_only_the_oldest_of_its_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let backups = backups(dir.path(), 2);
        std::fs::create_dir_all(backups.dir()).unwrap();
        let names = [
            "qunimbus-backup-20261201T000000.000000Z.db",
            "qunimbus-backup-20261202T000000.000000Z.db",
            "qunimbus-backup-20261203T000000.000000Z.db",
            "qunimbus-backup-20261203T000000.000000Z.partial",
            "operator-copy.db",
        ];
        for name in names {
            std::fs::write(backups.dir().join(name), name).unwrap();
        }
        assert_eq!(backups.rotate(), vec![names[0].to_string()]);
        backups.remove_partials();
        let mut left: Vec<String> = std::fs::read_dir(backups.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec![names[4], names[1], names[2]]);
    }
}
