//! Seven confidence levels from the strategy's recent measured performance
//! (SPEC §8). Over the last `window` closed trades, the profit factor PF and
//! the Wilson lower bound LB of the win rate give
//! `level = 1 + #{PF ≥ 0.8, PF ≥ 1.0, PF ≥ 1.2, PF ≥ 1.5, LB ≥ 0.40, LB ≥ 0.50}`.
//! The level starts at 4, falls at once to a lower measure, and rises by one
//! level per `rise_trades` closed trades while the measure stays above it.
//! Each level is a size throttle (level 1: 0, no new entries; level 7: 1):
//! confidence only ever reduces size. Until `min_trades` trades have closed
//! the level stays where it started.

use crate::sizing::{TradeStats, TradeWindow};

/// Throttle of levels 1 to 7.
pub const THROTTLES: [f64; 7] = [0.0, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0];

const PROFIT_FACTOR_STEPS: [f64; 4] = [0.8, 1.0, 1.2, 1.5];
const LOWER_BOUND_STEPS: [f64; 2] = [0.40, 0.50];

/// Confidence settings (SPEC §8 defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfidenceConfig {
    /// Closed trades measured.
    pub window: usize,
    /// Closed trades per one-level rise.
    pub rise_trades: u32,
    /// Closed trades before the level moves at all.
    pub min_trades: usize,
    /// The starting level.
    pub start_level: u8,
}

impl Default for ConfidenceConfig {
    fn default() -> Self {
        Self {
            window: 50,
            rise_trades: 10,
            min_trades: 20,
            start_level: 4,
        }
    }
}

/// The level a measure calls for, 1–7.
pub fn measured_level(stats: &TradeStats) -> u8 {
    let met = PROFIT_FACTOR_STEPS
        .iter()
        .filter(|&&t| stats.profit_factor >= t)
        .count()
        + LOWER_BOUND_STEPS
            .iter()
            .filter(|&&t| stats.win_rate_lower_bound >= t)
            .count();
    1 + met as u8
}

/// A change of confidence level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelChange {
    /// The level left.
    pub from: u8,
    /// The level entered.
    pub to: u8,
    /// The measure that moved it.
    pub stats: TradeStats,
}

/// The current confidence level of one strategy.
#[derive(Debug, Clone)]
pub struct Confidence {
    config: ConfidenceConfig,
    level: u8,
    trades_since_change: u32,
}

impl Confidence {
    /// At the starting level (clamped to 1–7).
    pub fn new(config: ConfidenceConfig) -> Self {
        Self {
            config,
            level: config.start_level.clamp(1, 7),
            trades_since_change: 0,
        }
    }

    /// Replaces the settings (an operator's reload); the level stays.
    pub fn set_config(&mut self, config: ConfidenceConfig) {
        self.config = config;
    }

    /// The level, 1–7.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// The level's size throttle.
    pub fn throttle(&self) -> f64 {
        THROTTLES[usize::from(self.level - 1)]
    }

    /// Re-judges the level after a trade closed into `trades`.
    pub fn on_trade_closed(&mut self, trades: &TradeWindow) -> Option<LevelChange> {
        let stats = trades.stats(self.config.window);
        if stats.trades < self.config.min_trades {
            return None;
        }
        self.trades_since_change += 1;
        let measured = measured_level(&stats);
        let to = if measured < self.level {
            measured
        } else if measured > self.level && self.trades_since_change >= self.config.rise_trades {
            self.level + 1
        } else {
            return None;
        };
        let from = self.level;
        self.level = to;
        self.trades_since_change = 0;
        Some(LevelChange { from, to, stats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(returns: &[f64]) -> TradeWindow {
        let mut w = TradeWindow::new(100);
        for &r in returns {
            w.push(r);
        }
        w
    }

    #[test]
    fn the_level_counts_the_thresholds_met() {
        let level = |r: &[f64]| measured_level(&window(r).stats(50));
        // All losses: PF 0, LB 0 → 1.
        assert_eq!(level(&[-0.01; 50]), 1);
        // 30 of 50 win +1.5 %, 20 lose −1 %: PF 2.25 (4 steps), LB 0.462 (1) → 6.
        let mut returns = vec![0.015; 30];
        returns.extend(vec![-0.01; 20]);
        assert_eq!(level(&returns), 6);
        // Every trade wins: PF ∞, LB 0.929 → 7.
        assert_eq!(level(&[0.01; 50]), 7);
        assert_eq!(THROTTLES[usize::from(level(&[0.01; 50]) - 1)], 1.0);
    }

    #[test]
    fn falls_at_once_and_rises_one_level_per_ten_trades() {
        let mut c = Confidence::new(ConfidenceConfig::default());
        let mut w = TradeWindow::new(100);
        let mut changes = Vec::new();
        for n in 0..60 {
            w.push(0.01);
            if let Some(change) = c.on_trade_closed(&w) {
                changes.push((n + 1, change.from, change.to));
            }
        }
        // From trade 20 on (min_trades) every rise waits 10 counted trades.
        assert_eq!(changes, [(29, 4, 5), (39, 5, 6), (49, 6, 7)]);
        for _ in 0..25 {
            w.push(-0.03);
        }
        let change = c.on_trade_closed(&w).unwrap();
        // The last 50: 25 wins of 1 %, 25 losses of 3 %: PF 0.33 → level 1.
        assert_eq!((change.from, change.to), (7, 1));
        assert_eq!(c.throttle(), 0.0);
    }
}
