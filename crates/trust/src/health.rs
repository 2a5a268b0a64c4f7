//! Region health from failure/recovery events: availability, MTBF and the
//! trust score over a sliding window (SPEC §6).
//!
//! All times are Unix microseconds. The rules, in one place:
//!
//! - **Observation** starts at the later of the window start (`now − window`)
//!   and the first evidence about the region (when the node started tracking
//!   it, or an earlier back-dated event).
//! - **State** before the first event is *up* when that event is a failure and
//!   *down* when it is a recovery (an event records a change). A failure while
//!   down and a recovery while up change nothing and are not counted.
//! - **Failures** are up→down transitions inside the observation.
//! - **Availability** = up time / observed time (1.0 when nothing was observed yet).
//! - **MTBF** = up time / failures; with no failure it is reported as
//!   "no failures, at least the up time".
//! - **Trust score** = availability − 0.25 × open compliance findings, clamped
//!   to 0–1 ([`trust_score`]). An operator override replaces it (elsewhere).

use serde::{Deserialize, Serialize};

/// Microseconds in one hour.
pub const MICROS_PER_HOUR: f64 = 3_600_000_000.0;

/// Trust lost per open compliance finding.
pub const TRUST_PENALTY_PER_FINDING: f64 = 0.25;

/// What a health event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthEventKind {
    /// The region stopped serving.
    Failure,
    /// The region serves again.
    Recovery,
}

impl HealthEventKind {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failure => "failure",
            Self::Recovery => "recovery",
        }
    }

    /// Parses the lowercase wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "failure" => Some(Self::Failure),
            "recovery" => Some(Self::Recovery),
            _ => None,
        }
    }
}

/// Who said a region failed or recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventSource {
    /// An operator: a posted event, or a status set to `down`/`draining`
    /// (or back) by `PUT`.
    Operator,
    /// The node: the region's telemetry stopped past its threshold, or resumed.
    Detected,
}

impl EventSource {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Detected => "detected",
        }
    }

    /// Parses the lowercase wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "operator" => Some(Self::Operator),
            "detected" => Some(Self::Detected),
            _ => None,
        }
    }
}

/// Whether a region status counts as serving (`down` and `draining` do not).
pub fn status_is_up(status: &str) -> bool {
    !matches!(status, "down" | "draining")
}

/// One recorded failure or recovery of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthEvent {
    /// Failure or recovery.
    pub kind: HealthEventKind,
    /// When it happened (Unix µs); may be earlier than when it was recorded.
    pub at: i64,
}

/// What the events say about one region at `now`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionHealth {
    /// Start of the observation (Unix µs).
    pub observed_from: i64,
    /// End of the observation (Unix µs).
    pub now: i64,
    /// Time up inside the observation (µs).
    pub up_micros: i64,
    /// Time down inside the observation (µs).
    pub down_micros: i64,
    /// Up→down transitions inside the observation.
    pub failures: u32,
    /// Whether the region is up at `now`.
    pub up_now: bool,
    /// Start of the current up period (the last recovery, or the start of
    /// tracking if it never failed); `None` while down.
    pub up_since: Option<i64>,
}

/// Mean time between failures over the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Mtbf {
    /// Up hours per failure.
    Hours(f64),
    /// No failure in the window: MTBF is at least this many hours.
    NoFailures {
        /// Up time observed without a failure, in hours.
        at_least_hours: f64,
    },
}

impl Mtbf {
    /// The measured hours, if any failure happened.
    pub fn hours(self) -> Option<f64> {
        match self {
            Self::Hours(h) => Some(h),
            Self::NoFailures { .. } => None,
        }
    }

    /// Whether the MTBF meets a target of `hours`: a measured MTBF at or
    /// above it, or no failure over at least that much up time. `None`
    /// while the evidence cannot tell (no failure yet, less up time).
    pub fn meets(self, hours: f64) -> Option<bool> {
        match self {
            Self::Hours(h) => Some(h >= hours),
            Self::NoFailures { at_least_hours } => (at_least_hours >= hours).then_some(true),
        }
    }

    /// Whether the MTBF is below `hours` (never true without failures).
    pub fn below(self, hours: f64) -> bool {
        self.hours().is_some_and(|h| h < hours)
    }
}

/// Assesses a region's events over `window_micros` ending at `now`.
/// `tracked_since` is when the node started tracking the region. Events may
/// come in any order; events after `now` are ignored.
pub fn assess(
    events: &[HealthEvent],
    tracked_since: i64,
    window_micros: i64,
    now: i64,
) -> RegionHealth {
    let mut sorted: Vec<HealthEvent> = events.iter().copied().filter(|e| e.at <= now).collect();
    sorted.sort_by_key(|e| e.at);
    let first_evidence = sorted
        .first()
        .map_or(tracked_since, |e| e.at.min(tracked_since));
    let observed_from = now
        .saturating_sub(window_micros)
        .max(first_evidence)
        .min(now);

    let mut up = sorted
        .first()
        .is_none_or(|e| e.kind == HealthEventKind::Failure);
    let mut up_since = up.then_some(first_evidence);
    let mut health = RegionHealth {
        observed_from,
        now,
        up_micros: 0,
        down_micros: 0,
        failures: 0,
        up_now: up,
        up_since,
    };
    let mut cursor = observed_from;
    for event in &sorted {
        let inside = event.at >= observed_from;
        if inside {
            let span = event.at - cursor;
            if up {
                health.up_micros += span;
            } else {
                health.down_micros += span;
            }
            cursor = event.at;
        }
        match (event.kind, up) {
            (HealthEventKind::Failure, true) => {
                up = false;
                up_since = None;
                if inside {
                    health.failures += 1;
                }
            }
            (HealthEventKind::Recovery, false) => {
                up = true;
                up_since = Some(event.at);
            }
            _ => {}
        }
    }
    let tail = now - cursor;
    if up {
        health.up_micros += tail;
    } else {
        health.down_micros += tail;
    }
    health.up_now = up;
    health.up_since = up_since;
    health
}

impl RegionHealth {
    /// Observed time in hours.
    pub fn observed_hours(&self) -> f64 {
        (self.up_micros + self.down_micros) as f64 / MICROS_PER_HOUR
    }

    /// Up time in hours.
    pub fn up_hours(&self) -> f64 {
        self.up_micros as f64 / MICROS_PER_HOUR
    }

    /// Up time / observed time; 1.0 when nothing was observed yet.
    pub fn availability(&self) -> f64 {
        let observed = self.up_micros + self.down_micros;
        if observed == 0 {
            1.0
        } else {
            self.up_micros as f64 / observed as f64
        }
    }

    /// Up time per failure over the window.
    pub fn mtbf(&self) -> Mtbf {
        if self.failures == 0 {
            Mtbf::NoFailures {
                at_least_hours: self.up_hours(),
            }
        } else {
            Mtbf::Hours(self.up_hours() / f64::from(self.failures))
        }
    }

    /// Hours since the last recovery (or since tracking began); 0 while down.
    pub fn uptime_hours(&self) -> f64 {
        self.up_since
            .map_or(0.0, |since| (self.now - since) as f64 / MICROS_PER_HOUR)
    }
}

/// The computed trust score: availability − 0.25 × open findings, in 0–1.
pub fn trust_score(availability: f64, open_findings: u32) -> f64 {
    (availability - TRUST_PENALTY_PER_FINDING * f64::from(open_findings)).clamp(0.0, 1.0)
}

/// MTBF over several regions: their total up time / their total failures.
pub fn combined_mtbf<'a>(regions: impl IntoIterator<Item = &'a RegionHealth>) -> Mtbf {
    let (up, failures) = regions.into_iter().fold((0i64, 0u32), |(up, f), h| {
        (up + h.up_micros, f + h.failures)
    });
    let up_hours = up as f64 / MICROS_PER_HOUR;
    if failures == 0 {
        Mtbf::NoFailures {
            at_least_hours: up_hours,
        }
    } else {
        Mtbf::Hours(up_hours / f64::from(failures))
    }
}

#[cfg(test)]
mod tests;
