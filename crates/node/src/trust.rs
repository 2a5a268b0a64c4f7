//! The Trust Kernel in the node (SPEC §6): persisted regions and health
//! events, computed MTBF and trust, the rollout controller task, compliance
//! evaluated from evidence, and the Cedar policy enforced on ingest and on
//! market distribution. Every change is written in one transaction with the
//! ledger block that records it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

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

/// The compliance policy in force, shared with the market hub.
pub struct PolicyHolder {
    engine: RwLock<(Arc<PolicyEngine>, Arc<[String]>)>,
    frameworks: Vec<String>,
    status: Mutex<PolicyStatus>,
    path: PathBuf,
    regions: Vec<String>,
}

/// What is known about the policy in force.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyStatus {
    /// The file.
    pub path: String,
    /// SHA-256 (hex) of the text in force.
    pub sha256: String,
    /// When it was loaded.
    pub loaded_at: String,
    /// Its rules.
    pub rules: Vec<Rule>,
    /// The `config` block recording its load, once written.
    pub block_index: Option<u64>,
    /// Why the last reload attempt failed (the previous policy stays in force).
    pub last_error: Option<String>,
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    modified: Option<SystemTime>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    qunimbus_ledger::hex::encode(&qunimbus_ledger::merkle::sha256(bytes))
}

/// The ledger frameworks (of `frameworks`) that a rule of `engine` evidences.
fn enforced_frameworks(engine: &PolicyEngine, frameworks: &[String]) -> Arc<[String]> {
    let enforced = engine.frameworks();
    frameworks
        .iter()
        .filter(|f| enforced.iter().any(|e| e.eq_ignore_ascii_case(f)))
        .cloned()
        .collect()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl PolicyHolder {
    /// Loads the policy file (writing the built-in default first when
    /// allowed and missing). A file that does not validate stops the node.
    pub fn load(
        settings: &TrustSettings,
        regions: &RegionSet,
        frameworks: &[String],
    ) -> Result<Self, TrustError> {
        let path = settings.policy_path.clone();
        if settings.create_default_policy && !path.exists() {
            std::fs::write(&path, DEFAULT_POLICY).map_err(|source| TrustError::PolicyFile {
                path: path.clone(),
                source,
            })?;
            tracing::info!(path = %path.display(), "wrote the default compliance policy");
        }
        let regions = regions.names().to_vec();
        let (engine, status) = Self::read(&path, &regions)?;
        let enforced = enforced_frameworks(&engine, frameworks);
        Ok(Self {
            engine: RwLock::new((Arc::new(engine), enforced)),
            frameworks: frameworks.to_vec(),
            status: Mutex::new(status),
            path,
            regions,
        })
    }

    /// Puts `engine` in force.
    fn install(&self, engine: PolicyEngine) {
        let enforced = enforced_frameworks(&engine, &self.frameworks);
        *self
            .engine
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (Arc::new(engine), enforced);
    }

    fn read(path: &Path, regions: &[String]) -> Result<(PolicyEngine, PolicyStatus), TrustError> {
        let stamp = modified(path);
        let text = std::fs::read_to_string(path).map_err(|source| TrustError::PolicyFile {
            path: path.to_path_buf(),
            source,
        })?;
        let engine = PolicyEngine::load(&text, regions).map_err(|source| TrustError::Policy {
            path: path.to_path_buf(),
            source,
        })?;
        let status = PolicyStatus {
            path: path.display().to_string(),
            sha256: sha256_hex(text.as_bytes()),
            loaded_at: rfc3339_micros(now_micros()),
            rules: engine.rules().to_vec(),
            block_index: None,
            last_error: None,
            modified: stamp,
        };
        Ok((engine, status))
    }

    /// The policy in force.
    pub fn engine(&self) -> Arc<PolicyEngine> {
        self.engine_and_frameworks().0
    }

    /// The policy in force and the ledger frameworks it evidences.
    pub fn engine_and_frameworks(&self) -> (Arc<PolicyEngine>, Arc<[String]>) {
        self.engine
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// What is known about the policy in force.
    pub fn status(&self) -> PolicyStatus {
        lock(&self.status).clone()
    }

    /// Whether the file changed on disk since it was last read.
    fn changed_on_disk(&self) -> bool {
        modified(&self.path) != lock(&self.status).modified
    }
}

impl qunimbus_market::DistributionPolicy for PolicyHolder {
    fn allows(&self, class: DataClass, region: &str, partner_region: &str) -> bool {
        self.engine
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .allows_distribution(class, region, partner_region)
    }
}

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

/// A region as reported by the API.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegionView {
    /// Canonical name.
    pub name: String,
    /// `active`, `degraded`, `down` or `draining`.
    pub status: String,
    /// The trust score in use.
    pub trust_score: f64,
    /// `computed` or `override`.
    pub trust_source: &'static str,
    /// The computed score (even when overridden).
    pub computed_trust: f64,
    /// The override's reason.
    pub override_reason: Option<String>,
    /// Open compliance findings counted against it.
    pub open_findings: u32,
    /// Up time / observed time over the window.
    pub availability: f64,
    /// Hours since the last recovery (0 while down).
    pub uptime_hours: f64,
    /// Failures in the window.
    pub failures: u32,
    /// MTBF hours (`null` without failures).
    pub mtbf_hours: Option<f64>,
    /// Without failures: MTBF is at least this.
    pub mtbf_at_least_hours: Option<f64>,
    /// Observed hours in the window.
    pub observed_hours: f64,
    /// Whether MTBF meets the target (`null` until the evidence can tell).
    pub mtbf_compliant: Option<bool>,
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    health: RegionHealth,
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

    /// The newest `config` block, if it records the policy in force.
    async fn policy_block(&self, sha256: &str) -> Result<Option<u64>, TrustError> {
        let latest = self
            .store
            .reader()
            .latest_blocks_of_kind("config", 1)
            .await?
            .pop();
        Ok(latest.and_then(|b| {
            let p = b.payload.as_ref()?;
            (p.get("policy_sha256")?.as_str()? == sha256).then_some(b.index)
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
        match PolicyHolder::read(&self.policy.path, &self.policy.regions) {
            Ok((engine, mut status)) => {
                if status.sha256 == current.sha256 {
                    let mut s = lock(&self.policy.status);
                    s.modified = status.modified;
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
                s.modified = modified(&self.policy.path);
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

    /// The canonical name of a configured region.
    pub fn region_name(&self, name: &str) -> Result<String, TrustError> {
        self.regions
            .canonical(name)
            .map(str::to_string)
            .ok_or_else(|| TrustError::UnknownRegion(name.to_string()))
    }

    /// One region, assessed now.
    pub fn region_view(&self, name: &str) -> Option<RegionView> {
        self.region_views().into_iter().find(|v| v.name == name)
    }

    /// Every configured region, assessed now.
    pub fn region_views(&self) -> Vec<RegionView> {
        let now = now_micros().timestamp_micros();
        let state = lock(&self.state);
        let snapshot = lock(&self.compliance);
        self.regions
            .names()
            .iter()
            .filter_map(|name| {
                let record = state.regions.get(name)?;
                let events = state.events.get(name).map_or(&[][..], Vec::as_slice);
                let health = assess(
                    events,
                    record.tracked_since,
                    self.settings.window_micros,
                    now,
                );
                let findings = snapshot.as_ref().map_or(0, |s| s.report.findings_for(name));
                let computed = trust_score(health.availability(), findings);
                let mtbf = health.mtbf();
                Some(RegionView {
                    name: name.clone(),
                    status: record.status.clone(),
                    trust_score: record.trust_override.unwrap_or(computed),
                    trust_source: if record.trust_override.is_some() {
                        "override"
                    } else {
                        "computed"
                    },
                    computed_trust: computed,
                    override_reason: record.override_reason.clone(),
                    open_findings: findings,
                    availability: health.availability(),
                    uptime_hours: health.uptime_hours(),
                    failures: health.failures,
                    mtbf_hours: mtbf.hours(),
                    mtbf_at_least_hours: match mtbf {
                        Mtbf::NoFailures { at_least_hours } => Some(at_least_hours),
                        Mtbf::Hours(_) => None,
                    },
                    observed_hours: health.observed_hours(),
                    mtbf_compliant: mtbf.meets(self.settings.mtbf_target_hours),
                    health,
                })
            })
            .collect()
    }

    /// Mesh totals (SPEC §6).
    pub fn mesh(&self) -> MeshStatus {
        let views = self.region_views();
        let mtbf = combined_mtbf(views.iter().map(|v| &v.health));
        let average = if views.is_empty() {
            0.0
        } else {
            views.iter().map(|v| v.trust_score).sum::<f64>() / views.len() as f64
        };
        MeshStatus {
            total_regions: views.len(),
            active_regions: views.iter().filter(|v| v.status == "active").count(),
            average_trust: average,
            mtbf_hours: mtbf.hours(),
            mtbf_at_least_hours: match mtbf {
                Mtbf::NoFailures { at_least_hours } => Some(at_least_hours),
                Mtbf::Hours(_) => None,
            },
            failures: views.iter().map(|v| v.failures).sum::<u32>(),
            mtbf_target_hours: self.settings.mtbf_target_hours,
            mtbf_compliant: mtbf.meets(self.settings.mtbf_target_hours),
            window_hours: self.settings.window_hours(),
            regions: views
                .iter()
                .map(|v| MeshRegion {
                    name: v.name.clone(),
                    mtbf_hours: v.mtbf_hours,
                    mtbf_at_least_hours: v.mtbf_at_least_hours,
                    failures: v.failures,
                    mtbf_compliant: v.mtbf_compliant,
                })
                .collect(),
        }
    }

    /// Sets a region's status and optionally its trust override
    /// (`Some(None)` clears it), recorded as an `override` block.
    pub async fn set_region(
        &self,
        name: &str,
        status: &str,
        trust: Option<Option<f64>>,
        reason: Option<String>,
    ) -> Result<(RegionRecord, u64), TrustError> {
        let name = self.region_name(name)?;
        let _guard = self.changes.lock().await;
        let previous = lock(&self.state)
            .regions
            .get(&name)
            .cloned()
            .ok_or_else(|| TrustError::UnknownRegion(name.clone()))?;
        let mut next = previous.clone();
        next.status = status.to_string();
        if let Some(trust) = trust {
            next.trust_override = trust.map(|t| t.clamp(0.0, 1.0));
            next.override_reason = trust.and(reason.clone());
        }
        next.updated_at = rfc3339_micros(now_micros());
        let draft = self.draft(
            BlockKind::Override,
            Some(name.clone()),
            json!({
                "status": next.status,
                "previous_status": previous.status,
                "trust_override": next.trust_override,
                "previous_trust_override": previous.trust_override,
                "reason": reason,
            }),
        );
        let blocks = self
            .store
            .append_blocks_with(
                vec![draft],
                vec![StateChange::SetRegion {
                    name: name.clone(),
                    status: next.status.clone(),
                    trust_override: next.trust_override,
                    override_reason: next.override_reason.clone(),
                    at: next.updated_at.clone(),
                }],
            )
            .await?;
        lock(&self.state).regions.insert(name, next.clone());
        Ok((next, blocks.first().map_or(0, |b| b.index)))
    }

    /// Records a failure or recovery at `at` (Unix µs) as a `health` block;
    /// the region's status follows its newest event.
    pub async fn record_event(
        &self,
        name: &str,
        kind: HealthEventKind,
        at: i64,
    ) -> Result<u64, TrustError> {
        let name = self.region_name(name)?;
        let _guard = self.changes.lock().await;
        let (newest, current) = {
            let state = lock(&self.state);
            let newest = state
                .events
                .get(&name)
                .is_none_or(|events| events.iter().all(|e| e.at <= at));
            let current = state.regions.get(&name).map(|r| r.status.clone());
            (newest, current)
        };
        let status = match (newest, kind) {
            (true, HealthEventKind::Failure) => "down".to_string(),
            (true, HealthEventKind::Recovery) => "active".to_string(),
            (false, _) => current.unwrap_or_else(|| "active".into()),
        };
        let at_text =
            rfc3339_micros(chrono::DateTime::from_timestamp_micros(at).unwrap_or_default());
        let draft = self.draft(
            BlockKind::Health,
            Some(name.clone()),
            json!({ "event": kind.as_str(), "at": at_text, "status": status }),
        );
        let blocks = self
            .store
            .append_blocks_with(
                vec![draft],
                vec![StateChange::RecordHealthEvent {
                    region: name.clone(),
                    kind: kind.as_str().to_string(),
                    at_us: at,
                    status: status.clone(),
                    recorded_at: rfc3339_micros(now_micros()),
                }],
            )
            .await?;
        let mut state = lock(&self.state);
        state
            .events
            .entry(name.clone())
            .or_default()
            .push(HealthEvent { kind, at });
        if let Some(r) = state.regions.get_mut(&name) {
            r.status = status;
        }
        Ok(blocks.first().map_or(0, |b| b.index))
    }

    /// Erases a personal-class run's link to its data subject (GDPR): the
    /// stored run keeps its figures and feed seq but its `run_id` becomes
    /// `erased:<run_ref prefix>` and the salt is dropped, so the ledger's
    /// `run_ref` can no longer be tied to the id. The chain is untouched; an
    /// `erasure` block records that it happened (by reference only).
    pub async fn erase_personal_run(&self, run_id: &str) -> Result<(String, u64), TrustError> {
        let _guard = self.changes.lock().await;
        let run = self
            .store
            .reader()
            .get_run(run_id)
            .await?
            .ok_or_else(|| TrustError::UnknownRun(run_id.to_string()))?;
        let class = run.telemetry.data_class;
        let Some(salt) = run
            .erasure_salt
            .as_deref()
            .filter(|_| class == DataClass::Personal)
        else {
            return Err(TrustError::NotPersonal(run_id.to_string(), class.as_str()));
        };
        let run_ref = qunimbus_ledger::personal::run_reference(salt, run_id);
        let tombstone = format!("erased:{}", &run_ref[..32]);
        let draft = self.draft(
            BlockKind::Erasure,
            Some(run.telemetry.region.clone()),
            json!({ "run_ref": run_ref, "valuation_block": run.block_index }),
        );
        let blocks = self
            .store
            .append_blocks_with(
                vec![draft],
                vec![StateChange::EraseRun {
                    run_id: run_id.to_string(),
                    tombstone,
                }],
            )
            .await?;
        Ok((run_ref, blocks.first().map_or(0, |b| b.index)))
    }

    /// Every rollout, newest first.
    pub fn rollouts(&self) -> Vec<Rollout> {
        let mut all = lock(&self.state).rollouts.clone();
        all.reverse();
        all
    }

    /// One rollout.
    pub fn rollout(&self, id: &str) -> Option<Rollout> {
        lock(&self.state)
            .rollouts
            .iter()
            .find(|r| r.id == id)
            .cloned()
    }

    /// Starts a rollout with its canary phase deployed.
    pub async fn start_rollout(
        &self,
        version: String,
        canary: Option<String>,
    ) -> Result<Rollout, TrustError> {
        let _guard = self.changes.lock().await;
        if let Some(active) = lock(&self.state)
            .rollouts
            .iter()
            .find(|r| r.state.is_active())
        {
            return Err(TrustError::RolloutActive(active.id.clone()));
        }
        let default_canary = self.settings.phases[0].regions[0].clone();
        let (phases, canary) = plan_for_canary(
            &self.settings.phases,
            canary.as_deref().unwrap_or(&default_canary),
        )?;
        let now = now_micros();
        let id = format!("ro-{}", now.format("%Y%m%dT%H%M%S%6fZ"));
        let mut rollout = Rollout::start(
            id,
            version,
            canary,
            phases,
            self.settings.soak_micros,
            now.timestamp_micros(),
        );
        let transition = rollout.record_creation(rfc3339_micros(now));
        let draft = self.rollout_draft(
            &rollout,
            &transition.from,
            &transition.reason,
            "operator",
            &[],
        );
        let (id, created) = (rollout.id.clone(), rfc3339_micros(now));
        self.record_transition(&mut rollout, draft, |state| StateChange::InsertRollout {
            id,
            created_at: created,
            state,
        })
        .await?;
        lock(&self.state).rollouts.push(rollout.clone());
        self.metrics.rollout_started();
        Ok(rollout)
    }

    fn rollout_draft(
        &self,
        rollout: &Rollout,
        from: &str,
        reason: &str,
        actor: &str,
        gates: &[qunimbus_trust::rollout::GateResult],
    ) -> BlockDraft {
        self.draft(
            BlockKind::Rollout,
            None,
            json!({
                "rollout_id": rollout.id,
                "version": rollout.version,
                "from": from,
                "to": rollout.label(),
                "phase": rollout.phase,
                "percent": rollout.phases.get(rollout.phase).map(|p| p.percent),
                "deployed_regions": rollout.deployed_regions(),
                "reason": reason,
                "actor": actor,
                "gates": gates,
            }),
        )
    }

    /// Writes the block of `rollout`'s newest transition together with
    /// `statement` (given the rollout's JSON), then notes the block's index
    /// in the history.
    async fn record_transition(
        &self,
        rollout: &mut Rollout,
        draft: BlockDraft,
        statement: impl FnOnce(String) -> StateChange,
    ) -> Result<(), TrustError> {
        let state =
            serde_json::to_string(&*rollout).map_err(|e| TrustError::Corrupt(e.to_string()))?;
        let blocks = self
            .store
            .append_blocks_with(vec![draft], vec![statement(state)])
            .await?;
        if let (Some(t), Some(b)) = (rollout.history.last_mut(), blocks.first()) {
            t.block_index = Some(b.index);
        }
        Ok(())
    }

    /// Applies a step to rollout `id` and records it (state + block).
    async fn apply_step(&self, id: &str, step: &Step) -> Result<Rollout, TrustError> {
        let mut rollout = self
            .rollout(id)
            .ok_or_else(|| TrustError::UnknownRollout(id.to_string()))?;
        let now = now_micros();
        let transition = rollout.apply(step, now.timestamp_micros(), rfc3339_micros(now));
        let draft = self.rollout_draft(
            &rollout,
            &transition.from,
            &step.reason,
            step.actor,
            &step.gates,
        );
        let (id, active) = (rollout.id.clone(), rollout.state.is_active());
        self.record_transition(&mut rollout, draft, |state| StateChange::UpdateRollout {
            id,
            state,
            active,
        })
        .await?;
        tracing::info!(rollout = %rollout.id, from = %transition.from, to = %transition.to, reason = %step.reason, "rollout transition");
        self.metrics.rollout_transition(rollout.state.as_str());
        let mut state = lock(&self.state);
        if let Some(slot) = state.rollouts.iter_mut().find(|r| r.id == rollout.id) {
            *slot = rollout.clone();
        }
        Ok(rollout)
    }

    /// An operator's command on rollout `id`.
    pub async fn command(
        &self,
        id: &str,
        command: Command,
        reason: &str,
    ) -> Result<Rollout, TrustError> {
        let _guard = self.changes.lock().await;
        let rollout = self
            .rollout(id)
            .ok_or_else(|| TrustError::UnknownRollout(id.to_string()))?;
        let step = rollout.command(command, reason)?;
        self.apply_step(id, &step).await
    }

    /// What the gates see now.
    pub fn gate_inputs(&self) -> GateInputs {
        let views = self.region_views();
        GateInputs {
            trust: views
                .iter()
                .map(|v| (v.name.clone(), v.trust_score))
                .collect(),
            mtbf: views
                .iter()
                .map(|v| (v.name.clone(), v.health.mtbf()))
                .collect(),
            compliance_failures: lock(&self.compliance)
                .as_ref()
                .map(|s| s.report.failures())
                .unwrap_or_default(),
        }
    }

    /// One controller pass over the active rollouts.
    pub async fn tick_rollouts(&self) -> Result<(), TrustError> {
        let _guard = self.changes.lock().await;
        let active: Vec<Rollout> = lock(&self.state)
            .rollouts
            .iter()
            .filter(|r| r.state.is_active())
            .cloned()
            .collect();
        if active.is_empty() {
            return Ok(());
        }
        let inputs = self.gate_inputs();
        let now = now_micros().timestamp_micros();
        for rollout in active {
            if let Some(step) = rollout.tick(now, &inputs, &self.settings.thresholds) {
                self.apply_step(&rollout.id, &step).await?;
            }
        }
        Ok(())
    }

    /// Gathers the evidence and evaluates compliance; `ledger` is the newest
    /// chain verification (`None` if none ran yet).
    pub async fn evaluate_compliance(
        &self,
        ledger: Option<Result<(), String>>,
        ledger_summary: Option<LedgerEvidence>,
    ) -> Result<ComplianceSnapshot, TrustError> {
        let reader = self.store.reader();
        let mut stored_runs = Vec::new();
        for row in reader.restricted_run_counts().await? {
            let data_class = DataClass::parse(&row.data_class)
                .ok_or_else(|| TrustError::Corrupt(format!("data class {:?}", row.data_class)))?;
            stored_runs.push(StoredRuns {
                data_class,
                region: row.region,
                count: u64::try_from(row.count).unwrap_or(0),
            });
        }
        let personal_in_clear = reader.personal_runs_in_clear().await?;
        let blocks = self.rollout_blocks().await?;
        let rollouts = lock(&self.state)
            .rollouts
            .iter()
            .map(|r| {
                let on_ledger = blocks.get(&r.id).map_or(&[][..], Vec::as_slice);
                RolloutEvidence {
                    id: r.id.clone(),
                    transitions: r.history.len(),
                    blocks: on_ledger.len(),
                    // As the ledger tells it, not the in-memory history.
                    started_at_canary: on_ledger.first().is_some_and(|b| {
                        b.from.as_deref() == Some("created") && b.to.as_deref() == Some("running@0")
                    }),
                }
            })
            .collect();
        let policy_status = self.policy.status();
        let evidence = Evidence {
            ledger,
            stored_runs,
            personal_in_clear,
            // The newest config block on the ledger must name the policy in force.
            policy_recorded: match self.policy_block(&policy_status.sha256).await? {
                Some(_) => Ok(()),
                None => Err(format!(
                    "the newest config block on the ledger does not record the policy in force (sha256 {})",
                    policy_status.sha256
                )),
            },
            rollouts,
            violations: lock(&self.violations).clone(),
        };
        let report = compliance::evaluate(&self.policy.engine(), &evidence, &self.frameworks);
        let snapshot = ComplianceSnapshot {
            evaluated_at: rfc3339_micros(now_micros()),
            report,
            ledger: ledger_summary,
        };
        for (framework, status) in &snapshot.report.frameworks {
            self.metrics.compliance_status(framework, status.compliant);
        }
        *lock(&self.compliance) = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// The newest compliance evaluation.
    pub fn compliance(&self) -> Option<ComplianceSnapshot> {
        lock(&self.compliance).clone()
    }

    /// Writes an attestation block from `snapshot`; `scheduled` tells the
    /// controller's periodic one from one an operator asked for.
    pub async fn attest(
        &self,
        snapshot: &ComplianceSnapshot,
        scheduled: bool,
    ) -> Result<u64, TrustError> {
        let draft = self.draft(
            BlockKind::Attestation,
            None,
            json!({
                "scheduled": scheduled,
                "evaluated_at": snapshot.evaluated_at,
                "frameworks": snapshot.report.frameworks,
                "violations": snapshot.report.violations,
                "ledger": snapshot.ledger,
            }),
        );
        let blocks = self.store.append_blocks(vec![draft]).await?;
        Ok(blocks.first().map_or(0, |b| b.index))
    }

    /// Publishes the region, mesh and rollout gauges.
    pub fn refresh_metrics(&self) {
        let views = self.region_views();
        for v in &views {
            self.metrics.region(
                &v.name,
                v.trust_score,
                v.status != "down",
                v.availability,
                v.failures,
                v.mtbf_hours,
            );
        }
        self.metrics
            .mesh_mtbf(combined_mtbf(views.iter().map(|v| &v.health)).hours());
        let percent = lock(&self.state)
            .rollouts
            .iter()
            .find(|r| r.state.is_active())
            .and_then(|r| r.phases.get(r.phase).map(|p| p.percent))
            .unwrap_or(0);
        self.metrics.rollout_phase_percent.set(i64::from(percent));
    }

    /// Whether the policy file changed on disk since it was read.
    pub fn policy_changed_on_disk(&self) -> bool {
        self.policy.changed_on_disk()
    }
}

/// The ledger part of a compliance evaluation, from the newest verification.
fn ledger_evidence(
    report: Option<&crate::ledger::VerifyReport>,
) -> (Option<Result<(), String>>, Option<LedgerEvidence>) {
    match report {
        None => (None, None),
        Some(r) => {
            let verdict = if r.ok {
                Ok(())
            } else {
                Err(r
                    .failure
                    .as_ref()
                    .map_or_else(|| "verification failed".to_string(), |f| format!("{f:?}")))
            };
            let summary = Some(LedgerEvidence {
                ok: r.ok,
                blocks_checked: r.blocks_checked,
                checkpoint_size: r.checkpoint_size,
                checked_at: r.checked_at.clone(),
            });
            (Some(verdict), summary)
        }
    }
}

/// Evaluates compliance now from the newest chain verification.
pub async fn evaluate_now(state: &crate::Node) -> Result<ComplianceSnapshot, TrustError> {
    let last = lock(&state.last_verification).clone();
    let (ledger, summary) = ledger_evidence(last.as_ref());
    state.trust.evaluate_compliance(ledger, summary).await
}

/// When the newest scheduled attestation was written (Unix µs).
async fn last_scheduled_attestation(store: &Store) -> Option<i64> {
    let blocks = store
        .reader()
        .latest_blocks_of_kind("attestation", 16)
        .await
        .ok()?;
    blocks
        .iter()
        .find(|b| {
            b.payload
                .as_ref()
                .and_then(|p| p.get("scheduled"))
                .and_then(Value::as_bool)
                == Some(true)
        })
        .and_then(|b| chrono::DateTime::parse_from_rfc3339(&b.timestamp).ok())
        .map(|t| t.timestamp_micros())
}

/// The Trust Kernel's background task: reloads the policy when its file
/// changes, re-gathers compliance evidence, drives the rollout controller
/// and writes the scheduled attestation (after a fresh chain verification),
/// until `stop`. The trust gauges are computed when `/metrics` is scraped.
pub async fn run_controller(state: Arc<crate::Node>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let kernel = state.trust.clone();
    let settings = kernel.settings.clone();
    let attestation_micros =
        i64::try_from(settings.attestation_interval.as_micros()).unwrap_or(i64::MAX);
    // Without an earlier scheduled attestation the first is due one interval
    // after this start.
    let mut last_attestation = Some(
        last_scheduled_attestation(&state.store)
            .await
            .unwrap_or_else(|| now_micros().timestamp_micros()),
    );
    if let Err(e) = state.verify_and_record().await {
        tracing::warn!(error = %e, "the start-up ledger verification could not run");
    }
    let mut last_evaluation: Option<std::time::Instant> = None;
    loop {
        if kernel.policy_changed_on_disk() {
            // A refused file is logged and reported; the old policy stays.
            let _ = kernel.reload_policy().await;
            last_evaluation = None;
        }
        let now = now_micros().timestamp_micros();
        let attestation_due =
            last_attestation.is_none_or(|t| now.saturating_sub(t) >= attestation_micros);
        if attestation_due {
            if let Err(e) = state.verify_and_record().await {
                tracing::warn!(error = %e, "ledger verification for the attestation failed to run");
            }
            match evaluate_now(&state).await {
                Ok(snapshot) => match kernel.attest(&snapshot, true).await {
                    Ok(index) => {
                        tracing::info!(block = index, "scheduled compliance attestation written");
                        last_attestation = Some(now);
                        last_evaluation = Some(std::time::Instant::now());
                    }
                    Err(e) => tracing::warn!(error = %e, "could not write the attestation"),
                },
                Err(e) => tracing::warn!(error = %e, "compliance evaluation failed"),
            }
        } else if last_evaluation.is_none_or(|t| t.elapsed() >= settings.compliance_interval) {
            match evaluate_now(&state).await {
                Ok(_) => last_evaluation = Some(std::time::Instant::now()),
                Err(e) => tracing::warn!(error = %e, "compliance evaluation failed"),
            }
        }
        if let Err(e) = kernel.tick_rollouts().await {
            tracing::warn!(error = %e, "rollout controller pass failed; retrying next tick");
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.controller_interval) => {}
            _ = stop.changed() => break,
        }
    }
}

/// One `rollout` block as the ledger holds it.
struct RolloutBlock {
    index: u64,
    from: Option<String>,
    to: Option<String>,
}
