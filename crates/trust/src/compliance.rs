//! Continuous compliance: per framework, `compliant` true/false from
//! evidence, with the reasons (SPEC §6). The node gathers the [`Evidence`]
//! (ledger verification, what is stored, what was rejected) and this module
//! judges it against the loaded policy.
//!
//! - **ITAR / GDPR**: at least one policy rule evidences the framework, and
//!   no stored run of the class (`itar` / `personal`) sits in a region where
//!   the policy that accepted it, or any policy put in force after it, does
//!   not accept it: a run is judged by the rules in force when it was
//!   accepted, and widening the policy later never clears a finding. GDPR
//!   also needs zero personal-class valuation blocks with the run id in
//!   clear. Rejected attempts are counted and reported; they show enforcement
//!   working, not a breach.
//! - **ISO-27001** (A.12.1.2 change management, A.14.2.2 change control):
//!   the ledger verifies, the running policy's load and the node's effective
//!   configuration are recorded on the ledger, and every rollout transition
//!   has its ledger block.
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
    /// SHA-256 of the policy that accepted them; `None` for runs stored
    /// before that was recorded (judged by every recorded policy).
    pub policy_sha256: Option<String>,
    /// When the earliest of them was accepted (Unix µs).
    pub first_accepted_us: i64,
    /// How many.
    pub count: u64,
}

/// A period a policy was in force (the evaluation gets them in order; the
/// last is the policy in force now). A policy put back in force after
/// another is a new period.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInForce<'a> {
    /// SHA-256 of its text (hex).
    pub sha256: &'a str,
    /// When it was put in force (Unix µs).
    pub since_us: i64,
    /// The loaded policy.
    pub engine: &'a PolicyEngine,
}

/// A rollout's transitions compared with its ledger blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutEvidence {
    /// The rollout.
    pub id: String,
    /// Transitions in its stored history.
    pub transitions: usize,
    /// `rollout` blocks on the ledger for it (read after the history, so
    /// fewer blocks than transitions is a transition the ledger lacks).
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
    /// Whether the node's effective configuration is the one its newest
    /// configuration block records.
    pub config_recorded: Result<(), String>,
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

/// Judges `evidence` for each of `frameworks` against the policies that have
/// been in force (`policies`, oldest first, the last in force now; at least
/// one).
pub fn evaluate(
    policies: &[PolicyInForce<'_>],
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
            "ITAR" => residency(policies, evidence, framework, DataClass::Itar, &mut report),
            "GDPR" => {
                let mut status = residency(
                    policies,
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

/// ITAR/GDPR: rules exist, and stored runs of `class` sit only where every
/// policy from the one that accepted them on accepts them.
fn residency(
    policies: &[PolicyInForce<'_>],
    evidence: &Evidence,
    framework: &str,
    class: DataClass,
    report: &mut ComplianceReport,
) -> FrameworkStatus {
    let rules: Vec<&str> = policies.last().map_or_else(Vec::new, |current| {
        current
            .engine
            .rules()
            .iter()
            .filter(|r| {
                r.framework
                    .as_deref()
                    .is_some_and(|f| f.eq_ignore_ascii_case(framework))
            })
            .map(|r| r.id.as_str())
            .collect()
    });
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
        if let Some(finding) = misplacement(policies, stored) {
            misplaced += 1;
            status.compliant = Some(false);
            status.reasons.push(finding);
            *report
                .region_findings
                .entry(stored.region.clone())
                .or_default() += 1;
        }
    }
    if misplaced == 0 {
        status.reasons.push(format!(
            "every stored {} run is in a region the policy that accepted it, and every later one, accepts",
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

/// The period of `stored`'s accepting policy its earliest run fell in: the
/// last period of that policy begun by then (else its first period).
fn accepting_period(policies: &[PolicyInForce<'_>], stored: &StoredRuns) -> Option<usize> {
    let sha = stored.policy_sha256.as_deref()?;
    let periods = || policies.iter().enumerate().filter(|(_, p)| p.sha256 == sha);
    periods()
        .rfind(|(_, p)| p.since_us <= stored.first_accepted_us)
        .or_else(|| periods().next())
        .map(|(i, _)| i)
}

/// The finding for `stored` runs, if the policy that accepted them or a
/// later one forbids them where they are.
fn misplacement(policies: &[PolicyInForce<'_>], stored: &StoredRuns) -> Option<String> {
    let accepted_by = accepting_period(policies, stored);
    let judges = &policies[accepted_by.unwrap_or(0)..];
    let (position, decision) = judges.iter().enumerate().find_map(|(i, p)| {
        let d = p.engine.accept(stored.data_class, &stored.region);
        (!d.allowed).then_some((i, d))
    })?;
    let (class, count, region) = (stored.data_class.as_str(), stored.count, &stored.region);
    let rules = decision.rules.join(", ");
    let forbidding = short(judges[position].sha256);
    Some(match (accepted_by, position) {
        (Some(_), 0) => format!(
            "{count} {class} runs are stored in {region}, although the policy that accepted them ({forbidding}) forbids it ({rules})"
        ),
        (Some(i), _) => format!(
            "{count} {class} runs accepted in {region} under policy {} are forbidden there by policy {forbidding}, put in force later ({rules})",
            short(policies[i].sha256)
        ),
        (None, _) => format!(
            "{count} {class} runs are stored in {region}, where policy {forbidding} does not accept them ({rules}); the policy that accepted them is not recorded"
        ),
    })
}

/// The first 12 hex digits of a digest, as reasons quote it.
fn short(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
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
    match &evidence.config_recorded {
        Ok(()) => status.reasons.push(
            "the effective configuration is the one the newest configuration block records".into(),
        ),
        Err(reason) => {
            status.compliant = Some(false);
            status.reasons.push(reason.clone());
        }
    }
    let mut unrecorded = 0;
    for r in &evidence.rollouts {
        // More blocks than transitions: transitions committed after the
        // history was read (the node reads the history first).
        if r.blocks < r.transitions {
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
