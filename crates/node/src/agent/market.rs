//! Where the agent's bars come from: the seeded synthetic market (every
//! lane, every minute), or candle files replayed as a live market (the
//! lanes with a bar at each open time, as the backtest merges them); and,
//! at the same bar times, the `EPH-USD` lanes from the node's own feed.

use super::eph::{self, EphInbox, EphMarket};
use super::AgentError;
use crate::config::AgentPlan;
use qunimbus_trading::candles::MergedBars;
use qunimbus_trading::synthetic::SyntheticMarket;
use qunimbus_trading::{Candle, CandleError, CandleReader};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The agent's market: the universe's bars, which set the clock, and the
/// EPH lanes stepped at the same times.
pub(super) struct MarketSource {
    bars: Bars,
    eph: Option<EphMarket>,
    /// Why the EPH lanes could not open (the market does not start).
    eph_error: Option<String>,
}

/// Where the EPH lanes' bars go and come from.
pub(super) struct EphFeed<'a> {
    /// The agent's directory (`DATA_DIR/agent`).
    pub dir: &'a Path,
    /// Prices from the feed connection.
    pub inbox: Arc<EphInbox>,
}

/// The universe's bars.
enum Bars {
    /// The seeded regime-switching walk.
    Synthetic(SyntheticMarket),
    /// Candle files, merged by open time; `error` when a file went bad.
    Replay {
        bars: Option<MergedBars<CandleReader>>,
        error: Option<String>,
    },
}

fn open_files(files: &[PathBuf]) -> Result<MergedBars<CandleReader>, CandleError> {
    let readers = files
        .iter()
        .map(|f| CandleReader::open(f))
        .collect::<Result<Vec<_>, _>>()?;
    MergedBars::new(readers)
}

/// SHA-256 and size of a file (a changed file is a different session).
pub(super) fn digest(path: &Path) -> Value {
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let read = std::fs::File::open(path).and_then(|mut f| {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            bytes += n as u64;
            hasher.update(&buf[..n]);
        }
    });
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    match read {
        Ok(()) => {
            json!({"file": name, "bytes": bytes, "sha256": qunimbus_ledger::hex::encode(&hasher.finalize())})
        }
        Err(e) => json!({"file": name, "error": e.to_string()}),
    }
}

impl MarketSource {
    /// The market `plan` asks for, starting at `start_us` when synthetic;
    /// the EPH lanes record into (and, resuming, replay from) `feed`'s
    /// directory, and take the feed's prices once `live`.
    pub(super) fn open(
        plan: &AgentPlan,
        seed: u64,
        start_us: i64,
        feed: Option<EphFeed<'_>>,
        live: bool,
    ) -> Self {
        let (eph, eph_error) = match (&plan.eph, feed) {
            (Some(lanes), Some(feed)) => {
                let dir = eph::recording_dir(feed.dir, start_us);
                match EphMarket::open(lanes, &dir, feed.inbox, live) {
                    Ok(market) => (Some(market), None),
                    Err(e) => {
                        tracing::error!(error = %e, "the EPH lanes cannot start");
                        (None, Some(e.to_string()))
                    }
                }
            }
            _ => (None, None),
        };
        Self {
            bars: Bars::open(plan, seed, start_us),
            eph,
            eph_error,
        }
    }

    /// What the session's start block records about the market.
    pub(super) fn describe(plan: &AgentPlan) -> Value {
        match &plan.replay_files {
            None => json!("synthetic"),
            Some(files) => json!({"replay": files.iter().map(|f| digest(f)).collect::<Vec<_>>()}),
        }
    }

    /// `synthetic` or `replay`.
    pub(super) fn name(&self) -> &'static str {
        match self.bars {
            Bars::Synthetic(_) => "synthetic",
            Bars::Replay { .. } => "replay",
        }
    }

    /// Open time of the next bar time; `None` once a replay ended.
    pub(super) fn next_time_us(&self) -> Option<i64> {
        match self.eph_error {
            Some(_) => None,
            None => self.bars.next_time_us(),
        }
    }

    /// Why the market stopped early, if it did.
    pub(super) fn error(&self) -> Option<&str> {
        self.eph_error.as_deref().or(self.bars.error())
    }

    /// The EPH lanes take the feed's prices from now on.
    pub(super) fn go_live(&mut self) {
        if let Some(eph) = &mut self.eph {
            eph.go_live();
        }
    }

    /// Hands `f` every lane's bar at `time`, the EPH lanes last.
    pub(super) fn step(
        &mut self,
        time: i64,
        mut f: impl FnMut(usize, Candle) -> Result<(), AgentError>,
    ) -> Result<(), AgentError> {
        self.bars.step(time, &mut f)?;
        match &mut self.eph {
            Some(eph) => eph.step(time, &mut f),
            None => Ok(()),
        }
    }
}

impl Bars {
    fn open(plan: &AgentPlan, seed: u64, start_us: i64) -> Self {
        let universe_lanes = plan.eph.as_ref().map_or(plan.lanes.len(), |e| e.first_lane);
        match &plan.replay_files {
            None => {
                let instruments: Vec<_> = plan.lanes[..universe_lanes]
                    .iter()
                    .map(|l| l.instrument.clone())
                    .collect();
                Self::Synthetic(SyntheticMarket::new(seed, &instruments, start_us))
            }
            Some(files) => match open_files(files) {
                Ok(bars) => Self::Replay {
                    bars: Some(bars),
                    error: None,
                },
                Err(e) => {
                    tracing::error!(error = %e, "the candle replay cannot start");
                    Self::Replay {
                        bars: None,
                        error: Some(e.to_string()),
                    }
                }
            },
        }
    }

    fn next_time_us(&self) -> Option<i64> {
        match self {
            Self::Synthetic(m) => Some(m.next_time_us()),
            Self::Replay { bars, error } => match error {
                Some(_) => None,
                None => bars.as_ref().and_then(MergedBars::next_time),
            },
        }
    }

    fn error(&self) -> Option<&str> {
        match self {
            Self::Synthetic(_) => None,
            Self::Replay { error, .. } => error.as_deref(),
        }
    }

    /// Hands `f` every lane's bar at `time`; a bad bar in a file ends the
    /// replay with its error.
    fn step(
        &mut self,
        time: i64,
        f: &mut impl FnMut(usize, Candle) -> Result<(), AgentError>,
    ) -> Result<(), AgentError> {
        match self {
            Self::Synthetic(m) => {
                for (lane, bar) in m.next_bars().into_iter().enumerate() {
                    f(lane, bar)?;
                }
                Ok(())
            }
            Self::Replay {
                bars: Some(bars),
                error,
            } => match bars.step(time, f) {
                Err(AgentError::Candle(e)) => {
                    tracing::error!(error = %e, "the candle replay stopped at a bad bar");
                    *error = Some(e.to_string());
                    Ok(())
                }
                other => other,
            },
            Self::Replay { bars: None, .. } => Ok(()),
        }
    }
}
