//! EPH delivered per hour, measured over a sliding window (SPEC §5).

use std::time::Duration;

/// Upper bound on the number of buckets, whatever the window.
const MAX_BUCKETS: u64 = 3600;
/// Bucket width for windows of a minute or more (unless that would exceed
/// [`MAX_BUCKETS`]).
const SECOND_MS: u64 = 1000;
/// Buckets per window for windows shorter than a minute.
const SHORT_WINDOW_BUCKETS: u64 = 60;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Bucket {
    /// Absolute bucket number (`now_ms / bucket_ms`) this slot currently holds.
    index: u64,
    eph: f64,
    samples: u64,
}

/// EPH delivered per hour over a sliding window, from recorded deliveries
/// (measured, not extrapolated from a constant).
///
/// Time is a caller-chosen monotonic millisecond clock. Deliveries are summed
/// into fixed buckets (1 s for windows from one minute to an hour; 1/60 of the
/// window below a minute; 1/3600 of it above an hour), so recording is O(1)
/// and memory is bounded (at most 3600 buckets). The window covers the
/// buckets ending with the one holding `now`: a delivery leaves the window
/// between `window - bucket` and `window` after it was recorded.
#[derive(Debug, Clone)]
pub struct ThroughputWindow {
    window_ms: u64,
    bucket_ms: u64,
    buckets: Vec<Bucket>,
}

impl ThroughputWindow {
    /// A window of `window` (rounded down to whole milliseconds, at least 1 ms).
    pub fn new(window: Duration) -> Self {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let bucket_ms = if window_ms >= 60 * SECOND_MS {
            SECOND_MS.max(window_ms.div_ceil(MAX_BUCKETS))
        } else {
            window_ms.div_ceil(SHORT_WINDOW_BUCKETS).max(1)
        };
        let count = window_ms.div_ceil(bucket_ms).clamp(1, MAX_BUCKETS);
        // `count` ≤ MAX_BUCKETS, so the conversion cannot fail.
        let count = usize::try_from(count).unwrap_or(1);
        Self {
            window_ms,
            bucket_ms,
            buckets: vec![Bucket::default(); count],
        }
    }

    /// Records `eph` pair-hours delivered at `now_ms`. Non-finite or negative
    /// amounts are ignored, as are times older than the window already holds.
    pub fn record(&mut self, now_ms: u64, eph: f64) {
        if !eph.is_finite() || eph < 0.0 {
            return;
        }
        let index = now_ms / self.bucket_ms;
        let slot = self.slot(index);
        let Some(bucket) = self.buckets.get_mut(slot) else {
            return;
        };
        if bucket.index != index || bucket.samples == 0 {
            if bucket.index > index && bucket.samples > 0 {
                // A newer bucket already occupies the slot: this delivery
                // is older than the whole window.
                return;
            }
            *bucket = Bucket {
                index,
                eph: 0.0,
                samples: 0,
            };
        }
        bucket.eph += eph;
        bucket.samples += 1;
    }

    /// EPH per hour over the window ending at `now_ms`: the sum delivered in
    /// the window × 3600 / window seconds; 0 when nothing is in the window.
    pub fn eph_per_hour(&self, now_ms: u64) -> f64 {
        let sum = self.sum_in_window(now_ms);
        if sum == 0.0 {
            return 0.0;
        }
        sum * 3600.0 / self.window_secs()
    }

    /// Total EPH recorded in the window ending at `now_ms`.
    pub fn sum_in_window(&self, now_ms: u64) -> f64 {
        self.in_window(now_ms).map(|b| b.eph).sum()
    }

    /// Whether any delivery was recorded in the window ending at `now_ms`
    /// (for [`throughput_status`](crate::throughput_status)).
    pub fn has_samples(&self, now_ms: u64) -> bool {
        self.in_window(now_ms).next().is_some()
    }

    /// Number of deliveries recorded in the window ending at `now_ms`.
    pub fn samples_in_window(&self, now_ms: u64) -> u64 {
        self.in_window(now_ms).map(|b| b.samples).sum()
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// The bucket width.
    pub fn bucket(&self) -> Duration {
        Duration::from_millis(self.bucket_ms)
    }

    /// Forgets every delivery.
    pub fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
    }

    fn window_secs(&self) -> f64 {
        self.window_ms as f64 / 1000.0
    }

    fn slot(&self, index: u64) -> usize {
        // The modulus is < buckets.len() ≤ MAX_BUCKETS, so it fits.
        usize::try_from(index % self.buckets.len() as u64).unwrap_or(0)
    }

    fn in_window(&self, now_ms: u64) -> impl Iterator<Item = &Bucket> {
        let now_index = now_ms / self.bucket_ms;
        let span = self.buckets.len() as u64;
        self.buckets
            .iter()
            .filter(move |b| b.samples > 0 && b.index <= now_index && now_index - b.index < span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn empty_is_zero() {
        let w = ThroughputWindow::new(MIN);
        assert_eq!(w.eph_per_hour(0), 0.0);
        assert_eq!(w.eph_per_hour(123_456_789), 0.0);
        assert!(!w.has_samples(0));
        assert_eq!(w.window(), MIN);
        assert_eq!(w.bucket(), Duration::from_secs(1));
    }

    #[test]
    fn scales_to_one_hour_exactly() {
        let mut w = ThroughputWindow::new(MIN);
        w.record(10_000, 100.0);
        w.record(10_500, 50.0);
        w.record(20_000, 250.0);
        // 400 EPH in 60 s → 400 × 60 per hour.
        assert_eq!(w.eph_per_hour(20_000), 24_000.0);
        assert_eq!(w.sum_in_window(20_000), 400.0);
        assert_eq!(w.samples_in_window(20_000), 3);

        let mut hour = ThroughputWindow::new(Duration::from_secs(3600));
        hour.record(5, 5e9);
        assert_eq!(hour.eph_per_hour(1_000_000), 5e9);

        let mut ten = ThroughputWindow::new(Duration::from_secs(10));
        ten.record(1, 2.5);
        assert_eq!(ten.eph_per_hour(1), 900.0);
    }

    #[test]
    fn inside_and_outside_the_window() {
        let mut w = ThroughputWindow::new(MIN);
        w.record(0, 60.0); // bucket 0
        w.record(30_000, 120.0); // bucket 30
        assert_eq!(w.sum_in_window(30_000), 180.0);
        // (0, 60 000]: the delivery at 0 has left; the one at 30 s remains.
        assert_eq!(w.sum_in_window(59_999), 180.0);
        assert_eq!(w.sum_in_window(60_000), 120.0);
        assert_eq!(w.eph_per_hour(60_000), 120.0 * 60.0);
        assert_eq!(w.sum_in_window(89_999), 120.0);
        assert_eq!(w.sum_in_window(90_000), 0.0);
        assert!(!w.has_samples(90_000));
        assert_eq!(w.eph_per_hour(90_000), 0.0);
        // Queries before a delivery do not see it.
        assert_eq!(w.sum_in_window(29_999), 60.0);
    }

    #[test]
    fn bucket_rollover_reuses_slots() {
        let mut w = ThroughputWindow::new(MIN);
        w.record(1_000, 10.0); // bucket 1, slot 1
        w.record(61_000, 20.0); // bucket 61, slot 1 again: replaces bucket 1
        assert_eq!(w.sum_in_window(61_000), 20.0);
        assert_eq!(w.samples_in_window(61_000), 1);
        // A late delivery for bucket 1 is older than the window and dropped.
        w.record(1_500, 99.0);
        assert_eq!(w.sum_in_window(61_000), 20.0);
        // Continuous deliveries over several windows: only the last 60 s count.
        let mut w = ThroughputWindow::new(MIN);
        for s in 0..300u64 {
            w.record(s * 1000, 1.0);
        }
        assert_eq!(w.sum_in_window(299_000), 60.0);
        assert_eq!(w.eph_per_hour(299_000), 3600.0);
    }

    #[test]
    fn long_idle_gap() {
        let mut w = ThroughputWindow::new(MIN);
        for s in 0..60u64 {
            w.record(s * 1000, 1.0);
        }
        assert_eq!(w.sum_in_window(59_000), 60.0);
        let later = 10 * 24 * 3600 * 1000;
        assert_eq!(w.eph_per_hour(later), 0.0);
        w.record(later, 7.0);
        assert_eq!(w.sum_in_window(later), 7.0);
        assert_eq!(w.samples_in_window(later), 1);
        // Near the end of the clock.
        w.record(u64::MAX, 3.0);
        assert_eq!(w.sum_in_window(u64::MAX), 3.0);
    }

    #[test]
    fn ignores_bad_amounts() {
        let mut w = ThroughputWindow::new(MIN);
        w.record(0, f64::NAN);
        w.record(0, f64::INFINITY);
        w.record(0, -1.0);
        assert!(!w.has_samples(0));
        w.record(0, 0.0);
        assert!(w.has_samples(0));
        assert_eq!(w.eph_per_hour(0), 0.0);
    }

    #[test]
    fn bounded_bucket_counts() {
        let short = ThroughputWindow::new(Duration::from_millis(500));
        assert_eq!(short.bucket(), Duration::from_millis(9));
        assert_eq!(short.buckets.len(), 56);
        let tiny = ThroughputWindow::new(Duration::ZERO);
        assert_eq!(tiny.window(), Duration::from_millis(1));
        assert_eq!(tiny.buckets.len(), 1);
        let day = ThroughputWindow::new(Duration::from_secs(86_400));
        assert_eq!(day.bucket(), Duration::from_secs(24));
        assert_eq!(day.buckets.len(), 3600);
        let huge = ThroughputWindow::new(Duration::MAX);
        assert!(huge.buckets.len() <= 3600);
        let mut huge = huge;
        huge.record(42, 1.0);
        assert!(huge.eph_per_hour(42) > 0.0);
    }

    #[test]
    fn clear_forgets() {
        let mut w = ThroughputWindow::new(MIN);
        w.record(5, 1.0);
        w.clear();
        assert!(!w.has_samples(5));
    }
}
