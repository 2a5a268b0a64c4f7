use super::*;
use crate::universe::test_tier1 as tier1;
use std::str::FromStr;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[test]
fn wilson_lower_bound_matches_published_intervals() {
    // Wilson 95 % intervals: 55/100 → [0.4524, 0.6438]; 10/10 → [0.7225, 1].
    assert!((wilson_lower_bound(55, 100) - 0.452_446).abs() < 1e-5);
    assert!((wilson_lower_bound(10, 10) - 0.722_467).abs() < 1e-5);
    assert_eq!(wilson_lower_bound(0, 10), 0.0);
    assert_eq!(wilson_lower_bound(0, 0), 0.0);
}

fn window(returns: &[f64]) -> TradeWindow {
    let mut w = TradeWindow::new(100);
    for &r in returns {
        w.push(r);
    }
    w
}

#[test]
fn kelly_uses_the_lower_bound_and_the_payoff_ratio() {
    // 60 wins of +2 %, 40 losses of −1 %: p̂ = 0.6, R = 2.
    let mut returns = vec![0.02; 60];
    returns.extend(vec![-0.01; 40]);
    let w = window(&returns);
    let stats = w.stats(100);
    assert_eq!((stats.trades, stats.wins), (100, 60));
    assert!((stats.payoff_ratio - 2.0).abs() < 1e-12);
    assert!((stats.profit_factor - 3.0).abs() < 1e-12);
    let p = wilson_lower_bound(60, 100);
    let edge = p - (1.0 - p) / 2.0;
    assert!((stats.kelly_edge() - edge).abs() < 1e-12);
    let fraction = KellyConfig::default().risk_fraction(&w, &tier1());
    assert!((fraction - 0.25 * edge).abs() < 1e-12);
}

#[test]
fn no_edge_means_no_entry_and_a_probe_before_min_trades() {
    let config = KellyConfig::default();
    // 50/50 with equal wins and losses: the lower bound is below ½, edge < 0.
    let mut returns = vec![0.01; 50];
    returns.extend(vec![-0.01; 50]);
    assert_eq!(config.risk_fraction(&window(&returns), &tier1()), 0.0);
    assert_eq!(config.risk_fraction(&window(&[-0.05; 40]), &tier1()), 0.0);
    assert_eq!(config.risk_fraction(&window(&[0.01; 29]), &tier1()), 0.0025);
    let size = entry_quantity(0.0, 1.0, &tier1(), &inputs(d("100")));
    assert_eq!(size, Decimal::ZERO);
}

#[test]
fn the_tier_caps_the_kelly_fraction() {
    let config = KellyConfig {
        kelly_fraction: 0.9,
        ..KellyConfig::default()
    };
    let w = window(&[0.02; 100]);
    let edge = w.stats(100).kelly_edge();
    assert!((config.risk_fraction(&w, &tier1()) - 0.5 * edge).abs() < 1e-12);
}

#[test]
fn the_window_keeps_only_the_last_trades() {
    let mut w = TradeWindow::new(3);
    for r in [-0.1, -0.1, 0.1, 0.1, 0.1] {
        w.push(r);
    }
    assert_eq!(w.closed(), 5);
    assert_eq!(w.stats(100).wins, 3);
    assert_eq!(w.stats(2).trades, 2);
    assert_eq!(w.stats(100).profit_factor, f64::INFINITY);
}

fn inputs(price: Decimal) -> SizeInputs {
    SizeInputs {
        equity: d("100000"),
        price,
        stop_distance: None,
        free_cash: d("100000"),
        position_value: Decimal::ZERO,
        fee: d("0.001"),
    }
}

#[test]
fn size_follows_the_fraction_throttle_and_stop() {
    // 1 % of 100,000 at 100 = 10 units; halved by the throttle; with a stop
    // 2 away, 1 % risk buys 500 units (capped by the tier's 20 % = 200).
    assert_eq!(
        entry_quantity(0.01, 1.0, &tier1(), &inputs(d("100"))),
        d("10")
    );
    assert_eq!(
        entry_quantity(0.01, 0.5, &tier1(), &inputs(d("100"))),
        d("5")
    );
    let mut with_stop = inputs(d("100"));
    with_stop.stop_distance = Some(d("20"));
    assert_eq!(entry_quantity(0.01, 1.0, &tier1(), &with_stop), d("50"));
    with_stop.stop_distance = Some(d("2"));
    assert_eq!(entry_quantity(0.01, 1.0, &tier1(), &with_stop), d("200"));
}

#[test]
fn size_is_capped_by_position_order_and_cash_limits() {
    let tier = tier1();
    // Position room: 20 % of 100,000 − 15,000 held = 5,000 → 50 units.
    let mut held = inputs(d("100"));
    held.position_value = d("15000");
    assert_eq!(entry_quantity(0.5, 1.0, &tier, &held), d("50"));
    // Per-order cap: 50,000 with 1,000,000 equity → 500 units at 100.
    let mut big = inputs(d("100"));
    big.equity = d("1000000");
    big.free_cash = d("1000000");
    assert_eq!(entry_quantity(0.5, 1.0, &tier, &big), d("500"));
    // Free cash 1,001 with a 0.1 % fee buys exactly 10 units.
    let mut poor = inputs(d("100"));
    poor.free_cash = d("1001");
    assert_eq!(entry_quantity(0.5, 1.0, &tier, &poor), d("10"));
    // Over the position limit already: nothing.
    held.position_value = d("30000");
    assert_eq!(entry_quantity(0.5, 1.0, &tier, &held), Decimal::ZERO);
}
