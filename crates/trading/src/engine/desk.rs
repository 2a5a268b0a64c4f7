//! The risk desk of a Kelly-sized backtest: the strategies' measured trades,
//! the Kelly fraction, the confidence levels, the emergency ladder and the
//! pre-trade gate, and the history of what they decided.

use crate::confidence::{Confidence, ConfidenceConfig, LevelChange};
use crate::ladder::{Ladder, LadderConfig, Level, Measures, Transition};
use crate::matching::Side;
use crate::risk::{AccountView, Denial, Gate, GateLimits, OrderRequest, Purpose, TradingState};
use crate::sizing::{entry_quantity, KellyConfig, SizeInputs, TradeWindow};
use crate::universe::Tier;
use crate::Instrument;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Risk settings of a Kelly-sized backtest.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RiskConfig {
    /// Kelly sizing.
    pub kelly: KellyConfig,
    /// Gate limits that are not per tier.
    pub gate: GateLimits,
    /// Emergency ladder thresholds.
    pub ladder: LadderConfig,
    /// Confidence levels.
    pub confidence: ConfidenceConfig,
}

/// What the risk controls decided during a backtest.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskHistory {
    /// Gate denials by reason (every reason, in code order).
    pub denials: Vec<(Denial, u64)>,
    /// Orders the gate approved.
    pub approvals: u64,
    /// Entry signals not sized because the measured edge was ≤ 0.
    pub no_edge: u64,
    /// Entry signals not sized because the confidence level was 1.
    pub confidence_floor: u64,
    /// Ladder transitions.
    pub transitions: Vec<Transition>,
    /// Confidence changes (µs, change), per strategy in market order.
    pub confidence: Vec<(i64, String, LevelChange)>,
    /// The strategies' measured (signalled) round trips.
    pub measured_trades: u64,
}

/// A lane's signalled round trip, priced at the paper engine's fills.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shadow {
    Flat,
    Entering,
    Long(f64),
    Exiting(f64),
}

/// One strategy's measured trades and confidence.
struct Track {
    name: String,
    trades: TradeWindow,
    confidence: Confidence,
}

/// The risk controls shared by every lane.
pub(super) struct Desk {
    config: RiskConfig,
    fee: f64,
    gate: Gate,
    ladder: Ladder,
    tracks: Vec<Track>,
    lane_track: Vec<usize>,
    shadows: Vec<Shadow>,
    paused: bool,
    entries_sized: u64,
    pub(super) history: RiskHistory,
}

/// What sized an approved entry: the measured edge and the throttles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizingNote {
    /// Closed trades measured.
    pub trades: usize,
    /// Wilson lower bound of the win rate (p).
    pub win_rate_lower_bound: f64,
    /// Mean win / mean loss (R; ∞ without a loss).
    pub payoff_ratio: f64,
    /// The risk fraction before throttles.
    pub fraction: f64,
    /// Confidence × ladder throttle.
    pub throttle: f64,
    /// The confidence level.
    pub confidence_level: u8,
}

/// The risk desk's state, for operators.
#[derive(Debug, Clone, PartialEq)]
pub struct DeskView {
    /// Ladder level.
    pub level: Level,
    /// The gate's trading state.
    pub state: TradingState,
    /// Whether an operator paused new entries.
    pub paused: bool,
    /// The ladder's measures.
    pub measures: Measures,
    /// Confidence level per strategy.
    pub confidence: Vec<(String, u8)>,
    /// Denials by reason.
    pub denials: Vec<(Denial, u64)>,
    /// Orders approved.
    pub approvals: u64,
}

/// An entry's sizing context.
pub(super) struct EntryContext<'a> {
    pub lane: usize,
    pub time_us: i64,
    pub instrument: &'a Instrument,
    pub tier: &'a Tier,
    pub price: Decimal,
    pub account: AccountView,
}

impl Desk {
    /// A desk for lanes running the named strategies (lanes with the same
    /// name share one measured track record).
    pub(super) fn new(config: RiskConfig, fee: Decimal, cash: Decimal, names: &[String]) -> Self {
        let mut tracks: Vec<Track> = Vec::new();
        let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
        let lane_track = names
            .iter()
            .map(|name| {
                *by_name.entry(name.as_str()).or_insert_with(|| {
                    tracks.push(Track {
                        name: name.clone(),
                        trades: TradeWindow::new(
                            config.kelly.kelly_window.max(config.confidence.window),
                        ),
                        confidence: Confidence::new(config.confidence),
                    });
                    tracks.len() - 1
                })
            })
            .collect();
        Self {
            config,
            fee: fee.to_f64().unwrap_or(0.0),
            gate: Gate::new(config.gate),
            ladder: Ladder::new(config.ladder, cash.to_f64().unwrap_or(0.0)),
            tracks,
            lane_track,
            shadows: vec![Shadow::Flat; names.len()],
            paused: false,
            entries_sized: 0,
            history: RiskHistory {
                denials: Vec::new(),
                approvals: 0,
                no_edge: 0,
                confidence_floor: 0,
                transitions: Vec::new(),
                confidence: Vec::new(),
                measured_trades: 0,
            },
        }
    }

    /// Fills lane's pending signalled entry or exit at this bar's open.
    pub(super) fn on_bar_open(&mut self, lane: usize, time_us: i64, open: f64) {
        let shadow = &mut self.shadows[lane];
        match *shadow {
            Shadow::Entering => *shadow = Shadow::Long(open),
            Shadow::Exiting(entry) => {
                *shadow = Shadow::Flat;
                let r = open * (1.0 - self.fee) / (entry * (1.0 + self.fee)) - 1.0;
                let track = &mut self.tracks[self.lane_track[lane]];
                track.trades.push(r);
                self.history.measured_trades += 1;
                if let Some(change) = track.confidence.on_trade_closed(&track.trades) {
                    self.history
                        .confidence
                        .push((time_us, track.name.clone(), change));
                }
            }
            Shadow::Flat | Shadow::Long(_) => {}
        }
    }

    /// Records lane's signal for its measured round trip.
    pub(super) fn on_signal(&mut self, lane: usize, enter: bool, exit: bool) {
        let shadow = &mut self.shadows[lane];
        match *shadow {
            Shadow::Flat if enter => *shadow = Shadow::Entering,
            Shadow::Long(entry) if exit => *shadow = Shadow::Exiting(entry),
            _ => {}
        }
    }

    /// The quote budget of an entry the gate approved and what sized it,
    /// or `None`.
    pub(super) fn entry(&mut self, ctx: &EntryContext) -> Option<(Decimal, SizingNote)> {
        self.entries_sized += 1;
        let track = &self.tracks[self.lane_track[ctx.lane]];
        let stats = track.trades.stats(self.config.kelly.kelly_window);
        let fraction = self.config.kelly.risk_fraction(&track.trades, ctx.tier);
        if fraction <= 0.0 {
            self.history.no_edge += 1;
            return None;
        }
        let confidence = track.confidence.throttle();
        if confidence <= 0.0 {
            self.history.confidence_floor += 1;
            return None;
        }
        // Outside GREEN/YELLOW the gate denies on the state whatever the size.
        let level = self.ladder.level().throttle();
        let throttle = confidence * if level > 0.0 { level } else { 1.0 };
        let inputs = SizeInputs {
            equity: ctx.account.equity,
            price: ctx.price,
            stop_distance: None,
            free_cash: ctx.account.free_cash,
            position_value: ctx.account.position * ctx.price,
            fee: self.config.gate.fee,
        };
        let raw = entry_quantity(fraction, throttle, ctx.tier, &inputs);
        let quantity = ctx.instrument.floor_quantity(raw);
        let order = OrderRequest {
            instrument: ctx.instrument,
            tier: ctx.tier,
            side: Side::Buy,
            quantity,
            price: ctx.price,
            priced: false,
            purpose: Purpose::Trade,
        };
        let note = SizingNote {
            trades: stats.trades,
            win_rate_lower_bound: stats.win_rate_lower_bound,
            payoff_ratio: stats.payoff_ratio,
            fraction,
            throttle,
            confidence_level: track.confidence.level(),
        };
        self.gate.check(ctx.time_us, &order, &ctx.account).ok()?;
        let budget = quantity * ctx.price * (Decimal::ONE + self.config.gate.fee);
        Some((budget, note))
    }

    /// Whether a sell of the whole position (`flatten`: by the ladder)
    /// passes the gate.
    pub(super) fn exit(&mut self, ctx: &EntryContext, flatten: bool) -> bool {
        let order = OrderRequest {
            instrument: ctx.instrument,
            tier: ctx.tier,
            side: Side::Sell,
            quantity: ctx.account.position,
            price: ctx.price,
            priced: false,
            purpose: if flatten {
                Purpose::Flatten
            } else {
                Purpose::Trade
            },
        };
        self.gate.check(ctx.time_us, &order, &ctx.account).is_ok()
    }

    /// Replaces the risk settings (an operator's reload); the measured
    /// trades, levels and counters stay.
    pub(super) fn set_config(&mut self, config: RiskConfig) {
        self.config = config;
        self.gate.set_limits(config.gate);
        self.ladder.set_config(config.ladder);
        for track in &mut self.tracks {
            track.confidence.set_config(config.confidence);
        }
    }

    /// Entry signals sized so far (whatever the outcome).
    pub(super) fn entries_sized(&self) -> u64 {
        self.entries_sized
    }

    /// Today's loss as the gate sees it.
    pub(super) fn day_loss(&self) -> Decimal {
        Decimal::from_f64(self.ladder.measures().daily_loss).unwrap_or_default()
    }

    /// Marks equity; returns the level entered when it must flatten.
    pub(super) fn mark(&mut self, time_us: i64, equity: f64, flat: bool) -> Option<Level> {
        let transition = self.ladder.observe(time_us, equity, flat)?;
        let to = transition.to;
        self.history.transitions.push(transition);
        self.apply_state();
        to.flattens().then_some(to)
    }

    /// The gate's state: the ladder's, at least REDUCING while paused.
    fn apply_state(&mut self) {
        let state = self.ladder.level().state();
        let paused = if self.paused {
            TradingState::Reducing
        } else {
            TradingState::Active
        };
        self.gate.set_state(state.max(paused));
    }

    /// Pauses or resumes new entries; false when already so.
    pub(super) fn set_paused(&mut self, paused: bool) -> bool {
        let changed = self.paused != paused;
        self.paused = paused;
        self.apply_state();
        changed
    }

    /// The kill switch: BLACK, HALTED, every order denied `kill_switch`.
    pub(super) fn kill(&mut self, time_us: i64) {
        self.gate.set_kill_switch(true);
        if let Some(transition) = self.ladder.kill(time_us) {
            self.history.transitions.push(transition);
        }
        self.apply_state();
    }

    /// An operator's reset out of BLACK with a reason; false when the
    /// ladder is not BLACK or the reason is blank.
    pub(super) fn reset(&mut self, time_us: i64, reason: &str) -> bool {
        let Some(transition) = self.ladder.reset(time_us, reason) else {
            return false;
        };
        self.history.transitions.push(transition);
        self.gate.set_kill_switch(false);
        self.apply_state();
        true
    }

    /// The desk's state now.
    pub(super) fn view(&self) -> DeskView {
        DeskView {
            level: self.ladder.level(),
            state: self.gate.state(),
            paused: self.paused,
            measures: self.ladder.measures(),
            confidence: self
                .tracks
                .iter()
                .map(|t| (t.name.clone(), t.confidence.level()))
                .collect(),
            denials: self.gate.denials().collect(),
            approvals: self.gate.approvals(),
        }
    }

    /// Ladder transitions and confidence changes since the last call.
    pub(super) fn take_changes(&mut self) -> (Vec<Transition>, Vec<(i64, String, LevelChange)>) {
        (
            std::mem::take(&mut self.history.transitions),
            std::mem::take(&mut self.history.confidence),
        )
    }

    /// The history, with the gate's counters.
    pub(super) fn finish(mut self) -> RiskHistory {
        self.history.denials = self.gate.denials().collect();
        self.history.approvals = self.gate.approvals();
        self.history
    }
}
