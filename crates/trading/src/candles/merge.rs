//! Several candle streams merged by open time: each step is the earliest
//! open time among the streams' next bars, with every stream's bar at that
//! time (the backtest and the agent's candle replay both step this way).

use super::{Candle, CandleError};
use std::path::Path;

/// Streams of bars in time order, each with its next bar read ahead.
pub struct MergedBars<I> {
    feeds: Vec<(I, Option<Candle>)>,
}

impl<I: Iterator<Item = Result<Candle, CandleError>>> MergedBars<I> {
    /// Reads the first bar of every stream.
    pub fn new(streams: Vec<I>) -> Result<Self, CandleError> {
        let mut feeds = Vec::with_capacity(streams.len());
        for mut stream in streams {
            let next = stream.next().transpose()?;
            feeds.push((stream, next));
        }
        Ok(Self { feeds })
    }

    /// The open time of the next step; `None` when every stream ended.
    pub fn next_time(&self) -> Option<i64> {
        self.feeds
            .iter()
            .filter_map(|(_, next)| next.map(|b| b.open_time_us))
            .min()
    }

    /// Hands `f` every stream's bar at `time` (stream index, bar), in
    /// stream order, reading each stream's next bar.
    pub fn step<E: From<CandleError>>(
        &mut self,
        time: i64,
        mut f: impl FnMut(usize, Candle) -> Result<(), E>,
    ) -> Result<(), E> {
        for (index, (stream, next)) in self.feeds.iter_mut().enumerate() {
            if let Some(bar) = next.filter(|b| b.open_time_us == time) {
                *next = stream.next().transpose()?;
                f(index, bar)?;
            }
        }
        Ok(())
    }
}

/// The symbol a candle file's name gives: the first part of its stem
/// (`BTCUSDT-1m.csv` → `BTCUSDT`), upper-cased.
pub fn symbol_of_file(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .split(['-', '_', '.'])
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(t: i64) -> Result<Candle, CandleError> {
        Ok(Candle {
            open_time_us: t,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 1.0,
        })
    }

    #[test]
    fn steps_by_the_earliest_open_time_across_streams() {
        let a = vec![bar(1), bar(3), bar(4)].into_iter();
        let b = vec![bar(2), bar(3)].into_iter();
        let mut merged = MergedBars::new(vec![a, b]).unwrap();
        let mut seen = Vec::new();
        while let Some(t) = merged.next_time() {
            merged
                .step(t, |i, c| {
                    seen.push((t, i, c.open_time_us));
                    Ok::<_, CandleError>(())
                })
                .unwrap();
        }
        assert_eq!(
            seen,
            [(1, 0, 1), (2, 1, 2), (3, 0, 3), (3, 1, 3), (4, 0, 4)]
        );
    }

    #[test]
    fn symbols_come_from_the_file_name() {
        for (name, symbol) in [
            ("data/BTCUSDT-1m-2024.csv", "BTCUSDT"),
            ("ethusdt_5m.json", "ETHUSDT"),
            ("SOLUSDT.csv", "SOLUSDT"),
        ] {
            assert_eq!(symbol_of_file(Path::new(name)), symbol);
        }
    }
}
