//! The ledger payloads of the agent's audit trail (SPEC §8): a `trade`
//! block per fill, a `risk` block per emergency-level, confidence or
//! operator change, a `config` block when the agent starts.

use qunimbus_core::time::rfc3339_micros;
use qunimbus_trading::confidence::LevelChange;
use qunimbus_trading::engine::FillRecord;
use qunimbus_trading::ladder::{Measures, Transition};
use qunimbus_trading::risk::Purpose;
use qunimbus_trading::Side;
use serde_json::{json, Value};

/// RFC 3339 text of a market time (µs).
pub(super) fn market_time(time_us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(time_us)
        .map(rfc3339_micros)
        .unwrap_or_else(|| time_us.to_string())
}

/// `buy` or `sell`.
pub(super) fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// `SYMBOL-n`: unique per symbol for the agent's life.
pub(super) fn order_id(symbol: &str, id: u64) -> String {
    format!("{symbol}-{id}")
}

/// A finite number, or `null` (JSON holds no ∞).
fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

pub(super) use crate::ledger::event_draft as draft;

/// A fill's `trade` payload: what filled, at what price and fee, which
/// strategy, what the order was for (a strategy's entry or exit, or a
/// flatten by the ladder or an operator) and what sized it.
pub(super) fn fill_payload(record: &FillRecord) -> Value {
    let f = &record.fill;
    let purpose = match (f.side, record.purpose) {
        (_, Purpose::Flatten) => "flatten",
        (Side::Buy, Purpose::Trade) => "entry",
        (Side::Sell, Purpose::Trade) => "exit",
    };
    let sizing = record.sizing.map(|s| {
        json!({
            "closed_trades": s.trades,
            "p": finite(s.win_rate_lower_bound),
            "R": finite(s.payoff_ratio),
            "fraction": finite(s.fraction),
            "throttle": finite(s.throttle),
            "confidence_level": s.confidence_level,
        })
    });
    json!({
        "event": "fill",
        "mode": super::MODE,
        "symbol": record.symbol,
        "side": side_name(f.side),
        "quantity": f.quantity.normalize().to_string(),
        "price": f.price.normalize().to_string(),
        "fee": f.fee.normalize().to_string(),
        "notional": (f.price * f.quantity).normalize().to_string(),
        "order_id": order_id(&record.symbol, f.order_id),
        "strategy": record.strategy,
        "market_time": market_time(f.time_us),
        "purpose": purpose,
        "sizing": sizing,
    })
}

fn measures(m: &Measures) -> Value {
    json!({
        "drawdown": finite(m.drawdown),
        "max_drawdown": finite(m.max_drawdown),
        "daily_loss": finite(m.daily_loss),
        "volatility": finite(m.volatility),
        "volatility_median": finite(m.volatility_median),
    })
}

/// A ladder transition's `risk` payload, with the measures that caused it.
pub(super) fn transition_payload(t: &Transition) -> Value {
    json!({
        "event": "emergency_level",
        "from": t.from.name(),
        "to": t.to.name(),
        "trading_state": t.to.state().name(),
        "cause": t.cause,
        "measures": measures(&t.measures),
        "market_time": market_time(t.time_us),
    })
}

/// A confidence change's `risk` payload, with the measured trades.
pub(super) fn confidence_payload(time_us: i64, strategy: &str, change: &LevelChange) -> Value {
    let s = &change.stats;
    json!({
        "event": "confidence_level",
        "strategy": strategy,
        "from": change.from,
        "to": change.to,
        "measured": {
            "trades": s.trades,
            "wins": s.wins,
            "win_rate_lower_bound": finite(s.win_rate_lower_bound),
            "profit_factor": finite(s.profit_factor),
        },
        "market_time": market_time(time_us),
    })
}

/// What an operator's command found and left.
pub(super) struct CommandRecord<'a> {
    pub action: &'a str,
    pub reason: &'a str,
    /// Time steps the agent had processed (where a replay applies it).
    pub steps: u64,
    pub market_time_us: i64,
    pub before: (&'a str, &'a str),
    pub after: (&'a str, &'a str),
    pub measures: Measures,
}

/// An operator command's `risk` payload.
pub(super) fn command_payload(c: &CommandRecord) -> Value {
    json!({
        "event": "operator",
        "action": c.action,
        "reason": c.reason,
        "actor": "admin",
        "steps": c.steps,
        "before": {"emergency_level": c.before.0, "trading_state": c.before.1},
        "after": {"emergency_level": c.after.0, "trading_state": c.after.1},
        "measures": measures(&c.measures),
        "market_time": market_time(c.market_time_us),
    })
}
