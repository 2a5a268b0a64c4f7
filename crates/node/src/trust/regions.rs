//! Regions: their assessed views, the mesh status, operator changes,
//! health events, personal-data erasure and the trust gauges.

use super::*;

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
    /// When this node last received telemetry from the region (since it
    /// started; `null`: none yet).
    pub last_report_at: Option<String>,
    /// The expected interval between its reports, ms (`null` until learned).
    pub report_interval_ms: Option<f64>,
    /// `learned` (median of its recent report gaps) or `configured`.
    pub report_interval_source: Option<&'static str>,
    /// The evidence behind availability and MTBF: its last recorded health
    /// events (at most [`EVIDENCE_EVENTS`], in the order recorded).
    pub events: Vec<RegionEventView>,
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub(super) health: RegionHealth,
}

/// Health events a region view lists as its evidence.
pub const EVIDENCE_EVENTS: usize = 10;

/// One health event as evidence.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegionEventView {
    /// `failure` or `recovery`.
    pub kind: &'static str,
    /// When it happened (RFC 3339 UTC, µs).
    pub at: String,
    /// `operator` or `detected`.
    pub source: &'static str,
    /// When the node recorded it (for a detected event: when it detected
    /// it); `null` for events recorded before this was kept.
    pub recorded_at: Option<String>,
    /// The block recording it (its payload holds the evidence).
    pub block_index: u64,
}

impl RegionEventView {
    fn of(e: &RecordedEvent) -> Self {
        Self {
            kind: e.event.kind.as_str(),
            at: micros_text(e.event.at),
            source: e.source.as_str(),
            recorded_at: e.recorded_at.map(micros_text),
            block_index: e.block_index,
        }
    }
}

impl TrustKernel {
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
                let events = state.health_events(name);
                let evidence = state.events.get(name).map_or(&[][..], Vec::as_slice);
                let (last_report, interval) = self.report_cadence(name);
                let health = assess(
                    &events,
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
                    last_report_at: last_report.map(micros_text),
                    report_interval_ms: interval.map(|(us, _)| us as f64 / 1e3),
                    report_interval_source: interval.map(|(_, configured)| {
                        if configured {
                            "configured"
                        } else {
                            "learned"
                        }
                    }),
                    events: evidence[evidence.len().saturating_sub(EVIDENCE_EVENTS)..]
                        .iter()
                        .map(RegionEventView::of)
                        .collect(),
                    health,
                })
            })
            .collect()
    }

    /// Every recorded health event of a region, oldest recorded first.
    pub fn region_events(&self, name: &str) -> Vec<RegionEventView> {
        lock(&self.state)
            .events
            .get(name)
            .map_or_else(Vec::new, |e| e.iter().map(RegionEventView::of).collect())
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
    /// (`Some(None)` clears it), recorded as an `override` block. A status
    /// that stops or resumes serving (`down`/`draining` ↔ `active`/`degraded`)
    /// is also a health event (source `operator`) recorded by that block, so
    /// down time counts from this moment.
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
        let now = now_micros();
        next.updated_at = rfc3339_micros(now);
        let detected_down = lock(&self.state)
            .newest_event(&name)
            .is_some_and(super::detection::is_detected_failure);
        let health_event = match (status_is_up(&previous.status), status_is_up(status)) {
            (true, false) => Some(HealthEventKind::Failure),
            (false, true) => Some(HealthEventKind::Recovery),
            // The operator takes over an outage the node detected: the node
            // will not end it when reports resume (a failure while down
            // changes no figure).
            (false, false) if detected_down => Some(HealthEventKind::Failure),
            _ => None,
        };
        let draft = self.draft(
            BlockKind::Override,
            Some(name.clone()),
            json!({
                "status": next.status,
                "previous_status": previous.status,
                "trust_override": next.trust_override,
                "previous_trust_override": previous.trust_override,
                "reason": reason,
                "health_event": health_event.map(HealthEventKind::as_str),
            }),
        );
        let mut changes = vec![StateChange::SetRegion {
            name: name.clone(),
            status: next.status.clone(),
            trust_override: next.trust_override,
            override_reason: next.override_reason.clone(),
            at: next.updated_at.clone(),
        }];
        let at = now.timestamp_micros();
        if let Some(kind) = health_event {
            changes.push(StateChange::RecordHealthEvent {
                region: name.clone(),
                kind: kind.as_str().to_string(),
                at_us: at,
                source: EventSource::Operator.as_str().to_string(),
                status: next.status.clone(),
                recorded_at_us: at,
            });
        }
        let blocks = self.store.append_blocks_with(vec![draft], changes).await?;
        let block_index = blocks.first().map_or(0, |b| b.index);
        let mut state = lock(&self.state);
        if let Some(kind) = health_event {
            state.push_event(
                &name,
                RecordedEvent {
                    event: HealthEvent { kind, at },
                    source: EventSource::Operator,
                    block_index,
                    recorded_at: Some(at),
                },
            );
        }
        state.regions.insert(name, next.clone());
        Ok((next, block_index))
    }

    /// Records a failure or recovery at `at` (Unix µs) as a `health` block
    /// naming its source and carrying its evidence; the region's status
    /// follows its newest event.
    pub async fn record_event(
        &self,
        name: &str,
        kind: HealthEventKind,
        at: i64,
        source: EventSource,
        evidence: Option<Value>,
    ) -> Result<u64, TrustError> {
        let _guard = self.changes.lock().await;
        self.record_event_locked(name, kind, at, source, evidence)
            .await
    }

    /// [`TrustKernel::record_event`] for a caller holding the change lock.
    pub(super) async fn record_event_locked(
        &self,
        name: &str,
        kind: HealthEventKind,
        at: i64,
        source: EventSource,
        evidence: Option<Value>,
    ) -> Result<u64, TrustError> {
        let name = self.region_name(name)?;
        let (newest, current) = {
            let state = lock(&self.state);
            let newest = state.newest_event(&name).is_none_or(|e| e.event.at <= at);
            let current = state.regions.get(&name).map(|r| r.status.clone());
            (newest, current)
        };
        let status = match (newest, kind) {
            (true, HealthEventKind::Failure) => "down".to_string(),
            (true, HealthEventKind::Recovery) => "active".to_string(),
            (false, _) => current.unwrap_or_else(|| "active".into()),
        };
        let at_text = micros_text(at);
        let recorded_at = now_micros();
        let draft = self.draft(
            BlockKind::Health,
            Some(name.clone()),
            json!({
                "event": kind.as_str(),
                "at": at_text,
                "status": status,
                "source": source.as_str(),
                "evidence": evidence,
            }),
        );
        let blocks = self
            .store
            .append_blocks_with(
                vec![draft],
                vec![StateChange::RecordHealthEvent {
                    region: name.clone(),
                    kind: kind.as_str().to_string(),
                    at_us: at,
                    source: source.as_str().to_string(),
                    status: status.clone(),
                    recorded_at_us: recorded_at.timestamp_micros(),
                }],
            )
            .await?;
        let block_index = blocks.first().map_or(0, |b| b.index);
        let mut state = lock(&self.state);
        state.push_event(
            &name,
            RecordedEvent {
                event: HealthEvent { kind, at },
                source,
                block_index,
                recorded_at: Some(recorded_at.timestamp_micros()),
            },
        );
        if let Some(r) = state.regions.get_mut(&name) {
            r.status = status;
        }
        Ok(block_index)
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
        self.metrics
            .trust
            .rollout_phase_percent
            .set(i64::from(percent));
    }
}
