//! Fractional-Kelly sizing from measured edge (SPEC §8).
//!
//! The risk fraction is `f = c × max(0, p − (1 − p) / R)` where `c` is the
//! configured Kelly fraction capped by the tier, `p` the Wilson 95 % lower
//! bound of the win rate over the last `window` closed trades and `R` their
//! mean win over their mean loss. Until `min_trades` trades have closed, a
//! fixed probe fraction stands in for `f`. An edge of zero or less gives
//! `f = 0`: no new entry.
//!
//! The closed trades measured are the strategy's own round trips as it
//! signalled them, priced at the fills the paper engine gives (next open,
//! fees on both sides), whether or not the gate let the real order through:
//! a strategy throttled to nothing keeps being measured and can earn its way
//! back, and its edge never depends on the size it was allowed.

use crate::universe::Tier;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::cell::Cell;
use std::collections::VecDeque;

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval's lower bound for `wins` successes in `n`
/// trials at 95 %; 0 when `n` is 0.
pub fn wilson_lower_bound(wins: usize, n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    let p = wins as f64 / n;
    let z2 = Z95 * Z95;
    let centre = p + z2 / (2.0 * n);
    let spread = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}

/// What the last closed trades measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeStats {
    /// Trades counted.
    pub trades: usize,
    /// Of which won (return > 0).
    pub wins: usize,
    /// Wilson 95 % lower bound of the win rate.
    pub win_rate_lower_bound: f64,
    /// Gross profit / gross loss (∞ with no losing trade, 0 with no win).
    pub profit_factor: f64,
    /// Mean winning return / mean losing return (∞ with no loss).
    pub payoff_ratio: f64,
}

impl TradeStats {
    /// `p − (1 − p) / R`, the full-Kelly fraction of the measured edge
    /// (p the win-rate lower bound); ≤ 0 means no edge.
    pub fn kelly_edge(&self) -> f64 {
        let p = self.win_rate_lower_bound;
        if self.wins == 0 {
            return 0.0;
        }
        p - (1.0 - p) / self.payoff_ratio
    }
}

/// The returns of a strategy's last closed trades (net of fees, as a
/// fraction of the entry value), newest last. The statistics of the last
/// request are kept until the next trade, since orders are sized far more
/// often than trades close.
#[derive(Debug, Clone)]
pub struct TradeWindow {
    returns: VecDeque<f64>,
    capacity: usize,
    closed: u64,
    cached: Cell<Option<(usize, TradeStats)>>,
}

impl TradeWindow {
    /// A window keeping the last `capacity` (≥ 1) trades.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            returns: VecDeque::with_capacity(capacity),
            capacity,
            closed: 0,
            cached: Cell::new(None),
        }
    }

    /// Records a closed trade's return.
    pub fn push(&mut self, trade_return: f64) {
        if self.returns.len() == self.capacity {
            self.returns.pop_front();
        }
        self.returns.push_back(trade_return);
        self.closed += 1;
        self.cached.set(None);
    }

    /// Trades closed since the start (not only those kept).
    pub fn closed(&self) -> u64 {
        self.closed
    }

    /// Statistics of the last `n` trades kept (fewer when fewer exist).
    pub fn stats(&self, n: usize) -> TradeStats {
        if let Some((cached_n, stats)) = self.cached.get() {
            if cached_n == n {
                return stats;
            }
        }
        let stats = self.compute(n);
        self.cached.set(Some((n, stats)));
        stats
    }

    fn compute(&self, n: usize) -> TradeStats {
        let skip = self.returns.len().saturating_sub(n);
        let (mut wins, mut losses, mut won, mut lost) = (0usize, 0usize, 0.0, 0.0);
        for &r in self.returns.iter().skip(skip) {
            if r > 0.0 {
                wins += 1;
                won += r;
            } else if r < 0.0 {
                losses += 1;
                lost -= r;
            }
        }
        let trades = self.returns.len() - skip;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
        TradeStats {
            trades,
            wins,
            win_rate_lower_bound: wilson_lower_bound(wins, trades),
            profit_factor: if won == 0.0 { 0.0 } else { ratio(won, lost) },
            payoff_ratio: if wins == 0 {
                0.0
            } else {
                ratio(won / wins as f64, lost / losses.max(1) as f64)
            },
        }
    }
}

/// Kelly sizing settings (SPEC §8 defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KellyConfig {
    /// `c`, the fraction of full Kelly (capped by the tier's maximum).
    pub kelly_fraction: f64,
    /// Closed trades `p` and `R` are measured over.
    pub kelly_window: usize,
    /// Closed trades needed before the measured edge is used.
    pub min_trades: usize,
    /// Risk fraction used before `min_trades` trades closed.
    pub probe_fraction: f64,
}

impl Default for KellyConfig {
    fn default() -> Self {
        Self {
            kelly_fraction: 0.25,
            kelly_window: 100,
            min_trades: 30,
            probe_fraction: 0.0025,
        }
    }
}

impl KellyConfig {
    /// The risk fraction for a tier given the strategy's closed trades.
    pub fn risk_fraction(&self, trades: &TradeWindow, tier: &Tier) -> f64 {
        let stats = trades.stats(self.kelly_window);
        if stats.trades < self.min_trades {
            return self.probe_fraction;
        }
        let tier_cap = tier.max_kelly_fraction.to_f64().unwrap_or(0.0);
        self.kelly_fraction.min(tier_cap) * stats.kelly_edge().max(0.0)
    }
}

/// What an entry is sized from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeInputs {
    /// Portfolio equity.
    pub equity: Decimal,
    /// Expected entry price.
    pub price: Decimal,
    /// Distance to the protective stop, in price units, when there is one.
    pub stop_distance: Option<Decimal>,
    /// Cash not already committed to working orders.
    pub free_cash: Decimal,
    /// Value of the position already held in this instrument.
    pub position_value: Decimal,
    /// Fee rate the fill pays.
    pub fee: Decimal,
}

/// The base quantity of an entry, before rounding to the lot: `fraction ×
/// equity / stop distance` (or `/ price` without a stop), times `throttle`,
/// capped by the tier's position and per-order limits and by the free cash.
/// Zero when nothing may be bought.
pub fn entry_quantity(fraction: f64, throttle: f64, tier: &Tier, inputs: &SizeInputs) -> Decimal {
    // Nine decimals of the scale are plenty and, unlike `from_f64`, cheap.
    let nanos = (fraction * throttle.clamp(0.0, 1.0) * 1e9).floor();
    if nanos.is_nan() || nanos < 1.0 || inputs.price <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    let scale = Decimal::new(nanos.min(1e18) as i64, 9);
    let risked = scale * inputs.equity;
    let room = tier.max_position_pct * PERCENT * inputs.equity - inputs.position_value;
    let cash = inputs.free_cash / (Decimal::ONE + inputs.fee);
    let cap = room.min(tier.max_notional_per_order).min(cash);
    let notional = match inputs.stop_distance.filter(|d| *d > Decimal::ZERO) {
        Some(stop) => (risked / stop * inputs.price).min(cap),
        None => risked.min(cap),
    };
    (notional / inputs.price).max(Decimal::ZERO)
}

/// 1 % as a factor.
const PERCENT: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

#[cfg(test)]
mod tests;
