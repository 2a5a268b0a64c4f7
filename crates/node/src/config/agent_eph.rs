//! `[agent.eph]`: the agent trades `EPH-USD`, the QMP price per EPH of
//! each region (SPEC §8), on paper. Its bars are built from the node's
//! own feed, which the agent reads as a registered partner; the
//! instrument is a tier of its own, with its own limits and filters.

use super::agent::{DecimalSetting, StrategySetting};
use super::ConfigError;
use qunimbus_core::RegionSet;
use qunimbus_trading::{Instrument, Tier};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The tier of every `EPH-USD` lane (the universe's tiers are 1–6).
pub const EPH_TIER: u8 = 7;

/// The symbol of region `region`'s EPH price: `EPH-USD@REGION`.
pub fn eph_symbol(region: &str) -> String {
    format!("EPH-USD@{region}")
}

/// The EPH instrument and its feed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EphConfig {
    /// Trades `EPH-USD` per region from the node's feed.
    pub enabled: bool,
    /// Regions traded; empty: every region of the node.
    pub regions: Vec<String>,
    /// Region of the agent's feed partner (the distribution policy withholds
    /// from it what it withholds from any partner there); unset: the first
    /// region of the node.
    pub partner_region: Option<String>,
    /// The strategy of the EPH lanes.
    pub strategy: StrategySetting,
    /// Largest position, % of equity.
    pub max_position_pct: DecimalSetting,
    /// Largest Kelly fraction applied.
    pub max_kelly_fraction: DecimalSetting,
    /// Largest order value, USD.
    pub max_notional_per_order: DecimalSetting,
    /// Smallest price increment, USD.
    pub tick_size: DecimalSetting,
    /// Smallest quantity increment, EPH.
    pub lot_size: DecimalSetting,
    /// Smallest order value, USD.
    pub min_notional: DecimalSetting,
}

impl Default for EphConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            regions: Vec::new(),
            partner_region: None,
            strategy: StrategySetting::default(),
            max_position_pct: DecimalSetting("2".into()),
            max_kelly_fraction: DecimalSetting("0.10".into()),
            max_notional_per_order: DecimalSetting("1000".into()),
            tick_size: DecimalSetting("0.000001".into()),
            lot_size: DecimalSetting("0.001".into()),
            min_notional: DecimalSetting("1".into()),
        }
    }
}

/// A region list made canonical against the node's regions.
fn canonical_regions(
    key: &str,
    names: &[String],
    regions: &RegionSet,
) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let canonical = regions.canonical(name).ok_or_else(|| {
            ConfigError::invalid(
                key,
                format!(
                    "{name:?} is not a region of this node ({})",
                    regions.names().join(", ")
                ),
            )
        })?;
        if out.iter().any(|r| r == canonical) {
            return Err(ConfigError::invalid(
                key,
                format!("{canonical} is listed twice"),
            ));
        }
        out.push(canonical.to_string());
    }
    Ok(out)
}

impl EphConfig {
    /// The section with every region spelled as the node spells it (empty
    /// `regions`: all of them; no `partner_region`: the first).
    pub fn resolved(&self, regions: &RegionSet) -> Result<Self, ConfigError> {
        let mut resolved = self.clone();
        resolved.regions = if self.regions.is_empty() {
            regions.names().to_vec()
        } else {
            canonical_regions("agent.eph.regions", &self.regions, regions)?
        };
        let partner = match &self.partner_region {
            Some(name) => canonical_regions(
                "agent.eph.partner_region",
                std::slice::from_ref(name),
                regions,
            )?
            .remove(0),
            None => regions.names().first().cloned().unwrap_or_default(),
        };
        resolved.partner_region = Some(partner);
        Ok(resolved)
    }

    /// The EPH tier's limits.
    pub fn tier(&self) -> Result<Tier, ConfigError> {
        let hundred = Some(Decimal::ONE_HUNDRED);
        let positive = Decimal::new(1, 8);
        Ok(Tier {
            id: EPH_TIER,
            max_position_pct: self.max_position_pct.parse(
                "agent.eph.max_position_pct",
                positive,
                hundred,
            )?,
            max_kelly_fraction: self.max_kelly_fraction.parse(
                "agent.eph.max_kelly_fraction",
                positive,
                Some(Decimal::ONE),
            )?,
            max_notional_per_order: self.max_notional_per_order.parse(
                "agent.eph.max_notional_per_order",
                positive,
                None,
            )?,
        })
    }

    /// Region `region`'s instrument.
    pub fn instrument(&self, region: &str) -> Result<Instrument, ConfigError> {
        let step = |key: &str, value: &DecimalSetting| {
            value.parse(key, Decimal::new(1, 12), Some(Decimal::from(1_000_000)))
        };
        let lot_size = step("agent.eph.lot_size", &self.lot_size)?;
        Ok(Instrument {
            symbol: eph_symbol(region),
            base: "EPH".into(),
            quote: "USD".into(),
            tier: EPH_TIER,
            tick_size: step("agent.eph.tick_size", &self.tick_size)?,
            lot_size,
            min_quantity: lot_size,
            min_notional: self.min_notional.parse(
                "agent.eph.min_notional",
                Decimal::ZERO,
                Some(Decimal::from(1_000_000)),
            )?,
        })
    }

    /// The strategy setting and the key it is named by in errors.
    pub fn strategy(&self) -> (&'static str, &StrategySetting) {
        ("agent.eph.strategy", &self.strategy)
    }
}
