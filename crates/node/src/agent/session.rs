//! Starting the agent: the session recorded on the ledger is resumed (by
//! replay, reconciled block by block) when the settings are the same;
//! otherwise a new session starts from the configured cash, and its start
//! block names the session it replaces and the settings that changed.

use super::live::{self, Live, Session, SESSION_STARTED};
use super::Agent;
use crate::config::{AgentConfig, AgentPlan};
use crate::metrics::Metrics;
use qunimbus_ledger::block::Block;
use qunimbus_ledger::jcs::canonicalize;
use qunimbus_storage::{StorageError, Store};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Newest `config` blocks searched for the session's start (one per start).
const SESSION_SCAN: u32 = 64;

/// Trail blocks read per page while replaying.
const REPLAY_PAGE: u32 = 1000;

/// Keys of a start block that a restart may change without a new session.
const FREE_KEYS: [&str; 3] = ["bar_interval_ms", "market_start", "previous_session"];

async fn newest_session(store: &Store) -> Result<Option<Block>, StorageError> {
    let latest = store
        .reader()
        .latest_blocks_of_kind("config", SESSION_SCAN)
        .await?;
    Ok(latest.into_iter().find(|b| {
        b.payload
            .as_ref()
            .and_then(|p| p.get("change"))
            .and_then(Value::as_str)
            == Some(SESSION_STARTED)
    }))
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
            .blocks_of_kinds(("trade", "risk"), from, REPLAY_PAGE)
            .await?;
        let Some(last) = page.last() else {
            break;
        };
        from = last.index + 1;
        for block in &page {
            if let Err(m) = live.replay_block(block, metrics) {
                live.refuse(m.0);
                break 'pages;
            }
            blocks += 1;
        }
    }
    if live.refused.is_none() {
        if let Err(m) = live.replay_done() {
            live.refuse(m.0);
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

impl Agent {
    /// Starts the agent: resumes the recorded session when its settings
    /// are the configured ones, else starts a new one at `now_us`.
    pub async fn start(
        config: &AgentConfig,
        plan: AgentPlan,
        now_us: i64,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        frameworks: Vec<String>,
    ) -> Result<Self, StorageError> {
        live::zero_series(&metrics);
        let settings = live::session_settings(config, &plan);
        let recorded = newest_session(&store).await?;
        let live = match recorded {
            Some(block)
                if canonical(&recorded_settings(&block)) == canonical(&settings)
                    && market_start_us(&block).is_some() =>
            {
                let start_us = market_start_us(&block).unwrap_or(now_us);
                let mut live = Live::new(
                    config,
                    plan,
                    start_us,
                    frameworks,
                    Session::Resume(block.index),
                );
                resume(&mut live, &store, &metrics, block.index).await?;
                live
            }
            other => {
                let previous = other.map(|b| {
                    json!({
                        "block": b.index,
                        "changed": changed_keys(&recorded_settings(&b), &settings),
                    })
                });
                Live::new(
                    config,
                    plan,
                    now_us,
                    frameworks,
                    Session::New { settings, previous },
                )
            }
        };
        Ok(Self {
            live: tokio::sync::Mutex::new(live),
            store,
            metrics,
            interval: Duration::from_millis(config.bar_interval_ms),
            ledger_error: std::sync::Mutex::new(None),
        })
    }
}
