//! The symbol universe: a TOML file of instruments in tiers, each tier with
//! its risk limits, validated at load. Every error names the file, the line
//! and the key.

use crate::instrument::Instrument;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use thiserror::Error;
use toml::Spanned;

/// The universe that ships with QuNimbus: 77 USDT spot symbols in 6 tiers.
pub const DEFAULT_UNIVERSE: &str = include_str!("../universe/default.toml");

/// Name used in errors for [`DEFAULT_UNIVERSE`].
pub const DEFAULT_UNIVERSE_NAME: &str = "built-in universe/default.toml";

/// A universe file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}:{line}: `{key}`: {message}")]
pub struct UniverseError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The key concerned (`symbol[3].tick_size`, `tier[0].id`, …).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The limits of one tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// 1 = most liquid.
    pub id: u8,
    /// Largest position, % of equity (0 < x ≤ 100).
    pub max_position_pct: Decimal,
    /// Largest Kelly fraction applied (0 < x ≤ 1).
    pub max_kelly_fraction: Decimal,
    /// Largest order value in the quote asset (> 0).
    pub max_notional_per_order: Decimal,
}

/// A validated universe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Universe {
    /// The quote asset of every instrument.
    pub quote: String,
    /// Tiers by id.
    pub tiers: BTreeMap<u8, Tier>,
    /// Instruments, in file order.
    pub instruments: Vec<Instrument>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUniverse {
    quote: Spanned<String>,
    #[serde(default)]
    tier: Vec<RawTier>,
    #[serde(default)]
    symbol: Vec<RawSymbol>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    id: Spanned<i64>,
    max_position_pct: Spanned<String>,
    max_kelly_fraction: Spanned<String>,
    max_notional_per_order: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSymbol {
    symbol: Spanned<String>,
    base: Spanned<String>,
    tier: Spanned<i64>,
    tick_size: Spanned<String>,
    lot_size: Spanned<String>,
    min_quantity: Spanned<String>,
    min_notional: Spanned<String>,
}

/// Locates errors in one file's text.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(&self, span: Range<usize>, key: String, message: impl Into<String>) -> UniverseError {
        UniverseError {
            file: self.file.to_string(),
            line: self.line(span),
            key,
            message: message.into(),
        }
    }

    /// A decimal in `(0, max]` (`max` inclusive when given).
    fn decimal(
        &self,
        value: &Spanned<String>,
        key: String,
        max: Option<Decimal>,
    ) -> Result<Decimal, UniverseError> {
        let span = value.span();
        let parsed = Decimal::from_str(value.get_ref().trim())
            .map_err(|e| self.error(span.clone(), key.clone(), format!("not a decimal: {e}")))?;
        if parsed <= Decimal::ZERO || max.is_some_and(|m| parsed > m) {
            let range = match max {
                Some(m) => format!("greater than 0 and at most {m}"),
                None => "greater than 0".to_string(),
            };
            return Err(self.error(span, key, format!("must be {range}, got {parsed}")));
        }
        Ok(parsed)
    }
}

impl Universe {
    /// The built-in universe.
    pub fn default_universe() -> Result<Self, UniverseError> {
        Self::parse(DEFAULT_UNIVERSE, DEFAULT_UNIVERSE_NAME)
    }

    /// Reads and validates a universe file.
    pub fn load(path: &Path) -> Result<Self, UniverseError> {
        let text = std::fs::read_to_string(path).map_err(|e| UniverseError {
            file: path.display().to_string(),
            line: 0,
            key: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a universe; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, UniverseError> {
        let source = Source { file, text };
        let raw: RawUniverse = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            source.error(span, "(syntax)".into(), e.message().to_string())
        })?;
        let quote = raw.quote.get_ref().clone();
        if quote.is_empty() || !quote.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(source.error(
                raw.quote.span(),
                "quote".into(),
                "must be upper-case letters",
            ));
        }
        let tiers = parse_tiers(&source, &raw.tier)?;
        let instruments = parse_symbols(&source, &raw.symbol, &quote, &tiers)?;
        Ok(Self {
            quote,
            tiers,
            instruments,
        })
    }

    /// The instrument with this symbol.
    pub fn instrument(&self, symbol: &str) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.symbol == symbol)
    }

    /// The limits of the tier an instrument is in.
    pub fn tier_of(&self, instrument: &Instrument) -> Option<&Tier> {
        self.tiers.get(&instrument.tier)
    }
}

fn parse_tiers(source: &Source, raw: &[RawTier]) -> Result<BTreeMap<u8, Tier>, UniverseError> {
    let mut tiers = BTreeMap::new();
    if raw.is_empty() {
        return Err(source.error(0..0, "tier".into(), "at least one [[tier]] is required"));
    }
    let hundred = Decimal::from(100);
    for (n, t) in raw.iter().enumerate() {
        let key = |k: &str| format!("tier[{n}].{k}");
        let id = u8::try_from(*t.id.get_ref())
            .ok()
            .filter(|id| (1..=16).contains(id))
            .ok_or_else(|| source.error(t.id.span(), key("id"), "must be 1 to 16"))?;
        let tier = Tier {
            id,
            max_position_pct: source.decimal(
                &t.max_position_pct,
                key("max_position_pct"),
                Some(hundred),
            )?,
            max_kelly_fraction: source.decimal(
                &t.max_kelly_fraction,
                key("max_kelly_fraction"),
                Some(Decimal::ONE),
            )?,
            max_notional_per_order: source.decimal(
                &t.max_notional_per_order,
                key("max_notional_per_order"),
                None,
            )?,
        };
        if tiers.insert(id, tier).is_some() {
            return Err(source.error(
                t.id.span(),
                key("id"),
                format!("tier {id} is defined twice"),
            ));
        }
    }
    Ok(tiers)
}

fn parse_symbols(
    source: &Source,
    raw: &[RawSymbol],
    quote: &str,
    tiers: &BTreeMap<u8, Tier>,
) -> Result<Vec<Instrument>, UniverseError> {
    let mut seen = HashSet::new();
    let mut instruments = Vec::with_capacity(raw.len());
    for (n, s) in raw.iter().enumerate() {
        let key = |k: &str| format!("symbol[{n}].{k}");
        let symbol = s.symbol.get_ref().clone();
        let base = s.base.get_ref().clone();
        let plain = |v: &str| {
            !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        };
        if !plain(&base) {
            return Err(source.error(
                s.base.span(),
                key("base"),
                "must be upper-case letters and digits",
            ));
        }
        if symbol != format!("{base}{quote}") {
            return Err(source.error(
                s.symbol.span(),
                key("symbol"),
                format!("must be base + quote ({base}{quote}), got {symbol:?}"),
            ));
        }
        if !seen.insert(symbol.clone()) {
            return Err(source.error(
                s.symbol.span(),
                key("symbol"),
                format!("{symbol} is listed twice"),
            ));
        }
        let tier = u8::try_from(*s.tier.get_ref())
            .ok()
            .filter(|t| tiers.contains_key(t))
            .ok_or_else(|| {
                source.error(
                    s.tier.span(),
                    key("tier"),
                    format!("{} is not a defined tier", s.tier.get_ref()),
                )
            })?;
        let instrument = Instrument {
            symbol,
            base,
            quote: quote.to_string(),
            tier,
            tick_size: source.decimal(&s.tick_size, key("tick_size"), None)?,
            lot_size: source.decimal(&s.lot_size, key("lot_size"), None)?,
            min_quantity: source.decimal(&s.min_quantity, key("min_quantity"), None)?,
            min_notional: source.decimal(&s.min_notional, key("min_notional"), None)?,
        };
        if !(instrument.min_quantity % instrument.lot_size).is_zero() {
            return Err(source.error(
                s.min_quantity.span(),
                key("min_quantity"),
                "must be a multiple of lot_size",
            ));
        }
        instruments.push(instrument);
    }
    Ok(instruments)
}

/// Tier 1 with the SPEC's default limits, for the crate's tests.
#[cfg(test)]
pub(crate) fn test_tier1() -> Tier {
    Tier {
        id: 1,
        max_position_pct: Decimal::from(20),
        max_kelly_fraction: Decimal::new(5, 1),
        max_notional_per_order: Decimal::from(50_000),
    }
}

#[cfg(test)]
mod tests;
