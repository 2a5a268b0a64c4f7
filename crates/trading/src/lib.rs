//! QBTC's pure trading core (SPEC §8): fixed-point instruments, the
//! validated symbol universe with its per-tier limits, streaming candle
//! readers, and the paper matching engine. No HTTP, no SQL, no clock: time comes from the bars.

#![warn(missing_docs)]

pub mod candles;
pub mod instrument;
pub mod matching;
pub mod universe;

pub use candles::{Candle, CandleError, CandleFormat, CandleReader};
pub use instrument::{Instrument, OrderCheck};
pub use matching::{Account, Costs, Fill, Order, OrderKind, PaperBook, Side};
pub use universe::{Tier, Universe, UniverseError};
