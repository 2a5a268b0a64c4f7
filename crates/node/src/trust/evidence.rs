//! Compliance: evidence gathered from storage and the ledger, the
//! evaluation, and attestation blocks.

use super::*;

impl TrustKernel {
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
                policy_sha256: row.policy_sha256,
                first_accepted_us: chrono::DateTime::parse_from_rfc3339(&row.first_accepted_at)
                    .map_err(|_| {
                        TrustError::Corrupt(format!("accepted_at {:?}", row.first_accepted_at))
                    })?
                    .timestamp_micros(),
                count: u64::try_from(row.count).unwrap_or(0),
            });
        }
        let personal_in_clear = reader.personal_runs_in_clear().await?;
        // The in-memory history first, the ledger after: a transition is
        // committed with its block before it enters the history, so a
        // transition the ledger lacks is a real gap, never a race with a
        // rollout changing meanwhile.
        let histories: Vec<(String, usize)> = lock(&self.state)
            .rollouts
            .iter()
            .map(|r| (r.id.clone(), r.history.len()))
            .collect();
        let blocks = self.rollout_blocks().await?;
        let rollouts = histories
            .into_iter()
            .map(|(id, transitions)| {
                let on_ledger = blocks.get(&id).map_or(&[][..], Vec::as_slice);
                RolloutEvidence {
                    id,
                    transitions,
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
            // The newest policy record on the ledger must name the policy in force.
            policy_recorded: match self.policy_block(&policy_status.sha256).await? {
                Some(_) => Ok(()),
                None => Err(format!(
                    "the newest policy block on the ledger does not record the policy in force (sha256 {})",
                    policy_status.sha256
                )),
            },
            config_recorded: self.config_evidence().await?,
            rollouts,
            violations: lock(&self.violations).clone(),
        };
        let history = lock(&self.policy_history).clone();
        let policies: Vec<PolicyInForce<'_>> = history
            .iter()
            .map(|p| PolicyInForce {
                sha256: &p.sha256,
                since_us: p.since_us,
                engine: &p.engine,
            })
            .collect();
        let report = compliance::evaluate(&policies, &evidence, &self.frameworks);
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
pub(super) async fn last_scheduled_attestation(store: &Store) -> Option<i64> {
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
