//! The two CSV formats: Binance klines (12 columns, with or without a
//! header, open time in ms or µs per row) and a generic OHLCV file whose
//! header names a date column.

use super::{Candle, CandleError, CandleFormat};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use std::io::BufRead;

/// Binance's kline columns.
const BINANCE_COLUMNS: usize = 12;

/// Open times at or above this are µs (as ms it would be the year 5138).
const MICROS_FROM: i64 = 100_000_000_000_000;

/// Where the generic format's fields are: date, open, high, low, close, volume.
type Columns = [usize; 6];

pub(super) struct CsvParser<R> {
    input: R,
    file: String,
    line: usize,
    buf: String,
    layout: Option<Columns>,
    /// A first line that was data (a Binance file without header).
    pending: Option<String>,
}

impl<R: BufRead> CsvParser<R> {
    pub(super) fn new(input: R, file: &str) -> Result<Self, CandleError> {
        let mut parser = Self {
            input,
            file: file.to_string(),
            line: 0,
            buf: String::new(),
            layout: None,
            pending: None,
        };
        let Some(first) = parser.read_line()? else {
            return Ok(parser);
        };
        let fields: Vec<&str> = first.split(',').map(unquote).collect();
        if fields[0].parse::<i64>().is_ok() {
            parser.pending = Some(first);
        } else {
            parser.layout = generic_layout(&fields);
            if parser.layout.is_none() && fields.len() != BINANCE_COLUMNS {
                return Err(parser.error("(header)", format!(
                    "neither a Binance kline header ({BINANCE_COLUMNS} columns) nor a date column with Open, High, Low, Close and Volume: {first:?}"
                )));
            }
        }
        Ok(parser)
    }

    pub(super) fn format(&self) -> CandleFormat {
        match self.layout {
            Some(_) => CandleFormat::GenericOhlcv,
            None => CandleFormat::BinanceKlines,
        }
    }

    fn error(&self, field: &str, message: String) -> CandleError {
        CandleError::at(&self.file, self.line, field, message)
    }

    /// The next non-empty line without its line ending.
    fn read_line(&mut self) -> Result<Option<String>, CandleError> {
        loop {
            self.buf.clear();
            self.line += 1;
            let n = self
                .input
                .read_line(&mut self.buf)
                .map_err(|e| CandleError::unreadable(&self.file, self.line, &e))?;
            if n == 0 {
                return Ok(None);
            }
            let text = self.buf.trim_end_matches(['\n', '\r']);
            if !text.trim().is_empty() {
                return Ok(Some(text.to_string()));
            }
        }
    }

    /// The next bar and its line.
    pub(super) fn next_bar(&mut self) -> Result<Option<(usize, Candle)>, CandleError> {
        let text = match self.pending.take() {
            Some(text) => text,
            None => match self.read_line()? {
                Some(text) => text,
                None => return Ok(None),
            },
        };
        let fields: Vec<&str> = text.split(',').map(unquote).collect();
        let candle = match self.layout {
            Some(columns) => self.generic_bar(&fields, columns)?,
            None => self.binance_bar(&fields)?,
        };
        Ok(Some((self.line, candle)))
    }

    fn number(&self, fields: &[&str], at: usize, field: &str) -> Result<f64, CandleError> {
        let text = fields
            .get(at)
            .ok_or_else(|| self.error(field, "missing".into()))?;
        text.trim()
            .parse::<f64>()
            .map_err(|_| self.error(field, format!("{text:?} is not a number")))
    }

    fn binance_bar(&self, fields: &[&str]) -> Result<Candle, CandleError> {
        if fields.len() != BINANCE_COLUMNS {
            return Err(self.error(
                "(row)",
                format!(
                    "{} columns, a Binance kline has {BINANCE_COLUMNS}",
                    fields.len()
                ),
            ));
        }
        let time: i64 = fields[0]
            .trim()
            .parse()
            .map_err(|_| self.error("open_time", format!("{:?} is not an integer", fields[0])))?;
        if time < 0 {
            return Err(self.error("open_time", format!("{time} is before 1970")));
        }
        let open_time_us = if time >= MICROS_FROM {
            time
        } else {
            time * 1000
        };
        Ok(Candle {
            open_time_us,
            open: self.number(fields, 1, "open")?,
            high: self.number(fields, 2, "high")?,
            low: self.number(fields, 3, "low")?,
            close: self.number(fields, 4, "close")?,
            volume: self.number(fields, 5, "volume")?,
        })
    }

    fn generic_bar(&self, fields: &[&str], columns: Columns) -> Result<Candle, CandleError> {
        let [date, open, high, low, close, volume] = columns;
        let text = fields
            .get(date)
            .ok_or_else(|| self.error("date", "missing".into()))?;
        let open_time_us = parse_date(text.trim()).ok_or_else(|| {
            self.error(
                "date",
                format!("{text:?} is not a date (YYYY-MM-DD[ HH:MM:SS] or RFC 3339)"),
            )
        })?;
        Ok(Candle {
            open_time_us,
            open: self.number(fields, open, "open")?,
            high: self.number(fields, high, "high")?,
            low: self.number(fields, low, "low")?,
            close: self.number(fields, close, "close")?,
            volume: self.number(fields, volume, "volume")?,
        })
    }
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(f)
}

/// The generic layout from a header: the date column (named date, time,
/// datetime or timestamp, or an unnamed first column as pandas writes an
/// index) and the five value columns, matched case-insensitively.
fn generic_layout(header: &[&str]) -> Option<Columns> {
    let find = |names: &[&str]| {
        header
            .iter()
            .position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)))
    };
    let date = find(&["date", "time", "datetime", "timestamp"])
        .or_else(|| header.first().filter(|h| h.is_empty()).map(|_| 0))?;
    Some([
        date,
        find(&["open"])?,
        find(&["high"])?,
        find(&["low"])?,
        find(&["close"])?,
        find(&["volume"])?,
    ])
}

/// µs since the epoch of an RFC 3339 time, or a naive date / date-time taken as UTC.
fn parse_date(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}
