//! A backtest on the seeded synthetic market, as the `agent.backtest` A2A
//! skill runs it: symbols of the universe, a strategy, a number of
//! one-minute bars and a seed; Kelly sizing through the risk desk with the
//! agent's defaults. The same request gives the same report, byte for byte.

use crate::config::{AgentConfig, StrategySetting};
use qunimbus_core::{FieldError, FieldErrorCode};
use qunimbus_trading::backtest::{self, BacktestError, Market, Sizing};
use qunimbus_trading::synthetic::SyntheticMarket;
pub use qunimbus_trading::Universe;
use qunimbus_trading::{report, strategy, Candle, Costs};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Most bars one backtest may ask for.
pub const MAX_BARS: u64 = 1_000_000;

/// Most symbols one backtest may ask for.
pub const MAX_SYMBOLS: usize = 8;

/// Most bar values (bars × symbols) held in memory by one backtest.
const MAX_BAR_VALUES: u64 = 2_000_000;

/// Most trades (and equity points) a report carries; the rest are counted
/// (the metrics cover them all), so an artifact stays a few MB at most.
pub const MAX_REPORT_ITEMS: usize = 2000;

/// Keeps the first `max` items of `report[key]`, noting how many there were.
fn cap_list(report: &mut Value, key: &str, max: usize) {
    let Some(list) = report.get_mut(key).and_then(Value::as_array_mut) else {
        return;
    };
    let total = list.len();
    if total > max {
        list.truncate(max);
        report[format!("{key}_total")] = json!(total);
        report[format!("{key}_truncated")] = json!(true);
    }
}

/// The synthetic market starts here (2026-01-01T00:00:00Z), so the same
/// request gives the same bars whenever it runs.
const START_US: i64 = 1_767_225_600_000_000;

/// A validated backtest request.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticBacktest {
    /// Symbols of the built-in universe.
    pub symbols: Vec<String>,
    /// One-minute bars per symbol.
    pub bars: u64,
    /// The synthetic market's seed.
    pub seed: u64,
    /// The strategy of every symbol.
    pub strategy: StrategySetting,
    /// Starting cash, USDT.
    pub cash: Decimal,
}

fn invalid(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::field(field, FieldErrorCode::WrongType, message)
}

fn choice(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::field(field, FieldErrorCode::InvalidChoice, message)
}

/// A JSON number that is a whole number ≥ 0, integral doubles included
/// (A2A clients send every number of a data part as a double).
pub fn whole_number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9.0e15)
            .map(|f| f as u64)
    })
}

/// A whole number from a JSON number (integral doubles included: a2a
/// clients send every number of a data part as a double).
fn whole(
    params: &Map<String, Value>,
    field: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, FieldError> {
    let Some(value) = params.get(field) else {
        return Ok(None);
    };
    let n = whole_number(value)
        .ok_or_else(|| invalid(field, format!("must be a whole number, got {value}")))?;
    if n < min || n > max {
        return Err(FieldError::field(
            field,
            FieldErrorCode::OutOfRange,
            format!("must be between {min} and {max}, got {n}"),
        ));
    }
    Ok(Some(n))
}

fn strategy_of(value: &Value) -> Result<StrategySetting, FieldError> {
    let object = value
        .as_object()
        .ok_or_else(|| invalid("strategy", "must be an object {\"name\", \"params\"}"))?;
    if let Some(key) = object
        .keys()
        .find(|k| !["name", "params"].contains(&k.as_str()))
    {
        return Err(FieldError::field(
            &format!("strategy.{key}"),
            FieldErrorCode::UnknownField,
            format!("unknown field {key:?}; expected name, params"),
        ));
    }
    let name = object
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("strategy.name", "must be a strategy name"))?;
    let mut params = BTreeMap::new();
    if let Some(given) = object.get("params") {
        let given = given
            .as_object()
            .ok_or_else(|| invalid("strategy.params", "must be an object"))?;
        for (key, v) in given {
            let text = match v {
                Value::Number(n) => n
                    .as_f64()
                    .filter(|f| f.fract() == 0.0)
                    .map_or_else(|| n.to_string(), |f| format!("{f:.0}")),
                Value::String(s) => s.clone(),
                other => {
                    return Err(invalid(
                        &format!("strategy.params.{key}"),
                        format!("must be a number or a string, got {other}"),
                    ))
                }
            };
            params.insert(key.clone(), toml::Value::String(text));
        }
    }
    Ok(StrategySetting {
        name: name.to_string(),
        params,
    })
}

impl SyntheticBacktest {
    /// Fields a request may have.
    pub const FIELDS: [&'static str; 5] = ["symbols", "bars", "seed", "strategy", "cash"];

    /// Validates a request's parameters, naming the first bad field.
    pub fn parse(params: &Map<String, Value>, universe: &Universe) -> Result<Self, FieldError> {
        if let Some(key) = params.keys().find(|k| !Self::FIELDS.contains(&k.as_str())) {
            return Err(FieldError::field(
                key,
                FieldErrorCode::UnknownField,
                format!(
                    "unknown field {key:?}; expected one of {}",
                    Self::FIELDS.join(", ")
                ),
            ));
        }
        let symbols = match params.get("symbols") {
            None => vec!["BTCUSDT".to_string()],
            Some(list) => {
                let list = list
                    .as_array()
                    .filter(|l| !l.is_empty() && l.len() <= MAX_SYMBOLS)
                    .ok_or_else(|| {
                        invalid(
                            "symbols",
                            format!("must be a list of 1 to {MAX_SYMBOLS} symbols"),
                        )
                    })?;
                let mut symbols: Vec<String> = Vec::with_capacity(list.len());
                for (i, s) in list.iter().enumerate() {
                    let field = format!("symbols[{i}]");
                    let s = s
                        .as_str()
                        .ok_or_else(|| invalid(&field, "must be a symbol"))?;
                    if universe.instrument(s).is_none() {
                        return Err(choice(
                            &field,
                            format!(
                                "{:?} is not in the universe",
                                s.chars().take(20).collect::<String>()
                            ),
                        ));
                    }
                    if symbols.iter().any(|t| t == s) {
                        return Err(choice(&field, format!("{s} is listed twice")));
                    }
                    symbols.push(s.to_string());
                }
                symbols
            }
        };
        let bars = whole(params, "bars", 1, MAX_BARS)?.unwrap_or(10_000);
        if bars.saturating_mul(symbols.len() as u64) > MAX_BAR_VALUES {
            return Err(invalid(
                "bars",
                format!("bars × symbols must be at most {MAX_BAR_VALUES}"),
            ));
        }
        let seed = whole(params, "seed", 0, u64::from(u32::MAX))?.unwrap_or(7);
        let strategy = params
            .get("strategy")
            .map(strategy_of)
            .transpose()?
            .unwrap_or_default();
        strategy::build(&strategy.name, &strategy.text_params())
            .map_err(|e| choice("strategy", e.to_string()))?;
        let cash = whole(params, "cash", 100, 1_000_000_000)?
            .map_or(Decimal::from(100_000), Decimal::from);
        Ok(Self {
            symbols,
            bars,
            seed,
            strategy,
            cash,
        })
    }

    /// The request as the report's `inputs` record it.
    pub fn describe(&self) -> Value {
        json!({
            "market": "synthetic",
            "symbols": self.symbols,
            "bars": self.bars,
            "seed": self.seed,
            "strategy": {"name": self.strategy.name, "label": self.strategy.label()},
            "cash": self.cash.to_string(),
            "sizing": "kelly (the agent's defaults, through the risk desk)",
        })
    }

    /// Runs it, calling `keep_going(bar times done)` after each bar time
    /// (false stops it); the report as JSON.
    pub fn run(
        &self,
        universe: &Universe,
        keep_going: impl FnMut(u64) -> bool,
    ) -> Result<Value, BacktestRunError> {
        let instruments: Vec<_> = self
            .symbols
            .iter()
            .filter_map(|s| universe.instrument(s).cloned())
            .collect();
        let mut walk = SyntheticMarket::new(self.seed, &instruments, START_US);
        let mut bars: Vec<Vec<Candle>> = instruments
            .iter()
            .map(|_| Vec::with_capacity(self.bars as usize))
            .collect();
        for _ in 0..self.bars {
            for (lane, bar) in walk.next_bars().into_iter().enumerate() {
                bars[lane].push(bar);
            }
        }
        let mut markets = Vec::with_capacity(instruments.len());
        for (instrument, series) in instruments.into_iter().zip(bars) {
            let tier = universe
                .tier_of(&instrument)
                .cloned()
                .ok_or(BacktestRunError::NoTier)?;
            markets.push(Market {
                strategy: strategy::build(&self.strategy.name, &self.strategy.text_params())
                    .map_err(|e| BacktestRunError::Setup(e.to_string()))?,
                strategy_name: self.strategy.label(),
                instrument,
                tier,
                bars: Box::new(series.into_iter().map(Ok)),
            });
        }
        let defaults = AgentConfig::default();
        let risk = defaults
            .risk_config()
            .map_err(|e| BacktestRunError::Setup(e.to_string()))?;
        let result = backtest::run_observed(
            markets,
            self.cash,
            Costs::default(),
            Sizing::Kelly(risk),
            keep_going,
        )?;
        let mut report = report::to_json(&result, self.describe());
        cap_list(&mut report, "trades", MAX_REPORT_ITEMS);
        cap_list(&mut report, "equity", MAX_REPORT_ITEMS);
        Ok(report)
    }
}

/// The built-in 77-symbol universe the backtests trade.
pub fn builtin_universe() -> Result<Universe, qunimbus_trading::UniverseError> {
    Universe::default_universe()
}

impl BacktestRunError {
    /// The bar times done when the caller stopped it, if it did.
    pub fn stopped_at(&self) -> Option<u64> {
        match self {
            Self::Backtest(BacktestError::Stopped(at)) => Some(*at),
            _ => None,
        }
    }
}

/// Why a backtest did not finish.
#[derive(Debug, thiserror::Error)]
pub enum BacktestRunError {
    /// The strategy or the risk settings cannot be built.
    #[error("{0}")]
    Setup(String),
    /// A universe instrument without a tier (a defect of the universe).
    #[error("an instrument of the universe has no tier")]
    NoTier,
    /// The engine stopped (or the caller stopped it).
    #[error(transparent)]
    Backtest(#[from] BacktestError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn requests_are_checked_field_by_field() {
        let universe = builtin_universe().unwrap();
        let ok = SyntheticBacktest::parse(
            &params(json!({"bars": 500.0, "symbols": ["ETHUSDT"]})),
            &universe,
        )
        .unwrap();
        assert_eq!(
            (ok.bars, ok.symbols.as_slice()),
            (500, &["ETHUSDT".to_string()][..])
        );
        for (bad, field) in [
            (json!({"bars": 0}), "bars"),
            (json!({"bars": 2.5}), "bars"),
            (
                json!({"bars": 1_000_000, "symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"]}),
                "bars",
            ),
            (json!({"symbols": ["NOPEUSDT"]}), "symbols[0]"),
            (json!({"symbols": ["BTCUSDT", "BTCUSDT"]}), "symbols[1]"),
            (
                json!({"strategy": {"name": "sma_cross", "params": {"fast": 30, "slow": 10}}}),
                "strategy",
            ),
            (
                json!({"strategy": {"name": "sma_cross", "colour": 1}}),
                "strategy.colour",
            ),
            (json!({"leverage": 10}), "leverage"),
        ] {
            let e = SyntheticBacktest::parse(&params(bad.clone()), &universe).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{bad}: {e:?}");
        }
    }

    #[test]
    fn a_long_list_in_a_report_is_capped_and_counted() {
        let mut report = json!({"trades": (0..5).collect::<Vec<_>>(), "equity": [1, 2]});
        cap_list(&mut report, "trades", 3);
        cap_list(&mut report, "equity", 3);
        assert_eq!(report["trades"], json!([0, 1, 2]));
        assert_eq!(
            (
                report["trades_total"].clone(),
                report["trades_truncated"].clone()
            ),
            (json!(5), json!(true))
        );
        assert!(report.get("equity_total").is_none());
    }

    #[test]
    fn the_same_request_gives_the_same_report_and_a_stop_is_reported() {
        let universe = builtin_universe().unwrap();
        let b =
            SyntheticBacktest::parse(&params(json!({"bars": 400, "seed": 9})), &universe).unwrap();
        let a = b.run(&universe, |_| true).unwrap();
        assert_eq!(a, b.run(&universe, |_| true).unwrap());
        let stopped = b.run(&universe, |done| done < 100).unwrap_err();
        assert_eq!(stopped.stopped_at(), Some(100));
    }
}
