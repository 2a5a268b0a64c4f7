use super::*;
use crate::instrument::test_btcusdt;
use crate::universe::test_tier1 as tier1;
use std::str::FromStr;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// A change to the test account.
type Adjust = fn(&mut AccountView);

fn account() -> AccountView {
    AccountView {
        equity: d("100000"),
        free_cash: d("100000"),
        position: Decimal::ZERO,
        gross_exposure: Decimal::ZERO,
        day_loss: Decimal::ZERO,
    }
}

fn check(
    gate: &mut Gate,
    side: Side,
    qty: &str,
    price: &str,
    a: &AccountView,
) -> Result<(), Denial> {
    check_as(gate, side, qty, price, a, Purpose::Trade)
}

fn check_as(
    gate: &mut Gate,
    side: Side,
    qty: &str,
    price: &str,
    a: &AccountView,
    purpose: Purpose,
) -> Result<(), Denial> {
    let instrument = test_btcusdt();
    let tier = tier1();
    let order = OrderRequest {
        instrument: &instrument,
        tier: &tier,
        side,
        quantity: d(qty),
        price: d(price),
        priced: true,
        purpose,
    };
    gate.check(0, &order, a)
}

#[test]
fn every_limit_denies_with_its_code() {
    let mut gate = Gate::new(GateLimits::default());
    let a = account();
    assert_eq!(check(&mut gate, Side::Buy, "0.1", "60000", &a), Ok(()));
    let cases = [
        ("0.1", "60000.001", Denial::Precision),
        ("0.000015", "60000", Denial::Precision),
        ("0.00005", "60000", Denial::MinNotional),
        ("0.9", "60000", Denial::MaxNotionalPerOrder),
    ];
    for (qty, price, denial) in cases {
        assert_eq!(
            check(&mut gate, Side::Buy, qty, price, &a),
            Err(denial),
            "{qty} @ {price}"
        );
    }
    let accounts: [(Adjust, Side, Denial); 5] = [
        (|a| a.position = d("0.3"), Side::Buy, Denial::PositionLimit),
        (
            |a| a.gross_exposure = d("99000"),
            Side::Buy,
            Denial::GrossExposureLimit,
        ),
        (
            |a| a.free_cash = d("3000"),
            Side::Buy,
            Denial::InsufficientBalance,
        ),
        (|_| {}, Side::Sell, Denial::InsufficientBalance),
        (
            |a| a.day_loss = d("0.03"),
            Side::Buy,
            Denial::DailyLossLimit,
        ),
    ];
    for (adjust, side, denial) in accounts {
        let mut account = account();
        adjust(&mut account);
        assert_eq!(
            check(&mut gate, side, "0.05", "60000", &account),
            Err(denial)
        );
    }
    let mut min_qty = test_btcusdt();
    min_qty.min_quantity = d("0.001");
    let tier = tier1();
    let order = OrderRequest {
        instrument: &min_qty,
        tier: &tier,
        side: Side::Buy,
        quantity: d("0.0005"),
        price: d("60000"),
        priced: true,
        purpose: Purpose::Trade,
    };
    assert_eq!(gate.check(0, &order, &a), Err(Denial::MinQuantity));
    let counted: Vec<(&str, u64)> = gate
        .denials()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (r.code(), n))
        .collect();
    assert_eq!(
        counted,
        [
            ("precision", 2),
            ("min_quantity", 1),
            ("min_notional", 1),
            ("max_notional_per_order", 1),
            ("position_limit", 1),
            ("gross_exposure_limit", 1),
            ("insufficient_balance", 2),
            ("daily_loss_limit", 1),
        ]
    );
    assert_eq!(gate.approvals(), 1);
}

#[test]
fn reducing_allows_only_reductions_up_to_the_position() {
    let mut gate = Gate::new(GateLimits::default());
    gate.set_state(TradingState::Reducing);
    let flat = account();
    assert_eq!(
        check(&mut gate, Side::Buy, "0.01", "60000", &flat),
        Err(Denial::TradingStateReducing)
    );
    assert_eq!(
        check(&mut gate, Side::Sell, "0.01", "60000", &flat),
        Err(Denial::TradingStateReducing)
    );
    let mut held = account();
    held.position = d("0.2");
    assert_eq!(check(&mut gate, Side::Sell, "0.2", "60000", &held), Ok(()));
    assert_eq!(
        check(&mut gate, Side::Sell, "0.20001", "60000", &held),
        Err(Denial::TradingStateReducing)
    );
    assert_eq!(
        check(&mut gate, Side::Buy, "0.01", "60000", &held),
        Err(Denial::TradingStateReducing)
    );
}

#[test]
fn halted_and_kill_switch_pass_only_the_ladders_flattening() {
    let mut gate = Gate::new(GateLimits::default());
    let mut held = account();
    held.position = d("0.2");
    gate.set_state(TradingState::Halted);
    for (kill_switch, denial) in [
        (false, Denial::TradingStateHalted),
        (true, Denial::KillSwitch),
    ] {
        gate.set_kill_switch(kill_switch);
        assert_eq!(
            check(&mut gate, Side::Sell, "0.1", "60000", &held),
            Err(denial)
        );
        let flatten = check_as(
            &mut gate,
            Side::Sell,
            "0.2",
            "60000",
            &held,
            Purpose::Flatten,
        );
        assert_eq!(flatten, Ok(()));
    }
    // Flattening never buys and never sells more than is held.
    assert_eq!(
        check_as(
            &mut gate,
            Side::Sell,
            "0.3",
            "60000",
            &held,
            Purpose::Flatten
        ),
        Err(Denial::InsufficientBalance)
    );
    assert_eq!(
        check_as(
            &mut gate,
            Side::Buy,
            "0.1",
            "60000",
            &held,
            Purpose::Flatten
        ),
        Err(Denial::InsufficientBalance)
    );
}

#[test]
fn the_rate_limit_allows_a_burst_then_the_sustained_rate() {
    let limits = GateLimits {
        order_burst: 3,
        orders_per_second: 1,
        ..GateLimits::default()
    };
    let mut gate = Gate::new(limits);
    let instrument = test_btcusdt();
    let tier = tier1();
    let order = OrderRequest {
        instrument: &instrument,
        tier: &tier,
        side: Side::Buy,
        quantity: d("0.001"),
        price: d("60000"),
        priced: false,
        purpose: Purpose::Trade,
    };
    let a = account();
    let at = |gate: &mut Gate, us: i64| gate.check(us, &order, &a);
    for _ in 0..3 {
        assert_eq!(at(&mut gate, 0), Ok(()));
    }
    assert_eq!(at(&mut gate, 500_000), Err(Denial::RateLimited));
    assert_eq!(at(&mut gate, 1_000_000), Ok(()));
    assert_eq!(at(&mut gate, 1_000_000), Err(Denial::RateLimited));
    // A clock that goes back earns nothing.
    assert_eq!(at(&mut gate, 0), Err(Denial::RateLimited));
    assert_eq!(at(&mut gate, 10_000_000), Ok(()));
}
