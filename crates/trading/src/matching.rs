//! Paper matching, one engine for backtests and live paper trading (SPEC §8).
//! An order submitted after bar *t* closed can fill from bar *t + 1* on,
//! never earlier, so no fill uses a price the strategy could not have seen:
//! market orders fill at the next open; limits fill at the limit when a bar
//! trades through it, or at the open when the bar gaps through; stops
//! trigger on touch and fill at the stop, or at the open on a gap. Market
//! and stop fills pay the taker fee and the slippage, limit fills the maker
//! fee. Prices and quantities are exact decimals on the instrument's grid.

use crate::candles::Candle;
use crate::instrument::Instrument;
use rust_decimal::Decimal;
use std::str::FromStr;
use thiserror::Error;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Buy the base asset.
    Buy,
    /// Sell the base asset.
    Sell,
}

/// How an order is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    /// At the next open.
    Market,
    /// At this price or better.
    Limit(Decimal),
    /// Becomes a market order when the price touches this one.
    Stop(Decimal),
}

/// How much an order trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderSize {
    /// This base quantity (on the lot grid).
    Base(Decimal),
    /// As much as this quote amount buys at the fill price, fee included,
    /// rounded down to the lot (like a market order's `quoteOrderQty`).
    Quote(Decimal),
}

/// A working order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The caller's id.
    pub id: u64,
    /// Buy or sell.
    pub side: Side,
    /// Market, limit or stop.
    pub kind: OrderKind,
    /// How much.
    pub size: OrderSize,
    /// Open time (µs) of the last bar the submitter had seen; the order can
    /// fill only on later bars.
    pub seen_until_us: i64,
}

/// One execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    /// The order filled.
    pub order_id: u64,
    /// Buy or sell.
    pub side: Side,
    /// Execution price (on the tick grid).
    pub price: Decimal,
    /// Quantity filled (the whole order).
    pub quantity: Decimal,
    /// Fee paid in the quote asset.
    pub fee: Decimal,
    /// Open time (µs) of the bar it filled on.
    pub time_us: i64,
}

/// Fees and slippage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Costs {
    /// Fee of market and stop fills, a fraction of notional.
    pub taker_fee: Decimal,
    /// Fee of limit fills, a fraction of notional.
    pub maker_fee: Decimal,
    /// Adverse price move of market and stop fills, basis points.
    pub slippage_bps: Decimal,
}

impl Default for Costs {
    /// SPEC §8 defaults: taker 0.1 %, maker 0.1 %, no slippage.
    fn default() -> Self {
        Self {
            taker_fee: Decimal::new(1, 3),
            maker_fee: Decimal::new(1, 3),
            slippage_bps: Decimal::ZERO,
        }
    }
}

/// A bar price that no exact decimal holds.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("bar {field} {value} is not an exact decimal price")]
pub struct PriceError {
    /// `open`, `high`, `low` or `close`.
    pub field: &'static str,
    /// The value.
    pub value: f64,
}

/// A bar price as an exact decimal: the shortest decimal that reads back as
/// the same `f64`, i.e. what the candle file said. A checked candle's
/// prices always convert.
pub fn exact_price(value: f64, field: &'static str) -> Result<Decimal, PriceError> {
    let mut text = StackText::new();
    let parsed = if std::fmt::Write::write_fmt(&mut text, format_args!("{value}")).is_ok() {
        Decimal::from_str(text.as_str())
    } else {
        // Longer than the buffer (a value with hundreds of digits).
        Decimal::from_str(&value.to_string())
    };
    parsed.map_err(|_| PriceError { field, value })
}

/// A price's shortest text on the stack: prices are written per working
/// order and bar, and a heap string each time was a tenth of a backtest.
struct StackText {
    bytes: [u8; 40],
    len: usize,
}

impl StackText {
    fn new() -> Self {
        Self {
            bytes: [0; 40],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The working orders of one instrument.
#[derive(Debug, Clone)]
pub struct PaperBook {
    instrument: Instrument,
    costs: Costs,
    orders: Vec<Order>,
    expired: Vec<u64>,
}

impl PaperBook {
    /// An empty book for `instrument`.
    pub fn new(instrument: Instrument, costs: Costs) -> Self {
        Self {
            instrument,
            costs,
            orders: Vec::new(),
            expired: Vec::new(),
        }
    }

    /// The instrument traded.
    pub fn instrument(&self) -> &Instrument {
        &self.instrument
    }

    /// Orders still working, oldest first.
    pub fn working(&self) -> &[Order] {
        &self.orders
    }

    /// Adds an order (checked by the caller's pre-trade gate).
    pub fn submit(&mut self, order: Order) {
        self.orders.push(order);
    }

    /// Cancels a working order; false when it is not working.
    pub fn cancel(&mut self, id: u64) -> bool {
        let before = self.orders.len();
        self.orders.retain(|o| o.id != id);
        self.orders.len() != before
    }

    /// Orders that reached their price but whose quote budget bought less
    /// than the minimum quantity or notional, removed since the last call.
    pub fn take_expired(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.expired)
    }

    /// The quote amount that working buy orders sized by budget may spend.
    pub fn reserved_quote(&self) -> Decimal {
        self.orders
            .iter()
            .map(|o| match o.size {
                OrderSize::Quote(budget) => budget,
                OrderSize::Base(_) => Decimal::ZERO,
            })
            .sum()
    }

    /// Matches the working orders against a bar that just closed, oldest
    /// first; filled orders leave the book. The bar's prices are converted
    /// only when an order is working.
    pub fn on_bar(&mut self, bar: &Candle) -> Result<Vec<Fill>, PriceError> {
        if self.orders.is_empty() {
            return Ok(Vec::new());
        }
        let open = exact_price(bar.open, "open")?;
        // Market orders fill at the open; the range is read only for the others.
        let range = if self.orders.iter().any(|o| o.kind != OrderKind::Market) {
            (exact_price(bar.high, "high")?, exact_price(bar.low, "low")?)
        } else {
            (open, open)
        };
        let (high, low) = range;
        let mut fills = Vec::new();
        let mut working = Vec::with_capacity(self.orders.len());
        for order in std::mem::take(&mut self.orders) {
            let price = if order.seen_until_us < bar.open_time_us {
                execution_price(&order, open, high, low)
            } else {
                None
            };
            match price {
                Some((price, taker)) => match self.fill(&order, price, taker, bar.open_time_us) {
                    Some(fill) => fills.push(fill),
                    None => self.expired.push(order.id),
                },
                None => working.push(order),
            }
        }
        self.orders = working;
        Ok(fills)
    }

    fn fill(&self, order: &Order, price: Decimal, taker: bool, time_us: i64) -> Option<Fill> {
        let (rate, price) = if taker {
            let slip = price * self.costs.slippage_bps / Decimal::from(10_000);
            let moved = match order.side {
                Side::Buy => self.instrument.ceil_price(price + slip),
                Side::Sell => self.instrument.floor_price(price - slip),
            };
            (self.costs.taker_fee, moved)
        } else {
            (self.costs.maker_fee, price)
        };
        let quantity = match order.size {
            OrderSize::Base(quantity) => quantity,
            OrderSize::Quote(budget) => {
                let quantity = self
                    .instrument
                    .floor_quantity(budget / (price * (Decimal::ONE + rate)));
                let i = &self.instrument;
                if quantity < i.min_quantity || price * quantity < i.min_notional {
                    return None;
                }
                quantity
            }
        };
        Some(Fill {
            order_id: order.id,
            side: order.side,
            price,
            quantity,
            fee: price * quantity * rate,
            time_us,
        })
    }
}

/// Where `order` executes in a bar with these prices, and whether it takes
/// liquidity; `None` when the bar does not reach it.
fn execution_price(
    order: &Order,
    open: Decimal,
    high: Decimal,
    low: Decimal,
) -> Option<(Decimal, bool)> {
    match (order.kind, order.side) {
        (OrderKind::Market, _) => Some((open, true)),
        (OrderKind::Limit(limit), Side::Buy) if open <= limit => Some((open, false)),
        (OrderKind::Limit(limit), Side::Buy) => (low <= limit).then_some((limit, false)),
        (OrderKind::Limit(limit), Side::Sell) if open >= limit => Some((open, false)),
        (OrderKind::Limit(limit), Side::Sell) => (high >= limit).then_some((limit, false)),
        (OrderKind::Stop(stop), Side::Buy) if open >= stop => Some((open, true)),
        (OrderKind::Stop(stop), Side::Buy) => (high >= stop).then_some((stop, true)),
        (OrderKind::Stop(stop), Side::Sell) if open <= stop => Some((open, true)),
        (OrderKind::Stop(stop), Side::Sell) => (low <= stop).then_some((stop, true)),
    }
}

/// Cash and the positions of several instruments, kept exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Portfolio {
    /// Quote-asset balance.
    pub cash: Decimal,
    /// Base-asset position per instrument (spot: never below zero when the
    /// gate is obeyed).
    pub positions: Vec<Decimal>,
    /// Fees paid so far.
    pub fees_paid: Decimal,
}

impl Portfolio {
    /// A portfolio holding `cash` and no position in any of `instruments`.
    pub fn new(cash: Decimal, instruments: usize) -> Self {
        Self {
            cash,
            positions: vec![Decimal::ZERO; instruments],
            fees_paid: Decimal::ZERO,
        }
    }

    /// Books a fill of instrument `index`: the notional and the fee move
    /// cash, the quantity moves the position.
    pub fn apply(&mut self, index: usize, fill: &Fill) {
        let notional = fill.price * fill.quantity;
        let Some(position) = self.positions.get_mut(index) else {
            return;
        };
        match fill.side {
            Side::Buy => {
                self.cash -= notional + fill.fee;
                *position += fill.quantity;
            }
            Side::Sell => {
                self.cash += notional - fill.fee;
                *position -= fill.quantity;
            }
        }
        self.fees_paid += fill.fee;
    }

    /// Cash plus every position valued at its price in `prices`.
    pub fn equity(&self, prices: &[Decimal]) -> Decimal {
        self.cash
            + self
                .positions
                .iter()
                .zip(prices)
                .map(|(q, p)| q * p)
                .sum::<Decimal>()
    }
}

#[cfg(test)]
mod tests;
