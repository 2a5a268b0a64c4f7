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
use qunimbus_trust::compliance::{self, ComplianceReport, Evidence, RolloutEvidence, StoredRuns};
use qunimbus_trust::health::{
    assess, combined_mtbf, trust_score, HealthEvent, HealthEventKind, Mtbf, RegionHealth,
    MICROS_PER_HOUR,
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
}

impl TrustSettings {
    /// The availability/MTBF window in hours.
    pub fn window_hours(&self) -> f64 {
        self.window_micros as f64 / MICROS_PER_HOUR
    }
}

mod controller;
mod evidence;
mod policy_holder;
mod regions;
mod rollouts;

pub use controller::run_controller;
pub use evidence::evaluate_now;
use evidence::last_scheduled_attestation;
use policy_holder::text_digest;
pub use policy_holder::{PolicyHolder, PolicyStatus};
pub use regions::RegionView;
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
    events: BTreeMap<String, Vec<HealthEvent>>,
    rollouts: Vec<Rollout>,
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
}

fn event_kind(kind: &str) -> Result<HealthEventKind, TrustError> {
    HealthEventKind::parse(kind).ok_or_else(|| TrustError::Corrupt(format!("event kind {kind:?}")))
}

impl TrustKernel {
    /// Loads the persisted state, tracks newly configured regions and
    /// records the policy in force on the ledger if it is not yet.
    pub async fn open(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        regions: RegionSet,
        frameworks: Vec<String>,
        settings: TrustSettings,
        policy: Arc<PolicyHolder>,
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
        let mut events: BTreeMap<String, Vec<HealthEvent>> = BTreeMap::new();
        for e in reader.region_events().await? {
            events
                .entry(e.region.clone())
                .or_default()
                .push(HealthEvent {
                    kind: event_kind(&e.kind)?,
                    at: e.at_us,
                });
        }
        let mut rollouts = Vec::new();
        for json in reader.rollouts().await? {
            let rollout: Rollout = serde_json::from_str(&json)
                .map_err(|e| TrustError::Corrupt(format!("rollout state: {e}")))?;
            rollout
                .check_stored()
                .map_err(|e| TrustError::Corrupt(format!("stored rollout {}: {e}", rollout.id)))?;
            rollouts.push(rollout);
        }
        let kernel = Self {
            store,
            metrics,
            regions,
            frameworks,
            settings,
            policy,
            state: Mutex::new(KernelState {
                regions: stored,
                events,
                rollouts,
            }),
            changes: tokio::sync::Mutex::new(()),
            violations: Mutex::new(BTreeMap::new()),
            compliance: Mutex::new(None),
        };
        kernel.attach_rollout_blocks().await?;
        kernel.record_policy(added, statements).await?;
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

    /// Writes a `config` block for the policy in force unless the newest
    /// one already records it (plus any `statements`, e.g. new regions).
    async fn record_policy(
        &self,
        regions_added: Vec<String>,
        statements: Vec<StateChange>,
    ) -> Result<(), TrustError> {
        let status = self.policy.status();
        let recorded = self.policy_block(&status.sha256).await?;
        if let (Some(index), true) = (recorded, regions_added.is_empty()) {
            lock(&self.policy.status).block_index = Some(index);
            return Ok(());
        }
        let draft = self.draft(
            BlockKind::Config,
            None,
            json!({
                "change": "compliance policy in force",
                "policy_path": status.path,
                "policy_sha256": status.sha256,
                "rules": status.rules.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
                "regions_added": regions_added,
            }),
        );
        let blocks = self
            .store
            .append_blocks_with(vec![draft], statements)
            .await?;
        lock(&self.policy.status).block_index = blocks.first().map(|b| b.index);
        Ok(())
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
        let parsed =
            text.and_then(|t| PolicyHolder::parse(&self.policy.path, &t, &self.policy.regions));
        match parsed {
            Ok((engine, mut status)) => {
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
                let blocks = self.store.append_blocks(vec![draft]).await?;
                status.block_index = blocks.first().map(|b| b.index);
                self.policy.install(engine);
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
    /// ledger frameworks the policy evidences (the run is `verified` for
    /// them). Refused: the decision naming the rule, and the rule is counted.
    pub fn check_accept(&self, class: DataClass, region: &str) -> Result<Arc<[String]>, Decision> {
        let (engine, enforced) = self.policy.engine_and_frameworks();
        if engine.accepts(class, region) {
            return Ok(enforced);
        }
        let decision = engine.accept(class, region);
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
