//! Feed latency, telemetry receipt to partner ack, in HDR histograms
//! (SPEC §5): one per partner and one overall.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

/// Lowest discernible latency, µs.
const LOWEST_US: u64 = 1;
/// Highest trackable latency, µs (60 s); longer latencies are recorded as 60 s.
const HIGHEST_US: u64 = 60_000_000;
/// Significant decimal digits kept by the histograms.
const SIGFIG: u8 = 3;

/// Latency quantiles in milliseconds with microsecond resolution.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quantiles {
    /// Number of latencies recorded.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest recorded latency, ms (exact to the µs, capped at 60 s).
    pub max_ms: f64,
}

/// What a [`LatencyRecorder`] has measured.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatencyReport {
    /// All partners together; `None` when nothing was recorded.
    pub overall: Option<Quantiles>,
    /// Per partner name; partners without a recording are absent.
    pub per_partner: BTreeMap<String, Quantiles>,
}

/// One histogram plus the exact largest value.
#[derive(Debug, Clone)]
struct Series {
    hist: Histogram<u64>,
    max_us: u64,
}

impl Series {
    fn new() -> Option<Self> {
        Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG)
            .ok()
            .map(|hist| Self { hist, max_us: 0 })
    }

    fn record(&mut self, us: u64) {
        // `us` is clamped to the trackable range, so this cannot fail.
        self.hist.saturating_record(us);
        self.max_us = self.max_us.max(us);
    }

    fn quantiles(&self) -> Option<Quantiles> {
        let count = self.hist.len();
        if count == 0 {
            return None;
        }
        // HDR reports the highest value equivalent to a bucket; never report a
        // quantile above the exact maximum.
        let at = |q: f64| self.hist.value_at_quantile(q).min(self.max_us);
        Some(Quantiles {
            count,
            p50_ms: us_to_ms(at(0.50)),
            p99_ms: us_to_ms(at(0.99)),
            max_ms: us_to_ms(self.max_us),
        })
    }
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Slots a latency window is divided into: recordings leave the window one
/// slot (window / SLOTS) at a time.
const SLOTS: u64 = 6;

/// A series over a sliding window: one histogram per slot, allocated only
/// when something is recorded in it.
#[derive(Debug, Clone, Default)]
struct Windowed {
    /// (slot number, its recordings), oldest first.
    slots: VecDeque<(u64, Series)>,
}

impl Windowed {
    fn record(&mut self, slot: u64, us: u64) {
        while self.slots.front().is_some_and(|(s, _)| s + SLOTS <= slot) {
            self.slots.pop_front();
        }
        match self.slots.back_mut() {
            Some((s, series)) if *s == slot => series.record(us),
            Some((s, _)) if *s > slot => {}
            _ => {
                if let Some(mut series) = Series::new() {
                    series.record(us);
                    self.slots.push_back((slot, series));
                }
            }
        }
    }

    /// Quantiles of the recordings in the window ending with `slot`.
    fn quantiles(&self, slot: u64) -> Option<Quantiles> {
        let mut live = self
            .slots
            .iter()
            .filter(|(s, _)| s + SLOTS > slot && *s <= slot);
        let (_, first) = live.next()?;
        let mut merged = first.clone();
        for (_, series) in live {
            // Same bounds, so adding cannot fail.
            let _ = merged.hist.add(&series.hist);
            merged.max_us = merged.max_us.max(series.max_us);
        }
        merged.quantiles()
    }
}

/// Latency from telemetry receipt to partner ack, in microseconds, as HDR
/// histograms (1 µs .. 60 s, 3 significant digits) per partner and overall,
/// over a sliding window: a report covers the latencies recorded in the
/// last `window` (in slots of window / 6), so a slow hour long ago does not
/// stay in today's percentiles. Time is a caller-chosen monotonic
/// millisecond clock.
///
/// Memory is bounded by the number of distinct partner names recorded
/// times the slots that hold recordings.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    window: Duration,
    slot_ms: u64,
    overall: Windowed,
    /// Hashed, not ordered: one lookup per ack (the report sorts).
    per_partner: HashMap<String, Windowed>,
}

impl LatencyRecorder {
    /// An empty recorder whose reports cover the last `window`.
    pub fn new(window: Duration) -> Self {
        let window_ms = u64::try_from(window.as_millis())
            .unwrap_or(u64::MAX)
            .max(SLOTS);
        Self {
            window,
            slot_ms: window_ms.div_ceil(SLOTS),
            overall: Windowed::default(),
            per_partner: HashMap::new(),
        }
    }

    /// The window reports cover.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn slot(&self, now_ms: u64) -> u64 {
        now_ms / self.slot_ms
    }

    /// Records one measured latency for `partner` at `now_ms`.
    /// Sub-microsecond latencies count as 0 µs; latencies above 60 s count
    /// as 60 s; a time older than the newest recording's slot is dropped.
    pub fn record(&mut self, partner: &str, latency: Duration, now_ms: u64) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .min(HIGHEST_US);
        let slot = self.slot(now_ms);
        self.overall.record(slot, us);
        if let Some(series) = self.per_partner.get_mut(partner) {
            series.record(slot, us);
        } else {
            let mut series = Windowed::default();
            series.record(slot, us);
            self.per_partner.insert(partner.to_owned(), series);
        }
    }

    /// Quantiles overall and per partner over the window ending at `now_ms`.
    pub fn report(&self, now_ms: u64) -> LatencyReport {
        let slot = self.slot(now_ms);
        LatencyReport {
            overall: self.overall.quantiles(slot),
            per_partner: self
                .per_partner
                .iter()
                .filter_map(|(name, s)| s.quantiles(slot).map(|q| (name.clone(), q)))
                .collect(),
        }
    }

    /// Quantiles of one partner over the window ending at `now_ms`; `None`
    /// when it has no recording there.
    pub fn partner(&self, partner: &str, now_ms: u64) -> Option<Quantiles> {
        self.per_partner
            .get(partner)
            .and_then(|s| s.quantiles(self.slot(now_ms)))
    }

    /// Forgets one partner's recordings (e.g. when it is removed). The
    /// overall histogram keeps them.
    pub fn remove_partner(&mut self, partner: &str) {
        self.per_partner.remove(partner);
    }

    /// Forgets everything, overall and per partner.
    pub fn reset(&mut self) {
        self.overall = Windowed::default();
        self.per_partner.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        // Three significant digits: relative error below 0.1 %.
        (actual - expected).abs() <= expected * 0.001 + 1e-9
    }

    #[test]
    fn empty_report() {
        let rec = LatencyRecorder::new(Duration::from_secs(60));
        let report = rec.report(0);
        assert_eq!(report.overall, None);
        assert!(report.per_partner.is_empty());
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::json!({"overall": null, "per_partner": {}})
        );
    }

    #[test]
    fn quantiles_of_1_to_100_ms() {
        let mut rec = LatencyRecorder::new(Duration::from_secs(60));
        for ms in 1..=100u64 {
            rec.record("alpha", Duration::from_millis(ms), 0);
        }
        let q = rec.report(0).overall.unwrap();
        assert_eq!(q.count, 100);
        assert!(close(q.p50_ms, 50.0), "p50 {}", q.p50_ms);
        assert!(close(q.p99_ms, 99.0), "p99 {}", q.p99_ms);
        assert_eq!(q.max_ms, 100.0);
        assert_eq!(rec.partner("alpha", 0), Some(q));
    }

    #[test]
    fn microsecond_resolution() {
        let mut rec = LatencyRecorder::new(Duration::from_secs(60));
        rec.record("a", Duration::from_micros(1_234), 0);
        let q = rec.report(0).overall.unwrap();
        assert_eq!(q.p50_ms, 1.234);
        assert_eq!(q.p99_ms, 1.234);
        assert_eq!(q.max_ms, 1.234);
    }

    #[test]
    fn per_partner_separation() {
        let mut rec = LatencyRecorder::new(Duration::from_secs(60));
        for _ in 0..10 {
            rec.record("fast", Duration::from_millis(1), 0);
            rec.record("slow", Duration::from_millis(20), 0);
        }
        rec.record("slow", Duration::from_millis(30), 0);
        let report = rec.report(0);
        assert_eq!(report.per_partner.len(), 2);
        let fast = &report.per_partner["fast"];
        let slow = &report.per_partner["slow"];
        assert_eq!((fast.count, fast.max_ms), (10, 1.0));
        assert!(close(fast.p99_ms, 1.0));
        assert_eq!((slow.count, slow.max_ms), (11, 30.0));
        assert!(close(slow.p50_ms, 20.0));
        let overall = report.overall.unwrap();
        assert_eq!(overall.count, 21);
        assert_eq!(overall.max_ms, 30.0);
        assert!(close(overall.p50_ms, 20.0), "{}", overall.p50_ms);
        assert!(close(overall.p99_ms, 30.0), "{}", overall.p99_ms);
    }

    #[test]
    fn extremes_are_clamped() {
        let mut rec = LatencyRecorder::new(Duration::from_secs(60));
        rec.record("a", Duration::from_nanos(300), 0);
        rec.record("a", Duration::from_secs(3600), 0);
        rec.record("a", Duration::MAX, 0);
        let q = rec.report(0).overall.unwrap();
        assert_eq!(q.count, 3);
        assert_eq!(q.max_ms, 60_000.0);
        assert!(q.p99_ms <= 60_000.0);
    }

    #[test]
    fn reports_cover_the_sliding_window_only() {
        // 60 s in slots of 10 s.
        let mut rec = LatencyRecorder::new(Duration::from_secs(60));
        rec.record("a", Duration::from_millis(500), 0);
        rec.record("a", Duration::from_millis(2), 30_000);
        let q = rec.report(59_999).overall.unwrap();
        assert_eq!((q.count, q.max_ms), (2, 500.0));
        // The slow one left with its slot; the fast one is still in.
        let q = rec.report(60_000).overall.unwrap();
        assert_eq!((q.count, q.max_ms), (1, 2.0));
        assert_eq!(rec.partner("a", 60_000).map(|q| q.count), Some(1));
        assert_eq!(rec.report(90_000).overall, None);
        assert!(rec.report(90_000).per_partner.is_empty());
        // Recording later drops the expired slots.
        rec.record("a", Duration::from_millis(7), 200_000);
        assert_eq!(rec.overall.slots.len(), 1);
        assert_eq!(rec.window(), Duration::from_secs(60));
    }

    #[test]
    fn reset_and_remove() {
        let mut rec = LatencyRecorder::new(Duration::from_secs(60));
        rec.record("a", Duration::from_millis(1), 0);
        rec.record("b", Duration::from_millis(2), 0);
        rec.remove_partner("a");
        let report = rec.report(0);
        assert_eq!(report.per_partner.keys().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(report.overall.map(|q| q.count), Some(2));
        rec.reset();
        assert_eq!(
            rec.report(0),
            LatencyReport {
                overall: None,
                per_partner: BTreeMap::new()
            }
        );
        rec.record("c", Duration::from_millis(5), 0);
        assert_eq!(rec.report(0).overall.map(|q| q.max_ms), Some(5.0));
    }
}
