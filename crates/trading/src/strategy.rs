//! Strategies behind one trait. A strategy sees each bar once it has
//! closed and answers with a signal; it never sees a later bar. Three are
//! built in, each with named parameters: `sma_cross`, `rsi_reversion` and
//! `donchian_breakout`.

use crate::candles::Candle;
use crate::indicators::{Donchian, Rsi, Sma};
use std::collections::BTreeMap;
use thiserror::Error;

/// What a strategy wants after a bar closed (spot: long or flat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Keep what is held.
    Hold,
    /// Open a long position (if flat).
    Enter,
    /// Close the long position (if any).
    Exit,
}

/// A trading strategy.
pub trait Strategy: Send {
    /// The bar that just closed; returns the signal for the next bar.
    fn on_bar(&mut self, bar: &Candle) -> Signal;
}

/// The built-in strategies' names.
pub const STRATEGIES: [&str; 3] = ["sma_cross", "rsi_reversion", "donchian_breakout"];

/// A strategy that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StrategyError {
    /// No strategy of that name.
    #[error("unknown strategy {0:?}; known: sma_cross, rsi_reversion, donchian_breakout")]
    UnknownStrategy(String),
    /// The strategy has no such parameter.
    #[error("strategy {strategy} has no parameter {param:?}; it takes {known}")]
    UnknownParam {
        /// The strategy.
        strategy: &'static str,
        /// The parameter given.
        param: String,
        /// Its parameters.
        known: String,
    },
    /// A parameter's value is invalid.
    #[error("parameter {param}: {message}")]
    InvalidParam {
        /// The parameter.
        param: String,
        /// What is wrong.
        message: String,
    },
}

/// Parameter values by name, checked against a strategy's list.
struct Params<'a> {
    strategy: &'static str,
    given: &'a BTreeMap<String, String>,
}

impl Params<'_> {
    fn check_names(&self, known: &'static [&'static str]) -> Result<(), StrategyError> {
        match self.given.keys().find(|k| !known.contains(&k.as_str())) {
            Some(param) => Err(StrategyError::UnknownParam {
                strategy: self.strategy,
                param: param.clone(),
                known: known.join(", "),
            }),
            None => Ok(()),
        }
    }

    fn number(&self, name: &str, default: f64, min: f64, max: f64) -> Result<f64, StrategyError> {
        let Some(text) = self.given.get(name) else {
            return Ok(default);
        };
        let invalid = |message: String| StrategyError::InvalidParam {
            param: name.to_string(),
            message,
        };
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| invalid(format!("{text:?} is not a number")))?;
        if !(min..=max).contains(&value) {
            return Err(invalid(format!(
                "must be between {min} and {max}, got {value}"
            )));
        }
        Ok(value)
    }

    fn period(&self, name: &str, default: usize) -> Result<usize, StrategyError> {
        let value = self.number(name, default as f64, 1.0, 100_000.0)?;
        if value.fract() != 0.0 {
            return Err(StrategyError::InvalidParam {
                param: name.to_string(),
                message: format!("must be a whole number of bars, got {value}"),
            });
        }
        Ok(value as usize)
    }
}

/// Builds a built-in strategy from its name and `k=v` parameters.
pub fn build(
    name: &str,
    params: &BTreeMap<String, String>,
) -> Result<Box<dyn Strategy>, StrategyError> {
    match name {
        "sma_cross" => {
            let p = Params {
                strategy: "sma_cross",
                given: params,
            };
            p.check_names(&["fast", "slow"])?;
            let (fast, slow) = (p.period("fast", 10)?, p.period("slow", 30)?);
            if fast >= slow {
                return Err(StrategyError::InvalidParam {
                    param: "fast".into(),
                    message: format!("must be below slow ({slow}), got {fast}"),
                });
            }
            Ok(Box::new(SmaCross::new(fast, slow)))
        }
        "rsi_reversion" => {
            let p = Params {
                strategy: "rsi_reversion",
                given: params,
            };
            p.check_names(&["period", "lower", "upper"])?;
            let period = p.period("period", 14)?;
            let (lower, upper) = (
                p.number("lower", 30.0, 0.0, 100.0)?,
                p.number("upper", 70.0, 0.0, 100.0)?,
            );
            if lower >= upper {
                return Err(StrategyError::InvalidParam {
                    param: "lower".into(),
                    message: format!("must be below upper ({upper}), got {lower}"),
                });
            }
            Ok(Box::new(RsiReversion {
                rsi: Rsi::new(period),
                lower,
                upper,
            }))
        }
        "donchian_breakout" => {
            let p = Params {
                strategy: "donchian_breakout",
                given: params,
            };
            p.check_names(&["period"])?;
            Ok(Box::new(DonchianBreakout {
                channel: Donchian::new(p.period("period", 20)?),
                previous: None,
            }))
        }
        other => Err(StrategyError::UnknownStrategy(other.to_string())),
    }
}

/// Long when the fast SMA of closes crosses above the slow one, flat when
/// it crosses below (a cross: strictly below on the previous bar, strictly
/// above on this one, as `backtesting.lib.crossover` defines it).
pub struct SmaCross {
    fast: Sma,
    slow: Sma,
    previous: Option<(f64, f64)>,
}

impl SmaCross {
    /// Fast and slow periods, in bars.
    pub fn new(fast: usize, slow: usize) -> Self {
        Self {
            fast: Sma::new(fast),
            slow: Sma::new(slow),
            previous: None,
        }
    }
}

impl Strategy for SmaCross {
    fn on_bar(&mut self, bar: &Candle) -> Signal {
        let (fast, slow) = (self.fast.push(bar.close), self.slow.push(bar.close));
        let (Some(fast), Some(slow)) = (fast, slow) else {
            return Signal::Hold;
        };
        let signal = match self.previous {
            Some((f, s)) if f < s && fast > slow => Signal::Enter,
            Some((f, s)) if f > s && fast < slow => Signal::Exit,
            _ => Signal::Hold,
        };
        self.previous = Some((fast, slow));
        signal
    }
}

/// Long when Wilder's RSI falls below `lower`, flat when it rises above `upper`.
pub struct RsiReversion {
    rsi: Rsi,
    lower: f64,
    upper: f64,
}

impl Strategy for RsiReversion {
    fn on_bar(&mut self, bar: &Candle) -> Signal {
        match self.rsi.push(bar.close) {
            Some(r) if r < self.lower => Signal::Enter,
            Some(r) if r > self.upper => Signal::Exit,
            _ => Signal::Hold,
        }
    }
}

/// Long when a close breaks above the previous bars' channel, flat when it
/// breaks below.
pub struct DonchianBreakout {
    channel: Donchian,
    previous: Option<(f64, f64)>,
}

impl Strategy for DonchianBreakout {
    fn on_bar(&mut self, bar: &Candle) -> Signal {
        let signal = match self.previous {
            Some((upper, _)) if bar.close > upper => Signal::Enter,
            Some((_, lower)) if bar.close < lower => Signal::Exit,
            _ => Signal::Hold,
        };
        self.previous = self.channel.push(bar.high, bar.low);
        signal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(i: i64, close: f64) -> Candle {
        Candle {
            open_time_us: i * 60_000_000,
            open: close,
            high: close + 1.0,
            low: close - 1.0,
            close,
            volume: 1.0,
        }
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn signals(strategy: &mut dyn Strategy, closes: &[f64]) -> Vec<(usize, Signal)> {
        closes
            .iter()
            .enumerate()
            .map(|(i, c)| (i, strategy.on_bar(&bar(i as i64, *c))))
            .filter(|(_, s)| *s != Signal::Hold)
            .collect()
    }

    #[test]
    fn sma_cross_signals_on_the_bar_the_averages_cross() {
        let mut s = build("sma_cross", &params(&[("fast", "2"), ("slow", "3")])).unwrap();
        // fast(2)/slow(3): bar 2: 9.5/10; bar 3: 9.5/9.67; bar 4: 11/10.33 (cross up);
        // bar 5..: falling, fast crosses below at bar 6.
        let closes = [10.0, 10.0, 9.0, 10.0, 12.0, 10.0, 6.0, 6.0];
        assert_eq!(
            signals(s.as_mut(), &closes),
            [(4, Signal::Enter), (6, Signal::Exit)]
        );
    }

    #[test]
    fn rsi_reversion_and_donchian_breakout_signal_at_their_thresholds() {
        let mut rsi = build(
            "rsi_reversion",
            &params(&[("period", "2"), ("lower", "20"), ("upper", "80")]),
        )
        .unwrap();
        let got = signals(rsi.as_mut(), &[10.0, 9.0, 8.0, 9.0, 12.0]);
        assert_eq!(got, [(2, Signal::Enter), (4, Signal::Exit)]);
        let mut don = build("donchian_breakout", &params(&[("period", "2")])).unwrap();
        // Channel of bars 0-1: upper 11, lower 9; bar 2 closes at 12 > 11.
        let got = signals(don.as_mut(), &[10.0, 10.0, 12.0, 12.0, 8.0]);
        assert_eq!(got, [(2, Signal::Enter), (4, Signal::Exit)]);
    }

    #[test]
    fn bad_names_and_parameters_are_named() {
        assert_eq!(
            build("macd", &params(&[])).err(),
            Some(StrategyError::UnknownStrategy("macd".into()))
        );
        let e = build("sma_cross", &params(&[("fats", "3")])).err().unwrap();
        assert_eq!(
            e.to_string(),
            "strategy sma_cross has no parameter \"fats\"; it takes fast, slow"
        );
        let e = build("sma_cross", &params(&[("fast", "30"), ("slow", "10")]))
            .err()
            .unwrap();
        assert!(
            matches!(e, StrategyError::InvalidParam { ref param, .. } if param == "fast"),
            "{e}"
        );
        let e = build("rsi_reversion", &params(&[("period", "2.5")]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("whole number"), "{e}");
        let e = build("rsi_reversion", &params(&[("upper", "120")]))
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("parameter upper:"), "{e}");
        let e = build("donchian_breakout", &params(&[("period", "0")]))
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("parameter period:"), "{e}");
    }
}
