//! Tests of paper matching: fill prices for every order kind, gaps, fees,
//! slippage, no lookahead, and exact accounting.

use super::*;
use std::str::FromStr;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn instrument() -> Instrument {
    crate::instrument::test_btcusdt()
}

fn bar(minute: i64, open: f64, high: f64, low: f64, close: f64) -> Candle {
    Candle {
        open_time_us: minute * 60_000_000,
        open,
        high,
        low,
        close,
        volume: 1.0,
    }
}

fn order(id: u64, side: Side, kind: OrderKind, seen_minute: i64) -> Order {
    Order {
        id,
        side,
        kind,
        size: OrderSize::Base(d("0.5")),
        seen_until_us: seen_minute * 60_000_000,
    }
}

fn book() -> PaperBook {
    PaperBook::new(instrument(), Costs::default())
}

/// The price each order fills at on `bar`, or `None`.
fn fill_price(o: Order, b: &Candle) -> Option<Decimal> {
    let mut book = book();
    book.submit(o);
    book.on_bar(b).unwrap().first().map(|f| f.price)
}

#[test]
fn market_orders_fill_at_the_next_open_never_on_the_bar_they_saw() {
    let mut book = book();
    book.submit(order(1, Side::Buy, OrderKind::Market, 0));
    // The bar the strategy decided on: no fill from it.
    assert!(book
        .on_bar(&bar(0, 100.0, 101.0, 99.0, 100.5))
        .unwrap()
        .is_empty());
    let fills = book.on_bar(&bar(1, 100.7, 102.0, 100.1, 101.0)).unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!((fills[0].price, fills[0].time_us), (d("100.7"), 60_000_000));
    assert_eq!(fills[0].fee, d("0.05035"));
    assert!(book.working().is_empty());
}

#[test]
fn limits_fill_at_the_limit_when_traded_through_or_at_the_open_on_a_gap() {
    let b = bar(1, 100.0, 103.0, 98.0, 101.0);
    let buy = |limit: &str| order(1, Side::Buy, OrderKind::Limit(d(limit)), 0);
    let sell = |limit: &str| order(1, Side::Sell, OrderKind::Limit(d(limit)), 0);
    assert_eq!(fill_price(buy("99"), &b), Some(d("99")));
    assert_eq!(fill_price(buy("98"), &b), Some(d("98")));
    assert_eq!(fill_price(buy("97.99"), &b), None);
    assert_eq!(
        fill_price(buy("105"), &b),
        Some(d("100")),
        "gap through: the open"
    );
    assert_eq!(fill_price(sell("102.5"), &b), Some(d("102.5")));
    assert_eq!(fill_price(sell("103.01"), &b), None);
    assert_eq!(
        fill_price(sell("95"), &b),
        Some(d("100")),
        "gap through: the open"
    );
}

#[test]
fn stops_trigger_on_touch_and_fill_at_the_stop_or_the_open_on_a_gap() {
    let b = bar(1, 100.0, 103.0, 98.0, 101.0);
    let buy = |stop: &str| order(1, Side::Buy, OrderKind::Stop(d(stop)), 0);
    let sell = |stop: &str| order(1, Side::Sell, OrderKind::Stop(d(stop)), 0);
    assert_eq!(fill_price(buy("103"), &b), Some(d("103")));
    assert_eq!(fill_price(buy("103.5"), &b), None);
    assert_eq!(
        fill_price(buy("99"), &b),
        Some(d("100")),
        "gap above the stop"
    );
    assert_eq!(fill_price(sell("98.5"), &b), Some(d("98.5")));
    assert_eq!(fill_price(sell("97"), &b), None);
    assert_eq!(
        fill_price(sell("101"), &b),
        Some(d("100")),
        "gap below the stop"
    );
}

#[test]
fn takers_pay_slippage_on_the_tick_grid_against_them_and_makers_none() {
    let costs = Costs {
        taker_fee: d("0.001"),
        maker_fee: d("0.0002"),
        slippage_bps: d("5"),
    };
    let b = bar(1, 100.0, 103.0, 98.0, 101.0);
    let mut book = PaperBook::new(instrument(), costs);
    book.submit(order(1, Side::Buy, OrderKind::Market, 0));
    book.submit(order(2, Side::Sell, OrderKind::Market, 0));
    book.submit(order(3, Side::Buy, OrderKind::Limit(d("99")), 0));
    let fills = book.on_bar(&b).unwrap();
    let got: Vec<(u64, Decimal, Decimal)> =
        fills.iter().map(|f| (f.order_id, f.price, f.fee)).collect();
    // 100 × (1 ± 0.0005) = 100.05 / 99.95; fees on the slipped notional.
    assert_eq!(
        got,
        [
            (1, d("100.05"), d("0.050025")),
            (2, d("99.95"), d("0.049975")),
            (3, d("99"), d("0.0099")),
        ]
    );
}

#[test]
fn cancelled_orders_never_fill_and_unfilled_ones_keep_working() {
    let mut book = book();
    book.submit(order(1, Side::Buy, OrderKind::Limit(d("90")), 0));
    book.submit(order(2, Side::Buy, OrderKind::Limit(d("95")), 0));
    assert!(book.cancel(1));
    assert!(!book.cancel(1));
    assert!(book
        .on_bar(&bar(1, 100.0, 101.0, 96.0, 100.0))
        .unwrap()
        .is_empty());
    let fills = book.on_bar(&bar(2, 99.0, 99.5, 94.0, 95.0)).unwrap();
    assert_eq!(fills.iter().map(|f| f.order_id).collect::<Vec<_>>(), [2]);
}

#[test]
fn the_account_reconciles_exactly_after_many_fills() {
    let mut account = Portfolio::new(d("10000"), 1);
    let mut book = book();
    let (mut traded, mut gross) = (Decimal::ZERO, Decimal::ZERO);
    for minute in 0..2000i64 {
        let side = if minute % 2 == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        book.submit(order(minute as u64, side, OrderKind::Market, minute));
        let open = 100.0 + (minute % 37) as f64 * 0.07;
        for fill in book
            .on_bar(&bar(minute + 1, open, open + 1.0, open - 1.0, open))
            .unwrap()
        {
            traded += fill.price
                * fill.quantity
                * if fill.side == Side::Buy {
                    d("-1")
                } else {
                    d("1")
                };
            gross += fill.price * fill.quantity;
            account.apply(0, &fill);
        }
    }
    assert_eq!(account.positions, [Decimal::ZERO]);
    assert_eq!(account.cash, d("10000") + traded - account.fees_paid);
    // Fees are 0.1 % of every notional, exactly.
    assert_eq!(account.fees_paid, gross * d("0.001"));
    assert!(gross > d("100000"));
}

#[test]
fn a_quote_budget_buys_what_it_can_at_the_fill_price_fee_included() {
    let mut book = book();
    let spend = |id, budget: &str| Order {
        size: OrderSize::Quote(d(budget)),
        ..order(id, Side::Buy, OrderKind::Market, 0)
    };
    book.submit(spend(1, "1000"));
    book.submit(spend(2, "4"));
    let fills = book.on_bar(&bar(1, 100.0, 101.0, 99.0, 100.0)).unwrap();
    // 1000 / (100 × 1.001) = 9.99000999… → 9.99000 on the lot grid.
    assert_eq!(fills.len(), 1);
    assert_eq!((fills[0].quantity, fills[0].fee), (d("9.99"), d("0.999")));
    assert!(fills[0].price * fills[0].quantity + fills[0].fee <= d("1000"));
    assert_eq!(
        book.take_expired(),
        [2],
        "4 USDT is below the minimum notional"
    );
}

#[test]
fn a_bar_price_without_an_exact_decimal_is_an_error_not_a_silent_skip() {
    let mut book = book();
    // An empty book converts nothing.
    assert_eq!(book.on_bar(&bar(1, 1e30, 1e30, 1e30, 1e30)), Ok(vec![]));
    book.submit(order(1, Side::Buy, OrderKind::Market, 0));
    assert_eq!(book.reserved_quote(), Decimal::ZERO);
    let e = book.on_bar(&bar(1, 1e30, 1e30, 1e30, 1e30)).unwrap_err();
    assert_eq!(e.field, "open");
    assert_eq!(book.working().len(), 1, "nothing was matched");
    book.submit(Order {
        size: OrderSize::Quote(d("250")),
        ..order(2, Side::Buy, OrderKind::Market, 0)
    });
    assert_eq!(book.reserved_quote(), d("250"));
}

#[test]
fn exact_prices_read_back_as_the_shortest_decimal_whatever_their_length() {
    for value in [
        0.1,
        42_000.01,
        1.0e-7,
        123_456_789.123_45,
        2.5e-30,
        1.0e22,
        7.0,
    ] {
        let exact = exact_price(value, "open").unwrap();
        assert_eq!(
            exact,
            rust_decimal::Decimal::from_str(&value.to_string()).unwrap(),
            "{value}"
        );
    }
}
