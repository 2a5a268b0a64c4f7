//! What the agent shows operators: its state, positions, working orders,
//! recent fills and its risk controls (decimals as exact strings).

use serde::Serialize;

/// The agent's state now (`GET /v1/agent`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentStatus {
    /// `paper`: simulated fills on the paper exchange.
    pub mode: &'static str,
    /// Where bars come from: `synthetic` (the seeded market) or `replay`
    /// (candle files).
    pub market: &'static str,
    /// Whether a replay reached the end of its files (it trades no more).
    pub market_ended: bool,
    /// Why a replay stopped early (a bad bar in a file).
    pub market_error: Option<String>,
    /// The synthetic market's seed.
    pub seed: u64,
    /// Wall-clock milliseconds per one-minute bar.
    pub bar_interval_ms: u64,
    /// Open time of the newest bar processed (RFC 3339; `null` before the first).
    pub market_time: Option<String>,
    /// Bars processed (all symbols).
    pub bars: u64,
    /// Symbols traded.
    pub symbols: usize,
    /// `ACTIVE`, `REDUCING` or `HALTED`.
    pub trading_state: &'static str,
    /// `GREEN` … `BLACK`.
    pub emergency_level: &'static str,
    /// Whether an operator paused new entries.
    pub paused: bool,
    /// Confidence level (1–7) per strategy.
    pub confidence: Vec<StrategyConfidence>,
    /// Cash plus positions at their last closes.
    pub equity: String,
    /// Quote balance.
    pub cash: String,
    /// Highest equity marked.
    pub peak_equity: f64,
    /// 1 − equity / peak equity.
    pub drawdown: f64,
    /// Equity change since the market day began.
    pub daily_pnl: String,
    /// Value of every position at its last close.
    pub gross_exposure: String,
    /// Fees paid.
    pub fees_paid: String,
    /// Fills since the agent started.
    pub fills: u64,
    /// Round trips closed since the agent started.
    pub trades_closed: u64,
    /// Positions open now.
    pub open_positions: usize,
    /// Bar arrival to the agent's decision on it, every bar (measured by the node).
    pub decision_latency: Option<LatencyQuantiles>,
    /// The same, for bars whose entry signal was sized.
    pub sizing_latency: Option<LatencyQuantiles>,
    /// The `config` block that started this session.
    pub session_block: Option<u64>,
    /// How this start resumed the session from the ledger, if it did.
    pub resumed: Option<ResumeView>,
    /// Why the agent refuses to trade: the ledger and the replay of the
    /// session disagree (`null` when it trades).
    pub refused: Option<String>,
    /// Whether the agent is still replaying its session (it neither trades
    /// nor takes commands until done; the figures are the session's start).
    pub resuming: bool,
    /// Ledger blocks waiting to be written (the agent does not trade while any wait).
    pub pending_blocks: usize,
    /// The last ledger write failure, while blocks wait.
    pub ledger_error: Option<String>,
    /// The `EPH-USD` lanes' feed connection, when they trade.
    pub eph_feed: Option<EphFeedView>,
}

/// The agent's partner connection to the node's own feed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EphFeedView {
    /// The agent's partner id (`null` until it is registered).
    pub partner_id: Option<String>,
    /// The partner's region (the distribution policy applies to it).
    pub partner_region: String,
    /// Regions traded, one `EPH-USD@REGION` lane each.
    pub regions: Vec<String>,
    /// Valuations received on the connection.
    pub valuations_received: u64,
    /// Valuations priced into bars.
    pub valuations_priced: u64,
    /// Valuations of a region not traded (or with an unusable price).
    pub valuations_ignored: u64,
    /// Valuations the policy withheld from the partner.
    pub withheld: u64,
    /// Times the node ended the connection.
    pub disconnects: u64,
    /// Whether the connection is open now.
    pub connected: bool,
    /// Why the partner cannot connect (registration, or the last failed
    /// connection while none is open), if it cannot.
    pub error: Option<String>,
}

/// What resuming a session at start did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResumeView {
    /// Ledger blocks replayed and found equal.
    pub blocks: u64,
    /// Bar times replayed.
    pub bars: u64,
    /// How long the replay took, milliseconds.
    pub millis: u64,
}

/// Measured latency quantiles, microseconds (nanosecond resolution).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatencyQuantiles {
    /// Latencies recorded.
    pub count: u64,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Largest, µs.
    pub max_us: f64,
}

/// One strategy's confidence level.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StrategyConfidence {
    /// The strategy (with its parameters when set).
    pub strategy: String,
    /// 1–7.
    pub level: u8,
}

/// An open position (`GET /v1/agent/positions`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PositionItem {
    /// The symbol.
    pub symbol: String,
    /// Base quantity.
    pub quantity: String,
    /// Entry fill price.
    pub entry_price: Option<String>,
    /// Last close.
    pub last_price: f64,
    /// Quantity × last close.
    pub value: f64,
    /// (last − entry) × quantity, before exit fees.
    pub unrealised_pnl: Option<f64>,
}

/// A working order (`GET /v1/agent/orders`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderItem {
    /// `SYMBOL-n`.
    pub order_id: String,
    /// The symbol.
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: &'static str,
    /// `market`, `limit` or `stop`.
    pub kind: String,
    /// Base quantity, or quote budget for a buy sized in quote.
    pub size: String,
}

/// A fill (`GET /v1/agent/trades`), as its `trade` block records it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FillItem {
    /// Index of its `trade` block (`null` until written).
    pub block_index: Option<u64>,
    /// Open time of the bar it filled on (RFC 3339).
    pub market_time: String,
    /// `SYMBOL-n`.
    pub order_id: String,
    /// The symbol.
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: &'static str,
    /// Base quantity.
    pub quantity: String,
    /// Execution price.
    pub price: String,
    /// Fee, quote asset.
    pub fee: String,
    /// The strategy.
    pub strategy: String,
}

/// Recent fills, newest first.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FillList {
    /// Fills since the agent started.
    pub total: u64,
    /// The newest fills (at most `limit`).
    pub fills: Vec<FillItem>,
}

/// A ladder transition.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LadderItem {
    /// Index of its `risk` block (`null` until written).
    pub block_index: Option<u64>,
    /// Market time (RFC 3339).
    pub market_time: String,
    /// Level left.
    pub from: &'static str,
    /// Level entered.
    pub to: &'static str,
    /// The rule that fired or cleared, or the operator's reason.
    pub cause: String,
    /// Drawdown from the episode's peak at that moment.
    pub drawdown: f64,
    /// Today's loss, a fraction of start-of-day equity.
    pub daily_loss: f64,
}

/// One denial reason's count.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DenialCount {
    /// The reason code.
    pub reason: &'static str,
    /// Orders denied for it.
    pub count: u64,
}

/// The risk controls (`GET /v1/agent/risk`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RiskStatus {
    /// The limits in force.
    pub limits: RiskLimits,
    /// Orders approved by the pre-trade gate.
    pub approvals: u64,
    /// Denials by reason (every reason).
    pub denials: Vec<DenialCount>,
    /// The ladder's measures now.
    pub drawdown: f64,
    /// Drawdown from the all-time peak.
    pub max_drawdown: f64,
    /// Today's loss, a fraction of start-of-day equity.
    pub daily_loss: f64,
    /// Today's realised volatility.
    pub volatility: f64,
    /// Median daily volatility (0 until enough days).
    pub volatility_median: f64,
    /// Recent ladder transitions, newest last.
    pub ladder_history: Vec<LadderItem>,
}

/// The risk limits in force.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RiskLimits {
    /// Fraction of full Kelly.
    pub kelly_fraction: f64,
    /// Closed trades measured for the edge.
    pub kelly_window: usize,
    /// Closed trades before the measured edge is used.
    pub min_trades: usize,
    /// Risk fraction before then.
    pub probe_fraction: f64,
    /// Gross exposure limit (fraction of equity).
    pub max_gross_exposure: String,
    /// Daily loss limit (fraction of start-of-day equity).
    pub daily_loss_limit: String,
    /// Orders per second, sustained.
    pub orders_per_second: u32,
    /// Orders in a burst.
    pub order_burst: u32,
    /// Drawdowns of YELLOW, ORANGE, RED and BLACK.
    pub ladder_drawdowns: [f64; 4],
    /// Market-time seconds before a level falls.
    pub ladder_cooldown_secs: i64,
    /// Per-tier limits.
    pub tiers: Vec<TierLimits>,
}

/// One tier's limits.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierLimits {
    /// Tier 1–6.
    pub tier: u8,
    /// Largest position, percent of equity.
    pub max_position_pct: String,
    /// Largest Kelly fraction.
    pub max_kelly_fraction: String,
    /// Largest order, quote asset.
    pub max_notional_per_order: String,
}

/// What an operator's command did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandOutcome {
    /// `pause`, `resume`, `flatten`, `kill`, `reset` or `reload`.
    pub action: &'static str,
    /// Whether anything changed (nothing changed: no block).
    pub changed: bool,
    /// Index of the `risk` block recording it.
    pub block_index: Option<u64>,
    /// The agent's state after it.
    pub status: AgentStatus,
}

/// One mark of the equity curve.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EquityPoint {
    /// Market time of the bar (RFC 3339).
    pub market_time: String,
    /// Equity after the bar.
    pub equity: f64,
    /// 1 − equity / peak equity.
    pub drawdown: f64,
}

/// The recent equity curve (`GET /v1/agent/equity`), one mark per bar time.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EquityCurve {
    /// The newest marks, oldest first (at most one market day).
    pub points: Vec<EquityPoint>,
}
