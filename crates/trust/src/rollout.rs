//! The staged blue-green rollout controller (SPEC §6), as a pure state
//! machine: the node feeds it the clock and the gate inputs, persists the
//! rollout after every transition and records each transition on the ledger.
//!
//! Phases: canary 5 % (the canary region) → 25 % (EU) → 60 % (APAC, MENA) →
//! 100 % (Polar, Orbit). A running rollout advances when its phase has soaked
//! for the soak time with every gate passing. It rolls back automatically when
//! a deployed region's trust falls below the rollback threshold or a
//! compliance check fails, and pauses for investigation when a deployed
//! region's MTBF falls below the pause threshold. Operators may advance,
//! pause, resume or roll back by hand.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

use crate::health::Mtbf;

/// One rollout phase: the share of the fleet and the regions it adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Share of the fleet running the new version once this phase is deployed.
    pub percent: u8,
    /// Regions this phase deploys to.
    pub regions: Vec<String>,
}

/// The default phase plan of SPEC §6 (canary Americas).
pub fn default_phases() -> Vec<Phase> {
    let phase = |percent, regions: &[&str]| Phase {
        percent,
        regions: regions.iter().map(|r| r.to_string()).collect(),
    };
    vec![
        phase(5, &["Americas"]),
        phase(25, &["EU"]),
        phase(60, &["APAC", "MENA"]),
        phase(100, &["Polar", "Orbit"]),
    ]
}

/// Why a rollout request or command is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RolloutError {
    /// The canary region is not in the plan.
    #[error("canary region {0:?} is not part of the rollout plan")]
    UnknownCanary(String),
    /// The plan is unusable.
    #[error("invalid rollout plan: {0}")]
    InvalidPlan(String),
    /// The command does not apply in the rollout's state.
    #[error("cannot {command} a rollout that is {state}")]
    InvalidCommand {
        /// The command.
        command: &'static str,
        /// The state it was given in.
        state: RolloutState,
    },
}

/// Checks a phase plan: at least one phase, percents rising to 100, every
/// region once.
pub fn validate_plan(phases: &[Phase]) -> Result<(), RolloutError> {
    let invalid = |m: String| Err(RolloutError::InvalidPlan(m));
    if phases.is_empty() {
        return invalid("at least one phase is needed".into());
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut last = 0u8;
    for (i, phase) in phases.iter().enumerate() {
        if phase.regions.is_empty() {
            return invalid(format!("phase {i} has no regions"));
        }
        if phase.percent <= last || phase.percent > 100 {
            return invalid(format!(
                "phase {i}: percent {} must rise above {last} and be at most 100",
                phase.percent
            ));
        }
        last = phase.percent;
        for region in &phase.regions {
            if seen.iter().any(|s| s.eq_ignore_ascii_case(region)) {
                return invalid(format!("region {region:?} appears in two phases"));
            }
            seen.push(region);
        }
    }
    if last != 100 {
        return invalid(format!("the last phase must reach 100 %, not {last} %"));
    }
    Ok(())
}

/// The phases of a rollout whose canary is `canary`: the plan's first region
/// (the default canary) and `canary` swap places, so the canary phase holds
/// `canary` alone and every other region keeps a phase. Returns the phases
/// and the canary's canonical spelling.
pub fn plan_for_canary(
    template: &[Phase],
    canary: &str,
) -> Result<(Vec<Phase>, String), RolloutError> {
    validate_plan(template)?;
    let mut phases = template.to_vec();
    let default = phases[0].regions[0].clone();
    let (pi, ri) = phases
        .iter()
        .enumerate()
        .find_map(|(pi, p)| {
            p.regions
                .iter()
                .position(|r| r.eq_ignore_ascii_case(canary))
                .map(|ri| (pi, ri))
        })
        .ok_or_else(|| RolloutError::UnknownCanary(canary.to_string()))?;
    let canonical = phases[pi].regions[ri].clone();
    if (pi, ri) != (0, 0) {
        phases[pi].regions[ri] = default;
        phases[0].regions[0] = canonical.clone();
    }
    Ok((phases, canonical))
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Deploying; advances after each soak.
    Running,
    /// Held for investigation; only an operator resumes it.
    Paused,
    /// Undone; nothing runs the new version.
    RolledBack,
    /// Every phase deployed.
    Completed,
}

impl RolloutState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::RolledBack => "rolled_back",
            Self::Completed => "completed",
        }
    }

    /// Whether the rollout can still change by itself or by command.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Running | Self::Paused)
    }
}

impl std::fmt::Display for RolloutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds of the automatic gates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateThresholds {
    /// Roll back when a deployed region's trust falls below this (0.7).
    pub rollback_trust: f64,
    /// Pause when a deployed region's MTBF falls below this many hours (100).
    pub pause_mtbf_hours: f64,
}

impl Default for GateThresholds {
    fn default() -> Self {
        Self {
            rollback_trust: 0.7,
            pause_mtbf_hours: 100.0,
        }
    }
}

/// What the gates look at, measured by the node at evaluation time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateInputs {
    /// Trust score per region (override or computed).
    pub trust: BTreeMap<String, f64>,
    /// MTBF per region over the window.
    pub mtbf: BTreeMap<String, Mtbf>,
    /// Failed compliance checks ("framework: reason"); empty when compliant.
    pub compliance_failures: Vec<String>,
}

/// The outcome of one gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateResult {
    /// `trust`, `compliance` or `mtbf`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was measured.
    pub detail: String,
}

/// One recorded transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transition {
    /// When (RFC 3339 µs, from the caller's clock).
    pub at: String,
    /// State and phase before, e.g. `running@0`; `created` for the first.
    pub from: String,
    /// State and phase after.
    pub to: String,
    /// Why.
    pub reason: String,
    /// Who decided: `controller` or `operator`.
    pub actor: String,
    /// The ledger block recording it, once stored.
    pub block_index: Option<u64>,
}

/// A step the controller or an operator decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// State after the step.
    pub state: RolloutState,
    /// Phase after the step.
    pub phase: usize,
    /// Why.
    pub reason: String,
    /// `controller` or `operator`.
    pub actor: &'static str,
    /// Gate results that led to it (automatic steps).
    pub gates: Vec<GateResult>,
}

/// An operator command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Deploy the next phase now (skipping the rest of the soak).
    Advance,
    /// Hold the rollout.
    Pause,
    /// Continue a paused rollout; the current phase soaks again in full.
    Resume,
    /// Undo the rollout.
    Rollback,
}

impl Command {
    /// Parses `advance`, `pause`, `resume` or `rollback`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "advance" => Some(Self::Advance),
            "pause" => Some(Self::Pause),
            "resume" => Some(Self::Resume),
            "rollback" => Some(Self::Rollback),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Advance => "advance",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Rollback => "roll back",
        }
    }
}

/// A rollout and its history; the unit the node persists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Identifier.
    pub id: String,
    /// The version being rolled out.
    pub version: String,
    /// The canary region.
    pub canary_region: String,
    /// The phase plan.
    pub phases: Vec<Phase>,
    /// Index of the newest deployed phase.
    pub phase: usize,
    /// Where it stands.
    pub state: RolloutState,
    /// When the current phase was deployed or last resumed (Unix µs).
    pub phase_started_at: i64,
    /// Soak time per phase (µs).
    pub soak_micros: i64,
    /// Why it is paused, rolled back or completed.
    pub reason: Option<String>,
    /// Every transition so far.
    pub history: Vec<Transition>,
}

impl Rollout {
    /// Checks a rollout read back from storage before anything indexes its
    /// phases: a valid plan, the current phase inside it, a soak time ≥ 0.
    pub fn check_stored(&self) -> Result<(), RolloutError> {
        validate_plan(&self.phases)?;
        if self.phase >= self.phases.len() {
            return Err(RolloutError::InvalidPlan(format!(
                "current phase {} is outside its {} phases",
                self.phase,
                self.phases.len()
            )));
        }
        if self.soak_micros < 0 {
            return Err(RolloutError::InvalidPlan(format!(
                "negative soak time {} µs",
                self.soak_micros
            )));
        }
        Ok(())
    }

    /// A new rollout with its canary phase deployed at `now`.
    pub fn start(
        id: String,
        version: String,
        canary_region: String,
        phases: Vec<Phase>,
        soak_micros: i64,
        now: i64,
    ) -> Self {
        Self {
            id,
            version,
            canary_region,
            phases,
            phase: 0,
            state: RolloutState::Running,
            phase_started_at: now,
            soak_micros,
            reason: None,
            history: Vec::new(),
        }
    }

    /// Records the creation (canary deployed) as the first transition.
    pub fn record_creation(&mut self, at: String) -> Transition {
        let transition = Transition {
            at,
            from: "created".into(),
            to: self.label(),
            reason: format!(
                "version {} deployed to the canary ({} %, {})",
                self.version,
                self.phases[0].percent,
                self.phases[0].regions.join(", ")
            ),
            actor: "operator".into(),
            block_index: None,
        };
        self.history.push(transition.clone());
        transition
    }

    /// `state@phase`, as recorded in transitions.
    pub fn label(&self) -> String {
        format!("{}@{}", self.state, self.phase)
    }

    /// Regions running the new version now.
    pub fn deployed_regions(&self) -> Vec<&str> {
        match self.state {
            RolloutState::RolledBack => Vec::new(),
            _ => self.phases[..=self.phase.min(self.phases.len() - 1)]
                .iter()
                .flat_map(|p| p.regions.iter().map(String::as_str))
                .collect(),
        }
    }

    /// The gates over the deployed regions.
    pub fn gates(&self, inputs: &GateInputs, limits: &GateThresholds) -> Vec<GateResult> {
        let deployed = self.deployed_regions();
        let low_trust: Vec<String> = deployed
            .iter()
            .filter_map(|r| {
                let t = *inputs.trust.get(*r)?;
                (t < limits.rollback_trust).then(|| format!("{r} {t:.3}"))
            })
            .collect();
        let low_mtbf: Vec<String> = deployed
            .iter()
            .filter_map(|r| {
                let h = inputs.mtbf.get(*r)?.hours()?;
                (h < limits.pause_mtbf_hours).then(|| format!("{r} {h:.2} h"))
            })
            .collect();
        vec![
            GateResult {
                name: "trust".into(),
                passed: low_trust.is_empty(),
                detail: if low_trust.is_empty() {
                    format!("every deployed region's trust ≥ {}", limits.rollback_trust)
                } else {
                    format!(
                        "trust below {}: {}",
                        limits.rollback_trust,
                        low_trust.join(", ")
                    )
                },
            },
            GateResult {
                name: "compliance".into(),
                passed: inputs.compliance_failures.is_empty(),
                detail: if inputs.compliance_failures.is_empty() {
                    "every evaluated framework is compliant".into()
                } else {
                    inputs.compliance_failures.join("; ")
                },
            },
            GateResult {
                name: "mtbf".into(),
                passed: low_mtbf.is_empty(),
                detail: if low_mtbf.is_empty() {
                    format!(
                        "no deployed region's MTBF below {} h",
                        limits.pause_mtbf_hours
                    )
                } else {
                    format!(
                        "MTBF below {} h: {}",
                        limits.pause_mtbf_hours,
                        low_mtbf.join(", ")
                    )
                },
            },
        ]
    }

    /// What the controller does at `now`, if anything: roll back on a failed
    /// trust or compliance gate (running or paused), pause on a failed MTBF
    /// gate, advance (or complete) once the phase has soaked.
    pub fn tick(&self, now: i64, inputs: &GateInputs, limits: &GateThresholds) -> Option<Step> {
        if !self.state.is_active() {
            return None;
        }
        let gates = self.gates(inputs, limits);
        let failed = |name: &str| gates.iter().find(|g| g.name == name && !g.passed);
        let step = |state, phase, reason: String, gates: Vec<GateResult>| Step {
            state,
            phase,
            reason,
            actor: "controller",
            gates,
        };
        if let Some(g) = failed("trust").or_else(|| failed("compliance")) {
            let reason = format!("automatic rollback: {}", g.detail);
            return Some(step(RolloutState::RolledBack, self.phase, reason, gates));
        }
        if self.state == RolloutState::Paused {
            return None;
        }
        if let Some(g) = failed("mtbf") {
            let reason = format!("paused for investigation: {}", g.detail);
            return Some(step(RolloutState::Paused, self.phase, reason, gates));
        }
        if now - self.phase_started_at < self.soak_micros {
            return None;
        }
        let soaked = self.soak_micros as f64 / 1e6;
        Some(if self.phase + 1 >= self.phases.len() {
            step(
                RolloutState::Completed,
                self.phase,
                format!(
                    "phase {} soaked {soaked} s with every gate passing; rollout complete",
                    self.phase
                ),
                gates,
            )
        } else {
            step(
                RolloutState::Running,
                self.phase + 1,
                format!(
                    "phase {} soaked {soaked} s with every gate passing; deploying {} % ({})",
                    self.phase,
                    self.phases[self.phase + 1].percent,
                    self.phases[self.phase + 1].regions.join(", ")
                ),
                gates,
            )
        })
    }

    /// The step an operator command asks for, or why it does not apply.
    pub fn command(&self, command: Command, reason: &str) -> Result<Step, RolloutError> {
        let refuse = || RolloutError::InvalidCommand {
            command: command.as_str(),
            state: self.state,
        };
        let by_operator = |state, phase, what: String| Step {
            state,
            phase,
            reason: if reason.is_empty() {
                what
            } else {
                format!("{what}: {reason}")
            },
            actor: "operator",
            gates: Vec::new(),
        };
        match (command, self.state) {
            (Command::Advance, RolloutState::Running | RolloutState::Paused) => {
                Ok(if self.phase + 1 >= self.phases.len() {
                    by_operator(
                        RolloutState::Completed,
                        self.phase,
                        "manual completion".into(),
                    )
                } else {
                    by_operator(
                        RolloutState::Running,
                        self.phase + 1,
                        format!(
                            "manual advance to {} % ({})",
                            self.phases[self.phase + 1].percent,
                            self.phases[self.phase + 1].regions.join(", ")
                        ),
                    )
                })
            }
            (Command::Pause, RolloutState::Running) => Ok(by_operator(
                RolloutState::Paused,
                self.phase,
                "manual pause".into(),
            )),
            (Command::Resume, RolloutState::Paused) => Ok(by_operator(
                RolloutState::Running,
                self.phase,
                "manual resume".into(),
            )),
            (Command::Rollback, RolloutState::Running | RolloutState::Paused) => Ok(by_operator(
                RolloutState::RolledBack,
                self.phase,
                "manual rollback".into(),
            )),
            _ => Err(refuse()),
        }
    }

    /// Applies `step` at `now` (RFC 3339 `at`), returning the transition to
    /// record. A new phase or a resume restarts the soak clock.
    pub fn apply(&mut self, step: &Step, now: i64, at: String) -> Transition {
        let from = self.label();
        let restart_soak = step.phase != self.phase
            || (self.state == RolloutState::Paused && step.state == RolloutState::Running);
        self.state = step.state;
        self.phase = step.phase;
        if restart_soak {
            self.phase_started_at = now;
        }
        self.reason = match step.state {
            RolloutState::Running => None,
            _ => Some(step.reason.clone()),
        };
        let transition = Transition {
            at,
            from,
            to: self.label(),
            reason: step.reason.clone(),
            actor: step.actor.to_string(),
            block_index: None,
        };
        self.history.push(transition.clone());
        transition
    }
}

#[cfg(test)]
mod tests;
