//! Reloading the agent when its configuration file changes on disk: the
//! file is polled, re-read through the caller's layered loader, and its
//! reloadable `[agent]` keys applied like `PUT /v1/agent/config` (with the
//! file named as the reason). A file that does not validate, or that
//! changes keys only a restart can change, is logged and changes nothing.

use super::{Agent, AgentError};
use crate::config::{AgentConfig, ConfigError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How often the file's modification time is looked at.
pub const POLL: Duration = Duration::from_secs(1);

/// The modification time of `path`, if it can be read (take it when the
/// configuration is loaded, and hand it to [`Agent::watch_file`]).
pub fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Agent {
    /// The settings in force.
    pub async fn settings(&self) -> AgentConfig {
        self.live.lock().await.config().clone()
    }

    /// Applies the reloadable keys of `next` that differ from the settings
    /// in force; refuses (changing nothing) when `next` also differs in a
    /// key only a restart can change.
    pub async fn reload_to(
        self: &Arc<Self>,
        next: &AgentConfig,
        reason: &str,
    ) -> Result<bool, AgentError> {
        let current = self.settings().await;
        let Some(changes) = next.reloadable().as_object().cloned() else {
            return Ok(false);
        };
        let reloaded = current.with_changes(&changes)?;
        if reloaded != *next {
            return Err(AgentError::Config(ConfigError::Invalid {
                key: "agent".into(),
                message: "the file changes keys that take a restart (a new session); only the reloadable keys are applied by a reload".into(),
            }));
        }
        Ok(self.reload(&changes, reason).await?.changed)
    }

    /// Polls `path` until `stop`; when its modification time differs from
    /// `loaded` (the one it had when the running configuration was read),
    /// loads the configuration with `load` and reloads the agent to it.
    pub async fn watch_file<E: std::fmt::Display>(
        self: Arc<Self>,
        path: PathBuf,
        loaded: Option<SystemTime>,
        load: impl Fn() -> Result<AgentConfig, E> + Send,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut seen = loaded;
        let mut every = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.changed() => return,
            }
            let now = modified(&path);
            if now == seen {
                continue;
            }
            seen = now;
            let reason = format!("configuration file {} changed", path.display());
            match load() {
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), file = %path.display(), "changed configuration file refused; the settings in force stay")
                }
                Ok(next) => match self.reload_to(&next, &reason).await {
                    Ok(changed) => {
                        tracing::info!(changed, file = %path.display(), "trading agent settings reloaded from the file")
                    }
                    Err(e) => {
                        tracing::error!(error = format!("{e:#}"), file = %path.display(), "changed configuration file not applied; the settings in force stay")
                    }
                },
            }
        }
    }
}
