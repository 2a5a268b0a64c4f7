//! QBTC's pure trading core (SPEC §8): fixed-point instruments, the
//! validated symbol universe with its per-tier limits, and streaming candle
//! readers. No HTTP, no SQL, no clock: time comes from the bars.

#![warn(missing_docs)]

pub mod candles;
pub mod instrument;
pub mod universe;

pub use candles::{Candle, CandleError, CandleFormat, CandleReader};
pub use instrument::{Instrument, OrderCheck};
pub use universe::{Tier, Universe, UniverseError};
