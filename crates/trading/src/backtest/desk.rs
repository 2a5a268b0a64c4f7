//! The risk desk of a Kelly-sized backtest: the strategies' measured trades,
//! the Kelly fraction, the confidence levels, the emergency ladder and the
//! pre-trade gate, and the history of what they decided.

use crate::confidence::{Confidence, ConfidenceConfig, LevelChange};
use crate::ladder::{Ladder, LadderConfig, Level, Transition};
use crate::matching::Side;
use crate::risk::{AccountView, Denial, Gate, GateLimits, OrderRequest, Purpose};
use crate::sizing::{entry_quantity, KellyConfig, SizeInputs, TradeWindow};
use crate::universe::Tier;
use crate::Instrument;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;

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
    pub(super) history: RiskHistory,
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
        let mut lane_track = Vec::with_capacity(names.len());
        for name in names {
            let index = tracks
                .iter()
                .position(|t| &t.name == name)
                .unwrap_or_else(|| {
                    tracks.push(Track {
                        name: name.clone(),
                        trades: TradeWindow::new(
                            config.kelly.kelly_window.max(config.confidence.window),
                        ),
                        confidence: Confidence::new(config.confidence),
                    });
                    tracks.len() - 1
                });
            lane_track.push(index);
        }
        Self {
            config,
            fee: fee.to_f64().unwrap_or(0.0),
            gate: Gate::new(config.gate),
            ladder: Ladder::new(config.ladder, cash.to_f64().unwrap_or(0.0)),
            tracks,
            lane_track,
            shadows: vec![Shadow::Flat; names.len()],
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

    /// The quote budget of an entry the gate approved, or `None`.
    pub(super) fn entry(&mut self, ctx: &EntryContext) -> Option<Decimal> {
        let track = &self.tracks[self.lane_track[ctx.lane]];
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
        self.gate.check(ctx.time_us, &order, &ctx.account).ok()?;
        Some(quantity * ctx.price * (Decimal::ONE + self.config.gate.fee))
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

    /// Today's loss as the gate sees it.
    pub(super) fn day_loss(&self) -> Decimal {
        Decimal::from_f64(self.ladder.measures().daily_loss).unwrap_or_default()
    }

    /// Marks equity; returns the level entered when it must flatten.
    pub(super) fn mark(&mut self, time_us: i64, equity: f64, flat: bool) -> Option<Level> {
        let transition = self.ladder.observe(time_us, equity, flat)?;
        let to = transition.to;
        self.gate.set_state(to.state());
        self.history.transitions.push(transition);
        to.flattens().then_some(to)
    }

    /// The history, with the gate's counters.
    pub(super) fn finish(mut self) -> RiskHistory {
        self.history.denials = self.gate.denials().collect();
        self.history.approvals = self.gate.approvals();
        self.history
    }
}
