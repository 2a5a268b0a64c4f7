//! freqtrade's candle JSON, `[[ms, open, high, low, close, volume], …]`,
//! read one byte buffer at a time (never the whole array), with line
//! numbers for errors.

use super::{Candle, CandleError};
use std::io::BufRead;

/// Where the reader is in the outer array.
#[derive(PartialEq)]
enum State {
    /// Before the first row.
    Start,
    /// After a row.
    Between,
    /// After the closing bracket.
    Done,
}

pub(super) struct JsonParser<R> {
    input: R,
    file: String,
    line: usize,
    state: State,
    number: String,
}

const FIELDS: [&str; 6] = ["open_time", "open", "high", "low", "close", "volume"];

impl<R: BufRead> JsonParser<R> {
    pub(super) fn new(input: R, file: &str) -> Result<Self, CandleError> {
        let mut parser = Self {
            input,
            file: file.to_string(),
            line: 1,
            state: State::Start,
            number: String::new(),
        };
        parser.expect(b'[', "the outer array", "(json)")?;
        Ok(parser)
    }

    fn error(&self, field: &str, message: String) -> CandleError {
        CandleError::at(&self.file, self.line, field, message)
    }

    /// The next byte that is not white space, without consuming it.
    fn peek(&mut self) -> Result<Option<u8>, CandleError> {
        loop {
            let buf = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(e) => return Err(CandleError::unreadable(&self.file, self.line, &e)),
            };
            let Some(&byte) = buf.first() else {
                return Ok(None);
            };
            match byte {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => return Ok(Some(byte)),
            }
            self.input.consume(1);
        }
    }

    fn expect(&mut self, want: u8, what: &str, field: &str) -> Result<(), CandleError> {
        match self.peek()? {
            Some(b) if b == want => {
                self.input.consume(1);
                Ok(())
            }
            Some(b) => Err(self.error(
                field,
                format!(
                    "expected {:?} for {what}, found {:?}",
                    want as char, b as char
                ),
            )),
            None => Err(self.error(field, format!("the file ends before {what}"))),
        }
    }

    fn read_number(&mut self, field: &str) -> Result<f64, CandleError> {
        self.peek()?;
        self.number.clear();
        loop {
            let buf = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(e) => return Err(CandleError::unreadable(&self.file, self.line, &e)),
            };
            let taken = buf
                .iter()
                .take_while(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
                .count();
            if self.number.len() + taken > 64 {
                return Err(self.error(field, "number longer than 64 characters".into()));
            }
            self.number.extend(buf[..taken].iter().map(|&b| b as char));
            let end = taken < buf.len() || buf.is_empty();
            self.input.consume(taken);
            if end {
                break;
            }
        }
        self.number
            .parse()
            .map_err(|_| self.error(field, format!("{:?} is not a number", self.number)))
    }

    /// The next bar and its line.
    pub(super) fn next_bar(&mut self) -> Result<Option<(usize, Candle)>, CandleError> {
        if self.state == State::Done {
            return Ok(None);
        }
        if self.peek()? == Some(b']') {
            self.input.consume(1);
            self.state = State::Done;
            return match self.peek()? {
                None => Ok(None),
                Some(b) => {
                    Err(self.error("(json)", format!("{:?} after the outer array", b as char)))
                }
            };
        }
        if self.state == State::Between {
            self.expect(b',', "the next row", "(json)")?;
        }
        self.expect(b'[', "a row", "(json)")?;
        let line = self.line;
        let mut values = [0.0; 6];
        for (i, field) in FIELDS.iter().enumerate() {
            if i > 0 {
                self.expect(b',', "the next number", field)?;
            }
            values[i] = self.read_number(field)?;
        }
        self.expect(b']', "the end of the row (a row has 6 numbers)", "(json)")?;
        self.state = State::Between;
        let [time, open, high, low, close, volume] = values;
        if !(time.fract() == 0.0 && (0.0..9.0e15).contains(&time)) {
            return Err(self.error(
                "open_time",
                format!("{time} is not a time in ms since 1970"),
            ));
        }
        Ok(Some((
            line,
            Candle {
                open_time_us: time as i64 * 1000,
                open,
                high,
                low,
                close,
                volume,
            },
        )))
    }
}
