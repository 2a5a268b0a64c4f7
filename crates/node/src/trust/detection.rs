//! Measured region health: the node notes when each region's runtimes
//! report and records a `failure` (source `detected`, with the evidence)
//! when one falls silent past its threshold, and a `recovery` when its
//! telemetry resumes. Operator events and statuses stay the operator's: a
//! region set `down`/`draining`, or failed by an operator, is not watched
//! for silence, and only a failure the node detected is recovered by it.

use super::*;

/// One cadence per configured region; a region whose newest event is a
/// detected failure waits for its next report as the recovery.
pub(super) fn cadences(
    regions: &RegionSet,
    settings: &TrustSettings,
    state: &KernelState,
) -> BTreeMap<String, Cadence> {
    regions
        .names()
        .iter()
        .map(|name| {
            let mut cadence = Cadence::new(settings.report_intervals.get(name).copied());
            if state.newest_event(name).is_some_and(is_detected_failure) {
                cadence.await_resume();
            }
            (name.clone(), cadence)
        })
        .collect()
}

pub(super) fn is_detected_failure(e: RecordedEvent) -> bool {
    e.source == EventSource::Detected && e.event.kind == HealthEventKind::Failure
}

/// A clock that never steps: wall time when the kernel opened plus the
/// monotonic time since (a wall-clock step cannot fake a silence or hide a
/// report).
#[derive(Debug, Clone, Copy)]
pub(super) struct SteadyClock {
    started: std::time::Instant,
    started_us: i64,
}

impl SteadyClock {
    pub(super) fn new() -> Self {
        Self {
            started: std::time::Instant::now(),
            started_us: now_micros().timestamp_micros(),
        }
    }

    /// Unix µs, advancing monotonically.
    pub(super) fn now_us(&self) -> i64 {
        let elapsed = i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        self.started_us.saturating_add(elapsed)
    }
}

/// What one detection pass found.
enum Finding {
    /// Silent past the threshold; the failure is dated `at`.
    Silent {
        silence: qunimbus_trust::cadence::Silence,
        at: i64,
    },
    Resumed {
        at: i64,
        failed_at: i64,
    },
}

impl TrustKernel {
    /// Notes that `region`'s runtimes reported now: one note per request
    /// and region. Unknown regions are ignored.
    pub fn note_report(&self, region: &str) {
        let at = self.clock.now_us();
        if let Some(cadence) = lock(&self.cadences).get_mut(region) {
            cadence.observe(at);
        }
    }

    /// The region's newest report and its expected interval (µs), if known.
    pub fn report_cadence(&self, region: &str) -> (Option<i64>, Option<(i64, bool)>) {
        lock(&self.cadences)
            .get(region)
            .map_or((None, None), |c| (c.last_report(), c.expected_interval()))
    }

    /// One detection pass (the controller runs it every tick): silent
    /// regions get a detected failure, detected-down regions that reported
    /// again a detected recovery. Findings are taken and recorded under the
    /// change lock, so an operator's change cannot slip in between. A
    /// finding that fails to record is kept for the next pass; the first
    /// error is returned after the others were tried.
    pub async fn detect_health(&self) -> Result<(), TrustError> {
        let _guard = self.changes.lock().await;
        let now = self.clock.now_us();
        let mut first_error = None;
        for (region, finding) in self.detection_findings(now) {
            let written = match finding {
                Finding::Silent { silence, at } => {
                    self.record_silence(&region, silence, at, now).await
                }
                Finding::Resumed { at, failed_at } => {
                    let evidence = json!({
                        "report_at": micros_text(at),
                        "down_ms": (at - failed_at) as f64 / 1e3,
                    });
                    let written = self
                        .record_event_locked(
                            &region,
                            HealthEventKind::Recovery,
                            at,
                            EventSource::Detected,
                            Some(evidence),
                        )
                        .await;
                    if written.is_err() {
                        if let Some(c) = lock(&self.cadences).get_mut(&region) {
                            c.restore_resumed(at);
                        }
                    }
                    written
                }
            };
            if let Err(e) = written {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn detection_findings(&self, now: i64) -> Vec<(String, Finding)> {
        let state = lock(&self.state);
        let mut cadences = lock(&self.cadences);
        let mut findings = Vec::new();
        for (name, cadence) in cadences.iter_mut() {
            let Some(record) = state.regions.get(name) else {
                continue;
            };
            let newest = state.newest_event(name);
            match newest.filter(|e| is_detected_failure(*e)) {
                Some(failure) => {
                    if let Some(at) = cadence.take_resumed() {
                        let at = at.max(failure.event.at);
                        findings.push((
                            name.clone(),
                            Finding::Resumed {
                                at,
                                failed_at: failure.event.at,
                            },
                        ));
                    }
                }
                None if status_is_up(&record.status) => {
                    if let Some(silence) =
                        cadence.silence(now, self.watch_since, self.settings.silence)
                    {
                        // The recovery is the first report from now on.
                        cadence.await_resume();
                        // When the first report was missed, never before the
                        // newest recorded event.
                        let at = newest
                            .map_or(silence.failed_at(), |e| silence.failed_at().max(e.event.at));
                        findings.push((name.clone(), Finding::Silent { silence, at }));
                    }
                }
                None => {}
            }
        }
        findings
    }

    async fn record_silence(
        &self,
        region: &str,
        silence: qunimbus_trust::cadence::Silence,
        at: i64,
        now: i64,
    ) -> Result<u64, TrustError> {
        let evidence = json!({
            "last_report_at": micros_text(silence.last_report_us),
            "expected_interval_ms": silence.expected_interval_us as f64 / 1e3,
            "interval": if silence.configured { "configured" } else { "learned" },
            "threshold_ms": silence.threshold_us as f64 / 1e3,
            "silent_ms": silence.silent_us as f64 / 1e3,
            "detected_at": micros_text(now),
        });
        tracing::warn!(%region, silent_ms = silence.silent_us / 1000, "region detected down: its telemetry stopped");
        // The recovery is the first report from now on.
        if let Some(c) = lock(&self.cadences).get_mut(region) {
            c.await_resume();
        }
        self.record_event_locked(
            region,
            HealthEventKind::Failure,
            at,
            EventSource::Detected,
            Some(evidence),
        )
        .await
    }
}
