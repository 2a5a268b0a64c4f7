//! The emergency ladder (SPEC §8): GREEN → YELLOW → ORANGE → RED → BLACK
//! from measured drawdown, daily loss and realised volatility. Each level
//! sets a size throttle and a trading state; RED and BLACK flatten.
//!
//! - Drawdown is `1 − equity / peak`, marked on every observation. YELLOW,
//!   ORANGE and RED measure it from the peak of the current episode; an
//!   episode ends when the book is flat at the start of a UTC day while
//!   ORANGE or RED, and the next one starts from the equity then (otherwise
//!   a flattened book could never recover its old peak and would stay
//!   stopped for ever). BLACK measures it from the all-time peak.
//! - Daily loss is `1 − equity / equity at the start of the UTC day`.
//! - Realised volatility of a day is √Σr² of the equity's log returns
//!   between observations; YELLOW fires when today's reaches `vol_multiple`
//!   × the median of the last `vol_days` days that had any (once at least
//!   `vol_min_days` such days exist).
//!
//! Levels rise at once. YELLOW and ORANGE fall only after the measures have
//! stayed below them for `cooldown_us` of market time; RED holds until the
//! next UTC day; BLACK holds until an operator resets it with a reason.

use crate::risk::TradingState;
use std::collections::VecDeque;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Normal trading.
    Green,
    /// Half size.
    Yellow,
    /// Reduce only.
    Orange,
    /// Flattened, halted until the next UTC day.
    Red,
    /// Flattened, halted until an operator reset.
    Black,
}

impl Level {
    /// `GREEN` … `BLACK`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Green => "GREEN",
            Self::Yellow => "YELLOW",
            Self::Orange => "ORANGE",
            Self::Red => "RED",
            Self::Black => "BLACK",
        }
    }

    /// The size throttle of new entries (≤ 1).
    pub fn throttle(self) -> f64 {
        match self {
            Self::Green => 1.0,
            Self::Yellow => 0.5,
            Self::Orange | Self::Red | Self::Black => 0.0,
        }
    }

    /// The trading state the level imposes.
    pub fn state(self) -> TradingState {
        match self {
            Self::Green | Self::Yellow => TradingState::Active,
            Self::Orange => TradingState::Reducing,
            Self::Red | Self::Black => TradingState::Halted,
        }
    }

    /// Whether entering the level closes every position.
    pub fn flattens(self) -> bool {
        self >= Self::Red
    }
}

/// Ladder thresholds (SPEC §8 defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LadderConfig {
    /// Episode drawdown for YELLOW.
    pub yellow_drawdown: f64,
    /// Episode drawdown for ORANGE.
    pub orange_drawdown: f64,
    /// Episode drawdown for RED.
    pub red_drawdown: f64,
    /// All-time drawdown for BLACK.
    pub black_drawdown: f64,
    /// Daily loss for RED.
    pub daily_loss_limit: f64,
    /// Today's volatility over the median day's for YELLOW.
    pub vol_multiple: f64,
    /// Days in the volatility median.
    pub vol_days: usize,
    /// Days with volatility needed before the volatility rule applies.
    pub vol_min_days: usize,
    /// Market time a level's condition must stay clear before it falls.
    pub cooldown_us: i64,
}

impl Default for LadderConfig {
    fn default() -> Self {
        Self {
            yellow_drawdown: 0.05,
            orange_drawdown: 0.10,
            red_drawdown: 0.15,
            black_drawdown: 0.20,
            daily_loss_limit: 0.03,
            vol_multiple: 2.0,
            vol_days: 30,
            vol_min_days: 5,
            cooldown_us: 3_600_000_000,
        }
    }
}

/// The measures a level was judged on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measures {
    /// Drawdown from the episode's peak.
    pub drawdown: f64,
    /// Drawdown from the all-time peak.
    pub max_drawdown: f64,
    /// Today's loss (negative for a gain).
    pub daily_loss: f64,
    /// Today's realised volatility.
    pub volatility: f64,
    /// Median daily volatility (0 until enough days).
    pub volatility_median: f64,
}

/// A change of level and what caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// When (µs, market time).
    pub time_us: i64,
    /// The level left.
    pub from: Level,
    /// The level entered.
    pub to: Level,
    /// Which rule fired or cleared, or the operator's reason.
    pub cause: String,
    /// The measures at that moment.
    pub measures: Measures,
}

/// The ladder's state.
#[derive(Debug, Clone)]
pub struct Ladder {
    config: LadderConfig,
    level: Level,
    peak: f64,
    episode_peak: f64,
    last_equity: f64,
    day: Option<i64>,
    day_start: f64,
    day_sum_sq: f64,
    vols: VecDeque<f64>,
    vol_median: f64,
    clear_since: Option<i64>,
    kill_switch: bool,
}

impl Ladder {
    /// GREEN, starting from `equity`.
    pub fn new(config: LadderConfig, equity: f64) -> Self {
        Self {
            config,
            level: Level::Green,
            peak: equity,
            episode_peak: equity,
            last_equity: equity,
            day: None,
            day_start: equity,
            day_sum_sq: 0.0,
            vols: VecDeque::with_capacity(config.vol_days),
            vol_median: 0.0,
            clear_since: None,
            kill_switch: false,
        }
    }

    /// Replaces the thresholds (an operator's reload); the level moves by
    /// them from the next mark on, with the usual cooldown to fall.
    pub fn set_config(&mut self, config: LadderConfig) {
        self.config = config;
    }

    /// The current level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// The measures as of the last observation.
    pub fn measures(&self) -> Measures {
        let fall = |peak: f64| {
            if peak > 0.0 {
                1.0 - self.last_equity / peak
            } else {
                0.0
            }
        };
        Measures {
            drawdown: fall(self.episode_peak),
            max_drawdown: fall(self.peak),
            daily_loss: if self.day_start > 0.0 {
                1.0 - self.last_equity / self.day_start
            } else {
                0.0
            },
            volatility: self.day_sum_sq.sqrt(),
            volatility_median: self.vol_median,
        }
    }

    /// The level the measures call for now, and the rule behind it.
    fn target(&self, m: &Measures) -> (Level, &'static str) {
        let c = &self.config;
        if self.kill_switch {
            (Level::Black, "kill switch")
        } else if m.max_drawdown >= c.black_drawdown {
            (Level::Black, "drawdown from the all-time peak")
        } else if m.drawdown >= c.red_drawdown {
            (Level::Red, "drawdown")
        } else if m.daily_loss >= c.daily_loss_limit {
            (Level::Red, "daily loss limit")
        } else if m.drawdown >= c.orange_drawdown {
            (Level::Orange, "drawdown")
        } else if m.drawdown >= c.yellow_drawdown {
            (Level::Yellow, "drawdown")
        } else if m.volatility_median > 0.0 && m.volatility >= c.vol_multiple * m.volatility_median
        {
            (Level::Yellow, "realised volatility")
        } else {
            (Level::Green, "conditions clear")
        }
    }

    /// Observes equity at `time_us`; `flat` says whether the book holds no
    /// position. Returns the transition when the level changed.
    pub fn observe(&mut self, time_us: i64, equity: f64, flat: bool) -> Option<Transition> {
        let day = time_us.div_euclid(MICROS_PER_DAY);
        let new_day = self.day.is_some_and(|d| day > d);
        if new_day {
            self.roll_day(flat);
        }
        self.day = Some(day);
        if self.last_equity > 0.0 && equity > 0.0 && equity != self.last_equity {
            let r = (equity / self.last_equity).ln();
            self.day_sum_sq += r * r;
        }
        self.last_equity = equity;
        self.peak = self.peak.max(equity);
        self.episode_peak = self.episode_peak.max(equity);
        let measures = self.measures();
        let (target, cause) = self.target(&measures);
        let from = self.level;
        let to = if target >= from {
            self.clear_since = None;
            target
        } else {
            match from {
                Level::Black => from,
                Level::Red if new_day => target,
                Level::Red => from,
                _ => {
                    let since = *self.clear_since.get_or_insert(time_us);
                    if time_us - since >= self.config.cooldown_us {
                        target
                    } else {
                        from
                    }
                }
            }
        };
        self.change(time_us, to, cause, measures)
    }

    fn roll_day(&mut self, flat: bool) {
        if self.day_sum_sq > 0.0 {
            if self.vols.len() == self.config.vol_days.max(1) {
                self.vols.pop_front();
            }
            self.vols.push_back(self.day_sum_sq.sqrt());
            self.vol_median = median(&self.vols, self.config.vol_min_days);
        }
        self.day_sum_sq = 0.0;
        self.day_start = self.last_equity;
        if flat && matches!(self.level, Level::Orange | Level::Red) {
            self.episode_peak = self.last_equity;
        }
    }

    fn change(
        &mut self,
        time_us: i64,
        to: Level,
        cause: &str,
        measures: Measures,
    ) -> Option<Transition> {
        let from = self.level;
        if to == from {
            return None;
        }
        self.level = to;
        if to < from {
            self.clear_since = None;
        }
        Some(Transition {
            time_us,
            from,
            to,
            cause: cause.to_string(),
            measures,
        })
    }

    /// The kill switch: BLACK at once.
    pub fn kill(&mut self, time_us: i64) -> Option<Transition> {
        self.kill_switch = true;
        self.change(time_us, Level::Black, "kill switch", self.measures())
    }

    /// An operator's reset out of BLACK with a reason: the kill switch goes
    /// off and a new episode starts from the current equity (the all-time
    /// peak too, so the deepest drawdown does not fire again at once), and
    /// today's loss counts from the reset.
    /// `None` when the ladder was not BLACK or the reason is blank.
    pub fn reset(&mut self, time_us: i64, reason: &str) -> Option<Transition> {
        if self.level != Level::Black || reason.trim().is_empty() {
            return None;
        }
        self.kill_switch = false;
        self.peak = self.last_equity;
        self.episode_peak = self.last_equity;
        self.day_start = self.last_equity;
        let cause = format!("operator reset: {}", reason.trim());
        self.change(time_us, Level::Green, &cause, self.measures())
    }
}

/// The median of `values`, or 0 with fewer than `min` (≥ 1) of them.
fn median(values: &VecDeque<f64>, min: usize) -> f64 {
    if values.len() < min.max(1) {
        return 0.0;
    }
    let mut sorted: Vec<f64> = values.iter().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

#[cfg(test)]
mod tests;
