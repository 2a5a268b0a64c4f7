//! Measured region health: when a region's runtimes stop reporting.
//!
//! The node notes when each region's reports arrive (one note per request
//! and region, so a batch is one report). A region's **expected interval**
//! is the configured one, or the median gap between its last
//! [`CADENCE_SAMPLES`] reports (the median, so one outage in the sample does
//! not stretch it); it is known once [`MIN_GAPS`] gaps were seen. A region
//! is **silent** when no report arrived for `intervals × expected` (at least
//! the floor) — the evidence for a detected failure. For reports that
//! arrive as a Poisson process the chance that a healthy region's gap
//! exceeds `k` median gaps is `2^-k` per gap.
//!
//! Times are Unix microseconds from the node's own clock.

use std::collections::VecDeque;

use serde::Serialize;

/// Report times kept per region.
pub const CADENCE_SAMPLES: usize = 64;

/// Gaps needed before a learned interval is used.
pub const MIN_GAPS: usize = 8;

/// When silence counts as a failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SilenceRule {
    /// Silence longer than this many expected intervals is a failure.
    pub intervals: f64,
    /// ... and never shorter than this (µs).
    pub floor_micros: i64,
}

/// The evidence of a detected failure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Silence {
    /// The last report before the silence (Unix µs).
    pub last_report_us: i64,
    /// The expected interval between reports (µs).
    pub expected_interval_us: i64,
    /// Whether that interval is configured (`false`: learned).
    pub configured: bool,
    /// Silence past this is a failure (µs).
    pub threshold_us: i64,
    /// How long the region has been silent at detection (µs).
    pub silent_us: i64,
}

impl Silence {
    /// When the first missing report was due: the failure's time.
    pub fn failed_at(&self) -> i64 {
        self.last_report_us
            .saturating_add(self.expected_interval_us)
    }
}

/// One region's report times.
#[derive(Debug, Clone, Default)]
pub struct Cadence {
    arrivals: VecDeque<i64>,
    configured_micros: Option<i64>,
    /// Set while a detected failure waits for the region to report again.
    awaiting_resume: bool,
    resumed_at: Option<i64>,
}

impl Cadence {
    /// A cadence with a configured expected interval (µs), if any.
    pub fn new(configured_micros: Option<i64>) -> Self {
        Self {
            configured_micros,
            ..Self::default()
        }
    }

    /// Notes a report at `at`. Earlier than the newest note: ignored.
    pub fn observe(&mut self, at: i64) {
        if self.arrivals.back().is_some_and(|&last| at < last) {
            return;
        }
        if self.awaiting_resume && self.resumed_at.is_none() {
            self.resumed_at = Some(at);
        }
        if self.arrivals.len() == CADENCE_SAMPLES {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back(at);
    }

    /// The newest report's time.
    pub fn last_report(&self) -> Option<i64> {
        self.arrivals.back().copied()
    }

    /// The expected interval (µs) and whether it is configured.
    pub fn expected_interval(&self) -> Option<(i64, bool)> {
        if let Some(configured) = self.configured_micros {
            return Some((configured, true));
        }
        if self.arrivals.len() <= MIN_GAPS {
            return None;
        }
        let mut gaps: Vec<i64> = self
            .arrivals
            .iter()
            .zip(self.arrivals.iter().skip(1))
            .map(|(a, b)| b - a)
            .collect();
        let middle = gaps.len() / 2;
        let (_, median, _) = gaps.select_nth_unstable(middle);
        Some(((*median).max(1), false))
    }

    /// The silence at `now` if it is past the rule's threshold. `since` is
    /// when watching began (a region with a configured interval that never
    /// reported is silent from then).
    pub fn silence(&self, now: i64, since: i64, rule: SilenceRule) -> Option<Silence> {
        let (expected, configured) = self.expected_interval()?;
        let last = self.last_report().unwrap_or(since);
        let threshold = ((expected as f64 * rule.intervals) as i64).max(rule.floor_micros);
        let silent = now.saturating_sub(last);
        (silent > threshold).then_some(Silence {
            last_report_us: last,
            expected_interval_us: expected,
            configured,
            threshold_us: threshold,
            silent_us: silent,
        })
    }

    /// After a detected failure: the next report is the recovery.
    pub fn await_resume(&mut self) {
        self.awaiting_resume = true;
        self.resumed_at = None;
    }

    /// Puts back a resume time taken by [`Cadence::take_resumed`] whose
    /// recovery could not be recorded.
    pub fn restore_resumed(&mut self, at: i64) {
        self.awaiting_resume = true;
        self.resumed_at = Some(at);
    }

    /// The first report since [`Cadence::await_resume`], once; clears the wait.
    pub fn take_resumed(&mut self) -> Option<i64> {
        let at = self.resumed_at.take()?;
        self.awaiting_resume = false;
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: SilenceRule = SilenceRule {
        intervals: 10.0,
        floor_micros: 1_000,
    };

    fn every(step: i64, n: i64) -> Cadence {
        let mut c = Cadence::new(None);
        for i in 0..n {
            c.observe(i * step);
        }
        c
    }

    #[test]
    fn learns_the_median_gap_once_enough_reports_came() {
        assert_eq!(every(500, MIN_GAPS as i64).expected_interval(), None);
        assert_eq!(
            every(500, MIN_GAPS as i64 + 1).expected_interval(),
            Some((500, false))
        );
        let mut c = every(500, 20);
        // One long gap (an outage) does not move the median.
        c.observe(19 * 500 + 1_000_000);
        assert_eq!(c.expected_interval(), Some((500, false)));
    }

    #[test]
    fn silence_past_the_threshold_is_evidence() {
        let c = every(500, 20);
        let last = 19 * 500;
        assert_eq!(c.silence(last + 5_000, 0, RULE), None);
        let s = c.silence(last + 5_001, 0, RULE).expect("silent");
        assert_eq!(
            (s.last_report_us, s.expected_interval_us, s.threshold_us),
            (last, 500, 5_000)
        );
        assert_eq!(s.failed_at(), last + 500);
        // The floor holds for a fast region.
        let fast = every(10, 20);
        assert_eq!(fast.silence(190 + 999, 0, RULE), None);
        assert!(fast.silence(190 + 1_001, 0, RULE).is_some());
    }

    #[test]
    fn a_configured_interval_applies_before_any_report() {
        let c = Cadence::new(Some(2_000));
        assert_eq!(c.silence(20_000, 0, RULE), None);
        let s = c
            .silence(20_001, 0, RULE)
            .expect("silent since watching began");
        assert!(s.configured);
        assert_eq!(s.last_report_us, 0);
    }

    #[test]
    fn the_first_report_after_a_failure_is_the_recovery() {
        let mut c = every(500, 20);
        c.observe(20 * 500);
        assert_eq!(c.take_resumed(), None);
        c.await_resume();
        c.observe(100_000);
        c.observe(100_500);
        assert_eq!(c.take_resumed(), Some(100_000));
        assert_eq!(c.take_resumed(), None);
        // Out-of-order notes are ignored.
        c.observe(50);
        assert_eq!(c.last_report(), Some(100_500));
    }
}
