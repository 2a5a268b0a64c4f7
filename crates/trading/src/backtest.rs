//! Backtests: the [`Engine`] over candle streams, bar by bar in time order
//! (several symbols merged by open time). When the data ends, open
//! positions are closed at the open of the last bar, as if a market order
//! had been placed just before it (the convention of the `backtesting`
//! package's `finalize_trades`, so that trade lists compare one to one).

use crate::candles::{Candle, CandleError, MergedBars};
use crate::engine::{Engine, EngineError, LaneSpec};
use crate::instrument::Instrument;
use crate::matching::Costs;
use crate::strategy::Strategy;
use crate::universe::Tier;
use rust_decimal::Decimal;
use thiserror::Error;

pub use crate::engine::{BacktestResult, RiskConfig, RiskHistory, Sizing, Trade};

/// One symbol's data and strategy.
pub struct Market {
    /// The instrument traded.
    pub instrument: Instrument,
    /// Its tier's limits.
    pub tier: Tier,
    /// The strategy's name: markets with the same name share one measured
    /// track record for sizing and confidence.
    pub strategy_name: String,
    /// Its bars, in time order.
    pub bars: Box<dyn Iterator<Item = Result<Candle, CandleError>>>,
    /// The strategy trading it.
    pub strategy: Box<dyn Strategy>,
}

/// Why a backtest stopped.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BacktestError {
    /// A candle file is bad.
    #[error(transparent)]
    Candle(#[from] CandleError),
    /// A bar's price holds no exact decimal (a bar not read by
    /// [`CandleReader`](crate::CandleReader), which rejects such prices).
    #[error(transparent)]
    Price(#[from] EngineError),
    /// The caller stopped it (see [`run_observed`]).
    #[error("the backtest was stopped after {0} bar times")]
    Stopped(u64),
}

/// Runs a backtest from `cash` with these costs and sizing.
pub fn run(
    markets: Vec<Market>,
    cash: Decimal,
    costs: Costs,
    sizing: Sizing,
) -> Result<BacktestResult, BacktestError> {
    run_observed(markets, cash, costs, sizing, |_| true)
}

/// Like [`run`], calling `keep_going` with the bar times done after each
/// one (progress); when it answers false the backtest stops with
/// [`BacktestError::Stopped`].
pub fn run_observed(
    markets: Vec<Market>,
    cash: Decimal,
    costs: Costs,
    sizing: Sizing,
    mut keep_going: impl FnMut(u64) -> bool,
) -> Result<BacktestResult, BacktestError> {
    let mut streams = Vec::with_capacity(markets.len());
    let mut specs = Vec::with_capacity(markets.len());
    for market in markets {
        streams.push(market.bars);
        specs.push(LaneSpec {
            instrument: market.instrument,
            tier: market.tier,
            strategy_name: market.strategy_name,
            strategy: market.strategy,
        });
    }
    let mut feeds = MergedBars::new(streams)?;
    let mut engine = Engine::new(specs, cash, costs, sizing);
    let mut done = 0u64;
    while let Some(time) = feeds.next_time() {
        engine.begin_step(time)?;
        feeds.step(time, |lane, bar| {
            engine.on_bar(lane, bar).map_err(BacktestError::from)
        })?;
        engine.mark(time)?;
        done += 1;
        if !keep_going(done) {
            return Err(BacktestError::Stopped(done));
        }
    }
    Ok(engine.finish()?)
}

#[cfg(test)]
mod tests;
