//! A bounded window of recent `phi_qevf` values with summary statistics.

use serde::Serialize;
use std::collections::VecDeque;

/// Summary statistics of a set of `phi_qevf` values. Percentiles use the
/// nearest-rank method: p-th percentile = the ⌈p/100 · n⌉-th smallest value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhiStats {
    /// Number of values.
    pub count: u64,
    /// Arithmetic mean, `None` when empty.
    pub mean: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Median (nearest rank).
    pub p50: Option<f64>,
    /// 95th percentile (nearest rank).
    pub p95: Option<f64>,
}

impl PhiStats {
    /// Statistics of `values` (any order).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut sorted: Vec<f64> = values.into_iter().collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return Self {
                count: 0,
                mean: None,
                min: None,
                max: None,
                p50: None,
                p95: None,
            };
        }
        let sum: f64 = sorted.iter().sum();
        Self {
            count: n as u64,
            mean: Some(sum / n as f64),
            min: sorted.first().copied(),
            max: sorted.last().copied(),
            p50: Some(sorted[nearest_rank(50, n) - 1]),
            p95: Some(sorted[nearest_rank(95, n) - 1]),
        }
    }
}

/// The 1-based nearest rank of percentile `p` (1–100) among `n` ≥ 1 values:
/// ⌈p·n/100⌉, computed in integers.
pub fn nearest_rank(p: u64, n: usize) -> usize {
    let n = n as u64;
    (p * n).div_ceil(100).max(1) as usize
}

/// The most recent `capacity` values of `phi_qevf`, oldest dropped first.
#[derive(Debug, Clone)]
pub struct PhiHistory {
    capacity: usize,
    values: VecDeque<f64>,
}

impl PhiHistory {
    /// The default window length (SPEC §3).
    pub const DEFAULT_CAPACITY: usize = 1000;

    /// An empty history keeping at most `capacity` (≥ 1) values.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            values: VecDeque::with_capacity(capacity),
        }
    }

    /// Adds a value, evicting the oldest when full.
    pub fn record(&mut self, phi: f64) {
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(phi);
    }

    /// Forgets every value.
    pub fn reset(&mut self) {
        self.values.clear();
    }

    /// The window length.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Statistics over the values currently held.
    pub fn stats(&self) -> PhiStats {
        PhiStats::of(self.values.iter().copied())
    }
}

impl Default for PhiHistory {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_one_to_twenty() {
        let s = PhiStats::of((1..=20).rev().map(f64::from));
        assert_eq!(s.count, 20);
        assert_eq!(s.mean, Some(10.5));
        assert_eq!(s.min, Some(1.0));
        assert_eq!(s.max, Some(20.0));
        assert_eq!(s.p50, Some(10.0));
        assert_eq!(s.p95, Some(19.0));
    }

    #[test]
    fn empty_stats_are_none() {
        let s = PhiStats::of([]);
        assert_eq!(s.count, 0);
        assert_eq!(s.mean, None);
        assert_eq!(s.p95, None);
    }

    #[test]
    fn history_is_bounded_and_resettable() {
        let mut h = PhiHistory::new(3);
        for v in [1.0, 2.0, 3.0, 4.0] {
            h.record(v);
        }
        let s = h.stats();
        assert_eq!((s.count, s.min, s.max), (3, Some(2.0), Some(4.0)));
        h.reset();
        assert_eq!(h.stats().count, 0);
    }

    #[test]
    fn nearest_rank_edges() {
        assert_eq!(nearest_rank(50, 1), 1);
        assert_eq!(nearest_rank(95, 1), 1);
        assert_eq!(nearest_rank(95, 100), 95);
        assert_eq!(nearest_rank(95, 101), 96);
        assert_eq!(nearest_rank(50, 3), 2);
    }
}
