//! The backtest report: trades, the daily equity curve, the metrics and the
//! risk history, as JSON that is byte-identical for the same inputs, and
//! the same report as one self-contained HTML page.

use crate::backtest::{BacktestResult, RiskHistory, Trade};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

mod html;
mod metrics;

pub use html::to_html;

fn time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

fn text(d: Decimal) -> String {
    d.round_dp(8).normalize().to_string()
}

/// A trade's return: its profit over its entry value.
fn trade_return(t: &Trade) -> f64 {
    f(t.pnl) / f(t.entry_price * t.quantity).max(1e-12)
}

/// The report of `result`; `inputs` describes the run (files, strategy,
/// parameters, costs) and is copied in as given.
pub fn to_json(result: &BacktestResult, inputs: Value) -> Value {
    json!({
        "inputs": inputs,
        "trades": result.trades.iter().map(|t| json!({
            "symbol": t.symbol,
            "side": "long",
            "entry_time": time(t.entry_time_us),
            "exit_time": time(t.exit_time_us),
            "entry_price": text(t.entry_price),
            "exit_price": text(t.exit_price),
            "quantity": text(t.quantity),
            "fees": text(t.fees),
            "pnl": text(t.pnl),
            "return_pct": trade_return(t) * 100.0,
        })).collect::<Vec<_>>(),
        "equity": result.equity.iter().map(|(t, e)| json!({"time": time(*t), "equity": text(*e)})).collect::<Vec<_>>(),
        "metrics": metrics::metrics(result),
        "risk": result.risk.as_ref().map_or_else(
            || json!({"enforced": false, "note": "fixed_fraction and all_in sizing check only the instrument's filters and the cash"}),
            risk,
        ),
    })
}

fn pct(x: f64) -> f64 {
    x * 100.0
}

fn risk(history: &RiskHistory) -> Value {
    let denials: Map<String, Value> = history
        .denials
        .iter()
        .map(|(reason, n)| (reason.code().to_string(), json!(n)))
        .collect();
    let denied: u64 = history.denials.iter().map(|(_, n)| n).sum();
    json!({
        "enforced": true,
        "approved": history.approvals,
        "denied_total": denied,
        "denials": denials,
        "skipped": {"no_edge": history.no_edge, "confidence_floor": history.confidence_floor},
        "measured_trades": history.measured_trades,
        "emergency_transitions": history.transitions.iter().map(|t| json!({
            "time": time(t.time_us),
            "from": t.from.name(),
            "to": t.to.name(),
            "state": t.to.state().name(),
            "cause": t.cause,
            "drawdown_pct": pct(t.measures.drawdown),
            "max_drawdown_pct": pct(t.measures.max_drawdown),
            "daily_loss_pct": pct(t.measures.daily_loss),
            "volatility": t.measures.volatility,
            "volatility_median": t.measures.volatility_median,
        })).collect::<Vec<_>>(),
        "confidence": history.confidence.iter().map(|(t, strategy, c)| json!({
            "time": time(*t),
            "strategy": strategy,
            "from": c.from,
            "to": c.to,
            "trades": c.stats.trades,
            "profit_factor": c.stats.profit_factor.is_finite().then_some(c.stats.profit_factor),
            "win_rate_lower_bound": c.stats.win_rate_lower_bound,
        })).collect::<Vec<_>>(),
    })
}
