//! Backtests: strategies trade one shared portfolio on the paper matching
//! engine over candle streams, bar by bar in time order (several symbols
//! merged by open time). A strategy sees a bar only after it closed; its
//! orders fill from the next bar on. When the data ends, open positions are
//! closed at the open of the last bar, as if a market order had been placed
//! just before it (the convention of the `backtesting` package's
//! `finalize_trades`, so that trade lists compare one to one).

use crate::candles::{Candle, CandleError};
use crate::instrument::Instrument;
use crate::matching::{
    exact_price, Costs, Fill, Order, OrderKind, OrderSize, PaperBook, Portfolio, PriceError, Side,
};
use crate::strategy::{Signal, Strategy};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use thiserror::Error;

/// How an entry is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizing {
    /// All free cash (for comparison with other backtesters).
    AllIn,
    /// This fraction (0 < f ≤ 1) of equity, at most the free cash.
    FixedFraction(Decimal),
}

/// One symbol's data and strategy.
pub struct Market {
    /// The instrument traded.
    pub instrument: Instrument,
    /// Its bars, in time order.
    pub bars: Box<dyn Iterator<Item = Result<Candle, CandleError>>>,
    /// The strategy trading it.
    pub strategy: Box<dyn Strategy>,
}

/// A closed round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    /// The symbol.
    pub symbol: String,
    /// Open time (µs) of the bar the entry filled on.
    pub entry_time_us: i64,
    /// Open time (µs) of the bar the exit filled on (the last bar when the
    /// data ended first).
    pub exit_time_us: i64,
    /// Bar number (0-based, per symbol) of the entry and of the exit.
    pub entry_bar: u64,
    /// See `entry_bar`.
    pub exit_bar: u64,
    /// Entry price.
    pub entry_price: Decimal,
    /// Exit price.
    pub exit_price: Decimal,
    /// Base quantity.
    pub quantity: Decimal,
    /// Entry and exit fees.
    pub fees: Decimal,
    /// Profit after fees.
    pub pnl: Decimal,
}

/// What a backtest measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestResult {
    /// Closed trades in exit order.
    pub trades: Vec<Trade>,
    /// Equity at the end of each UTC day that had bars (µs, equity).
    pub equity: Vec<(i64, Decimal)>,
    /// Starting cash.
    pub start_cash: Decimal,
    /// Equity after the last bar (positions closed).
    pub final_equity: Decimal,
    /// Largest fall from a peak, as a fraction of the peak (marked on every bar).
    pub max_drawdown: f64,
    /// Fees paid.
    pub fees_paid: Decimal,
    /// Bars processed (all symbols).
    pub bars: u64,
    /// Bars (time steps) with a position open.
    pub exposed_steps: u64,
    /// Time steps.
    pub steps: u64,
    /// Whether any bar fell on a Saturday or Sunday (UTC): crypto-style data.
    pub weekend_bars: bool,
    /// Entry orders whose budget bought less than the instrument's minimum.
    pub expired_orders: u64,
}

/// An open position's entry.
struct Entry {
    fill: Fill,
    bar: u64,
}

/// One market's state during the run.
struct Lane {
    market: Market,
    book: PaperBook,
    next: Option<Candle>,
    last: Option<(Candle, u64)>,
    bar_count: u64,
    entry: Option<Entry>,
    next_id: u64,
}

/// Why a backtest stopped.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BacktestError {
    /// A candle file is bad.
    #[error(transparent)]
    Candle(#[from] CandleError),
    /// A bar's price holds no exact decimal (a bar not read by
    /// [`CandleReader`](crate::CandleReader), which rejects such prices).
    #[error("{symbol} bar {bar}: {source}")]
    Price {
        /// The symbol.
        symbol: String,
        /// Bar number (0-based).
        bar: u64,
        /// The price.
        source: PriceError,
    },
}

impl Lane {
    fn price_error(&self, bar: u64) -> impl FnOnce(PriceError) -> BacktestError + '_ {
        move |source| BacktestError::Price {
            symbol: self.market.instrument.symbol.clone(),
            bar,
            source,
        }
    }
}

/// Runs a backtest from `cash` with these costs and sizing.
pub fn run(
    markets: Vec<Market>,
    cash: Decimal,
    costs: Costs,
    sizing: Sizing,
) -> Result<BacktestResult, BacktestError> {
    let mut lanes = Vec::with_capacity(markets.len());
    for mut market in markets {
        let next = market.bars.next().transpose()?;
        let book = PaperBook::new(market.instrument.clone(), costs);
        lanes.push(Lane {
            market,
            book,
            next,
            last: None,
            bar_count: 0,
            entry: None,
            next_id: 0,
        });
    }
    let mut run = Run::new(cash, lanes.len());
    while let Some(time) = lanes
        .iter()
        .filter_map(|l| l.next.map(|b| b.open_time_us))
        .min()
    {
        for index in 0..lanes.len() {
            if lanes[index].next.map(|b| b.open_time_us) == Some(time) {
                run.step(&mut lanes, index, sizing)?;
            }
        }
        run.mark(time);
    }
    run.finish(&mut lanes, costs)?;
    Ok(run.result)
}

/// The portfolio and the measurements of a run in progress.
struct Run {
    portfolio: Portfolio,
    prices: Vec<Decimal>,
    peak: Decimal,
    day: Option<i64>,
    result: BacktestResult,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Run {
    fn new(cash: Decimal, markets: usize) -> Self {
        Self {
            portfolio: Portfolio::new(cash, markets),
            prices: vec![Decimal::ZERO; markets],
            peak: cash,
            day: None,
            result: BacktestResult {
                trades: Vec::new(),
                equity: Vec::new(),
                start_cash: cash,
                final_equity: cash,
                max_drawdown: 0.0,
                fees_paid: Decimal::ZERO,
                bars: 0,
                exposed_steps: 0,
                steps: 0,
                weekend_bars: false,
                expired_orders: 0,
            },
        }
    }

    /// Processes lane `index`'s next bar: fills, then the strategy's signal.
    fn step(
        &mut self,
        lanes: &mut [Lane],
        index: usize,
        sizing: Sizing,
    ) -> Result<(), BacktestError> {
        let lane = &mut lanes[index];
        let Some(bar) = lane.next.take() else {
            return Ok(());
        };
        lane.next = lane.market.bars.next().transpose()?;
        let bar_no = lane.bar_count;
        lane.bar_count += 1;
        self.result.bars += 1;
        // 1970-01-01 was a Thursday: day 2 and 3 mod 7 are Saturday and Sunday.
        let weekday = bar.open_time_us.div_euclid(MICROS_PER_DAY).rem_euclid(7);
        self.result.weekend_bars |= weekday == 2 || weekday == 3;
        let fills = lane.book.on_bar(&bar).map_err(lane.price_error(bar_no))?;
        for fill in fills {
            self.book_fill(lane, index, fill, bar_no);
        }
        self.result.expired_orders += lane.book.take_expired().len() as u64;
        let position = self.portfolio.positions[index];
        // Flat, the price does not count in equity: convert it only when held.
        if !position.is_zero() {
            self.prices[index] =
                exact_price(bar.close, "close").map_err(lane.price_error(bar_no))?;
        }
        lane.last = Some((bar, bar_no));
        let signal = lane.market.strategy.on_bar(&bar);
        if !lane.book.working().is_empty() {
            return Ok(());
        }
        let size = match signal {
            Signal::Enter if position.is_zero() => {
                let reserved: Decimal = lanes.iter().map(|l| l.book.reserved_quote()).sum();
                let free = self.portfolio.cash - reserved;
                let budget = match sizing {
                    Sizing::AllIn => free,
                    Sizing::FixedFraction(f) => (self.portfolio.equity(&self.prices) * f).min(free),
                };
                (budget > Decimal::ZERO).then_some((Side::Buy, OrderSize::Quote(budget)))
            }
            Signal::Exit if position > Decimal::ZERO => {
                Some((Side::Sell, OrderSize::Base(position)))
            }
            _ => None,
        };
        let lane = &mut lanes[index];
        if let Some((side, size)) = size {
            lane.next_id += 1;
            lane.book.submit(Order {
                id: lane.next_id,
                side,
                kind: OrderKind::Market,
                size,
                seen_until_us: bar.open_time_us,
            });
        }
        Ok(())
    }

    fn book_fill(&mut self, lane: &mut Lane, index: usize, fill: Fill, bar_no: u64) {
        self.portfolio.apply(index, &fill);
        match fill.side {
            Side::Buy => lane.entry = Some(Entry { fill, bar: bar_no }),
            Side::Sell => {
                if let Some(entry) = lane.entry.take() {
                    let e = &entry.fill;
                    let fees = e.fee + fill.fee;
                    self.result.trades.push(Trade {
                        symbol: lane.market.instrument.symbol.clone(),
                        entry_time_us: e.time_us,
                        exit_time_us: fill.time_us,
                        entry_bar: entry.bar,
                        exit_bar: bar_no,
                        entry_price: e.price,
                        exit_price: fill.price,
                        quantity: fill.quantity,
                        fees,
                        pnl: (fill.price - e.price) * fill.quantity - fees,
                    });
                }
            }
        }
    }

    /// Marks equity after every lane at `time` was processed.
    fn mark(&mut self, time: i64) {
        let equity = self.portfolio.equity(&self.prices);
        self.result.steps += 1;
        if self.portfolio.positions.iter().any(|p| !p.is_zero()) {
            self.result.exposed_steps += 1;
        }
        let changed = self.result.equity.last().is_none_or(|&(_, e)| e != equity);
        if equity > self.peak {
            self.peak = equity;
        } else if changed && self.peak > Decimal::ZERO {
            let fall = ((self.peak - equity) / self.peak).to_f64().unwrap_or(0.0);
            self.result.max_drawdown = self.result.max_drawdown.max(fall);
        }
        let day = time.div_euclid(MICROS_PER_DAY);
        match self.result.equity.last_mut() {
            Some(last) if self.day == Some(day) => *last = (time, equity),
            _ => self.result.equity.push((time, equity)),
        }
        self.day = Some(day);
    }

    /// Closes open positions at the last bar's open (taker fee) and totals.
    fn finish(&mut self, lanes: &mut [Lane], costs: Costs) -> Result<(), BacktestError> {
        for (index, lane) in lanes.iter_mut().enumerate() {
            let position = self.portfolio.positions[index];
            if let (true, Some((bar, bar_no))) = (position > Decimal::ZERO, lane.last) {
                let price = exact_price(bar.open, "open").map_err(lane.price_error(bar_no))?;
                let fill = Fill {
                    order_id: 0,
                    side: Side::Sell,
                    price,
                    quantity: position,
                    fee: price * position * costs.taker_fee,
                    time_us: bar.open_time_us,
                };
                self.book_fill(lane, index, fill, bar_no);
            }
        }
        self.result.final_equity = self.portfolio.cash;
        self.result.fees_paid = self.portfolio.fees_paid;
        if let Some(last) = self.result.equity.last_mut() {
            last.1 = self.result.final_equity;
        }
        Ok(())
    }
}
