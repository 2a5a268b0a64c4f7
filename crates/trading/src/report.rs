//! The backtest report: trades, the daily equity curve and the metrics, as
//! JSON that is byte-identical for the same inputs.

use crate::backtest::BacktestResult;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// Sharpe ratio of daily equity returns, annualised by `√periods`.
fn sharpe(equity: &[(i64, Decimal)], start: Decimal, periods: f64) -> Option<f64> {
    let mut previous = f(start);
    let returns: Vec<f64> = equity
        .iter()
        .map(|&(_, e)| {
            let e = f(e);
            let r = if previous > 0.0 {
                e / previous - 1.0
            } else {
                0.0
            };
            previous = e;
            r
        })
        .collect();
    if returns.len() < 2 {
        return None;
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (var > 0.0).then(|| mean / var.sqrt() * periods.sqrt())
}

/// The report of `result`; `inputs` describes the run (files, strategy,
/// parameters, costs) and is copied in as given.
pub fn to_json(result: &BacktestResult, inputs: Value) -> Value {
    let wins: Vec<Decimal> = result
        .trades
        .iter()
        .map(|t| t.pnl)
        .filter(|p| *p > Decimal::ZERO)
        .collect();
    let losses: Decimal = result
        .trades
        .iter()
        .map(|t| t.pnl)
        .filter(|p| *p < Decimal::ZERO)
        .sum();
    let gross_win: Decimal = wins.iter().copied().sum();
    let trades = result.trades.len();
    // Weekday-only data (equities, FX) only when a week or more of bars
    // had no weekend bar; otherwise the crypto calendar.
    let span_us = match (result.equity.first(), result.equity.last()) {
        (Some(first), Some(last)) => last.0 - first.0,
        _ => 0,
    };
    let weekdays_only = !result.weekend_bars && span_us >= 7 * 86_400_000_000;
    let periods = if weekdays_only { 252.0 } else { 365.0 };
    let pct = |x: f64| x * 100.0;
    json!({
        "inputs": inputs,
        "trades": result.trades.iter().map(|t| json!({
            "symbol": t.symbol,
            "side": "long",
            "entry_time": time(t.entry_time_us),
            "exit_time": time(t.exit_time_us),
            "entry_price": t.entry_price.normalize().to_string(),
            "exit_price": t.exit_price.normalize().to_string(),
            "quantity": t.quantity.normalize().to_string(),
            "fees": t.fees.normalize().to_string(),
            "pnl": t.pnl.normalize().to_string(),
            "return_pct": pct(f(t.pnl / (t.entry_price * t.quantity).max(Decimal::new(1, 12)))),
        })).collect::<Vec<_>>(),
        "equity": result.equity.iter().map(|(t, e)| json!({"time": time(*t), "equity": e.round_dp(8).normalize().to_string()})).collect::<Vec<_>>(),
        "metrics": {
            "start_cash": result.start_cash.normalize().to_string(),
            "final_equity": result.final_equity.round_dp(8).normalize().to_string(),
            "total_return_pct": pct(f(result.final_equity / result.start_cash) - 1.0),
            "max_drawdown_pct": pct(result.max_drawdown),
            "sharpe": sharpe(&result.equity, result.start_cash, periods),
            "annualisation": format!("sqrt({periods}) on daily equity returns ({})", if weekdays_only { "no weekend bars in a week or more: trading-day calendar" } else { "crypto calendar: every day" }),
            "trades": trades,
            "win_rate_pct": (trades > 0).then(|| pct(wins.len() as f64 / trades as f64)),
            "profit_factor": (losses < Decimal::ZERO).then(|| f(gross_win / -losses)),
            "fees_paid": result.fees_paid.round_dp(8).normalize().to_string(),
            "exposure_time_pct": pct(result.exposed_steps as f64 / result.steps.max(1) as f64),
            "bars": result.bars,
            "expired_orders": result.expired_orders,
        },
    })
}
