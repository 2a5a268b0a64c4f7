//! Streaming indicators, one value per closed bar: the simple moving
//! average, Wilder's RSI and the Donchian channel. Each is `None` until it
//! has seen enough bars.

use std::collections::VecDeque;

/// Simple moving average of the last `period` values, over a ring buffer.
#[derive(Debug, Clone)]
pub struct Sma {
    ring: Vec<f64>,
    next: usize,
    filled: bool,
    sum: f64,
    /// Values added since the sum was last recomputed from the ring.
    since_refresh: usize,
}

impl Sma {
    /// An SMA over `period` ≥ 1 values.
    pub fn new(period: usize) -> Self {
        Self {
            ring: vec![0.0; period.max(1)],
            next: 0,
            filled: false,
            sum: 0.0,
            since_refresh: 0,
        }
    }

    /// Adds a value; the mean of the last `period` once there are that many.
    pub fn push(&mut self, value: f64) -> Option<f64> {
        let period = self.ring.len();
        let slot = &mut self.ring[self.next];
        self.sum += value - *slot;
        *slot = value;
        self.next += 1;
        if self.next == period {
            self.next = 0;
            self.filled = true;
        }
        // Re-add the ring once per `period` values (O(1) amortised) so the
        // running sum's rounding cannot drift over millions of bars.
        self.since_refresh += 1;
        if self.since_refresh >= period {
            self.sum = self.ring.iter().sum();
            self.since_refresh = 0;
        }
        self.filled.then(|| self.sum / period as f64)
    }
}

/// Wilder's relative strength index: the first average gain and loss are
/// the simple means of the first `period` changes, then each is smoothed
/// as `(previous × (period − 1) + current) / period`.
#[derive(Debug, Clone)]
pub struct Rsi {
    period: usize,
    last: Option<f64>,
    seen: usize,
    gain: f64,
    loss: f64,
}

impl Rsi {
    /// An RSI over `period` ≥ 1 changes.
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            last: None,
            seen: 0,
            gain: 0.0,
            loss: 0.0,
        }
    }

    /// Adds a close; the RSI (0–100) once `period` changes were seen.
    pub fn push(&mut self, close: f64) -> Option<f64> {
        let last = self.last.replace(close)?;
        let change = close - last;
        let (up, down) = (change.max(0.0), (-change).max(0.0));
        let n = self.period as f64;
        self.seen += 1;
        if self.seen <= self.period {
            self.gain += up / n;
            self.loss += down / n;
            if self.seen < self.period {
                return None;
            }
        } else {
            self.gain = (self.gain * (n - 1.0) + up) / n;
            self.loss = (self.loss * (n - 1.0) + down) / n;
        }
        Some(if self.loss == 0.0 {
            if self.gain == 0.0 {
                50.0
            } else {
                100.0
            }
        } else {
            100.0 - 100.0 / (1.0 + self.gain / self.loss)
        })
    }
}

/// The Donchian channel: highest high and lowest low of the last `period`
/// bars.
#[derive(Debug, Clone)]
pub struct Donchian {
    period: usize,
    index: usize,
    highs: VecDeque<(usize, f64)>,
    lows: VecDeque<(usize, f64)>,
}

impl Donchian {
    /// A channel over `period` ≥ 1 bars.
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            index: 0,
            highs: VecDeque::new(),
            lows: VecDeque::new(),
        }
    }

    /// Adds a bar; `(upper, lower)` once `period` bars were seen. Monotonic
    /// queues: O(1) amortised per bar.
    pub fn push(&mut self, high: f64, low: f64) -> Option<(f64, f64)> {
        let i = self.index;
        self.index += 1;
        while self.highs.back().is_some_and(|&(_, h)| h <= high) {
            self.highs.pop_back();
        }
        self.highs.push_back((i, high));
        while self.lows.back().is_some_and(|&(_, l)| l >= low) {
            self.lows.pop_back();
        }
        self.lows.push_back((i, low));
        let oldest = (i + 1).saturating_sub(self.period);
        while self.highs.front().is_some_and(|&(j, _)| j < oldest) {
            self.highs.pop_front();
        }
        while self.lows.front().is_some_and(|&(j, _)| j < oldest) {
            self.lows.pop_front();
        }
        if self.index < self.period {
            return None;
        }
        Some((self.highs.front()?.1, self.lows.front()?.1))
    }
}
