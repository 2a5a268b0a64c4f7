//! Candles (OHLCV bars) read as a stream from Binance kline CSV, freqtrade
//! JSON or a generic `Date,Open,High,Low,Close,Volume` CSV. Every bar is
//! checked (time strictly increasing, high ≥ low, finite non-negative
//! values) and a bad one is an error naming the file, line and field. The
//! reader holds one line at a time, so a file larger than memory works.

mod csv;
mod freqtrade;
mod merge;

pub use merge::{symbol_of_file, MergedBars};

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use thiserror::Error;

/// The largest price a bar may have: fills are exact decimals, and price ×
/// quantity must stay far inside their 28 digits.
pub const MAX_PRICE: f64 = 1e15;

/// The smallest non-zero price a bar may have (12 decimal places).
pub const MIN_PRICE: f64 = 1e-12;

/// One bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candle {
    /// Open time, µs since the Unix epoch (UTC).
    pub open_time_us: i64,
    /// First traded price.
    pub open: f64,
    /// Highest traded price.
    pub high: f64,
    /// Lowest traded price.
    pub low: f64,
    /// Last traded price.
    pub close: f64,
    /// Traded base volume.
    pub volume: f64,
}

/// A bar or file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}:{line}: `{field}`: {message}")]
pub struct CandleError {
    /// The file.
    pub file: String,
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// The field concerned (`open_time`, `high`, …).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl CandleError {
    /// An error at `line` of `file` about `field`.
    pub fn at(file: &str, line: usize, field: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line,
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// A failed read of `file` at `line`.
    fn unreadable(file: &str, line: usize, e: &std::io::Error) -> Self {
        Self::at(file, line, "(file)", format!("cannot read: {e}"))
    }
}

/// The formats understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandleFormat {
    /// Binance kline CSV: 12 columns, open time in ms or µs, optional header.
    BinanceKlines,
    /// freqtrade JSON: `[[ms, open, high, low, close, volume], …]`.
    Freqtrade,
    /// A CSV with a header naming a date column and Open/High/Low/Close/Volume.
    GenericOhlcv,
}

/// Parses bars of one format from a byte stream.
enum Parser<R: BufRead> {
    Csv(csv::CsvParser<R>),
    Json(freqtrade::JsonParser<R>),
}

/// A streaming reader of one candle file; an iterator of bars that stops
/// after the first error.
pub struct CandleReader<R: BufRead = BufReader<File>> {
    file: String,
    parser: Parser<R>,
    last_time: Option<i64>,
    failed: bool,
}

impl CandleReader {
    /// Opens `path`, choosing the format from its extension (`.json` is
    /// freqtrade) and its first line (a header with a date column is
    /// generic OHLCV; otherwise Binance klines).
    pub fn open(path: &Path) -> Result<Self, CandleError> {
        let name = path.display().to_string();
        let file = File::open(path)
            .map_err(|e| CandleError::at(&name, 0, "(file)", format!("cannot open: {e}")))?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        Self::new(BufReader::with_capacity(1 << 16, file), &name, json)
    }
}

impl<R: BufRead> CandleReader<R> {
    /// Reads candles from `input`; `file` names it in errors. `json` selects
    /// freqtrade JSON, otherwise the CSV header decides.
    pub fn new(input: R, file: &str, json: bool) -> Result<Self, CandleError> {
        let parser = if json {
            Parser::Json(freqtrade::JsonParser::new(input, file)?)
        } else {
            Parser::Csv(csv::CsvParser::new(input, file)?)
        };
        Ok(Self {
            file: file.to_string(),
            parser,
            last_time: None,
            failed: false,
        })
    }

    /// The format being read.
    pub fn format(&self) -> CandleFormat {
        match &self.parser {
            Parser::Csv(p) => p.format(),
            Parser::Json(_) => CandleFormat::Freqtrade,
        }
    }

    fn check(&mut self, line: usize, candle: Candle) -> Result<Candle, CandleError> {
        let error =
            |field: &str, message: String| CandleError::at(&self.file, line, field, message);
        for (field, value) in [
            ("open", candle.open),
            ("high", candle.high),
            ("low", candle.low),
            ("close", candle.close),
            ("volume", candle.volume),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(error(
                    field,
                    format!("must be a finite number ≥ 0, got {value}"),
                ));
            }
        }
        for (field, value) in [
            ("open", candle.open),
            ("high", candle.high),
            ("low", candle.low),
            ("close", candle.close),
        ] {
            if value != 0.0 && !(MIN_PRICE..=MAX_PRICE).contains(&value) {
                return Err(error(
                    field,
                    format!(
                        "price {value} is outside {MIN_PRICE}..={MAX_PRICE} (exact decimal prices)"
                    ),
                ));
            }
        }
        if candle.high < candle.low {
            return Err(error(
                "high",
                format!("high {} is below low {}", candle.high, candle.low),
            ));
        }
        if let Some(last) = self.last_time {
            if candle.open_time_us <= last {
                let what = if candle.open_time_us == last {
                    "repeats"
                } else {
                    "is before"
                };
                return Err(error(
                    "open_time",
                    format!(
                        "open time {} µs {what} the previous bar's ({last} µs)",
                        candle.open_time_us
                    ),
                ));
            }
        }
        self.last_time = Some(candle.open_time_us);
        Ok(candle)
    }
}

impl<R: BufRead> Iterator for CandleReader<R> {
    type Item = Result<Candle, CandleError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let parsed = match &mut self.parser {
            Parser::Csv(p) => p.next_bar(),
            Parser::Json(p) => p.next_bar(),
        };
        let item = match parsed {
            Ok(Some((line, candle))) => self.check(line, candle),
            Ok(None) => return None,
            Err(e) => Err(e),
        };
        self.failed = item.is_err();
        Some(item)
    }
}

#[cfg(test)]
mod tests;
