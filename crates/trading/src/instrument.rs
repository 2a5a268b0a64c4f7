//! Instruments: exact decimal prices and quantities with the exchange's
//! filters (tick size, lot size, minimum quantity, minimum notional).

use rust_decimal::{Decimal, RoundingStrategy};
use thiserror::Error;

/// A tradable spot instrument and its filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    /// Exchange symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// Base asset, e.g. `BTC`.
    pub base: String,
    /// Quote asset, e.g. `USDT`.
    pub quote: String,
    /// Tier (1 = most liquid).
    pub tier: u8,
    /// Smallest price increment.
    pub tick_size: Decimal,
    /// Smallest quantity increment.
    pub lot_size: Decimal,
    /// Smallest order quantity.
    pub min_quantity: Decimal,
    /// Smallest order value (price × quantity) in the quote asset.
    pub min_notional: Decimal,
}

/// Why an order's price or quantity does not fit the instrument's filters.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OrderCheck {
    /// The price is not a positive multiple of the tick size, or the
    /// quantity not a positive multiple of the lot size.
    #[error("{field} {value} is not a positive multiple of {step}")]
    Precision {
        /// `price` or `quantity`.
        field: &'static str,
        /// The value given.
        value: Decimal,
        /// The step it must be a multiple of.
        step: Decimal,
    },
    /// The quantity is below the minimum.
    #[error("quantity {quantity} is below the minimum {minimum}")]
    MinQuantity {
        /// The quantity given.
        quantity: Decimal,
        /// The minimum.
        minimum: Decimal,
    },
    /// The order's value is below the minimum notional.
    #[error("notional {notional} is below the minimum {minimum}")]
    MinNotional {
        /// Price × quantity.
        notional: Decimal,
        /// The minimum.
        minimum: Decimal,
    },
}

impl OrderCheck {
    /// The coded reason of the pre-trade gate (SPEC §8).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Precision { .. } => "precision",
            Self::MinQuantity { .. } => "min_quantity",
            Self::MinNotional { .. } => "min_notional",
        }
    }
}

fn is_multiple(value: Decimal, step: Decimal) -> bool {
    value > Decimal::ZERO && floor_to(value, step) == value
}

impl Instrument {
    /// `price` rounded down to the tick size.
    pub fn floor_price(&self, price: Decimal) -> Decimal {
        floor_to(price, self.tick_size)
    }

    /// `price` rounded up to the tick size.
    pub fn ceil_price(&self, price: Decimal) -> Decimal {
        let floored = floor_to(price, self.tick_size);
        if floored == price {
            price
        } else {
            floored + self.tick_size
        }
    }

    /// `quantity` rounded down to the lot size (never more than asked).
    pub fn floor_quantity(&self, quantity: Decimal) -> Decimal {
        floor_to(quantity, self.lot_size)
    }

    /// Checks an order's price and quantity against every filter.
    pub fn check(&self, price: Decimal, quantity: Decimal) -> Result<(), OrderCheck> {
        if !is_multiple(price, self.tick_size) {
            return Err(OrderCheck::Precision {
                field: "price",
                value: price,
                step: self.tick_size,
            });
        }
        if !is_multiple(quantity, self.lot_size) {
            return Err(OrderCheck::Precision {
                field: "quantity",
                value: quantity,
                step: self.lot_size,
            });
        }
        if quantity < self.min_quantity {
            return Err(OrderCheck::MinQuantity {
                quantity,
                minimum: self.min_quantity,
            });
        }
        let notional = price * quantity;
        if notional < self.min_notional {
            return Err(OrderCheck::MinNotional {
                notional,
                minimum: self.min_notional,
            });
        }
        Ok(())
    }
}

/// `value` rounded down (toward −∞) to a multiple of the positive `step`.
/// A step that is a power of ten (0.01, 1, …; the usual tick and lot)
/// rounds by scale, without a division.
fn floor_to(value: Decimal, step: Decimal) -> Decimal {
    if step.mantissa() == 1 {
        return value.round_dp_with_strategy(step.scale(), RoundingStrategy::ToNegativeInfinity);
    }
    (value / step).floor() * step
}

/// BTCUSDT with Binance-like filters, for the crate's tests.
#[cfg(test)]
pub(crate) fn test_btcusdt() -> Instrument {
    Instrument {
        symbol: "BTCUSDT".into(),
        base: "BTC".into(),
        quote: "USDT".into(),
        tier: 1,
        tick_size: Decimal::new(1, 2),
        lot_size: Decimal::new(1, 5),
        min_quantity: Decimal::new(1, 5),
        min_notional: Decimal::from(5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn btc() -> Instrument {
        test_btcusdt()
    }

    #[test]
    fn rounding_is_exact_and_never_exceeds_the_request() {
        let i = btc();
        assert_eq!(i.floor_price(d("64123.456")), d("64123.45"));
        assert_eq!(i.ceil_price(d("64123.451")), d("64123.46"));
        assert_eq!(i.ceil_price(d("64123.45")), d("64123.45"));
        assert_eq!(i.floor_quantity(d("0.123456789")), d("0.12345"));
        assert_eq!(i.floor_quantity(d("0.000009")), d("0"));
    }

    #[test]
    fn filters_name_the_reason() {
        let i = btc();
        assert_eq!(i.check(d("64000.00"), d("0.001")), Ok(()));
        assert_eq!(
            i.check(d("64000.001"), d("0.001")).unwrap_err().code(),
            "precision"
        );
        assert_eq!(
            i.check(d("64000"), d("0.000015")).unwrap_err().code(),
            "precision"
        );
        assert_eq!(i.check(d("64000"), d("0")).unwrap_err().code(), "precision");
        assert_eq!(
            i.check(d("-1"), d("0.001")).unwrap_err().code(),
            "precision"
        );
        assert_eq!(
            i.check(d("64000"), d("0.00007")),
            Err(OrderCheck::MinNotional {
                notional: d("4.48"),
                minimum: d("5")
            })
        );
        let mut high_min = btc();
        high_min.min_quantity = d("0.001");
        assert_eq!(
            high_min.check(d("64000"), d("0.0005")).unwrap_err().code(),
            "min_quantity"
        );
    }

    #[test]
    fn a_thousand_fills_reconcile_to_the_last_unit() {
        // Cash + position value at the fill prices is conserved exactly.
        let i = btc();
        let (mut cash, mut position) = (d("10000"), Decimal::ZERO);
        for n in 0..1000u32 {
            let price = i.floor_price(d("60000") + Decimal::from(n) * d("0.37"));
            let quantity = i.floor_quantity(d("0.0123457"));
            if n % 2 == 0 {
                cash -= price * quantity;
                position += quantity;
            } else {
                cash += price * quantity;
                position -= quantity;
            }
        }
        assert_eq!(position, Decimal::ZERO);
        // 500 round trips, each bought at p and sold at p + 0.37 (+0.37 tick-rounded).
        assert_eq!(
            cash,
            d("10000") + Decimal::from(500) * d("0.37") * d("0.01234")
        );
    }
}
