//! QBTC's pure trading core (SPEC §8): fixed-point instruments, the
//! validated symbol universe with its per-tier limits, streaming candle
//! readers, streaming indicators, the strategies and the paper matching
//! engine, fractional-Kelly sizing, the pre-trade gate, the emergency
//! ladder and the confidence levels. No HTTP, no SQL, no clock: time comes from the bars.

#![warn(missing_docs)]

pub mod backtest;
pub mod candles;
pub mod confidence;
pub mod engine;
pub mod indicators;
pub mod instrument;
pub mod ladder;
pub mod matching;
pub mod report;
pub mod risk;
pub mod sizing;
pub mod strategy;
pub mod synthetic;
pub mod universe;

pub use candles::{Candle, CandleError, CandleFormat, CandleReader};
pub use instrument::{Instrument, OrderCheck};
pub use matching::{Costs, Fill, Order, OrderKind, OrderSize, PaperBook, Portfolio, Side};
pub use strategy::{Signal, Strategy, StrategyError};
pub use universe::{Tier, Universe, UniverseError};
