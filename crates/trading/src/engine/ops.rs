//! The engine as the live agent uses it: what it holds now, what changed
//! since the last look (for the ledger), and the operator's controls.

use super::{Engine, EngineError, Trade};
use crate::confidence::LevelChange;
use crate::engine::desk::{DeskView, SizingNote};
use crate::ladder::Transition;
use crate::matching::{Fill, Order};
use crate::risk::Purpose;
use rust_decimal::Decimal;

/// One fill, with what it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct FillRecord {
    /// Lane index.
    pub lane: usize,
    /// The instrument's symbol.
    pub symbol: String,
    /// The lane's strategy.
    pub strategy: String,
    /// The execution.
    pub fill: Fill,
    /// What sized it (Kelly entries only).
    pub sizing: Option<SizingNote>,
    /// A strategy's order, or a flatten (the ladder's or an operator's).
    pub purpose: Purpose,
}

/// What happened since the journal was last taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Journal {
    /// Fills, in order.
    pub fills: Vec<FillRecord>,
    /// Round trips closed, in exit order.
    pub trades: Vec<Trade>,
    /// Ladder transitions, with the measures that caused them.
    pub transitions: Vec<Transition>,
    /// Confidence changes (µs, strategy, change).
    pub confidence: Vec<(i64, String, LevelChange)>,
}

/// One lane's position.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionView {
    /// The symbol.
    pub symbol: String,
    /// Base quantity held.
    pub quantity: Decimal,
    /// The last close seen (0 before the first bar).
    pub last_price: f64,
    /// Entry price of the open position.
    pub entry_price: Option<Decimal>,
    /// Working orders.
    pub orders: Vec<Order>,
}

/// The engine's state now.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Cash plus positions at their last closes, exactly.
    pub equity: Decimal,
    /// Quote balance.
    pub cash: Decimal,
    /// Fees paid.
    pub fees_paid: Decimal,
    /// Highest equity marked.
    pub peak_equity: f64,
    /// Every lane's position (flat lanes included).
    pub positions: Vec<PositionView>,
    /// Round trips closed.
    pub trades: u64,
    /// The risk desk (Kelly sizing only).
    pub desk: Option<DeskView>,
}

impl Engine {
    /// The state now.
    pub fn snapshot(&self) -> Result<Snapshot, EngineError> {
        let run = &self.run;
        let positions = self
            .lanes
            .iter()
            .zip(&run.portfolio.positions)
            .zip(&run.closes)
            .map(|((lane, quantity), close)| PositionView {
                symbol: lane.spec.instrument.symbol.clone(),
                quantity: *quantity,
                last_price: *close,
                entry_price: lane.entry.as_ref().map(|e| e.fill.price),
                orders: lane.book.working().to_vec(),
            })
            .collect();
        Ok(Snapshot {
            equity: run.exact_equity(&self.lanes)?,
            cash: run.portfolio.cash,
            fees_paid: run.portfolio.fees_paid,
            peak_equity: run.peak,
            positions,
            trades: run.trades_closed,
            desk: run.desk.as_ref().map(|d| d.view()),
        })
    }

    /// Fills, ladder transitions and confidence changes since the last call
    /// (the live agent writes them to the ledger).
    pub fn take_journal(&mut self) -> Journal {
        let (transitions, confidence) = self
            .run
            .desk
            .as_mut()
            .map(|d| d.take_changes())
            .unwrap_or_default();
        let lanes = &self.lanes;
        let fills = std::mem::take(&mut self.run.fills)
            .into_iter()
            .map(|(lane, fill, sizing, purpose)| FillRecord {
                lane,
                symbol: lanes[lane].spec.instrument.symbol.clone(),
                strategy: lanes[lane].spec.strategy_name.clone(),
                fill,
                sizing,
                purpose,
            })
            .collect();
        Journal {
            fills,
            trades: std::mem::take(&mut self.run.result.trades),
            transitions,
            confidence,
        }
    }

    /// Entry signals sized so far: a cheap counter to tell whether a bar
    /// led to a sizing decision.
    pub fn entries_sized(&self) -> u64 {
        self.run.desk.as_ref().map_or(0, |d| d.entries_sized())
    }

    /// Replaces the risk settings of a Kelly-sized engine (an operator's
    /// reload); false without a risk desk.
    pub fn set_risk(&mut self, config: crate::engine::RiskConfig) -> bool {
        let Some(desk) = self.run.desk.as_mut() else {
            return false;
        };
        desk.set_config(config);
        self.sizing = crate::engine::Sizing::Kelly(config);
        true
    }

    /// Pauses (`true`: reduce-only) or resumes new entries; false when
    /// there is no risk desk or nothing changed.
    pub fn set_paused(&mut self, paused: bool) -> bool {
        self.run.desk.as_mut().is_some_and(|d| d.set_paused(paused))
    }

    /// The kill switch at `time_us`: BLACK, every order cancelled, every
    /// position sold at the next open; false without a risk desk.
    pub fn kill(&mut self, time_us: i64) -> Result<bool, EngineError> {
        let Some(desk) = self.run.desk.as_mut() else {
            return Ok(false);
        };
        desk.kill(time_us);
        self.run.flatten(&mut self.lanes)?;
        Ok(true)
    }

    /// Cancels every order and sells every position at the next open
    /// (an operator's flatten; the trading state does not change).
    pub fn flatten(&mut self) -> Result<(), EngineError> {
        self.run.flatten(&mut self.lanes)
    }

    /// Leaves BLACK with an operator's reason; false when not BLACK or the
    /// reason is blank.
    pub fn reset(&mut self, time_us: i64, reason: &str) -> bool {
        self.run
            .desk
            .as_mut()
            .is_some_and(|d| d.reset(time_us, reason))
    }
}
