//! The report's metrics. Ratios use the daily equity curve's returns,
//! annualised by √365 (crypto: every day trades) or √252 (weekday-only
//! data); the report states which.

use super::{f, pct, text, trade_return};
use crate::backtest::BacktestResult;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

const MICROS_PER_DAY: f64 = 86_400_000_000.0;
/// Days of data before CAGR is reported.
const MIN_CAGR_DAYS: f64 = 30.0;

/// Returns of the daily equity curve (the first against the start cash).
fn daily_returns(result: &BacktestResult) -> Vec<f64> {
    let mut previous = f(result.start_cash);
    result
        .equity
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
        .collect()
}

/// Mean over the sample standard deviation, × √periods.
fn sharpe(returns: &[f64], periods: f64) -> Option<f64> {
    if returns.len() < 2 {
        return None;
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (var > 0.0).then(|| mean / var.sqrt() * periods.sqrt())
}

/// Mean over the downside deviation √(Σ min(r, 0)² / n), × √periods.
fn sortino(returns: &[f64], periods: f64) -> Option<f64> {
    if returns.len() < 2 {
        return None;
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let down = returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n;
    (down > 0.0).then(|| mean / down.sqrt() * periods.sqrt())
}

/// The longest runs of winning and of losing trades.
fn streaks(result: &BacktestResult) -> (u64, u64) {
    let (mut wins, mut losses, mut best_wins, mut best_losses) = (0, 0, 0, 0);
    for t in &result.trades {
        if t.pnl > Decimal::ZERO {
            wins += 1;
            losses = 0;
        } else {
            losses += 1;
            wins = 0;
        }
        best_wins = best_wins.max(wins);
        best_losses = best_losses.max(losses);
    }
    (best_wins, best_losses)
}

/// Whether the data has weekday-only bars: no weekend bar in a week or more.
fn weekdays_only(result: &BacktestResult) -> bool {
    let span_us = match (result.equity.first(), result.equity.last()) {
        (Some(first), Some(last)) => last.0 - first.0,
        _ => 0,
    };
    !result.weekend_bars && span_us >= 7 * 86_400_000_000
}

/// The metrics object of the report.
pub(super) fn metrics(result: &BacktestResult) -> Value {
    let periods = if weekdays_only(result) { 252.0 } else { 365.0 };
    let returns = daily_returns(result);
    let trades = result.trades.len();
    let pnls = || result.trades.iter().map(|t| t.pnl);
    let gross_win: Decimal = pnls().filter(|p| *p > Decimal::ZERO).sum();
    let gross_loss: Decimal = pnls().filter(|p| *p < Decimal::ZERO).sum();
    let wins = pnls().filter(|p| *p > Decimal::ZERO).count();
    let trade_returns: Vec<f64> = result.trades.iter().map(trade_return).collect();
    let total_return = f(result.final_equity) / f(result.start_cash) - 1.0;
    let span_days = match (result.equity.first(), result.equity.last()) {
        (Some(a), Some(b)) => (b.0 - a.0) as f64 / MICROS_PER_DAY,
        _ => 0.0,
    };
    // Compounding a few days to a year states a figure nobody measured:
    // CAGR (and Calmar, which divides it) only from a month of data on.
    let cagr = (span_days >= MIN_CAGR_DAYS && total_return > -1.0)
        .then(|| (1.0 + total_return).powf(365.25 / span_days) - 1.0);
    let duration_s = result
        .trades
        .iter()
        .map(|t| (t.exit_time_us - t.entry_time_us) as f64 / 1e6)
        .sum::<f64>()
        / trades.max(1) as f64;
    let (win_streak, loss_streak) = streaks(result);
    let changes: Map<String, Value> = result
        .market_change
        .iter()
        .map(|(s, first, last)| (s.clone(), json!(pct(last / first - 1.0))))
        .collect();
    let mean_change = result
        .market_change
        .iter()
        .map(|(_, first, last)| last / first - 1.0)
        .sum::<f64>()
        / result.market_change.len().max(1) as f64;
    let extreme = |best: bool| {
        trade_returns
            .iter()
            .copied()
            .reduce(if best { f64::max } else { f64::min })
            .map(pct)
    };
    json!({
        "start_cash": text(result.start_cash),
        "final_equity": text(result.final_equity),
        "total_return_pct": pct(total_return),
        "cagr_pct": cagr.map(pct),
        "max_drawdown_pct": pct(result.max_drawdown),
        "sharpe": sharpe(&returns, periods),
        "sortino": sortino(&returns, periods),
        "calmar": cagr.filter(|_| result.max_drawdown > 0.0).map(|c| c / result.max_drawdown),
        "annualisation": format!("sqrt({periods}) on daily equity returns ({})", if periods == 252.0 { "no weekend bars in a week or more: trading-day calendar" } else { "crypto calendar: every day" }),
        "trades": trades,
        "win_rate_pct": (trades > 0).then(|| pct(wins as f64 / trades as f64)),
        "profit_factor": (gross_loss < Decimal::ZERO).then(|| f(gross_win / -gross_loss)),
        "expectancy": (trades > 0).then(|| text(pnls().sum::<Decimal>() / Decimal::from(trades))),
        "expectancy_pct": (trades > 0).then(|| pct(trade_returns.iter().sum::<f64>() / trades as f64)),
        "best_trade_pct": extreme(true),
        "worst_trade_pct": extreme(false),
        "avg_trade_duration_s": (trades > 0).then_some(duration_s),
        "max_consecutive_wins": win_streak,
        "max_consecutive_losses": loss_streak,
        "fees_paid": text(result.fees_paid),
        "exposure_time_pct": pct(result.exposed_steps as f64 / result.steps.max(1) as f64),
        "market_change_pct": pct(mean_change),
        "market_change_pct_by_symbol": changes,
        "bars": result.bars,
        "expired_orders": result.expired_orders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_follow_their_definitions() {
        let r = [0.01, -0.02, 0.03, 0.0];
        // mean 0.005; sample sd √(0.0013 / 3).
        let s = sharpe(&r, 365.0).unwrap();
        assert!((s - 0.005 / (0.0013f64 / 3.0).sqrt() * 365f64.sqrt()).abs() < 1e-12);
        // downside √(0.0004 / 4) = 0.01.
        let so = sortino(&r, 252.0).unwrap();
        assert!((so - 0.005 / 0.01 * 252f64.sqrt()).abs() < 1e-12);
        assert_eq!(sortino(&[0.01, 0.02], 365.0), None);
        assert_eq!(sharpe(&[0.01], 365.0), None);
    }
}
