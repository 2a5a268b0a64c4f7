//! Starting the agent: the session recorded on the ledger is resumed (by
//! replay, reconciled block by block) when the settings are the same;
//! otherwise a new session starts from the configured cash, and its start
//! block names the session it replaces and the settings that changed.

use super::eph_feed::EphLink;
use super::live::{self, Live, Session, SESSION_STARTED};
use super::market::EphFeed;
use super::Agent;
use crate::config::{AgentConfig, AgentPlan};
use crate::metrics::Metrics;
use qunimbus_ledger::block::Block;
use qunimbus_ledger::jcs::canonicalize;
use qunimbus_storage::{StorageError, Store};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Trail blocks read per page while replaying.
const REPLAY_PAGE: u32 = 1000;

/// Keys of a start block that a restart may change without a new session.
const FREE_KEYS: [&str; 3] = ["bar_interval_ms", "market_start", "previous_session"];

async fn newest_session(store: &Store) -> Result<Option<Block>, StorageError> {
    crate::ledger::newest_block_where(store, "config", |b| {
        b.payload
            .as_ref()
            .and_then(|p| p.get("change"))
            .and_then(Value::as_str)
            == Some(SESSION_STARTED)
    })
    .await
}

/// The recorded settings without the keys a restart may change.
fn recorded_settings(block: &Block) -> Value {
    let mut settings = block.payload.clone().unwrap_or(Value::Null);
    if let Some(map) = settings.as_object_mut() {
        for key in FREE_KEYS {
            map.remove(key);
        }
    }
    settings
}

fn canonical(v: &Value) -> Option<Vec<u8>> {
    canonicalize(v).ok()
}

/// The top-level settings whose values differ.
fn changed_keys(recorded: &Value, now: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (recorded.as_object(), now.as_object()) else {
        return vec!["(all)".into()];
    };
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k).map(canonical) != b.get(*k).map(canonical))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn market_start_us(block: &Block) -> Option<i64> {
    let text = block.payload.as_ref()?.get("market_start")?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Replays the session's trail after its start block into `live`; a
/// disagreement leaves `live` refusing to trade.
async fn resume(
    live: &mut Live,
    store: &Store,
    metrics: &Metrics,
    start: u64,
) -> Result<(), StorageError> {
    let started = Instant::now();
    let mut from = start + 1;
    let mut blocks = 0u64;
    'pages: loop {
        let page = store
            .reader()
            .blocks_of_kinds(&["trade", "risk", "config"], from, REPLAY_PAGE)
            .await?;
        let Some(last) = page.last() else {
            break;
        };
        from = last.index + 1;
        for block in page.iter().filter(|b| live::is_trail(b)) {
            if let Err(m) = live.replay_block(block, metrics) {
                live.refuse(m.0);
                break 'pages;
            }
            blocks += 1;
        }
    }
    if live.refused.is_none() {
        match live.replay_done() {
            Ok(()) => live.go_live(),
            Err(m) => live.refuse(m.0),
        }
    }
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    live.replayed = Some((blocks, live.steps(), millis));
    match &live.refused {
        None => tracing::info!(
            blocks,
            bars = live.steps(),
            millis,
            "trading agent resumed its session"
        ),
        Some(why) => {
            tracing::error!(%why, "trading agent refuses to trade: the ledger and the replay disagree")
        }
    }
    Ok(())
}

/// Whether the session started at `block` can resume under `config`: its
/// settings are the configured ones, or they are once the reloadable keys
/// are set back to the session's start values and the configured ones are
/// where the session's last reload left them. Gives the configuration and
/// plan the replay starts from and the market's start; else the plan back.
async fn resumable(
    config: &AgentConfig,
    plan: AgentPlan,
    settings: &Value,
    block: &Block,
    store: &Store,
) -> Result<Result<(AgentConfig, AgentPlan, i64), AgentPlan>, StorageError> {
    let Some(start_us) = market_start_us(block) else {
        return Ok(Err(plan));
    };
    let recorded = canonical(&recorded_settings(block));
    if recorded == canonical(settings) {
        return Ok(Ok((config.clone(), plan, start_us)));
    }
    let start_values = block
        .payload
        .as_ref()
        .and_then(|p| p.get("reloadable"))
        .and_then(Value::as_object);
    let Some(start_config) = start_values.and_then(|v| config.with_changes(v).ok()) else {
        return Ok(Err(plan));
    };
    let Ok(start_plan) = start_config.plan() else {
        return Ok(Err(plan));
    };
    let newest = crate::ledger::newest_block_where(store, "config", |b| {
        b.index < block.index || live::is_trail(b)
    })
    .await?;
    let last_reload = newest
        .filter(|b| b.index > block.index)
        .and_then(|b| b.payload.as_ref()?.get("reloadable").cloned());
    let same_start = canonical(&live::session_settings(&start_config, &start_plan)) == recorded;
    let at_last_reload =
        last_reload.is_some_and(|v| canonical(&v) == canonical(&config.reloadable()));
    Ok(if same_start && at_last_reload {
        Ok((start_config, start_plan, start_us))
    } else {
        Err(plan)
    })
}

/// What resuming a session needs, done by the agent's task after the node
/// started (a long session's replay does not hold up the node's start).
pub(super) struct ResumeJob {
    config: AgentConfig,
    start_us: i64,
    frameworks: Vec<String>,
    block: u64,
    started_ms: Option<i64>,
}

impl Agent {
    /// Replays the recorded session into a new engine and puts it in place
    /// of the stand-in; on a storage error the job is kept for the task's
    /// next start.
    pub(super) async fn resume_session(&self) {
        let Some(job) = crate::lock(&self.resume_job).take() else {
            return;
        };
        let plan = match job.config.plan() {
            Ok(plan) => plan,
            Err(e) => {
                self.live
                    .lock()
                    .await
                    .refuse(format!("the session's settings no longer build: {e}"));
                return;
            }
        };
        let session = Session::Resume(job.block);
        let mut live = Live::new(
            &job.config,
            plan,
            job.start_us,
            job.frameworks.clone(),
            session,
            self.eph_feed(),
        );
        live.session_started_ms = job.started_ms;
        if let Err(e) = resume(&mut live, &self.store, &self.metrics, job.block).await {
            tracing::error!(error = %e, "the agent's session could not be read; retrying");
            *crate::lock(&self.resume_job) = Some(job);
            return;
        }
        *self.live.lock().await = live;
    }

    /// Starts the agent: resumes the recorded session when its settings
    /// are the configured ones, else starts a new one at `now_us`. The EPH
    /// lanes record into `dir`.
    pub async fn start(
        config: &AgentConfig,
        plan: AgentPlan,
        now_us: i64,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        frameworks: Vec<String>,
        dir: &Path,
    ) -> Result<Self, StorageError> {
        live::zero_series(&metrics);
        let eph = plan.eph.as_ref().map(EphLink::new);
        let feed = || {
            eph.as_ref().map(|link| EphFeed {
                dir,
                inbox: link.inbox.clone(),
            })
        };
        let settings = live::session_settings(config, &plan);
        let recorded = newest_session(&store).await?;
        let mut job = None;
        let live = match recorded {
            Some(block) => match resumable(config, plan, &settings, &block, &store).await? {
                Ok((start_config, start_plan, start_us)) => {
                    // Replayed by the agent's task; until then this stands in.
                    let session = Session::Resume(block.index);
                    let mut live = Live::new(
                        &start_config,
                        start_plan,
                        start_us,
                        frameworks.clone(),
                        session,
                        feed(),
                    );
                    live.resuming = true;
                    job = Some(ResumeJob {
                        config: start_config,
                        start_us,
                        frameworks,
                        block: block.index,
                        started_ms: super::replay::wall_ms(&block.timestamp),
                    });
                    live
                }
                Err(plan) => {
                    let previous = json!({
                        "block": block.index,
                        "changed": changed_keys(&recorded_settings(&block), &settings),
                    });
                    let session = Session::New {
                        settings,
                        previous: Some(previous),
                    };
                    Live::new(config, plan, now_us, frameworks, session, feed())
                }
            },
            None => {
                let session = Session::New {
                    settings,
                    previous: None,
                };
                Live::new(config, plan, now_us, frameworks, session, feed())
            }
        };
        let exchange = config.exchange.url.as_deref().and_then(|url| {
            crate::exchange::Exchange::new(&config.exchange, url, metrics.clone())
                .map_err(|e| tracing::error!(error = %e, "the exchange adapter cannot start"))
                .ok()
                .map(Arc::new)
        });
        Ok(Self {
            exchange,
            resume_job: std::sync::Mutex::new(job),
            live: tokio::sync::Mutex::new(live),
            store,
            metrics,
            interval: Duration::from_millis(config.bar_interval_ms),
            dir: dir.to_path_buf(),
            eph,
        })
    }
}
