//! `[agent]`: the QBTC paper-trading agent (SPEC §8) — market, universe,
//! strategies per tier or symbol, sizing, risk limits and ladder
//! thresholds. Validation builds the whole plan, so a bad key is named at
//! start, never at the first bar.

use super::ConfigError;
use qunimbus_core::RegionSet;
use qunimbus_trading::candles::symbol_of_file;
use qunimbus_trading::confidence::ConfidenceConfig;
use qunimbus_trading::engine::{LaneSpec, RiskConfig};
use qunimbus_trading::ladder::LadderConfig;
use qunimbus_trading::risk::GateLimits;
use qunimbus_trading::sizing::KellyConfig;
use qunimbus_trading::{strategy, CandleReader, Costs, Universe};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

/// A decimal setting, written as a string (`"100000"`) or a TOML number.
#[derive(Debug, Clone, PartialEq)]
pub struct DecimalSetting(pub String);

impl<'de> Deserialize<'de> for DecimalSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => Ok(Self(s)),
            toml::Value::Integer(i) => Ok(Self(i.to_string())),
            toml::Value::Float(f) => Ok(Self(f.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a decimal number, got {}",
                other.type_str()
            ))),
        }
    }
}

impl Serialize for DecimalSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl DecimalSetting {
    pub(super) fn parse(
        &self,
        key: &str,
        min: Decimal,
        max: Option<Decimal>,
    ) -> Result<Decimal, ConfigError> {
        let value = Decimal::from_str(self.0.trim()).map_err(|e| {
            ConfigError::invalid(key, format!("{:?} is not a decimal: {e}", self.0))
        })?;
        if value < min || max.is_some_and(|m| value > m) {
            let range = match max {
                Some(m) => format!("between {min} and {m}"),
                None => format!("at least {min}"),
            };
            return Err(ConfigError::invalid(
                key,
                format!("must be {range}, got {value}"),
            ));
        }
        Ok(value)
    }
}

/// A built-in strategy and its parameters.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySetting {
    /// `sma_cross`, `rsi_reversion` or `donchian_breakout`.
    pub name: String,
    /// Its parameters (numbers or strings).
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
}

impl Default for StrategySetting {
    fn default() -> Self {
        Self {
            name: "sma_cross".into(),
            params: BTreeMap::new(),
        }
    }
}

impl StrategySetting {
    /// Its parameters as text, as the strategy builder takes them.
    pub fn text_params(&self) -> BTreeMap<String, String> {
        self.params
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    }

    /// The name its lanes share a measured track record under: the
    /// strategy's name, with its parameters when any are set.
    pub fn label(&self) -> String {
        let params = self.text_params();
        if params.is_empty() {
            return self.name.clone();
        }
        let set: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{} {}", self.name, set.join(" "))
    }

    pub(super) fn build(
        &self,
        key: &str,
    ) -> Result<Box<dyn qunimbus_trading::Strategy>, ConfigError> {
        strategy::build(&self.name, &self.text_params())
            .map_err(|e| ConfigError::invalid(key, e.to_string()))
    }
}

/// The trading agent.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Runs the agent in the node (also `qunimbus serve --agent`).
    pub enabled: bool,
    /// Seed of the synthetic market (the same seed gives the same bars).
    pub seed: u64,
    /// Wall-clock milliseconds per one-minute bar of market time (1000:
    /// sixty times real time; the demo runs faster).
    pub bar_interval_ms: u64,
    /// Starting cash, quote asset (USDT).
    pub cash: DecimalSetting,
    /// Taker fee, a fraction of notional.
    pub fee: DecimalSetting,
    /// Adverse slippage of market fills, basis points.
    pub slippage_bps: DecimalSetting,
    /// Symbol universe file; unset: the built-in 77-symbol universe.
    pub universe_file: Option<PathBuf>,
    /// Symbols traded; empty: the whole universe (with a candle replay:
    /// every symbol with a file).
    pub symbols: Vec<String>,
    /// Replay the candle files in this directory as the live market
    /// (`SYMBOL-….csv` Binance klines or generic OHLCV, `SYMBOL-….json`
    /// freqtrade), one bar time per `bar_interval_ms`; unset: the seeded
    /// synthetic market.
    pub market_replay_dir: Option<PathBuf>,
    /// The strategy of every symbol without an override.
    pub strategy: StrategySetting,
    /// Strategy per tier (`"1"` … `"6"`), over `strategy`.
    pub tier_strategies: BTreeMap<String, StrategySetting>,
    /// Strategy per symbol, over the tier's.
    pub symbol_strategies: BTreeMap<String, StrategySetting>,
    /// `c`, the fraction of full Kelly (capped by the tier).
    pub kelly_fraction: f64,
    /// Closed trades the edge is measured over.
    pub kelly_window: usize,
    /// Closed trades before the measured edge is used.
    pub min_trades: usize,
    /// Risk fraction before `min_trades`.
    pub probe_fraction: f64,
    /// Gross exposure limit, a fraction of equity.
    pub max_gross_exposure: f64,
    /// Daily loss limit, a fraction of start-of-day equity.
    pub daily_loss_limit: f64,
    /// Orders per second the gate allows, sustained.
    pub orders_per_second: u32,
    /// Orders the gate allows in a burst.
    pub order_burst: u32,
    /// Drawdown for YELLOW.
    pub yellow_drawdown: f64,
    /// Drawdown for ORANGE.
    pub orange_drawdown: f64,
    /// Drawdown for RED.
    pub red_drawdown: f64,
    /// Drawdown for BLACK.
    pub black_drawdown: f64,
    /// Day volatility over its median for YELLOW.
    pub vol_multiple: f64,
    /// Market-time seconds a level's condition must stay clear.
    pub ladder_cooldown_secs: u64,
    /// Closed trades per one-level confidence rise.
    pub confidence_rise_trades: u32,
    /// Fills kept in memory for `GET /v1/agent/trades`.
    pub recent_fills: usize,
    /// `[agent.exchange]`: the exchange adapter.
    pub exchange: super::ExchangeConfig,
    /// `[agent.eph]`: `EPH-USD` per region from the node's own feed.
    pub eph: super::EphConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        let kelly = KellyConfig::default();
        let ladder = LadderConfig::default();
        Self {
            enabled: false,
            seed: 7,
            bar_interval_ms: 1000,
            cash: DecimalSetting("100000".into()),
            fee: DecimalSetting("0.001".into()),
            slippage_bps: DecimalSetting("0".into()),
            universe_file: None,
            symbols: Vec::new(),
            market_replay_dir: None,
            strategy: StrategySetting::default(),
            tier_strategies: BTreeMap::new(),
            symbol_strategies: BTreeMap::new(),
            kelly_fraction: kelly.kelly_fraction,
            kelly_window: kelly.kelly_window,
            min_trades: kelly.min_trades,
            probe_fraction: kelly.probe_fraction,
            max_gross_exposure: 1.0,
            daily_loss_limit: ladder.daily_loss_limit,
            orders_per_second: 5,
            order_burst: 50,
            yellow_drawdown: ladder.yellow_drawdown,
            orange_drawdown: ladder.orange_drawdown,
            red_drawdown: ladder.red_drawdown,
            black_drawdown: ladder.black_drawdown,
            vol_multiple: ladder.vol_multiple,
            ladder_cooldown_secs: 3600,
            confidence_rise_trades: ConfidenceConfig::default().rise_trades,
            recent_fills: 1000,
            exchange: super::ExchangeConfig::default(),
            eph: super::EphConfig::default(),
        }
    }
}

/// What the agent trades, built from a validated `[agent]` section.
pub struct AgentPlan {
    /// The universe.
    pub universe: Universe,
    /// One lane per symbol traded, in universe order.
    pub lanes: Vec<LaneSpec>,
    /// Starting cash.
    pub cash: Decimal,
    /// Fees and slippage.
    pub costs: Costs,
    /// Sizing and risk limits.
    pub risk: RiskConfig,
    /// With a candle replay: each lane's file, in lane order.
    pub replay_files: Option<Vec<PathBuf>>,
    /// The `EPH-USD` lanes, after the universe's, when `[agent.eph]` is on.
    pub eph: Option<EphPlan>,
}

/// The `EPH-USD` lanes: `lanes[first_lane..]`, one per region, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct EphPlan {
    /// Index of the first EPH lane.
    pub first_lane: usize,
    /// The region of each EPH lane.
    pub regions: Vec<String>,
    /// Region of the agent's feed partner.
    pub partner_region: String,
}

fn fraction(key: &str, value: f64, min: f64, max: f64) -> Result<(), ConfigError> {
    if !(value.is_finite() && value >= min && value <= max) {
        return Err(ConfigError::invalid(
            key,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

impl AgentConfig {
    pub(super) fn validate(&self, regions: &RegionSet) -> Result<(), ConfigError> {
        self.exchange.validate()?;
        self.resolved(regions)?.plan().map(|_| ())
    }

    /// The section with `[agent.eph]`'s regions spelled as the node spells
    /// them (what the node plans from).
    pub fn resolved(&self, regions: &RegionSet) -> Result<Self, ConfigError> {
        Ok(Self {
            eph: self.eph.resolved(regions)?,
            ..self.clone()
        })
    }

    /// Builds the plan: loads the universe, builds every lane's strategy
    /// and checks every limit, naming the key of the first bad value.
    pub fn plan(&self) -> Result<AgentPlan, ConfigError> {
        if self.bar_interval_ms == 0 || self.bar_interval_ms > 3_600_000 {
            return Err(ConfigError::invalid(
                "agent.bar_interval_ms",
                format!(
                    "must be between 1 and 3600000, got {}",
                    self.bar_interval_ms
                ),
            ));
        }
        if self.recent_fills == 0 || self.recent_fills > 100_000 {
            return Err(ConfigError::invalid(
                "agent.recent_fills",
                format!("must be between 1 and 100000, got {}", self.recent_fills),
            ));
        }
        let risk = self.risk_config()?;
        let cash = self.cash.parse(
            "agent.cash",
            Decimal::new(1, 2),
            Some(Decimal::from(1_000_000_000_000u64)),
        )?;
        let fee = self.fee()?;
        let slippage_bps = self.slippage_bps.parse(
            "agent.slippage_bps",
            Decimal::ZERO,
            Some(Decimal::from(1000)),
        )?;
        let universe = match &self.universe_file {
            Some(path) => Universe::load(path),
            None => Universe::default_universe(),
        }
        .map_err(|e| ConfigError::invalid("agent.universe_file", e.to_string()))?;
        let files = self.replay_files(&universe)?;
        let mut lanes = self.lanes(&universe, files.as_ref())?;
        let eph = self.eph_lanes(&mut lanes)?;
        let replay_files = files.map(|files| {
            lanes
                .iter()
                .filter_map(|l| files.get(&l.instrument.symbol).cloned())
                .collect()
        });
        Ok(AgentPlan {
            universe,
            lanes,
            cash,
            costs: Costs {
                taker_fee: fee,
                maker_fee: fee,
                slippage_bps,
            },
            risk,
            replay_files,
            eph,
        })
    }

    /// Appends one `EPH-USD` lane per region when `[agent.eph]` is on.
    fn eph_lanes(&self, lanes: &mut Vec<LaneSpec>) -> Result<Option<EphPlan>, ConfigError> {
        let eph = &self.eph;
        if !eph.enabled || eph.regions.is_empty() {
            return Ok(None);
        }
        let tier = eph.tier()?;
        let (key, setting) = eph.strategy();
        let first_lane = lanes.len();
        for region in &eph.regions {
            lanes.push(LaneSpec {
                strategy: setting.build(key)?,
                strategy_name: setting.label(),
                instrument: eph.instrument(region)?,
                tier: tier.clone(),
            });
        }
        Ok(Some(EphPlan {
            first_lane,
            regions: eph.regions.clone(),
            partner_region: eph.partner_region.clone().unwrap_or_default(),
        }))
    }

    /// The candle files of `market_replay_dir` by symbol, each opened once
    /// to check its format.
    fn replay_files(
        &self,
        universe: &Universe,
    ) -> Result<Option<BTreeMap<String, PathBuf>>, ConfigError> {
        const KEY: &str = "agent.market_replay_dir";
        let Some(dir) = &self.market_replay_dir else {
            return Ok(None);
        };
        let entries = std::fs::read_dir(dir).map_err(|e| {
            ConfigError::invalid(KEY, format!("cannot read {}: {e}", dir.display()))
        })?;
        let mut files = BTreeMap::new();
        for entry in entries {
            let path = entry
                .map_err(|e| {
                    ConfigError::invalid(KEY, format!("cannot read {}: {e}", dir.display()))
                })?
                .path();
            let candles = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("json"));
            if !candles {
                continue;
            }
            let symbol = symbol_of_file(&path);
            if universe.instrument(&symbol).is_none() {
                return Err(ConfigError::invalid(
                    KEY,
                    format!(
                        "{}: symbol {symbol:?} is not in the universe",
                        path.display()
                    ),
                ));
            }
            CandleReader::open(&path).map_err(|e| ConfigError::invalid(KEY, e.to_string()))?;
            if let Some(other) = files.insert(symbol.clone(), path.clone()) {
                return Err(ConfigError::invalid(
                    KEY,
                    format!(
                        "{} and {} are both {symbol}",
                        other.display(),
                        path.display()
                    ),
                ));
            }
        }
        if files.is_empty() {
            return Err(ConfigError::invalid(
                KEY,
                format!("no .csv or .json candle file in {}", dir.display()),
            ));
        }
        Ok(Some(files))
    }

    fn fee(&self) -> Result<Decimal, ConfigError> {
        self.fee
            .parse("agent.fee", Decimal::ZERO, Some(Decimal::new(1, 1)))
    }

    /// Sizing and risk limits, validated (no file is read: what a reload
    /// of the reloadable keys changes).
    pub fn risk_config(&self) -> Result<RiskConfig, ConfigError> {
        let mut risk = self.risk()?;
        risk.gate.fee = self.fee()?;
        Ok(risk)
    }

    fn risk(&self) -> Result<RiskConfig, ConfigError> {
        fraction("agent.kelly_fraction", self.kelly_fraction, 0.0, 1.0)?;
        fraction("agent.probe_fraction", self.probe_fraction, 0.0, 0.1)?;
        fraction(
            "agent.max_gross_exposure",
            self.max_gross_exposure,
            0.01,
            1.0,
        )?;
        fraction("agent.daily_loss_limit", self.daily_loss_limit, 0.001, 1.0)?;
        fraction("agent.vol_multiple", self.vol_multiple, 1.0, 100.0)?;
        let ladder = [
            ("agent.yellow_drawdown", self.yellow_drawdown),
            ("agent.orange_drawdown", self.orange_drawdown),
            ("agent.red_drawdown", self.red_drawdown),
            ("agent.black_drawdown", self.black_drawdown),
        ];
        let mut below = 0.0;
        for (key, value) in ladder {
            fraction(key, value, 0.001, 1.0)?;
            if value <= below {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be above the level below it ({below}), got {value}"),
                ));
            }
            below = value;
        }
        for (key, value) in [
            ("agent.kelly_window", self.kelly_window),
            ("agent.min_trades", self.min_trades),
        ] {
            if value == 0 || value > 10_000 {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be between 1 and 10000, got {value}"),
                ));
            }
        }
        for (key, value) in [
            ("agent.orders_per_second", self.orders_per_second),
            ("agent.order_burst", self.order_burst),
            ("agent.confidence_rise_trades", self.confidence_rise_trades),
        ] {
            if value == 0 || value > 100_000 {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be between 1 and 100000, got {value}"),
                ));
            }
        }
        let cooldown_us = i64::try_from(self.ladder_cooldown_secs)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .ok_or_else(|| ConfigError::invalid("agent.ladder_cooldown_secs", "too large"))?;
        let decimal = |key: &str, v: f64| {
            Decimal::from_f64(v)
                .ok_or_else(|| ConfigError::invalid(key, format!("{v} is not a decimal")))
        };
        Ok(RiskConfig {
            kelly: KellyConfig {
                kelly_fraction: self.kelly_fraction,
                kelly_window: self.kelly_window,
                min_trades: self.min_trades,
                probe_fraction: self.probe_fraction,
            },
            gate: GateLimits {
                max_gross_exposure: decimal("agent.max_gross_exposure", self.max_gross_exposure)?,
                daily_loss_limit: decimal("agent.daily_loss_limit", self.daily_loss_limit)?,
                order_burst: self.order_burst,
                orders_per_second: self.orders_per_second,
                fee: Decimal::ZERO,
            },
            ladder: LadderConfig {
                yellow_drawdown: self.yellow_drawdown,
                orange_drawdown: self.orange_drawdown,
                red_drawdown: self.red_drawdown,
                black_drawdown: self.black_drawdown,
                daily_loss_limit: self.daily_loss_limit,
                vol_multiple: self.vol_multiple,
                cooldown_us,
                ..LadderConfig::default()
            },
            confidence: ConfidenceConfig {
                rise_trades: self.confidence_rise_trades,
                ..ConfidenceConfig::default()
            },
        })
    }

    /// One lane per symbol traded, each with its strategy (symbol override,
    /// else tier override, else the default).
    fn lanes(
        &self,
        universe: &Universe,
        files: Option<&BTreeMap<String, PathBuf>>,
    ) -> Result<Vec<LaneSpec>, ConfigError> {
        for key in self.tier_strategies.keys() {
            let known = key
                .parse::<u8>()
                .ok()
                .is_some_and(|t| universe.tiers.contains_key(&t));
            if !known {
                return Err(ConfigError::invalid(
                    format!("agent.tier_strategies.{key}"),
                    format!(
                        "no tier {key:?} in the universe (tiers: {})",
                        tier_list(universe)
                    ),
                ));
            }
        }
        let wanted: Vec<&str> = self.symbols.iter().map(String::as_str).collect();
        for (key, symbols) in [
            ("agent.symbols", &wanted),
            (
                "agent.symbol_strategies",
                &self.symbol_strategies.keys().map(String::as_str).collect(),
            ),
        ] {
            if let Some(s) = symbols.iter().find(|s| universe.instrument(s).is_none()) {
                return Err(ConfigError::invalid(
                    key,
                    format!("symbol {s:?} is not in the universe"),
                ));
            }
        }
        if let Some(files) = files {
            if let Some(s) = wanted.iter().find(|s| !files.contains_key(**s)) {
                return Err(ConfigError::invalid(
                    "agent.symbols",
                    format!("symbol {s:?} has no candle file in agent.market_replay_dir"),
                ));
            }
        }
        let mut lanes = Vec::new();
        for instrument in &universe.instruments {
            if !wanted.is_empty() && !wanted.contains(&instrument.symbol.as_str()) {
                continue;
            }
            if files.is_some_and(|f| !f.contains_key(&instrument.symbol)) {
                continue;
            }
            let tier = universe.tier_of(instrument).cloned().ok_or_else(|| {
                ConfigError::invalid(
                    "agent.universe_file",
                    format!("{} has no tier", instrument.symbol),
                )
            })?;
            let (key, setting) = match (
                self.symbol_strategies.get(&instrument.symbol),
                self.tier_strategies.get(&tier.id.to_string()),
            ) {
                (Some(s), _) => (format!("agent.symbol_strategies.{}", instrument.symbol), s),
                (None, Some(s)) => (format!("agent.tier_strategies.{}", tier.id), s),
                (None, None) => ("agent.strategy".to_string(), &self.strategy),
            };
            lanes.push(LaneSpec {
                strategy: setting.build(&key)?,
                strategy_name: setting.label(),
                instrument: instrument.clone(),
                tier,
            });
        }
        if lanes.is_empty() {
            return Err(ConfigError::invalid("agent.symbols", "no symbol to trade"));
        }
        Ok(lanes)
    }
}

fn tier_list(universe: &Universe) -> String {
    universe
        .tiers
        .keys()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
