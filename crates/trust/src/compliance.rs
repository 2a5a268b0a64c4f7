//! Continuous compliance: per framework, `compliant` true/false from
//! evidence, with the reasons (SPEC §6). The node gathers the [`Evidence`]
//! (ledger verification, what is stored, what was rejected) and this module
//! judges it against the loaded policy.
//!
//! - **ITAR / GDPR**: at least one policy rule evidences the framework, and
//!   no stored run of the class (`itar` / `personal`) sits in a region the
//!   current policy does not accept it in; GDPR also needs zero personal-class
//!   valuation blocks with the run id in clear. Rejected attempts are counted
//!   and reported; they show enforcement working, not a breach.
//! - **ISO-27001** (A.12.1.2 change management, A.14.2.2 change control):
//!   the ledger verifies, the running policy's load is recorded on the
//!   ledger, and every rollout transition has its ledger block.
//! - Other frameworks have no evidence source in this node: `compliant` is
//!   `null` ("pending"), never a made-up `true`.

use std::collections::BTreeMap;

use qunimbus_core::DataClass;
use serde::Serialize;

use crate::policy::PolicyEngine;

/// How many runs of one class are stored for one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRuns {
    /// The data class.
    pub data_class: DataClass,
    /// The region.
    pub region: String,
    /// How many.
    pub count: u64,
}

/// A rollout's transitions compared with its ledger blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutEvidence {
    /// The rollout.
    pub id: String,
    /// Transitions in its stored history.
    pub transitions: usize,
    /// `rollout` blocks on the ledger for it.
    pub blocks: usize,
    /// Whether its first transition deployed the canary phase.
    pub started_at_canary: bool,
}

/// What the node measured for a compliance evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The latest chain verification: `None` if none ran yet, `Err(reason)` if it failed.
    pub ledger: Option<Result<(), String>>,
    /// Stored runs per class and region.
    pub stored_runs: Vec<StoredRuns>,
    /// Personal-class valuation blocks that carry the run id in clear.
    pub personal_in_clear: u64,
    /// Whether the running policy's load is recorded on the ledger.
    pub policy_recorded: Result<(), String>,
    /// Every rollout.
    pub rollouts: Vec<RolloutEvidence>,
    /// Rejected requests per rule since the node started.
    pub violations: BTreeMap<String, u64>,
}

/// One framework's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FrameworkStatus {
    /// `true`/`false` from evidence; `None` when nothing here evidences it.
    pub compliant: Option<bool>,
    /// Why.
    pub reasons: Vec<String>,
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComplianceReport {
    /// Framework → verdict.
    pub frameworks: BTreeMap<String, FrameworkStatus>,
    /// Rejections per rule.
    pub violations: BTreeMap<String, u64>,
    /// Open findings attributed to one region.
    pub region_findings: BTreeMap<String, u32>,
    /// Open findings that concern every region (e.g. the ledger).
    pub global_findings: u32,
}

impl ComplianceReport {
    /// "framework: reason" for every failed framework (the rollout gate).
    pub fn failures(&self) -> Vec<String> {
        self.frameworks
            .iter()
            .filter(|(_, s)| s.compliant == Some(false))
            .map(|(f, s)| format!("{f} non-compliant: {}", s.reasons.join("; ")))
            .collect()
    }

    /// Open findings for `region` (its own plus the global ones).
    pub fn findings_for(&self, region: &str) -> u32 {
        self.global_findings + self.region_findings.get(region).copied().unwrap_or(0)
    }
}

/// Judges `evidence` against `policy` for each of `frameworks`.
pub fn evaluate(
    policy: &PolicyEngine,
    evidence: &Evidence,
    frameworks: &[String],
) -> ComplianceReport {
    let mut report = ComplianceReport {
        frameworks: BTreeMap::new(),
        violations: evidence.violations.clone(),
        region_findings: BTreeMap::new(),
        global_findings: 0,
    };
    for framework in frameworks {
        let status = match framework.to_ascii_uppercase().as_str() {
            "ITAR" => residency(policy, evidence, framework, DataClass::Itar, &mut report),
            "GDPR" => {
                let mut status = residency(
                    policy,
                    evidence,
                    framework,
                    DataClass::Personal,
                    &mut report,
                );
                if evidence.personal_in_clear > 0 {
                    status.compliant = Some(false);
                    status.reasons.push(format!(
                        "{} personal-class valuation blocks carry the run id in clear",
                        evidence.personal_in_clear
                    ));
                    report.global_findings += 1;
                } else {
                    status
                        .reasons
                        .push("no personal-class block carries a run id in clear".into());
                }
                status
            }
            "ISO-27001" => {
                let status = change_control(evidence);
                if status.compliant == Some(false) {
                    report.global_findings += 1;
                }
                status
            }
            _ => FrameworkStatus {
                compliant: None,
                reasons: vec!["no evidence source for this framework in this node".into()],
            },
        };
        report.frameworks.insert(framework.clone(), status);
    }
    report
}

/// ITAR/GDPR: rules exist, and stored runs of `class` sit only where the
/// policy accepts them.
fn residency(
    policy: &PolicyEngine,
    evidence: &Evidence,
    framework: &str,
    class: DataClass,
    report: &mut ComplianceReport,
) -> FrameworkStatus {
    let rules: Vec<&str> = policy
        .rules()
        .iter()
        .filter(|r| {
            r.framework
                .as_deref()
                .is_some_and(|f| f.eq_ignore_ascii_case(framework))
        })
        .map(|r| r.id.as_str())
        .collect();
    let mut status = FrameworkStatus {
        compliant: Some(true),
        reasons: Vec::new(),
    };
    if rules.is_empty() {
        status.compliant = Some(false);
        status.reasons.push(format!(
            "no policy rule is annotated @framework(\"{framework}\")"
        ));
        report.global_findings += 1;
    } else {
        status
            .reasons
            .push(format!("enforced by policy rules {}", rules.join(", ")));
    }
    let mut misplaced = 0;
    for stored in evidence
        .stored_runs
        .iter()
        .filter(|s| s.data_class == class && s.count > 0)
    {
        let decision = policy.accept(class, &stored.region);
        if !decision.allowed {
            misplaced += 1;
            status.compliant = Some(false);
            status.reasons.push(format!(
                "{} {} runs are stored in {}, where the policy does not accept them ({})",
                stored.count,
                class.as_str(),
                stored.region,
                decision.rules.join(", ")
            ));
            *report
                .region_findings
                .entry(stored.region.clone())
                .or_default() += 1;
        }
    }
    if misplaced == 0 {
        status.reasons.push(format!(
            "every stored {} run is in a region the policy accepts",
            class.as_str()
        ));
    }
    let rejected: u64 = evidence
        .violations
        .iter()
        .filter(|(rule, _)| rules.contains(&rule.as_str()))
        .map(|(_, n)| n)
        .sum();
    status.reasons.push(format!(
        "{rejected} violating requests rejected since the node started"
    ));
    status
}

/// ISO 27001 A.12.1.2 / A.14.2.2: the ledger verifies and every change is on it.
fn change_control(evidence: &Evidence) -> FrameworkStatus {
    let mut status = FrameworkStatus {
        compliant: Some(true),
        reasons: Vec::new(),
    };
    match &evidence.ledger {
        Some(Ok(())) => status.reasons.push("the ledger verifies".into()),
        Some(Err(reason)) => {
            status.compliant = Some(false);
            status
                .reasons
                .push(format!("ledger verification failed: {reason}"));
        }
        None => {
            status.compliant = None;
            status
                .reasons
                .push("the ledger has not been verified yet".into());
        }
    }
    match &evidence.policy_recorded {
        Ok(()) => status
            .reasons
            .push("the running policy's load is recorded on the ledger".into()),
        Err(reason) => {
            status.compliant = Some(false);
            status.reasons.push(reason.clone());
        }
    }
    let mut unrecorded = 0;
    for r in &evidence.rollouts {
        if r.transitions != r.blocks {
            unrecorded += 1;
            status.compliant = Some(false);
            status.reasons.push(format!(
                "rollout {} has {} transitions but {} ledger blocks",
                r.id, r.transitions, r.blocks
            ));
        }
        if !r.started_at_canary {
            status.compliant = Some(false);
            status.reasons.push(format!(
                "rollout {} did not start at the canary phase",
                r.id
            ));
        }
    }
    if unrecorded == 0 {
        status.reasons.push(format!(
            "all {} rollouts have a ledger block for every transition",
            evidence.rollouts.len()
        ));
    }
    status
}

#[cfg(test)]
mod tests;
