//! The operator views of the agent's state: status, positions, orders,
//! the equity curve, recent fills and the risk controls, and the measured
//! decision latencies.

use super::{blocks, drawdown, Live};
use crate::agent::views::{
    AgentStatus, DenialCount, EquityCurve, EquityPoint, FillList, LatencyQuantiles, OrderItem,
    PositionItem, ResumeView, RiskStatus, StrategyConfidence,
};
use crate::agent::{AgentError, MODE};
use hdrhistogram::Histogram;
use qunimbus_trading::{OrderKind, OrderSize};
use rust_decimal::prelude::ToPrimitive;
use std::time::Duration;

impl Live {
    pub(in crate::agent) fn status(&self, interval: Duration) -> Result<AgentStatus, AgentError> {
        let s = self.engine.snapshot()?;
        let desk = Self::desk(&s)?;
        let equity = s.equity.to_f64().unwrap_or(0.0);
        let gross = s.equity - s.cash;
        Ok(AgentStatus {
            mode: MODE,
            market: self.market.name(),
            market_ended: self.next_bar_us().is_none(),
            market_error: self
                .stopped
                .clone()
                .or_else(|| self.market.error().map(str::to_string)),
            seed: self.config.seed,
            bar_interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            market_time: self.last_time_us.map(blocks::market_time),
            bars: self.bars,
            symbols: self.symbols,
            trading_state: desk.state.name(),
            emergency_level: desk.level.name(),
            paused: desk.paused,
            confidence: desk
                .confidence
                .iter()
                .map(|(strategy, level)| StrategyConfidence {
                    strategy: strategy.clone(),
                    level: *level,
                })
                .collect(),
            equity: s.equity.normalize().to_string(),
            cash: s.cash.normalize().to_string(),
            peak_equity: s.peak_equity,
            drawdown: drawdown(equity, s.peak_equity),
            daily_pnl: (s.equity - self.day_start_equity).normalize().to_string(),
            gross_exposure: gross.normalize().to_string(),
            fees_paid: s.fees_paid.normalize().to_string(),
            fills: self.fills_total,
            trades_closed: s.trades,
            open_positions: s.positions.iter().filter(|p| !p.quantity.is_zero()).count(),
            session_block: self.session_block,
            resumed: self.replayed.map(|(blocks, bars, millis)| ResumeView {
                blocks,
                bars,
                millis,
            }),
            refused: self.refused.clone(),
            resuming: self.resuming,
            decision_latency: self.decisions.quantiles(),
            sizing_latency: self.sizings.quantiles(),
            pending_blocks: self.pending.len(),
            ledger_error: self.ledger_error.clone(),
            eph_feed: None,
        })
    }

    pub(in crate::agent) fn positions(&self) -> Result<Vec<PositionItem>, AgentError> {
        let s = self.engine.snapshot()?;
        Ok(s.positions
            .iter()
            .filter(|p| !p.quantity.is_zero())
            .map(|p| {
                let quantity = p.quantity.to_f64().unwrap_or(0.0);
                PositionItem {
                    symbol: p.symbol.clone(),
                    quantity: p.quantity.normalize().to_string(),
                    entry_price: p.entry_price.map(|e| e.normalize().to_string()),
                    last_price: p.last_price,
                    value: quantity * p.last_price,
                    unrealised_pnl: p
                        .entry_price
                        .and_then(|e| e.to_f64())
                        .map(|e| (p.last_price - e) * quantity),
                }
            })
            .collect())
    }

    pub(in crate::agent) fn orders(&self) -> Result<Vec<OrderItem>, AgentError> {
        let s = self.engine.snapshot()?;
        Ok(s.positions
            .iter()
            .flat_map(|p| {
                p.orders.iter().map(|o| OrderItem {
                    order_id: blocks::order_id(&p.symbol, o.id),
                    symbol: p.symbol.clone(),
                    side: blocks::side_name(o.side),
                    kind: match o.kind {
                        OrderKind::Market => "market".into(),
                        OrderKind::Limit(p) => format!("limit {}", p.normalize()),
                        OrderKind::Stop(p) => format!("stop {}", p.normalize()),
                    },
                    size: match o.size {
                        OrderSize::Base(q) => q.normalize().to_string(),
                        OrderSize::Quote(q) => format!("{} quote", q.normalize()),
                    },
                })
            })
            .collect())
    }

    pub(in crate::agent) fn equity_curve(&self) -> EquityCurve {
        EquityCurve {
            points: self
                .curve
                .iter()
                .map(|&(time, equity, drawdown)| EquityPoint {
                    market_time: blocks::market_time(time),
                    equity,
                    drawdown,
                })
                .collect(),
        }
    }

    pub(in crate::agent) fn fills(&self, limit: usize) -> FillList {
        FillList {
            total: self.fills_total,
            fills: self
                .recent
                .iter()
                .rev()
                .take(limit)
                .map(|(_, f)| f.clone())
                .collect(),
        }
    }

    pub(in crate::agent) fn risk(&self) -> Result<RiskStatus, AgentError> {
        let s = self.engine.snapshot()?;
        let desk = Self::desk(&s)?;
        let m = desk.measures;
        Ok(RiskStatus {
            limits: self.limits.clone(),
            approvals: desk.approvals,
            denials: desk
                .denials
                .iter()
                .map(|(d, count)| DenialCount {
                    reason: d.code(),
                    count: *count,
                })
                .collect(),
            drawdown: m.drawdown,
            max_drawdown: m.max_drawdown,
            daily_loss: m.daily_loss,
            volatility: m.volatility,
            volatility_median: m.volatility_median,
            ladder_history: self.ladder.iter().map(|(_, l)| l.clone()).collect(),
        })
    }
}

/// Exact-enough latencies (1 ns .. 60 s, 3 significant digits) and the
/// exact maximum.
pub(super) struct Latency {
    hist: Option<Histogram<u64>>,
    max_ns: u64,
}

impl Latency {
    pub(in crate::agent) fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).ok(),
            max_ns: 0,
        }
    }

    pub(in crate::agent) fn record(&mut self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        if let Some(h) = &mut self.hist {
            h.saturating_record(ns);
        }
        self.max_ns = self.max_ns.max(ns);
    }

    fn quantiles(&self) -> Option<LatencyQuantiles> {
        let h = self.hist.as_ref().filter(|h| !h.is_empty())?;
        let at = |q: f64| h.value_at_quantile(q).min(self.max_ns) as f64 / 1000.0;
        Some(LatencyQuantiles {
            count: h.len(),
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us: self.max_ns as f64 / 1000.0,
        })
    }
}
