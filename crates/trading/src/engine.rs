//! The trading engine, one for backtests and for the live agent: lanes of
//! instrument + strategy trade one shared portfolio on the paper matching
//! engine, bar by bar. A strategy sees a bar only after it closed; its
//! orders fill from the next bar on. With Kelly sizing every order passes
//! the pre-trade gate, and the emergency ladder and the confidence levels
//! throttle it (SPEC §8). The caller drives time: [`Engine::begin_step`]
//! at each new bar time, [`Engine::on_bar`] for every lane with a bar at
//! that time, then [`Engine::mark`].

use crate::candles::Candle;
use crate::instrument::Instrument;
use crate::matching::{
    exact_price, Costs, Fill, Order, OrderKind, OrderSize, PaperBook, Portfolio, PriceError, Side,
};
use crate::risk::{AccountView, Purpose};
use crate::strategy::{Signal, Strategy};
use crate::universe::Tier;
use desk::{Desk, EntryContext};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use thiserror::Error;

mod desk;

pub use desk::{DeskView, RiskConfig, RiskHistory, SizingNote};

mod ops;

pub use ops::{FillRecord, Journal, PositionView, Snapshot};

/// How an entry is sized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sizing {
    /// All free cash (for comparison with other backtesters; no risk
    /// controls beyond the instrument's filters and the cash).
    AllIn,
    /// This fraction (0 < f ≤ 1) of equity, at most the free cash (no risk
    /// controls beyond the instrument's filters and the cash).
    FixedFraction(Decimal),
    /// Fractional Kelly from the measured edge, through the pre-trade gate,
    /// the emergency ladder and the confidence levels (SPEC §8).
    Kelly(RiskConfig),
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
    /// Per symbol: the first and the last close (the market's change).
    pub market_change: Vec<(String, f64, f64)>,
    /// What the risk controls decided (Kelly sizing only).
    pub risk: Option<RiskHistory>,
}

/// An open position's entry.
struct Entry {
    fill: Fill,
    bar: u64,
}

/// What trades on one lane: an instrument, its tier and a strategy.
pub struct LaneSpec {
    /// The instrument traded.
    pub instrument: Instrument,
    /// Its tier's limits.
    pub tier: Tier,
    /// The strategy's name: lanes with the same name share one measured
    /// track record for sizing and confidence.
    pub strategy_name: String,
    /// The strategy trading it.
    pub strategy: Box<dyn Strategy>,
}

/// One lane's state.
struct Lane {
    spec: LaneSpec,
    book: PaperBook,
    last: Option<(Candle, u64)>,
    first_close: Option<f64>,
    bar_count: u64,
    entry: Option<Entry>,
    next_id: u64,
}

/// A bar price that holds no exact decimal.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{symbol} bar {bar}: {source}")]
pub struct EngineError {
    /// The symbol.
    pub symbol: String,
    /// Bar number (0-based, per lane).
    pub bar: u64,
    /// The price.
    pub source: PriceError,
}

impl Lane {
    fn price_error(&self, bar: u64) -> impl FnOnce(PriceError) -> EngineError + '_ {
        move |source| EngineError {
            symbol: self.spec.instrument.symbol.clone(),
            bar,
            source,
        }
    }
}

/// The engine: its lanes and the run's state.
pub struct Engine {
    lanes: Vec<Lane>,
    run: Run,
    sizing: Sizing,
    costs: Costs,
}

impl Engine {
    /// An engine trading `specs` from `cash`.
    pub fn new(specs: Vec<LaneSpec>, cash: Decimal, costs: Costs, sizing: Sizing) -> Self {
        let names: Vec<String> = specs.iter().map(|s| s.strategy_name.clone()).collect();
        let desk = match sizing {
            Sizing::Kelly(config) => Some(Desk::new(config, costs.taker_fee, cash, &names)),
            Sizing::AllIn | Sizing::FixedFraction(_) => None,
        };
        let lanes: Vec<Lane> = specs
            .into_iter()
            .map(|spec| Lane {
                book: PaperBook::new(spec.instrument.clone(), costs),
                spec,
                last: None,
                first_close: None,
                bar_count: 0,
                entry: None,
                next_id: 0,
            })
            .collect();
        Self {
            run: Run::new(cash, lanes.len(), desk),
            lanes,
            sizing,
            costs,
        }
    }

    /// Starts the time step at `time_us` (before its bars).
    pub fn begin_step(&mut self, time_us: i64) -> Result<(), EngineError> {
        self.run.roll_day(&self.lanes, time_us)
    }

    /// Lane `lane`'s bar that just closed (ignored for a lane that does not exist).
    pub fn on_bar(&mut self, lane: usize, bar: Candle) -> Result<(), EngineError> {
        self.run.step(&mut self.lanes, lane, bar, self.sizing)
    }

    /// Ends the time step at `time_us`: marks equity, runs the ladder.
    pub fn mark(&mut self, time_us: i64) -> Result<(), EngineError> {
        self.run.mark(&mut self.lanes, time_us)
    }

    /// Closes open positions at each lane's last open and reports the run.
    pub fn finish(mut self) -> Result<BacktestResult, EngineError> {
        self.run.finish(&mut self.lanes, self.costs)?;
        Ok(self.run.result)
    }
}

/// The portfolio and the measurements of a run in progress. The exact
/// portfolio books every fill; between fills, equity is marked on every
/// step in `f64` from its mirror (drawdown, ladder), and exactly only where
/// a figure is reported or decided on (each day's equity point, sizing).
struct Run {
    portfolio: Portfolio,
    /// Last close per lane (0 before its first bar).
    closes: Vec<f64>,
    /// `f64` mirror of the portfolio's cash and positions.
    cash_f: f64,
    positions_f: Vec<f64>,
    /// Lanes holding a position.
    held: usize,
    peak: f64,
    day: Option<i64>,
    last_time: i64,
    desk: Option<Desk>,
    /// What sized each lane's working entry.
    pending_notes: Vec<Option<SizingNote>>,
    /// Whether each lane's working sell is a flatten (ladder or operator).
    pending_flatten: Vec<bool>,
    /// Fills since the journal was last taken (lane, fill, what sized it,
    /// what it was for); names are added only when the journal is taken.
    fills: Vec<(usize, Fill, Option<SizingNote>, Purpose)>,
    /// Round trips closed (the live agent drains `result.trades`).
    trades_closed: u64,
    result: BacktestResult,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Run {
    fn new(cash: Decimal, markets: usize, desk: Option<Desk>) -> Self {
        Self {
            portfolio: Portfolio::new(cash, markets),
            closes: vec![0.0; markets],
            cash_f: cash.to_f64().unwrap_or(0.0),
            positions_f: vec![0.0; markets],
            held: 0,
            peak: cash.to_f64().unwrap_or(0.0),
            day: None,
            last_time: 0,
            desk,
            pending_notes: vec![None; markets],
            pending_flatten: vec![false; markets],
            fills: Vec::new(),
            trades_closed: 0,
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
                market_change: Vec::new(),
                risk: None,
            },
        }
    }

    /// Processes lane `index`'s bar that just closed: fills, then the
    /// strategy's signal.
    fn step(
        &mut self,
        lanes: &mut [Lane],
        index: usize,
        bar: Candle,
        sizing: Sizing,
    ) -> Result<(), EngineError> {
        let Some(lane) = lanes.get_mut(index) else {
            return Ok(());
        };
        let bar_no = lane.bar_count;
        lane.bar_count += 1;
        lane.first_close.get_or_insert(bar.close);
        self.result.bars += 1;
        let fills = lane.book.on_bar(&bar).map_err(lane.price_error(bar_no))?;
        for fill in fills {
            self.book_fill(lane, index, fill, bar_no);
        }
        self.result.expired_orders += lane.book.take_expired().len() as u64;
        let position = self.portfolio.positions[index];
        self.closes[index] = bar.close;
        lane.last = Some((bar, bar_no));
        let signal = lane.spec.strategy.on_bar(&bar);
        if let Some(desk) = &mut self.desk {
            desk.on_bar_open(index, bar.open_time_us, bar.open);
            desk.on_signal(index, signal == Signal::Enter, signal == Signal::Exit);
        }
        if !lane.book.working().is_empty() {
            return Ok(());
        }
        let size = match signal {
            Signal::Enter if position.is_zero() => self.entry_size(lanes, index, sizing)?,
            Signal::Exit if position > Decimal::ZERO => self
                .exit_passes(lanes, index, false)?
                .then_some(OrderSize::Base(position)),
            _ => None,
        };
        let side = if signal == Signal::Enter {
            Side::Buy
        } else {
            Side::Sell
        };
        if let Some(size) = size {
            self.pending_flatten[index] = false;
            submit_market(&mut lanes[index], side, size, bar.open_time_us);
        }
        Ok(())
    }

    /// Free cash: cash less what working buy orders may spend.
    fn free_cash(&self, lanes: &[Lane]) -> Decimal {
        let reserved: Decimal = lanes.iter().map(|l| l.book.reserved_quote()).sum();
        self.portfolio.cash - reserved
    }

    /// The size of an entry on lane `index`, `None` when there is none.
    fn entry_size(
        &mut self,
        lanes: &[Lane],
        index: usize,
        sizing: Sizing,
    ) -> Result<Option<OrderSize>, EngineError> {
        let free = self.free_cash(lanes);
        let budget = match sizing {
            Sizing::AllIn => Some(free),
            Sizing::FixedFraction(f) => Some((self.exact_equity(lanes)? * f).min(free)),
            Sizing::Kelly(_) => {
                let Some(ctx) = self.context(lanes, index)? else {
                    return Ok(None);
                };
                let entry = self.desk.as_mut().and_then(|desk| desk.entry(&ctx));
                entry.map(|(budget, note)| {
                    self.pending_notes[index] = Some(note);
                    budget
                })
            }
        };
        Ok(budget.filter(|b| *b > Decimal::ZERO).map(OrderSize::Quote))
    }

    /// Whether selling lane `index`'s whole position passes the gate
    /// (always without risk controls).
    fn exit_passes(
        &mut self,
        lanes: &[Lane],
        index: usize,
        flatten: bool,
    ) -> Result<bool, EngineError> {
        if self.desk.is_none() {
            return Ok(true);
        }
        let Some(ctx) = self.context(lanes, index)? else {
            return Ok(false);
        };
        Ok(self
            .desk
            .as_mut()
            .is_some_and(|desk| desk.exit(&ctx, flatten)))
    }

    /// The gate's view of lane `index` at its last bar.
    fn context<'a>(
        &self,
        lanes: &'a [Lane],
        index: usize,
    ) -> Result<Option<EntryContext<'a>>, EngineError> {
        let lane = &lanes[index];
        let Some((bar, bar_no)) = lane.last else {
            return Ok(None);
        };
        let price = exact_price(bar.close, "close").map_err(lane.price_error(bar_no))?;
        let gross = self.exact_equity(lanes)? - self.portfolio.cash;
        Ok(Some(EntryContext {
            lane: index,
            time_us: bar.open_time_us,
            instrument: &lane.spec.instrument,
            tier: &lane.spec.tier,
            price,
            account: AccountView {
                equity: self.portfolio.cash + gross,
                free_cash: self.free_cash(lanes),
                position: self.portfolio.positions[index],
                gross_exposure: gross,
                day_loss: self.desk.as_ref().map_or(Decimal::ZERO, Desk::day_loss),
            },
        }))
    }

    /// Cash plus every position at its lane's last close, exactly.
    fn exact_equity(&self, lanes: &[Lane]) -> Result<Decimal, EngineError> {
        let mut equity = self.portfolio.cash;
        for (lane, position) in lanes.iter().zip(&self.portfolio.positions) {
            if let (false, Some((bar, bar_no))) = (position.is_zero(), lane.last) {
                let close = exact_price(bar.close, "close").map_err(lane.price_error(bar_no))?;
                equity += position * close;
            }
        }
        Ok(equity)
    }

    /// At the first step of a new UTC day, records the last day's closing
    /// equity (exactly) and whether the new day is a weekend.
    fn roll_day(&mut self, lanes: &[Lane], time: i64) -> Result<(), EngineError> {
        let day = time.div_euclid(MICROS_PER_DAY);
        if self.day == Some(day) {
            return Ok(());
        }
        if self.day.is_some() {
            let equity = self.exact_equity(lanes)?;
            self.result.equity.push((self.last_time, equity));
        }
        // 1970-01-01 was a Thursday: day 2 and 3 mod 7 are Saturday and Sunday.
        let weekday = day.rem_euclid(7);
        self.result.weekend_bars |= weekday == 2 || weekday == 3;
        self.day = Some(day);
        Ok(())
    }

    fn book_fill(&mut self, lane: &mut Lane, index: usize, fill: Fill, bar_no: u64) {
        self.portfolio.apply(index, &fill);
        let (sizing, purpose) = match fill.side {
            Side::Buy => (self.pending_notes[index].take(), Purpose::Trade),
            Side::Sell if std::mem::take(&mut self.pending_flatten[index]) => {
                (None, Purpose::Flatten)
            }
            Side::Sell => (None, Purpose::Trade),
        };
        self.fills.push((index, fill.clone(), sizing, purpose));
        self.cash_f = self.portfolio.cash.to_f64().unwrap_or(0.0);
        let position = self.portfolio.positions[index];
        self.positions_f[index] = position.to_f64().unwrap_or(0.0);
        self.held = self
            .portfolio
            .positions
            .iter()
            .filter(|p| !p.is_zero())
            .count();
        match fill.side {
            Side::Buy => lane.entry = Some(Entry { fill, bar: bar_no }),
            Side::Sell => {
                if let Some(entry) = lane.entry.take() {
                    let e = &entry.fill;
                    let fees = e.fee + fill.fee;
                    self.trades_closed += 1;
                    self.result.trades.push(Trade {
                        symbol: lane.spec.instrument.symbol.clone(),
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

    /// Marks equity after every lane at `time` was processed; when the
    /// ladder reaches RED or BLACK, cancels every order and flattens.
    fn mark(&mut self, lanes: &mut [Lane], time: i64) -> Result<(), EngineError> {
        let equity = if self.held == 0 {
            self.cash_f
        } else {
            let held: f64 = self
                .positions_f
                .iter()
                .zip(&self.closes)
                .map(|(q, p)| q * p)
                .sum();
            self.cash_f + held
        };
        self.result.steps += 1;
        self.last_time = time;
        if self.held > 0 {
            self.result.exposed_steps += 1;
        }
        if equity > self.peak {
            self.peak = equity;
        } else if self.peak > 0.0 {
            self.result.max_drawdown = self.result.max_drawdown.max(1.0 - equity / self.peak);
        }
        let flatten = match &mut self.desk {
            Some(desk) => desk.mark(time, equity, self.held == 0).is_some(),
            None => false,
        };
        if flatten {
            self.flatten(lanes)?;
        }
        Ok(())
    }

    /// Cancels every working order and sells every position at the next open.
    fn flatten(&mut self, lanes: &mut [Lane]) -> Result<(), EngineError> {
        for index in 0..lanes.len() {
            let ids: Vec<u64> = lanes[index].book.working().iter().map(|o| o.id).collect();
            for id in ids {
                lanes[index].book.cancel(id);
            }
            let position = self.portfolio.positions[index];
            if position > Decimal::ZERO && self.exit_passes(lanes, index, true)? {
                if let Some((bar, _)) = lanes[index].last {
                    let size = OrderSize::Base(position);
                    self.pending_flatten[index] = true;
                    submit_market(&mut lanes[index], Side::Sell, size, bar.open_time_us);
                }
            }
        }
        Ok(())
    }

    /// Closes open positions at the last bar's open (taker fee) and totals.
    fn finish(&mut self, lanes: &mut [Lane], costs: Costs) -> Result<(), EngineError> {
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
            if let (Some(first), Some((last, _))) = (lane.first_close, lane.last) {
                let symbol = lane.spec.instrument.symbol.clone();
                self.result.market_change.push((symbol, first, last.close));
            }
        }
        self.result.final_equity = self.portfolio.cash;
        self.result.fees_paid = self.portfolio.fees_paid;
        if self.day.is_some() {
            self.result
                .equity
                .push((self.last_time, self.result.final_equity));
        }
        self.result.risk = self.desk.take().map(Desk::finish);
        Ok(())
    }
}

/// Submits a market order on `lane` after the bar opened at `seen_until_us`.
fn submit_market(lane: &mut Lane, side: Side, size: OrderSize, seen_until_us: i64) {
    lane.next_id += 1;
    lane.book.submit(Order {
        id: lane.next_id,
        side,
        kind: OrderKind::Market,
        size,
        seen_until_us,
    });
}
