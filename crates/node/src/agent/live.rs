//! The agent's engine and market between ticks: stepping a bar, turning
//! the engine's journal into blocks and views, applying commands, and the
//! operator views.

use super::blocks::{self, CommandRecord};
use super::market::{self, MarketSource};
use super::views::{FillItem, LadderItem, RiskLimits, TierLimits};
use super::{AgentError, Command, MODE};
use crate::config::{AgentConfig, AgentPlan, RELOADABLE};
use crate::metrics::{Metrics, ModeLabel, OutcomeLabel, ReasonLabel, StrategyLabel};
use qunimbus_ledger::block::{Block, BlockDraft, BlockKind};
use qunimbus_trading::engine::{DeskView, Engine, Journal, RiskConfig, Sizing, Snapshot};
use qunimbus_trading::ladder::Level;
use qunimbus_trading::risk::{Denial, TradingState};
use qunimbus_trading::Side;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Instant;

mod reports;

use reports::Latency;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The `change` of a session's start block.
pub(super) const SESSION_STARTED: &str = "trading agent started";

/// The `change` of an operator's reload of the agent's settings.
pub(super) const RELOADED: &str = "trading agent settings reloaded";

/// Whether `block` belongs to an agent session's trail: every `trade` and
/// `risk` block, and the `config` blocks of reloads (not the policy's).
pub(super) fn is_trail(block: &Block) -> bool {
    match block.kind {
        BlockKind::Trade | BlockKind::Risk => true,
        BlockKind::Config => {
            block
                .payload
                .as_ref()
                .and_then(|p| p.get("change"))
                .and_then(Value::as_str)
                == Some(RELOADED)
        }
        _ => false,
    }
}

/// Ladder transitions kept for `GET /v1/agent/risk`.
const LADDER_HISTORY: usize = 200;

/// Equity marks kept for `GET /v1/agent/equity` (one market day of bars).
const CURVE_POINTS: usize = 1440;

/// What a waiting block records, so its index can be noted once written.
#[derive(Debug, Clone, Copy)]
pub(super) enum Tag {
    Fill(u64),
    Transition(u64),
    /// An operator's command or reload, numbered.
    Command(u64),
    Session,
    Other,
}

/// The engine, its market and what the agent has recorded.
pub(super) struct Live {
    engine: Engine,
    config: AgentConfig,
    market: MarketSource,
    symbols: usize,
    limits: RiskLimits,
    frameworks: Vec<String>,
    last_time_us: Option<i64>,
    bars: u64,
    steps: u64,
    day: Option<i64>,
    day_start_equity: Decimal,
    fills_total: u64,
    recent: VecDeque<(u64, FillItem)>,
    ladder: VecDeque<(u64, LadderItem)>,
    curve: VecDeque<(i64, f64, f64)>,
    transitions_total: u64,
    counted: (u64, Vec<u64>),
    decisions: Latency,
    sizings: Latency,
    /// Blocks waiting to be written, in order.
    pub(super) pending: VecDeque<(BlockDraft, Tag)>,
    /// Operator changes queued so far (their blocks' numbers).
    pub(super) commands_queued: u64,
    /// The newest operator change written: (its number, block index).
    pub(super) last_command_block: Option<(u64, u64)>,
    /// The session's start block, once written (or found on resume).
    pub(super) session_block: Option<u64>,
    /// What the replay at start did: (blocks reconciled, bars, milliseconds).
    pub(super) replayed: Option<(u64, u64, u64)>,
    /// Why the agent refuses to trade (the ledger and the replay disagree).
    pub(super) refused: Option<String>,
    /// A stand-in while the session is replayed (it does not trade).
    pub(super) resuming: bool,
    /// Why the market stopped (a bar the engine refused).
    stopped: Option<String>,
    /// Wall-clock ms of the session's start block (bounds a replay).
    pub(super) session_started_ms: Option<i64>,
    /// The last ledger write failure, while blocks wait.
    pub(super) ledger_error: Option<String>,
}

/// Creates every order outcome and denial reason at 0, so each series
/// exists (and `rate()` works) from the agent's start.
pub(super) fn zero_series(metrics: &Metrics) {
    for outcome in ["approved", "denied", "filled"] {
        metrics
            .agent
            .orders
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc_by(0);
    }
    for denial in Denial::ALL {
        metrics
            .agent
            .denied
            .get_or_create(&ReasonLabel {
                reason: denial.code().into(),
            })
            .inc_by(0);
    }
}

fn level_number(level: Level) -> i64 {
    match level {
        Level::Green => 0,
        Level::Yellow => 1,
        Level::Orange => 2,
        Level::Red => 3,
        Level::Black => 4,
    }
}

fn state_number(state: TradingState) -> i64 {
    match state {
        TradingState::Active => 0,
        TradingState::Reducing => 1,
        TradingState::Halted => 2,
    }
}

/// Every tier's limits (the EPH tier's last, when it trades).
fn tier_limits(plan: &AgentPlan) -> Vec<TierLimits> {
    let eph = plan
        .eph
        .as_ref()
        .and_then(|e| plan.lanes.get(e.first_lane))
        .map(|l| &l.tier);
    plan.universe
        .tiers
        .values()
        .chain(eph)
        .map(|t| TierLimits {
            tier: t.id,
            max_position_pct: t.max_position_pct.normalize().to_string(),
            max_kelly_fraction: t.max_kelly_fraction.normalize().to_string(),
            max_notional_per_order: t.max_notional_per_order.normalize().to_string(),
        })
        .collect()
}

fn limits_view(risk: &RiskConfig, tiers: Vec<TierLimits>) -> RiskLimits {
    let l = &risk.ladder;
    RiskLimits {
        kelly_fraction: risk.kelly.kelly_fraction,
        kelly_window: risk.kelly.kelly_window,
        min_trades: risk.kelly.min_trades,
        probe_fraction: risk.kelly.probe_fraction,
        max_gross_exposure: risk.gate.max_gross_exposure.normalize().to_string(),
        daily_loss_limit: risk.gate.daily_loss_limit.normalize().to_string(),
        orders_per_second: risk.gate.orders_per_second,
        order_burst: risk.gate.order_burst,
        ladder_drawdowns: [
            l.yellow_drawdown,
            l.orange_drawdown,
            l.red_drawdown,
            l.black_drawdown,
        ],
        ladder_cooldown_secs: l.cooldown_us / 1_000_000,
        tiers,
    }
}

/// The settings a session trades under, as its start block records them
/// (a restart with the same settings resumes the session).
pub(super) fn session_settings(config: &AgentConfig, plan: &AgentPlan) -> Value {
    let mut strategies: Vec<String> = plan.lanes.iter().map(|l| l.strategy_name.clone()).collect();
    strategies.sort();
    strategies.dedup();
    json!({
        "change": SESSION_STARTED,
        "mode": MODE,
        "market": MarketSource::describe(plan),
        "seed": config.seed,
        "cash": plan.cash.normalize().to_string(),
        "fee": plan.costs.taker_fee.normalize().to_string(),
        "slippage_bps": plan.costs.slippage_bps.normalize().to_string(),
        "universe": config.universe_file.as_deref().map_or(json!("built-in"), market::digest),
        // The engine's build: another version may decide differently.
        "engine": env!("CARGO_PKG_VERSION"),
        "symbols": plan.lanes.iter().map(|l| l.instrument.symbol.as_str()).collect::<Vec<_>>(),
        "strategies": strategies,
        "lanes": plan.lanes.iter().map(|l| l.strategy_name.as_str()).collect::<Vec<_>>(),
        "eph": plan.eph.as_ref().map(|e| json!({
            "regions": e.regions,
            "partner_region": e.partner_region,
        })),
        "limits": limits_view(&plan.risk, tier_limits(plan)),
        "reloadable": config.reloadable(),
    })
}

/// How a `Live` begins.
pub(super) enum Session {
    /// A new session from the configured cash; its start block is queued
    /// with the bar interval, the market's start and the session it replaces.
    New {
        /// `settings` from [`session_settings`].
        settings: Value,
        /// The session it replaces (its block and what changed), if any.
        previous: Option<Value>,
    },
    /// The session recorded at this block, to be replayed.
    Resume(u64),
}

impl Live {
    pub(super) fn new(
        config: &AgentConfig,
        plan: AgentPlan,
        start_us: i64,
        frameworks: Vec<String>,
        session: Session,
        feed: Option<market::EphFeed<'_>>,
    ) -> Self {
        let live = matches!(session, Session::New { .. });
        let instruments: Vec<_> = plan.lanes.iter().map(|l| l.instrument.clone()).collect();
        let limits = limits_view(&plan.risk, tier_limits(&plan));
        let (pending, session_block) = match session {
            Session::New {
                mut settings,
                previous,
            } => {
                settings["bar_interval_ms"] = json!(config.bar_interval_ms);
                settings["market_start"] = json!(blocks::market_time(start_us));
                settings["previous_session"] = previous.unwrap_or(Value::Null);
                let draft = blocks::draft(BlockKind::Config, &frameworks, settings);
                (VecDeque::from([(draft, Tag::Session)]), None)
            }
            Session::Resume(index) => (VecDeque::new(), Some(index)),
        };
        let market = MarketSource::open(&plan, config.seed, start_us, feed, live);
        let engine = Engine::new(plan.lanes, plan.cash, plan.costs, Sizing::Kelly(plan.risk));
        Self {
            market,
            engine,
            config: config.clone(),
            symbols: instruments.len(),
            limits,
            frameworks,
            last_time_us: None,
            bars: 0,
            steps: 0,
            day: None,
            day_start_equity: plan.cash,
            fills_total: 0,
            recent: VecDeque::new(),
            ladder: VecDeque::new(),
            curve: VecDeque::new(),
            transitions_total: 0,
            counted: (0, Vec::new()),
            decisions: Latency::new(),
            sizings: Latency::new(),
            pending,
            commands_queued: 0,
            last_command_block: None,
            session_block,
            replayed: None,
            refused: None,
            resuming: false,
            stopped: None,
            session_started_ms: None,
            ledger_error: None,
        }
    }

    /// The ledger frameworks the agent's blocks are attested under.
    pub(super) fn frameworks(&self) -> &[String] {
        &self.frameworks
    }

    /// The session is replayed: the EPH lanes take the feed's prices.
    pub(super) fn go_live(&mut self) {
        self.market.go_live();
    }

    /// The next market minute: every symbol's bar through the engine
    /// (each timed), then the journal to blocks and the gauges.
    pub(super) fn step(&mut self, metrics: &Metrics) {
        if self.stopped.is_some() {
            return;
        }
        if let Err(e) = self.step_bars(metrics) {
            // The same bar stops the replay of this session at the same
            // point: what the bar did before the error is recorded.
            tracing::error!(error = %e, "the agent's market stopped at a bar the engine refused");
            self.stopped = Some(e.to_string());
            let journal = self.engine.take_journal();
            self.record(journal, metrics);
        }
    }

    fn step_bars(&mut self, metrics: &Metrics) -> Result<(), AgentError> {
        let Some(time) = self.next_bar_us() else {
            return Ok(());
        };
        let day = time.div_euclid(MICROS_PER_DAY);
        if self.day != Some(day) {
            self.day = Some(day);
            self.day_start_equity = self.engine.snapshot()?.equity;
        }
        self.engine.begin_step(time)?;
        let mut count = 0u64;
        let Self {
            market,
            engine,
            decisions,
            sizings,
            ..
        } = self;
        market.step(time, |lane, bar| {
            count += 1;
            let sized = engine.entries_sized();
            let started = Instant::now();
            engine.on_bar(lane, bar)?;
            let took = started.elapsed();
            metrics.agent.decision_seconds.observe(took.as_secs_f64());
            decisions.record(took);
            if engine.entries_sized() != sized {
                metrics.agent.sizing_seconds.observe(took.as_secs_f64());
                sizings.record(took);
            }
            Ok(())
        })?;
        self.engine.mark(time)?;
        self.bars += count;
        self.steps += 1;
        metrics.agent.bars.inc_by(count);
        self.last_time_us = Some(time);
        let journal = self.engine.take_journal();
        self.record(journal, metrics);
        let (equity, drawdown) = self.publish(metrics)?;
        self.curve.push_back((time, equity, drawdown));
        if self.curve.len() > CURVE_POINTS {
            self.curve.pop_front();
        }
        Ok(())
    }

    /// Queues the journal's blocks and keeps its fills and transitions for
    /// the operator views.
    fn record(&mut self, journal: Journal, metrics: &Metrics) {
        let filled = journal.fills.len() as u64;
        if filled > 0 {
            metrics
                .agent
                .orders
                .get_or_create(&OutcomeLabel {
                    outcome: "filled".into(),
                })
                .inc_by(filled);
        }
        for record in &journal.fills {
            self.fills_total += 1;
            let seq = self.fills_total;
            let payload = blocks::fill_payload(record);
            self.pending.push_back((
                blocks::draft(BlockKind::Trade, &self.frameworks, payload),
                Tag::Fill(seq),
            ));
            let f = &record.fill;
            self.recent.push_back((
                seq,
                FillItem {
                    block_index: None,
                    market_time: blocks::market_time(f.time_us),
                    order_id: blocks::order_id(&record.symbol, f.order_id),
                    symbol: record.symbol.clone(),
                    side: blocks::side_name(f.side),
                    quantity: f.quantity.normalize().to_string(),
                    price: f.price.normalize().to_string(),
                    fee: f.fee.normalize().to_string(),
                    strategy: record.strategy.clone(),
                },
            ));
            if self.recent.len() > self.config.recent_fills {
                self.recent.pop_front();
            }
        }
        for t in &journal.transitions {
            self.transitions_total += 1;
            let seq = self.transitions_total;
            self.pending.push_back((
                blocks::draft(
                    BlockKind::Risk,
                    &self.frameworks,
                    blocks::transition_payload(t),
                ),
                Tag::Transition(seq),
            ));
            self.ladder.push_back((
                seq,
                LadderItem {
                    block_index: None,
                    market_time: blocks::market_time(t.time_us),
                    from: t.from.name(),
                    to: t.to.name(),
                    cause: t.cause.clone(),
                    drawdown: t.measures.drawdown,
                    daily_loss: t.measures.daily_loss,
                },
            ));
            if self.ladder.len() > LADDER_HISTORY {
                self.ladder.pop_front();
            }
        }
        for (time, strategy, change) in &journal.confidence {
            let payload = blocks::confidence_payload(*time, strategy, change);
            self.pending.push_back((
                blocks::draft(BlockKind::Risk, &self.frameworks, payload),
                Tag::Other,
            ));
        }
    }

    /// Notes the indexes of the blocks just written.
    pub(super) fn written(&mut self, written: &[Block]) {
        let pending = std::mem::take(&mut self.pending);
        for ((_, tag), block) in pending.into_iter().zip(written) {
            self.note(tag, block.index);
        }
    }

    /// Notes that the first waiting block is `block` (a replay found it).
    pub(super) fn written_one(&mut self, block: &Block) {
        if let Some((_, tag)) = self.pending.pop_front() {
            self.note(tag, block.index);
        }
    }

    fn note(&mut self, tag: Tag, index: u64) {
        match tag {
            Tag::Fill(seq) => {
                if let Some(item) = find(&mut self.recent, seq) {
                    item.block_index = Some(index);
                }
            }
            Tag::Transition(seq) => {
                if let Some(item) = find(&mut self.ladder, seq) {
                    item.block_index = Some(index);
                }
            }
            Tag::Command(seq) => self.last_command_block = Some((seq, index)),
            Tag::Session => self.session_block = Some(index),
            Tag::Other => {}
        }
    }

    /// Stops trading for good (until a restart) because of `why`; blocks
    /// the replay produced but could not match are dropped.
    pub(super) fn refuse(&mut self, why: String) {
        self.pending.clear();
        self.refused = Some(why);
    }

    /// The settings in force.
    pub(super) fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Time steps (bar times) processed.
    pub(super) fn steps(&self) -> u64 {
        self.steps
    }

    /// Open time of the next bar time (`None` once a replay ended).
    pub(super) fn next_bar_us(&self) -> Option<i64> {
        match self.stopped {
            Some(_) => None,
            None => self.market.next_time_us(),
        }
    }

    fn desk(snapshot: &Snapshot) -> Result<&DeskView, AgentError> {
        snapshot.desk.as_ref().ok_or(AgentError::NoRiskDesk)
    }

    /// Sets the gauges and counts the gate's new approvals and denials;
    /// returns equity and drawdown.
    fn publish(&mut self, metrics: &Metrics) -> Result<(f64, f64), AgentError> {
        let snapshot = self.engine.snapshot()?;
        let desk = Self::desk(&snapshot)?;
        let mode = ModeLabel { mode: MODE.into() };
        let m = &metrics.agent;
        let equity = snapshot.equity.to_f64().unwrap_or(0.0);
        m.equity.get_or_create(&mode).set(equity);
        let drawdown = drawdown(equity, snapshot.peak_equity);
        m.drawdown.get_or_create(&mode).set(drawdown);
        let daily = (snapshot.equity - self.day_start_equity)
            .to_f64()
            .unwrap_or(0.0);
        m.daily_pnl.get_or_create(&mode).set(daily);
        m.daily_loss
            .get_or_create(&mode)
            .set(desk.measures.daily_loss);
        m.daily_loss_limit
            .get_or_create(&mode)
            .set(self.config.daily_loss_limit);
        m.emergency_level
            .get_or_create(&mode)
            .set(level_number(desk.level));
        m.trading_state
            .get_or_create(&mode)
            .set(state_number(desk.state));
        for (strategy, level) in &desk.confidence {
            m.confidence_level
                .get_or_create(&StrategyLabel {
                    strategy: strategy.clone(),
                })
                .set(i64::from(*level));
        }
        let outcome = |o: &str| OutcomeLabel { outcome: o.into() };
        let approved = desk.approvals.saturating_sub(self.counted.0);
        if approved > 0 {
            m.orders
                .get_or_create(&outcome("approved"))
                .inc_by(approved);
        }
        self.counted.0 = desk.approvals;
        self.counted.1.resize(desk.denials.len(), 0);
        for ((denial, count), seen) in desk.denials.iter().zip(self.counted.1.iter_mut()) {
            let new = count.saturating_sub(*seen);
            if new > 0 {
                m.orders.get_or_create(&outcome("denied")).inc_by(new);
                m.denied
                    .get_or_create(&ReasonLabel {
                        reason: denial.code().into(),
                    })
                    .inc_by(new);
            }
            *seen = *count;
        }
        Ok((equity, drawdown))
    }

    fn market_time_us(&self) -> i64 {
        self.last_time_us
            .or(self.market.next_time_us())
            .unwrap_or_default()
    }

    /// Applies `command`; when it changed anything, queues its `risk`
    /// block (before the transitions it caused). Returns whether it did.
    pub(super) fn command(
        &mut self,
        command: Command,
        reason: &str,
        metrics: &Metrics,
    ) -> Result<bool, AgentError> {
        let time = self.market_time_us();
        let before = self.engine.snapshot()?;
        let desk_before = Self::desk(&before)?.clone();
        // Something to flatten: a buy working, or a position not already
        // being sold (a second flatten before the next bar changes nothing).
        let exposed = before.positions.iter().any(|p| {
            let selling = p.orders.iter().any(|o| o.side == Side::Sell);
            p.orders.iter().any(|o| o.side == Side::Buy) || (!p.quantity.is_zero() && !selling)
        });
        let changed = match command {
            Command::Pause => self.engine.set_paused(true),
            Command::Resume => self.engine.set_paused(false),
            Command::Flatten if exposed => {
                self.engine.flatten()?;
                true
            }
            Command::Kill if exposed || desk_before.level != Level::Black => {
                self.engine.kill(time)?;
                true
            }
            Command::Flatten | Command::Kill => false,
            Command::Reset => {
                if !self.engine.reset(time, reason) {
                    return Err(AgentError::NotBlack(desk_before.level.name()));
                }
                true
            }
        };
        if !changed {
            return Ok(false);
        }
        let after = self.engine.snapshot()?;
        let desk_after = Self::desk(&after)?;
        let record = CommandRecord {
            action: command.name(),
            reason,
            steps: self.steps,
            market_time_us: time,
            before: (desk_before.level.name(), desk_before.state.name()),
            after: (desk_after.level.name(), desk_after.state.name()),
            measures: desk_after.measures,
        };
        let payload = blocks::command_payload(&record);
        self.commands_queued += 1;
        self.pending.push_back((
            blocks::draft(BlockKind::Risk, &self.frameworks, payload),
            Tag::Command(self.commands_queued),
        ));
        let journal = self.engine.take_journal();
        self.record(journal, metrics);
        self.publish(metrics)?;
        Ok(true)
    }

    /// Applies an operator's reload of reloadable settings; when anything
    /// changed, queues its `config` block. Returns whether it did.
    pub(super) fn reload(
        &mut self,
        changes: &serde_json::Map<String, Value>,
        reason: &str,
        metrics: &Metrics,
    ) -> Result<bool, AgentError> {
        let next = self.config.with_changes(changes)?;
        let (old, new) = (self.config.reloadable(), next.reloadable());
        let changed: serde_json::Map<String, Value> = RELOADABLE
            .iter()
            .filter(|k| old.get(**k) != new.get(**k))
            .map(|k| (k.to_string(), json!({"from": old[*k], "to": new[*k]})))
            .collect();
        if changed.is_empty() {
            return Ok(false);
        }
        let risk = next.risk_config()?;
        self.engine.set_risk(risk);
        self.limits = limits_view(&risk, std::mem::take(&mut self.limits.tiers));
        self.config = next;
        let payload = json!({
            "change": RELOADED,
            "reason": reason,
            "actor": "admin",
            "steps": self.steps,
            "market_time": blocks::market_time(self.market_time_us()),
            "changed": changed,
            "reloadable": new,
        });
        self.commands_queued += 1;
        self.pending.push_back((
            blocks::draft(BlockKind::Config, &self.frameworks, payload),
            Tag::Command(self.commands_queued),
        ));
        self.publish(metrics)?;
        Ok(true)
    }
}

/// 1 − equity / peak (0 at or above the peak).
fn drawdown(equity: f64, peak: f64) -> f64 {
    if peak > 0.0 {
        (1.0 - equity / peak).max(0.0)
    } else {
        0.0
    }
}

/// The item recorded as number `seq` (items are in `seq` order).
fn find<T>(items: &mut VecDeque<(u64, T)>, seq: u64) -> Option<&mut T> {
    let first = items.front()?.0;
    let offset = usize::try_from(seq.checked_sub(first)?).ok()?;
    items.get_mut(offset).map(|(_, item)| item)
}
