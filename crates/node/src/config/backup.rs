//! `[backup]`: scheduled backups of the SQLite store (issue 19).

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Scheduled backups, and where `POST /v1/admin/backup` writes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Seconds between scheduled backups; 0 (the default) schedules none.
    pub interval_secs: u64,
    /// Where backups are written. Unset: `DATA_DIR/backups` (put it on
    /// another disk: a backup beside the store dies with it).
    pub dir: Option<PathBuf>,
    /// How many of the newest backups in `dir` are kept; older ones are
    /// deleted once a new one has verified.
    pub keep: usize,
    /// Carry the ledger signing key and the TSA key material (0600).
    pub include_keys: bool,
    /// Carry `credentials.toml` (the node's tokens).
    pub include_credentials: bool,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            interval_secs: 0,
            dir: None,
            keep: 7,
            include_keys: false,
            include_credentials: false,
        }
    }
}

impl BackupConfig {
    /// The backup directory for a node whose data dir is `data_dir`.
    pub fn dir_for(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("backups"))
    }

    /// Checks the section; `sqlite` is whether the store is SQLite (a
    /// PostgreSQL store is backed up with `pg_dump`).
    pub(super) fn validate(&self, sqlite: bool) -> Result<(), ConfigError> {
        if self.keep == 0 {
            return Err(ConfigError::invalid("backup.keep", "must be at least 1"));
        }
        if self.interval_secs > 0 && !sqlite {
            return Err(ConfigError::invalid(
                "backup.interval_secs",
                "scheduled backups copy a SQLite store; back up PostgreSQL with pg_dump (README, Backup and restore)",
            ));
        }
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(ConfigError::invalid("backup.dir", "must not be empty"));
        }
        Ok(())
    }
}
