//! The pre-trade gate (SPEC §8): every order passes one check that approves
//! it or denies it with a coded reason, and every denial is counted by
//! reason. Trading states ACTIVE / REDUCING / HALTED; REDUCING allows only
//! orders that shrink an open position, never beyond it. Cancels do not
//! pass through the gate at all (`PaperBook::cancel`), so nothing can deny
//! one. Time comes from the caller (bar time in a backtest).

use crate::instrument::{Instrument, OrderCheck};
use crate::matching::Side;
use crate::universe::Tier;
use rust_decimal::Decimal;

/// What the gate lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TradingState {
    /// Orders in both directions.
    Active,
    /// Only orders that reduce an open position.
    Reducing,
    /// No orders except cancels and the ladder's flattening.
    Halted,
}

impl TradingState {
    /// `ACTIVE`, `REDUCING` or `HALTED`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Reducing => "REDUCING",
            Self::Halted => "HALTED",
        }
    }
}

/// Why the gate denied an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Denial {
    /// Price or quantity off the instrument's grid.
    Precision,
    /// Quantity below the instrument's minimum.
    MinQuantity,
    /// Value below the instrument's minimum notional.
    MinNotional,
    /// Value above the tier's per-order maximum.
    MaxNotionalPerOrder,
    /// The position would exceed the tier's share of equity.
    PositionLimit,
    /// All positions together would exceed the gross exposure limit.
    GrossExposureLimit,
    /// Not enough free cash, or selling more than is held.
    InsufficientBalance,
    /// Over the order rate limit.
    RateLimited,
    /// The trading state is HALTED.
    TradingStateHalted,
    /// The trading state is REDUCING and the order does not reduce.
    TradingStateReducing,
    /// Today's loss reached the daily loss limit.
    DailyLossLimit,
    /// The kill switch is on.
    KillSwitch,
}

impl Denial {
    /// Every reason, in code order.
    pub const ALL: [Denial; 12] = [
        Self::Precision,
        Self::MinQuantity,
        Self::MinNotional,
        Self::MaxNotionalPerOrder,
        Self::PositionLimit,
        Self::GrossExposureLimit,
        Self::InsufficientBalance,
        Self::RateLimited,
        Self::TradingStateHalted,
        Self::TradingStateReducing,
        Self::DailyLossLimit,
        Self::KillSwitch,
    ];

    /// The reason's code (SPEC §8).
    pub fn code(self) -> &'static str {
        match self {
            Self::Precision => "precision",
            Self::MinQuantity => "min_quantity",
            Self::MinNotional => "min_notional",
            Self::MaxNotionalPerOrder => "max_notional_per_order",
            Self::PositionLimit => "position_limit",
            Self::GrossExposureLimit => "gross_exposure_limit",
            Self::InsufficientBalance => "insufficient_balance",
            Self::RateLimited => "rate_limited",
            Self::TradingStateHalted => "trading_state_halted",
            Self::TradingStateReducing => "trading_state_reducing",
            Self::DailyLossLimit => "daily_loss_limit",
            Self::KillSwitch => "kill_switch",
        }
    }
}

/// What an order is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A strategy's order.
    Trade,
    /// The emergency ladder closing a position: passes HALTED and the kill
    /// switch, but only for a sell of at most the position.
    Flatten,
}

/// An order as the gate sees it.
#[derive(Debug, Clone, Copy)]
pub struct OrderRequest<'a> {
    /// The instrument.
    pub instrument: &'a Instrument,
    /// Its tier's limits.
    pub tier: &'a Tier,
    /// Buy or sell.
    pub side: Side,
    /// Base quantity.
    pub quantity: Decimal,
    /// The limit price, or the last price for a market order.
    pub price: Decimal,
    /// Whether `price` is a limit the order carries (checked against the tick).
    pub priced: bool,
    /// Why the order is placed.
    pub purpose: Purpose,
}

/// The account as the gate sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountView {
    /// Marked-to-market equity.
    pub equity: Decimal,
    /// Cash not committed to working orders.
    pub free_cash: Decimal,
    /// Base quantity held in the order's instrument.
    pub position: Decimal,
    /// Market value of every position.
    pub gross_exposure: Decimal,
    /// Today's loss as a fraction of start-of-day equity (≤ 0 for a gain).
    pub day_loss: Decimal,
}

/// Limits that are not per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    /// Largest gross exposure as a fraction of equity (1 = spot, no leverage).
    pub max_gross_exposure: Decimal,
    /// Daily loss (fraction of start-of-day equity) that stops new entries.
    pub daily_loss_limit: Decimal,
    /// Orders allowed in a burst.
    pub order_burst: u32,
    /// Orders per second sustained.
    pub orders_per_second: u32,
    /// Fee rate reserved on top of a buy's notional.
    pub fee: Decimal,
}

impl Default for GateLimits {
    /// SPEC §8: gross ≤ 100 %, 3 % daily loss; Binance's spot order limit
    /// (50 orders per 10 s) as the rate.
    fn default() -> Self {
        Self {
            max_gross_exposure: Decimal::ONE,
            daily_loss_limit: Decimal::new(3, 2),
            order_burst: 50,
            orders_per_second: 5,
            fee: Decimal::new(1, 3),
        }
    }
}

/// A token bucket on the caller's clock (µs).
#[derive(Debug, Clone)]
struct TokenBucket {
    /// Tokens in millionths.
    micro_tokens: u64,
    capacity: u64,
    per_second: u64,
    last_us: Option<i64>,
}

impl TokenBucket {
    fn new(burst: u32, per_second: u32) -> Self {
        let capacity = u64::from(burst) * 1_000_000;
        Self {
            micro_tokens: capacity,
            capacity,
            per_second: u64::from(per_second),
            last_us: None,
        }
    }

    fn refill(&mut self, now_us: i64) {
        let elapsed = self
            .last_us
            .map_or(0, |last| now_us.saturating_sub(last).max(0));
        let earned = (elapsed as u64).saturating_mul(self.per_second);
        self.micro_tokens = self.micro_tokens.saturating_add(earned).min(self.capacity);
        if self.last_us.is_none_or(|last| now_us > last) {
            self.last_us = Some(now_us);
        }
    }

    fn available(&mut self, now_us: i64) -> bool {
        self.refill(now_us);
        self.micro_tokens >= 1_000_000
    }

    fn take(&mut self) {
        self.micro_tokens = self.micro_tokens.saturating_sub(1_000_000);
    }
}

/// The pre-trade gate with its state and its denial counters.
#[derive(Debug, Clone)]
pub struct Gate {
    limits: GateLimits,
    state: TradingState,
    kill_switch: bool,
    bucket: TokenBucket,
    denials: [u64; Denial::ALL.len()],
    approvals: u64,
}

impl Gate {
    /// An ACTIVE gate with these limits.
    pub fn new(limits: GateLimits) -> Self {
        Self {
            limits,
            state: TradingState::Active,
            kill_switch: false,
            bucket: TokenBucket::new(limits.order_burst, limits.orders_per_second),
            denials: [0; Denial::ALL.len()],
            approvals: 0,
        }
    }

    /// Replaces the limits (an operator's reload); the rate limiter keeps
    /// the tokens it has, up to the new burst.
    pub fn set_limits(&mut self, limits: GateLimits) {
        let tokens = self.bucket.micro_tokens;
        let last = self.bucket.last_us;
        self.bucket = TokenBucket::new(limits.order_burst, limits.orders_per_second);
        self.bucket.micro_tokens = tokens.min(self.bucket.capacity);
        self.bucket.last_us = last;
        self.limits = limits;
    }

    /// The trading state.
    pub fn state(&self) -> TradingState {
        self.state
    }

    /// Sets the trading state (the ladder or an operator decides it).
    pub fn set_state(&mut self, state: TradingState) {
        self.state = state;
    }

    /// Turns the kill switch on or off.
    pub fn set_kill_switch(&mut self, on: bool) {
        self.kill_switch = on;
    }

    /// Denials so far, by reason, in code order.
    pub fn denials(&self) -> impl Iterator<Item = (Denial, u64)> + '_ {
        Denial::ALL
            .iter()
            .copied()
            .zip(self.denials.iter().copied())
    }

    /// Orders approved so far.
    pub fn approvals(&self) -> u64 {
        self.approvals
    }

    /// Approves or denies an order at `now_us`; an approval takes a token
    /// from the rate limiter, a denial is counted by reason.
    pub fn check(
        &mut self,
        now_us: i64,
        order: &OrderRequest,
        account: &AccountView,
    ) -> Result<(), Denial> {
        let verdict = self.verdict(now_us, order, account);
        match verdict {
            Ok(()) => {
                if order.purpose == Purpose::Trade {
                    self.bucket.take();
                }
                self.approvals += 1;
            }
            Err(denial) => self.denials[denial as usize] += 1,
        }
        verdict
    }

    fn verdict(
        &mut self,
        now_us: i64,
        order: &OrderRequest,
        account: &AccountView,
    ) -> Result<(), Denial> {
        let reduces = order.side == Side::Sell;
        let flatten = order.purpose == Purpose::Flatten;
        if flatten && !(reduces && order.quantity <= account.position) {
            return Err(Denial::InsufficientBalance);
        }
        if !flatten {
            self.check_state(order, account)?;
        }
        order
            .instrument
            .check(
                if order.priced {
                    order.price
                } else {
                    order.instrument.ceil_price(order.price)
                },
                order.quantity,
            )
            .map_err(|check| match check {
                OrderCheck::Precision { .. } => Denial::Precision,
                OrderCheck::MinQuantity { .. } => Denial::MinQuantity,
                OrderCheck::MinNotional { .. } => Denial::MinNotional,
            })?;
        if reduces {
            return Ok(());
        }
        self.check_limits(order, account)?;
        if !flatten && !self.bucket.available(now_us) {
            return Err(Denial::RateLimited);
        }
        Ok(())
    }

    fn check_state(&self, order: &OrderRequest, account: &AccountView) -> Result<(), Denial> {
        if self.kill_switch {
            return Err(Denial::KillSwitch);
        }
        match self.state {
            TradingState::Halted => return Err(Denial::TradingStateHalted),
            TradingState::Reducing
                if order.side == Side::Buy || order.quantity > account.position =>
            {
                return Err(Denial::TradingStateReducing)
            }
            _ => {}
        }
        if order.side == Side::Sell && order.quantity > account.position {
            return Err(Denial::InsufficientBalance);
        }
        if order.side == Side::Buy && account.day_loss >= self.limits.daily_loss_limit {
            return Err(Denial::DailyLossLimit);
        }
        Ok(())
    }

    fn check_limits(&self, order: &OrderRequest, account: &AccountView) -> Result<(), Denial> {
        let notional = order.price * order.quantity;
        if notional > order.tier.max_notional_per_order {
            return Err(Denial::MaxNotionalPerOrder);
        }
        let held = account.position * order.price;
        if held + notional > order.tier.max_position_pct * Decimal::new(1, 2) * account.equity {
            return Err(Denial::PositionLimit);
        }
        if account.gross_exposure + notional > self.limits.max_gross_exposure * account.equity {
            return Err(Denial::GrossExposureLimit);
        }
        if notional * (Decimal::ONE + self.limits.fee) > account.free_cash {
            return Err(Denial::InsufficientBalance);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
