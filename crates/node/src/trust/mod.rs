//! The Trust Kernel in the node (SPEC §6): persisted regions and health
//! events, computed MTBF and trust, the rollout controller task, compliance
//! evaluated from evidence, and the Cedar policy enforced on ingest and on
//! market distribution. Every change is written in one transaction with the
//! ledger block that records it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_core::{DataClass, RegionSet};
use qunimbus_ledger::block::{AttestationStatus, BlockDraft, BlockKind};
use qunimbus_storage::{RegionRecord, StateChange, StorageError, Store};
use qunimbus_trust::cadence::{Cadence, SilenceRule};
use qunimbus_trust::compliance::{
    self, ComplianceReport, Evidence, PolicyInForce, RolloutEvidence, StoredRuns,
};
use qunimbus_trust::health::{
    assess, combined_mtbf, status_is_up, trust_score, EventSource, HealthEvent, HealthEventKind,
    Mtbf, RegionHealth, MICROS_PER_HOUR,
};
use qunimbus_trust::policy::{Decision, PolicyEngine, PolicyError, Rule, DEFAULT_POLICY};
use qunimbus_trust::rollout::{
    plan_for_canary, Command, GateInputs, GateThresholds, Phase, Rollout, RolloutError, Step,
};
use serde::Serialize;
use serde_json::{json, Value};
use thiserror::Error;

use crate::lock;
use crate::metrics::Metrics;

/// Why a Trust Kernel operation failed.
#[derive(Debug, Error)]
pub enum TrustError {
    /// The policy file could not be read.
    #[error("policy file {path}: {source}")]
    PolicyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The policy was refused.
    #[error("policy file {path}: {source}")]
    Policy {
        /// The file.
        path: PathBuf,
        /// Why.
        source: PolicyError,
    },
    /// No such region.
    #[error("unknown region {0:?}")]
    UnknownRegion(String),
    /// No such run.
    #[error("no run with run_id {0:?}")]
    UnknownRun(String),
    /// The run is not personal-class data.
    #[error("run {0:?} is {1}-class; only personal-class runs hold personal data to erase")]
    NotPersonal(String, &'static str),
    /// No such rollout.
    #[error("unknown rollout {0:?}")]
    UnknownRollout(String),
    /// Another rollout is still running or paused.
    #[error("rollout {0} is still active; finish, roll back or wait for it first")]
    RolloutActive(String),
    /// The rollout refused the request.
    #[error(transparent)]
    Rollout(#[from] RolloutError),
    /// Storage failed; nothing changed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored state does not decode.
    #[error("stored trust state is corrupt: {0}")]
    Corrupt(String),
}

pub use qunimbus_trust::requests::STATUSES;

/// Settings from `[trust]`.
#[derive(Debug, Clone)]
pub struct TrustSettings {
    /// The Cedar policy file.
    pub policy_path: PathBuf,
    /// Whether the file may be created from the built-in default.
    pub create_default_policy: bool,
    /// Availability/MTBF window, µs.
    pub window_micros: i64,
    /// MTBF target, hours (mesh compliance).
    pub mtbf_target_hours: f64,
    /// Gate thresholds.
    pub thresholds: GateThresholds,
    /// Soak per phase, µs.
    pub soak_micros: i64,
    /// Phase plan.
    pub phases: Vec<Phase>,
    /// Controller tick.
    pub controller_interval: Duration,
    /// How often evidence is re-gathered.
    pub compliance_interval: Duration,
    /// How often an attestation block is written.
    pub attestation_interval: Duration,
    /// When a region's silence is a detected failure.
    pub silence: SilenceRule,
    /// Configured expected report intervals (µs) by canonical region.
    pub report_intervals: BTreeMap<String, i64>,
}

impl TrustSettings {
    /// The availability/MTBF window in hours.
    pub fn window_hours(&self) -> f64 {
        self.window_micros as f64 / MICROS_PER_HOUR
    }
}

mod config_record;
mod controller;
mod detection;
mod evidence;
mod policy_holder;
mod regions;
mod rollouts;

pub use config_record::{flatten as flatten_config, ConfigMap};
pub use controller::run_controller;
pub use evidence::evaluate_now;
use evidence::last_scheduled_attestation;
use policy_holder::text_digest;
pub use policy_holder::{InForce, PolicyHolder, PolicyStatus};
pub use regions::{RegionEventView, RegionView};
use rollouts::RolloutBlock;

/// The newest compliance evaluation.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComplianceSnapshot {
    /// When it was evaluated.
    pub evaluated_at: String,
    /// The verdicts.
    #[serde(flatten)]
    pub report: ComplianceReport,
    /// The chain verification it used (`null` before the first one).
    pub ledger: Option<LedgerEvidence>,
}

pub use crate::trust_views::{LedgerEvidence, MeshRegion, MeshStatus};

struct KernelState {
    regions: BTreeMap<String, RegionRecord>,
    events: BTreeMap<String, Vec<RecordedEvent>>,
    /// Each region's newest event by when it happened (kept, not searched).
    newest: BTreeMap<String, RecordedEvent>,
    rollouts: Vec<Rollout>,
}

/// Unix µs as RFC 3339 text.
fn micros_text(at: i64) -> String {
    rfc3339_micros(chrono::DateTime::from_timestamp_micros(at).unwrap_or_default())
}

/// A period a compliance policy was in force.
#[derive(Clone)]
struct PolicyPeriod {
    sha256: String,
    since_us: i64,
    engine: Arc<PolicyEngine>,
}

/// A health event with who said so and the block that records it.
#[derive(Debug, Clone, Copy)]
struct RecordedEvent {
    event: HealthEvent,
    source: EventSource,
    block_index: u64,
    /// When it was recorded (Unix µs), if known.
    recorded_at: Option<i64>,
}

impl KernelState {
    /// The region's events as the health assessment takes them.
    fn health_events(&self, region: &str) -> Vec<HealthEvent> {
        self.events
            .get(region)
            .map_or_else(Vec::new, |e| e.iter().map(|r| r.event).collect())
    }

    /// The region's newest event (by when it happened).
    fn newest_event(&self, region: &str) -> Option<RecordedEvent> {
        self.newest.get(region).copied()
    }

    /// Adds a recorded event of `region`.
    fn push_event(&mut self, region: &str, event: RecordedEvent) {
        let newest = self.newest.entry(region.to_string()).or_insert(event);
        if event.event.at >= newest.event.at {
            *newest = event;
        }
        self.events
            .entry(region.to_string())
            .or_default()
            .push(event);
    }
}

/// The Trust Kernel of a running node.
pub struct TrustKernel {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    regions: RegionSet,
    frameworks: Vec<String>,
    /// Settings from `[trust]`.
    pub settings: TrustSettings,
    /// The policy in force.
    pub policy: Arc<PolicyHolder>,
    state: Mutex<KernelState>,
    changes: tokio::sync::Mutex<()>,
    violations: Mutex<BTreeMap<String, u64>>,
    compliance: Mutex<Option<ComplianceSnapshot>>,
    /// Each region's report times (measured health).
    cadences: Mutex<BTreeMap<String, Cadence>>,
    /// The clock report times and silences are measured on.
    clock: detection::SteadyClock,
    /// When this process began watching for silence (Unix µs).
    watch_since: i64,
    /// Every period a policy was in force, the one in force now last.
    policy_history: Mutex<Vec<PolicyPeriod>>,
    /// Digest of the effective configuration, once recorded at open.
    config_sha256: std::sync::OnceLock<String>,
}

fn event_kind(kind: &str) -> Result<HealthEventKind, TrustError> {
    HealthEventKind::parse(kind).ok_or_else(|| TrustError::Corrupt(format!("event kind {kind:?}")))
}

fn event_source(source: &str) -> Result<EventSource, TrustError> {
    EventSource::parse(source)
        .ok_or_else(|| TrustError::Corrupt(format!("event source {source:?}")))
}

impl TrustKernel {
    /// Loads the persisted state, tracks newly configured regions and
    /// records the policy in force and the effective configuration
    /// (`config`, [`crate::config::Config::recorded`]) on the ledger if
    /// they are not yet.
    pub async fn open(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        regions: RegionSet,
        frameworks: Vec<String>,
        settings: TrustSettings,
        policy: Arc<PolicyHolder>,
        config: ConfigMap,
    ) -> Result<Self, TrustError> {
        let reader = store.reader();
        let mut stored: BTreeMap<String, RegionRecord> = reader
            .regions()
            .await?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let now = now_micros();
        let at = rfc3339_micros(now);
        let mut added = Vec::new();
        let mut statements = Vec::new();
        for name in regions.names() {
            if !stored.contains_key(name) {
                let record = RegionRecord {
                    name: name.clone(),
                    status: "active".into(),
                    tracked_since: now.timestamp_micros(),
                    trust_override: None,
                    override_reason: None,
                    updated_at: at.clone(),
                };
                statements.push(StateChange::TrackRegion {
                    name: name.clone(),
                    status: record.status.clone(),
                    tracked_since: record.tracked_since,
                    at: at.clone(),
                });
                added.push(name.clone());
                stored.insert(name.clone(), record);
            }
        }
        let mut state = KernelState {
            regions: stored,
            events: BTreeMap::new(),
            newest: BTreeMap::new(),
            rollouts: Vec::new(),
        };
        for e in reader.region_events().await? {
            state.push_event(
                &e.region,
                RecordedEvent {
                    event: HealthEvent {
                        kind: event_kind(&e.kind)?,
                        at: e.at_us,
                    },
                    source: event_source(&e.source)?,
                    block_index: u64::try_from(e.block_index).unwrap_or(0),
                    recorded_at: e.recorded_at_us,
                },
            );
        }
        let policy_history = policy_history(&store, &policy.regions).await?;
        for json in reader.rollouts().await? {
            let rollout: Rollout = serde_json::from_str(&json)
                .map_err(|e| TrustError::Corrupt(format!("rollout state: {e}")))?;
            rollout
                .check_stored()
                .map_err(|e| TrustError::Corrupt(format!("stored rollout {}: {e}", rollout.id)))?;
            state.rollouts.push(rollout);
        }
        let cadences = detection::cadences(&regions, &settings, &state);
        let kernel = Self {
            store,
            metrics,
            regions,
            frameworks,
            settings,
            policy,
            state: Mutex::new(state),
            changes: tokio::sync::Mutex::new(()),
            violations: Mutex::new(BTreeMap::new()),
            compliance: Mutex::new(None),
            cadences: Mutex::new(cadences),
            clock: detection::SteadyClock::new(),
            watch_since: now.timestamp_micros(),
            policy_history: Mutex::new(policy_history),
            config_sha256: std::sync::OnceLock::new(),
        };
        kernel.attach_rollout_blocks().await?;
        kernel.record_start(added, statements, &config).await?;
        Ok(kernel)
    }

    /// Fills each rollout transition's block index from the ledger.
    async fn attach_rollout_blocks(&self) -> Result<(), TrustError> {
        let by_rollout = self.rollout_blocks().await?;
        let mut state = lock(&self.state);
        for rollout in &mut state.rollouts {
            if let Some(blocks) = by_rollout.get(&rollout.id) {
                for (t, block) in rollout.history.iter_mut().zip(blocks) {
                    t.block_index = Some(block.index);
                }
            }
        }
        Ok(())
    }

    /// Rollout id → its `rollout` blocks on the ledger, in order.
    async fn rollout_blocks(&self) -> Result<BTreeMap<String, Vec<RolloutBlock>>, TrustError> {
        let mut map: BTreeMap<String, Vec<RolloutBlock>> = BTreeMap::new();
        for block in self.store.reader().blocks_of_kind("rollout").await? {
            let Some(payload) = block.payload.as_ref() else {
                continue;
            };
            let text = |key: &str| payload.get(key).and_then(Value::as_str).map(str::to_string);
            if let Some(id) = text("rollout_id") {
                map.entry(id).or_default().push(RolloutBlock {
                    index: block.index,
                    from: text("from"),
                    to: text("to"),
                });
            }
        }
        Ok(map)
    }

    /// The newest `config` block that records a policy, if it records the
    /// one in force (other configuration, such as the trading agent's
    /// sessions and reloads, has `config` blocks too).
    async fn policy_block(&self, sha256: &str) -> Result<Option<u64>, TrustError> {
        let policy = crate::ledger::newest_block_where(&self.store, "config", |b| {
            b.payload
                .as_ref()
                .is_some_and(|p| p.get("policy_sha256").is_some())
        })
        .await?;
        Ok(policy.and_then(|b| {
            let recorded = b.payload.as_ref()?.get("policy_sha256")?.as_str()?;
            (recorded == sha256).then_some(b.index)
        }))
    }

    /// At start: one `config` block recording what changed since the
    /// newest records: the policy in force (unless recorded; also when
    /// regions were added) and the effective configuration (unless
    /// recorded), plus `statements` (e.g. new regions) in the same commit.
    async fn record_start(
        &self,
        regions_added: Vec<String>,
        statements: Vec<StateChange>,
        config: &ConfigMap,
    ) -> Result<(), TrustError> {
        let status = self.policy.status();
        let mut statements = statements;
        statements.push(self.policy_text_change());
        let recorded = self.policy_block(&status.sha256).await?;
        let policy_recorded = recorded.is_some() && regions_added.is_empty();
        let (config_sha256, config_fields) = self.config_change(config).await?;
        let mut payload = serde_json::Map::new();
        let mut changes = Vec::new();
        if !policy_recorded {
            changes.push("compliance policy in force");
            payload.extend([
                ("policy_path".into(), json!(status.path)),
                ("policy_sha256".into(), json!(status.sha256)),
                (
                    "rules".into(),
                    json!(status
                        .rules
                        .iter()
                        .map(|r| r.id.clone())
                        .collect::<Vec<_>>()),
                ),
                ("regions_added".into(), json!(regions_added)),
            ]);
        }
        if let Some((change, fields)) = config_fields {
            changes.push(change);
            payload.extend(fields);
        }
        let blocks = if changes.is_empty() {
            self.store
                .append_blocks_with(Vec::new(), statements)
                .await?;
            Vec::new()
        } else {
            payload.insert("change".into(), json!(changes.join("; ")));
            let draft = self.draft(BlockKind::Config, None, Value::Object(payload));
            self.store
                .append_blocks_with(vec![draft], statements)
                .await?
        };
        let written = blocks.first().map(|b| b.index);
        lock(&self.policy.status).block_index = if policy_recorded { recorded } else { written };
        let _ = self.config_sha256.set(config_sha256);
        let block = blocks.first().filter(|_| !policy_recorded);
        self.start_policy_period(&self.policy.in_force(), block);
        Ok(())
    }

    /// Stores the text of the policy in force under its digest (once).
    fn policy_text_change(&self) -> StateChange {
        let in_force = self.policy.in_force();
        StateChange::RecordPolicy {
            sha256: in_force.sha256.to_string(),
            text: in_force.text.to_string(),
            recorded_at: rfc3339_micros(now_micros()),
        }
    }

    /// Starts a period of `policy` dated by the block that records it
    /// (as a restart reads it back), unless it is the newest period.
    fn start_policy_period(&self, policy: &InForce, block: Option<&qunimbus_ledger::block::Block>) {
        let mut history = lock(&self.policy_history);
        if history.last().is_some_and(|p| *p.sha256 == *policy.sha256) {
            return;
        }
        let since_us = block
            .and_then(|b| chrono::DateTime::parse_from_rfc3339(&b.timestamp).ok())
            .map_or_else(|| now_micros().timestamp_micros(), |t| t.timestamp_micros());
        history.push(PolicyPeriod {
            sha256: policy.sha256.to_string(),
            since_us,
            engine: policy.engine.clone(),
        });
    }

    /// A block draft stamped now, carrying the newest compliance verdicts.
    fn draft(&self, kind: BlockKind, region: Option<String>, payload: Value) -> BlockDraft {
        let verdicts = lock(&self.compliance)
            .as_ref()
            .map(|s| s.report.frameworks.clone())
            .unwrap_or_default();
        BlockDraft {
            timestamp: rfc3339_micros(now_micros()),
            kind,
            phi_qevf: None,
            eta_ent: None,
            compliance_attestations: self
                .frameworks
                .iter()
                .map(|f| {
                    let status = match verdicts.get(f).and_then(|v| v.compliant) {
                        Some(true) => AttestationStatus::Verified,
                        Some(false) => AttestationStatus::Failed,
                        None => AttestationStatus::Pending,
                    };
                    (f.clone(), status)
                })
                .collect(),
            region,
            run_id: None,
            payload: Some(payload),
        }
    }

    /// Re-reads the policy file; records and installs it when it changed.
    /// A refused file leaves the previous policy in force.
    pub async fn reload_policy(&self) -> Result<PolicyStatus, TrustError> {
        let _guard = self.changes.lock().await;
        let current = self.policy.status();
        // The digest of the bytes parsed: a file fixed meanwhile is a change.
        let text = PolicyHolder::read_text(&self.policy.path);
        let read = text.as_ref().ok().map(|t| text_digest(t));
        let parsed = text.and_then(|t| {
            PolicyHolder::parse(&self.policy.path, &t, &self.policy.regions)
                .map(|(engine, status)| (engine, status, t))
        });
        match parsed {
            Ok((engine, mut status, text)) => {
                if status.sha256 == current.sha256 {
                    let mut s = lock(&self.policy.status);
                    s.seen = status.seen;
                    s.last_error = None;
                    return Ok(s.clone());
                }
                let draft = self.draft(
                    BlockKind::Config,
                    None,
                    json!({
                        "change": "compliance policy reloaded",
                        "policy_path": status.path,
                        "policy_sha256": status.sha256,
                        "previous_sha256": current.sha256,
                        "rules": status.rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
                        "regions_added": Vec::<String>::new(),
                    }),
                );
                let in_force = self.policy.prepare(engine, &text);
                let blocks = self
                    .store
                    .append_blocks_with(
                        vec![draft],
                        vec![StateChange::RecordPolicy {
                            sha256: in_force.sha256.to_string(),
                            text,
                            recorded_at: rfc3339_micros(now_micros()),
                        }],
                    )
                    .await?;
                status.block_index = blocks.first().map(|b| b.index);
                // The period starts before any run can carry the new digest.
                self.start_policy_period(&in_force, blocks.first());
                self.policy.install(in_force);
                *lock(&self.policy.status) = status.clone();
                tracing::info!(sha256 = %status.sha256, "compliance policy reloaded");
                Ok(status)
            }
            Err(e) => {
                let mut s = lock(&self.policy.status);
                s.last_error = Some(e.to_string());
                s.seen = read;
                tracing::error!(error = %e, "compliance policy refused; the previous policy stays in force");
                Err(e)
            }
        }
    }

    /// Enforces the policy on a run about to be accepted. Accepted: the
    /// policy in force (the run is `verified` for the frameworks it
    /// evidences, by its acceptance rules). Refused: the decision naming the
    /// rule, and the rule is counted.
    pub fn check_accept(&self, class: DataClass, region: &str) -> Result<Arc<InForce>, Decision> {
        let in_force = self.policy.in_force();
        if in_force.engine.accepts(class, region) {
            return Ok(in_force);
        }
        let decision = in_force.engine.accept(class, region);
        let rule = decision
            .rules
            .first()
            .cloned()
            .unwrap_or_else(|| "evaluation-error".into());
        *lock(&self.violations).entry(rule.clone()).or_default() += 1;
        self.metrics.compliance_violation(&rule);
        Err(decision)
    }

    /// Whether the policy file changed on disk since it was read.
    pub fn policy_changed_on_disk(&self) -> bool {
        self.policy.changed_on_disk()
    }
}

/// The periods policies were in force, from the ledger's policy `config`
/// blocks (in order, dated by their blocks) and the recorded texts. A policy
/// whose text was not recorded (blocks from before texts were kept), or that
/// no longer loads (the regions changed), is left out with a warning: runs
/// it accepted are judged by every later policy.
async fn policy_history(
    store: &Store,
    regions: &[String],
) -> Result<Vec<PolicyPeriod>, TrustError> {
    let reader = store.reader();
    let mut engines: BTreeMap<String, Arc<PolicyEngine>> = BTreeMap::new();
    for record in reader.policies().await? {
        match PolicyEngine::load(&record.text, regions) {
            Ok(engine) => {
                engines.insert(record.sha256, Arc::new(engine));
            }
            Err(e) => {
                tracing::warn!(sha256 = %record.sha256, error = %e, "a recorded policy no longer loads")
            }
        }
    }
    let mut history: Vec<PolicyPeriod> = Vec::new();
    for block in reader.blocks_of_kind("config").await? {
        let Some(sha) = block
            .payload
            .as_ref()
            .and_then(|p| p.get("policy_sha256"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        if history.last().is_some_and(|p| p.sha256 == sha) {
            continue;
        }
        let (Some(engine), Ok(since)) = (
            engines.get(sha),
            chrono::DateTime::parse_from_rfc3339(&block.timestamp),
        ) else {
            continue;
        };
        history.push(PolicyPeriod {
            sha256: sha.to_string(),
            since_us: since.timestamp_micros(),
            engine: engine.clone(),
        });
    }
    Ok(history)
}
