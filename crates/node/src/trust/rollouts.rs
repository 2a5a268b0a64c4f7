//! Rollouts: starting one, recording every transition with its block,
//! operator commands and the controller's gates.

use super::*;

impl TrustKernel {
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
}

/// One `rollout` block as the ledger holds it.
pub(super) struct RolloutBlock {
    pub(super) index: u64,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
}
