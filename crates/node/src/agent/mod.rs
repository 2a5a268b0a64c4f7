//! The QBTC trading agent in the node (SPEC §8): the same engine as the
//! backtest — strategies, paper matching, Kelly sizing, the pre-trade gate,
//! the emergency ladder and the confidence levels — driven bar by bar by
//! the seeded synthetic market, trading on paper. Every fill is a `trade`
//! block, every emergency-level, confidence and operator change a `risk`
//! block, so the trading history verifies with the rest of the ledger.
//! The agent does not trade while a block waits to be written.

mod blocks;
mod eph;
mod eph_feed;
mod file_watch;

pub use file_watch::modified;
mod live;
mod market;
mod replay;
mod session;
pub mod views;

use crate::metrics::Metrics;
use live::Live;
use qunimbus_ledger::block::BlockDraft;
use qunimbus_storage::Store;
use qunimbus_trading::engine::EngineError;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
use views::{
    AgentStatus, CommandOutcome, EquityCurve, FillList, OrderItem, PositionItem, RiskStatus,
};

/// The agent's trading mode (paper only: the exchange adapter reads
/// balances but places no orders).
pub const MODE: &str = "paper";

/// Why an agent request was refused.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The node runs without the agent.
    #[error("the trading agent is not enabled on this node (set [agent] enabled = true or start with --agent)")]
    NotEnabled,
    /// A command came without a reason.
    #[error(
        "a reason is required: every agent command goes on the ledger with the operator's reason"
    )]
    ReasonRequired,
    /// `reset` outside BLACK.
    #[error("reset leaves BLACK only; the emergency level is {0}")]
    NotBlack(&'static str),
    /// Not a command.
    #[error("unknown agent command {0:?}; use pause, resume, flatten, kill or reset")]
    UnknownCommand(String),
    /// The agent refuses to trade: resuming its session, the ledger and the
    /// replay disagreed.
    #[error("the agent refuses to trade: {0}")]
    Refused(String),
    /// The change is applied but its block could not be written yet.
    #[error("applied, but its ledger block could not be written yet (the agent does not trade until it is): {0}")]
    LedgerUnavailable(String),
    /// An operator's change was interrupted (its task panicked).
    #[error("the change was interrupted: {0}")]
    Interrupted(String),
    /// The agent is still replaying its session.
    #[error("the agent is resuming its session from the ledger; try again shortly")]
    Resuming,
    /// No exchange is configured.
    #[error("no exchange is configured (set [agent.exchange] url)")]
    NoExchange,
    /// The engine runs without its risk desk (a defect: the agent always
    /// sizes with Kelly through the gate).
    #[error("the agent's engine has no risk desk")]
    NoRiskDesk,
    /// A reload's settings are invalid (the key is named).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A replayed candle file holds a bad bar.
    #[error(transparent)]
    Candle(#[from] qunimbus_trading::CandleError),
    /// The EPH lanes' recording cannot be written.
    #[error("the EPH recording {path} cannot be written: {source}")]
    Recording {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The engine refused a price (a bar off every decimal).
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
}

/// An operator's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// New entries stop (REDUCING); exits continue.
    Pause,
    /// New entries resume.
    Resume,
    /// Every order cancelled, every position sold at the next open.
    Flatten,
    /// The kill switch: flatten, BLACK, HALTED until a reset.
    Kill,
    /// Leaves BLACK.
    Reset,
}

impl Command {
    /// Parses `pause`, `resume`, `flatten`, `kill` or `reset`.
    pub fn parse(text: &str) -> Result<Self, AgentError> {
        Ok(match text {
            "pause" => Self::Pause,
            "resume" => Self::Resume,
            "flatten" => Self::Flatten,
            "kill" => Self::Kill,
            "reset" => Self::Reset,
            other => return Err(AgentError::UnknownCommand(other.chars().take(40).collect())),
        })
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Flatten => "flatten",
            Self::Kill => "kill",
            Self::Reset => "reset",
        }
    }
}

/// Runs `work` in a task of its own to the end, whatever happens to the caller.
async fn run_to_end<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, AgentError>> + Send + 'static,
) -> Result<T, AgentError> {
    tokio::spawn(work)
        .await
        .map_err(|e| AgentError::Interrupted(e.to_string()))?
}

/// The running agent.
pub struct Agent {
    live: tokio::sync::Mutex<Live>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    interval: Duration,
    /// The exchange adapter, when `[agent.exchange] url` is set.
    exchange: Option<Arc<crate::exchange::Exchange>>,
    /// The recorded session still to be replayed, if any.
    resume_job: std::sync::Mutex<Option<session::ResumeJob>>,
    /// `DATA_DIR/agent`: the EPH lanes' recordings.
    dir: std::path::PathBuf,
    /// The EPH lanes' feed, when they trade.
    eph: Option<eph_feed::EphLink>,
}

impl Agent {
    /// One market minute: writes what waits, then (only when nothing
    /// waits) the next bar of every symbol, then writes its blocks.
    pub async fn tick(&self) {
        let mut live = self.live.lock().await;
        if live.resuming || live.refused.is_some() || !self.flush(&mut live).await {
            return;
        }
        live.step(&self.metrics);
        self.flush(&mut live).await;
    }

    /// Writes the waiting blocks; false (blocks kept) when the store refuses.
    async fn flush(&self, live: &mut Live) -> bool {
        if live.pending.is_empty() {
            return true;
        }
        let drafts: Vec<BlockDraft> = live.pending.iter().map(|(d, _)| d.clone()).collect();
        match self.store.append_blocks(drafts).await {
            Ok(blocks) => {
                live.written(&blocks);
                live.ledger_error = None;
                true
            }
            Err(e) => {
                self.metrics.agent.ledger_failures.inc();
                tracing::error!(error = %e, waiting = live.pending.len(), "agent blocks not written; trading waits");
                live.ledger_error = Some(e.to_string());
                false
            }
        }
    }

    /// Applies an operator's command with its reason and records it. The
    /// work runs in a task of its own, so a caller that goes away (a client
    /// hang-up, a request timeout) cannot cut a ledger write in half.
    pub async fn command(
        self: &Arc<Self>,
        command: Command,
        reason: &str,
    ) -> Result<CommandOutcome, AgentError> {
        let (agent, reason) = (self.clone(), reason.trim().to_string());
        run_to_end(async move {
            agent
                .change(command.name(), &reason, |live, metrics| {
                    live.command(command, &reason, metrics)
                })
                .await
        })
        .await
    }

    /// Reloads reloadable settings with the operator's reason; an invalid
    /// value changes nothing and names its key.
    pub async fn reload(
        self: &Arc<Self>,
        changes: &serde_json::Map<String, serde_json::Value>,
        reason: &str,
    ) -> Result<CommandOutcome, AgentError> {
        let (agent, reason, changes) = (self.clone(), reason.trim().to_string(), changes.clone());
        run_to_end(async move {
            agent
                .change("reload", &reason, |live, metrics| {
                    live.reload(&changes, &reason, metrics)
                })
                .await
        })
        .await
    }

    /// Applies one operator change under the engine lock and writes its
    /// block; an unwritten block is an error (the change stays applied and
    /// its block queued: the agent does not trade until it is written).
    async fn change(
        &self,
        action: &'static str,
        reason: &str,
        apply: impl FnOnce(&mut Live, &Metrics) -> Result<bool, AgentError>,
    ) -> Result<CommandOutcome, AgentError> {
        if reason.is_empty() {
            return Err(AgentError::ReasonRequired);
        }
        let mut live = self.live.lock().await;
        if live.resuming {
            return Err(AgentError::Resuming);
        }
        if let Some(why) = &live.refused {
            return Err(AgentError::Refused(why.clone()));
        }
        let queued = live.commands_queued;
        let changed = apply(&mut live, &self.metrics)?;
        let mine = (live.commands_queued > queued).then_some(live.commands_queued);
        if !self.flush(&mut live).await {
            let why = live.ledger_error.clone().unwrap_or_default();
            return Err(AgentError::LedgerUnavailable(why));
        }
        Ok(CommandOutcome {
            action,
            changed,
            block_index: live
                .last_command_block
                .filter(|(seq, _)| Some(*seq) == mine)
                .map(|(_, index)| index),
            status: self.status_of(&live)?,
        })
    }

    /// Records that the exchange keys were replaced (from `source`: the
    /// request or the environment), by whom and why — never the keys — as
    /// a `config` block; its index.
    pub async fn record_exchange_keys(
        &self,
        source: &str,
        by: &str,
        reason: &str,
    ) -> Result<u64, AgentError> {
        let frameworks = self.live.lock().await.frameworks().to_vec();
        let payload = serde_json::json!({
            "change": "credential rotated",
            "credential": "exchange",
            "source": source,
            "by": by,
            "reason": reason,
        });
        let draft = crate::ledger::event_draft(
            qunimbus_ledger::block::BlockKind::Config,
            &frameworks,
            payload,
        );
        let blocks = self
            .store
            .append_blocks(vec![draft])
            .await
            .map_err(|e| AgentError::LedgerUnavailable(e.to_string()))?;
        Ok(blocks.first().map_or(0, |b| b.index))
    }

    /// The exchange adapter, when one is configured.
    pub fn exchange(&self) -> Result<&Arc<crate::exchange::Exchange>, AgentError> {
        self.exchange.as_ref().ok_or(AgentError::NoExchange)
    }

    fn status_of(&self, live: &Live) -> Result<AgentStatus, AgentError> {
        let mut status = live.status(self.interval)?;
        status.eph_feed = self.eph.as_ref().map(eph_feed::EphLink::view);
        Ok(status)
    }

    /// Where the EPH lanes record and take their prices.
    fn eph_feed(&self) -> Option<market::EphFeed<'_>> {
        self.eph.as_ref().map(|link| market::EphFeed {
            dir: &self.dir,
            inbox: link.inbox.clone(),
        })
    }

    /// The agent's state now.
    pub async fn status(&self) -> Result<AgentStatus, AgentError> {
        let live = self.live.lock().await;
        self.status_of(&live)
    }

    /// Open positions.
    pub async fn positions(&self) -> Result<Vec<PositionItem>, AgentError> {
        self.live.lock().await.positions()
    }

    /// Working orders.
    pub async fn orders(&self) -> Result<Vec<OrderItem>, AgentError> {
        self.live.lock().await.orders()
    }

    /// The recent equity curve.
    pub async fn equity(&self) -> EquityCurve {
        self.live.lock().await.equity_curve()
    }

    /// The newest `limit` fills, newest first.
    pub async fn fills(&self, limit: usize) -> FillList {
        self.live.lock().await.fills(limit)
    }

    /// Limits, denials and the ladder's history.
    pub async fn risk(&self) -> Result<RiskStatus, AgentError> {
        self.live.lock().await.risk()
    }

    /// Ticks every bar interval until `stop` turns true, then writes what
    /// waits (the node closes the store only after its tasks end).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        tokio::select! {
            _ = self.resume_session() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let mut every = tokio::time::interval(self.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = every.tick() => self.tick().await,
                _ = stop.changed() => {
                    if *stop.borrow() {
                        let mut live = self.live.lock().await;
                        self.flush(&mut live).await;
                        return;
                    }
                }
            }
        }
    }
}
