//! The `[agent]` keys an operator may change while the agent trades
//! (`PUT /v1/agent/config`): sizing, gate limits, ladder thresholds and
//! confidence pace. Everything else (market, symbols, strategies, cash,
//! costs, windows) shapes the session and takes a restart, as a new session.

use super::{AgentConfig, ConfigError};
use serde_json::{json, Map, Value};

/// The keys a reload may change.
pub const RELOADABLE: [&str; 14] = [
    "kelly_fraction",
    "min_trades",
    "probe_fraction",
    "max_gross_exposure",
    "daily_loss_limit",
    "orders_per_second",
    "order_burst",
    "yellow_drawdown",
    "orange_drawdown",
    "red_drawdown",
    "black_drawdown",
    "vol_multiple",
    "ladder_cooldown_secs",
    "confidence_rise_trades",
];

fn number(key: &str, value: &Value) -> Result<f64, ConfigError> {
    value.as_f64().filter(|v| v.is_finite()).ok_or_else(|| {
        ConfigError::invalid(
            format!("agent.{key}"),
            format!("must be a number, got {value}"),
        )
    })
}

fn whole(key: &str, value: &Value) -> Result<u64, ConfigError> {
    value.as_u64().ok_or_else(|| {
        ConfigError::invalid(
            format!("agent.{key}"),
            format!("must be a whole number ≥ 0, got {value}"),
        )
    })
}

fn small(key: &str, value: &Value) -> Result<u32, ConfigError> {
    u32::try_from(whole(key, value)?)
        .map_err(|_| ConfigError::invalid(format!("agent.{key}"), format!("too large: {value}")))
}

impl AgentConfig {
    /// The reloadable keys' values now.
    pub fn reloadable(&self) -> Value {
        json!({
            "kelly_fraction": self.kelly_fraction,
            "min_trades": self.min_trades,
            "probe_fraction": self.probe_fraction,
            "max_gross_exposure": self.max_gross_exposure,
            "daily_loss_limit": self.daily_loss_limit,
            "orders_per_second": self.orders_per_second,
            "order_burst": self.order_burst,
            "yellow_drawdown": self.yellow_drawdown,
            "orange_drawdown": self.orange_drawdown,
            "red_drawdown": self.red_drawdown,
            "black_drawdown": self.black_drawdown,
            "vol_multiple": self.vol_multiple,
            "ladder_cooldown_secs": self.ladder_cooldown_secs,
            "confidence_rise_trades": self.confidence_rise_trades,
        })
    }

    /// This configuration with `changes` (reloadable keys only) applied
    /// and validated; the error names the first bad key.
    pub fn with_changes(&self, changes: &Map<String, Value>) -> Result<AgentConfig, ConfigError> {
        let mut next = self.clone();
        for (key, value) in changes {
            if !RELOADABLE.contains(&key.as_str()) {
                let message = if SESSION_KEYS.contains(&key.as_str()) {
                    format!(
                        "takes effect only at a restart (a new session); reloadable: {}",
                        RELOADABLE.join(", ")
                    )
                } else {
                    "unknown key".to_string()
                };
                return Err(ConfigError::invalid(format!("agent.{key}"), message));
            }
            next.set(key, value)?;
        }
        // The reloadable keys shape only the risk settings.
        next.risk_config()?;
        Ok(next)
    }

    fn set(&mut self, key: &str, value: &Value) -> Result<(), ConfigError> {
        let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        match key {
            "kelly_fraction" => self.kelly_fraction = number(key, value)?,
            "min_trades" => self.min_trades = to_usize(whole(key, value)?),
            "probe_fraction" => self.probe_fraction = number(key, value)?,
            "max_gross_exposure" => self.max_gross_exposure = number(key, value)?,
            "daily_loss_limit" => self.daily_loss_limit = number(key, value)?,
            "orders_per_second" => self.orders_per_second = small(key, value)?,
            "order_burst" => self.order_burst = small(key, value)?,
            "yellow_drawdown" => self.yellow_drawdown = number(key, value)?,
            "orange_drawdown" => self.orange_drawdown = number(key, value)?,
            "red_drawdown" => self.red_drawdown = number(key, value)?,
            "black_drawdown" => self.black_drawdown = number(key, value)?,
            "vol_multiple" => self.vol_multiple = number(key, value)?,
            "ladder_cooldown_secs" => self.ladder_cooldown_secs = whole(key, value)?,
            "confidence_rise_trades" => self.confidence_rise_trades = small(key, value)?,
            _ => return Err(ConfigError::invalid(format!("agent.{key}"), "unknown key")),
        }
        Ok(())
    }
}

/// `[agent]` keys that are not reloadable (named as such, not as unknown).
const SESSION_KEYS: [&str; 15] = [
    "enabled",
    "seed",
    "bar_interval_ms",
    "cash",
    "fee",
    "slippage_bps",
    "universe_file",
    "symbols",
    "market_replay_dir",
    "strategy",
    "tier_strategies",
    "symbol_strategies",
    "kelly_window",
    "recent_fills",
    "exchange",
];
