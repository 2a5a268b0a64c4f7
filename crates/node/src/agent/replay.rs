//! Resuming the agent after a restart: the engine and the seeded market are
//! deterministic, so replaying the session from its start, with the
//! operator's commands applied where the ledger recorded them, rebuilds
//! positions, cash, orders, the ladder and the confidence levels — and
//! reconciles them: every block the replay produces must equal, byte for
//! byte (RFC 8785), the next `trade` or `risk` block on the ledger. A
//! difference means the ledger and the engine disagree; the agent then
//! refuses to trade and says which block differs.

use super::live::{Live, RELOADED};
use super::Command;
use crate::metrics::Metrics;
use qunimbus_ledger::block::Block;
use qunimbus_ledger::jcs::canonicalize;
use serde_json::Value;

/// Bar times a live agent can step per millisecond of wall time (its tick
/// is at least 1 ms), with a second of slack for clock rounding.
const SLACK_STEPS: u64 = 1000;

/// Why a replay stopped: the first block that disagrees.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Mismatch(pub String);

fn market_time_us(block: &Block) -> Option<i64> {
    let text = block.payload.as_ref()?.get("market_time")?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub(super) fn wall_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn same(a: &Value, b: Option<&Value>) -> bool {
    match (canonicalize(a), b.map(canonicalize)) {
        (Ok(x), Some(Ok(y))) => x == y,
        _ => false,
    }
}

/// A reload's block: (steps it followed, the changes, reason).
fn recorded_reload(block: &Block) -> Option<(u64, serde_json::Map<String, Value>, String)> {
    let p = block.payload.as_ref()?;
    if p.get("change")?.as_str()? != RELOADED {
        return None;
    }
    let steps = p.get("steps")?.as_u64()?;
    let changes = p
        .get("changed")?
        .as_object()?
        .iter()
        .map(|(k, v)| (k.clone(), v.get("to").cloned().unwrap_or(Value::Null)))
        .collect();
    Some((steps, changes, p.get("reason")?.as_str()?.to_string()))
}

/// An operator command's block: (steps it followed, command, reason).
fn recorded_command(block: &Block) -> Option<(u64, Command, String)> {
    let p = block.payload.as_ref()?;
    if p.get("event")?.as_str()? != "operator" {
        return None;
    }
    let steps = p.get("steps")?.as_u64()?;
    let command = Command::parse(p.get("action")?.as_str()?).ok()?;
    Some((steps, command, p.get("reason")?.as_str()?.to_string()))
}

impl Live {
    /// Replays until `block` (the next recorded one) is reproduced.
    pub(super) fn replay_block(
        &mut self,
        block: &Block,
        metrics: &Metrics,
    ) -> Result<(), Mismatch> {
        loop {
            if let Some((draft, _)) = self.pending.front() {
                if draft.kind != block.kind
                    || !same(
                        draft.payload.as_ref().unwrap_or(&Value::Null),
                        block.payload.as_ref(),
                    )
                {
                    return Err(Mismatch(format!(
                        "ledger block {} ({}) differs from what the replay produced: {}",
                        block.index,
                        block.kind,
                        draft
                            .payload
                            .as_ref()
                            .map(Value::to_string)
                            .unwrap_or_default()
                    )));
                }
                self.written_one(block);
                return Ok(());
            }
            self.produce(block, metrics)?;
        }
    }

    /// Makes the engine produce its next blocks: the recorded command when
    /// it is due, else the next bar.
    fn produce(&mut self, block: &Block, metrics: &Metrics) -> Result<(), Mismatch> {
        let not_reproduced = |why: &str| {
            Mismatch(format!(
                "ledger block {} ({}) was not reproduced by the replay: {why}",
                block.index, block.kind
            ))
        };
        if let Some((steps, changes, reason)) = recorded_reload(block) {
            if steps == self.steps() {
                return match self.reload(&changes, &reason, metrics) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(not_reproduced("the reload changed nothing")),
                    Err(e) => Err(not_reproduced(&e.to_string())),
                };
            }
            if steps < self.steps() {
                return Err(not_reproduced("its bar passed"));
            }
        } else if let Some((steps, command, reason)) = recorded_command(block) {
            if steps == self.steps() {
                return match self.command(command, &reason, metrics) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(not_reproduced("the command changed nothing")),
                    Err(e) => Err(not_reproduced(&e.to_string())),
                };
            }
            if steps < self.steps() {
                return Err(not_reproduced("its bar passed"));
            }
        } else {
            let at =
                market_time_us(block).ok_or_else(|| not_reproduced("it has no market_time"))?;
            match self.next_bar_us() {
                None => return Err(not_reproduced("the market ended before it")),
                Some(next) if at < next => return Err(not_reproduced("its bar passed")),
                Some(_) => {}
            }
        }
        if self.next_bar_us().is_none() {
            return Err(not_reproduced("the market ended before it"));
        }
        // A live agent steps at most once per millisecond, so a block written
        // t ms after the session began follows at most t steps.
        let allowed = wall_ms(&block.timestamp)
            .zip(self.session_started_ms)
            .map_or(u64::MAX, |(at, start)| {
                u64::try_from(at.saturating_sub(start)).unwrap_or(0) + SLACK_STEPS
            });
        if self.steps() >= allowed {
            return Err(not_reproduced(&format!(
                "no block by step {allowed}, the most its time allows"
            )));
        }
        self.step(metrics);
        Ok(())
    }

    /// After the last recorded block: nothing may be left unmatched.
    pub(super) fn replay_done(&self) -> Result<(), Mismatch> {
        match self.pending.front() {
            None => Ok(()),
            Some((draft, _)) => Err(Mismatch(format!(
                "the replay produced a {} block the ledger does not have: {}",
                draft.kind,
                draft
                    .payload
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_default()
            ))),
        }
    }
}
