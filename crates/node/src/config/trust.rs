//! `[trust]`: the Trust Kernel's windows, targets, gates and rollout plan.

use super::ConfigError;
use qunimbus_core::RegionSet;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Trust Kernel (SPEC §6).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Cedar compliance policy. Unset: `DATA_DIR/policy.cedar`, written from
    /// the built-in default on first start.
    pub policy_file: Option<PathBuf>,
    /// Window that availability and MTBF are computed over, hours.
    pub window_hours: f64,
    /// MTBF target of the mesh, hours.
    pub mtbf_target_hours: f64,
    /// A deployed region's MTBF below this pauses a rollout, hours.
    pub pause_mtbf_hours: f64,
    /// A deployed region's trust below this rolls a rollout back.
    pub rollback_trust: f64,
    /// Soak time of each rollout phase, seconds.
    pub soak_secs: f64,
    /// Rollout phases (the first phase's first region is the default canary).
    pub phases: Vec<qunimbus_trust::rollout::Phase>,
    /// Rollout controller tick, milliseconds.
    pub controller_interval_ms: u64,
    /// How often compliance evidence is re-gathered, seconds.
    pub compliance_interval_secs: f64,
    /// How often a compliance attestation block is written, seconds.
    pub attestation_interval_secs: f64,
    /// A region whose runtimes send nothing for this many expected report
    /// intervals is detected down (a `failure` event, source `detected`).
    pub silence_intervals: f64,
    /// ... but never after less silence than this, seconds. Runtimes that
    /// report in bursts (many runs, then a long pause) should have their
    /// interval configured: their learned interval is the gap inside a burst.
    pub min_silence_secs: f64,
    /// Expected seconds between a region's reports, by region; a region not
    /// listed has its interval learned from its own recent reports.
    pub report_interval_secs: std::collections::BTreeMap<String, f64>,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self {
            policy_file: None,
            window_hours: 720.0,
            mtbf_target_hours: 120.0,
            pause_mtbf_hours: 100.0,
            rollback_trust: 0.7,
            soak_secs: 1800.0,
            phases: qunimbus_trust::rollout::default_phases(),
            controller_interval_ms: 1000,
            compliance_interval_secs: 10.0,
            attestation_interval_secs: 86_400.0,
            silence_intervals: 20.0,
            min_silence_secs: 60.0,
            report_interval_secs: std::collections::BTreeMap::new(),
        }
    }
}

impl TrustConfig {
    pub(super) fn validate(&self, regions: &RegionSet) -> Result<(), ConfigError> {
        for (key, value) in [
            ("trust.window_hours", self.window_hours),
            ("trust.mtbf_target_hours", self.mtbf_target_hours),
            ("trust.pause_mtbf_hours", self.pause_mtbf_hours),
            ("trust.soak_secs", self.soak_secs),
            (
                "trust.compliance_interval_secs",
                self.compliance_interval_secs,
            ),
            (
                "trust.attestation_interval_secs",
                self.attestation_interval_secs,
            ),
            ("trust.silence_intervals", self.silence_intervals),
            ("trust.min_silence_secs", self.min_silence_secs),
        ] {
            if !(value.is_finite() && value > 0.0 && value < 1e9) {
                return Err(ConfigError::invalid(
                    key,
                    format!("must be a finite number greater than 0, got {value}"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.rollback_trust) {
            return Err(ConfigError::invalid(
                "trust.rollback_trust",
                format!("must be between 0 and 1, got {}", self.rollback_trust),
            ));
        }
        if self.controller_interval_ms < 10 {
            return Err(ConfigError::invalid(
                "trust.controller_interval_ms",
                "must be at least 10",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (region, secs) in &self.report_interval_secs {
            let key = format!("trust.report_interval_secs.{region}");
            let Some(canonical) = regions.canonical(region) else {
                return Err(ConfigError::invalid(&key, "is not a configured region"));
            };
            if !seen.insert(canonical) {
                return Err(ConfigError::invalid(
                    &key,
                    format!("{canonical} is listed twice"),
                ));
            }
            if !(secs.is_finite() && *secs >= 0.001 && *secs < 1e9) {
                return Err(ConfigError::invalid(
                    &key,
                    format!("must be a finite number of seconds, at least 0.001, got {secs}"),
                ));
            }
        }
        qunimbus_trust::rollout::validate_plan(&self.phases)
            .map_err(|e| ConfigError::invalid("trust.phases", e.to_string()))?;
        for phase in &self.phases {
            if let Some(unknown) = phase
                .regions
                .iter()
                .find(|r| regions.canonical(r).is_none())
            {
                return Err(ConfigError::invalid(
                    "trust.phases",
                    format!("{unknown:?} is not a configured region"),
                ));
            }
        }
        Ok(())
    }

    /// The kernel's settings, with region names in canonical spelling.
    pub fn settings(&self, data_dir: &Path, regions: &RegionSet) -> crate::trust::TrustSettings {
        let phases = self
            .phases
            .iter()
            .map(|p| qunimbus_trust::rollout::Phase {
                percent: p.percent,
                regions: p
                    .regions
                    .iter()
                    .map(|r| regions.canonical(r).unwrap_or(r).to_string())
                    .collect(),
            })
            .collect();
        crate::trust::TrustSettings {
            policy_path: self
                .policy_file
                .clone()
                .unwrap_or_else(|| data_dir.join("policy.cedar")),
            create_default_policy: self.policy_file.is_none(),
            window_micros: (self.window_hours * qunimbus_trust::health::MICROS_PER_HOUR) as i64,
            mtbf_target_hours: self.mtbf_target_hours,
            thresholds: qunimbus_trust::rollout::GateThresholds {
                rollback_trust: self.rollback_trust,
                pause_mtbf_hours: self.pause_mtbf_hours,
            },
            soak_micros: (self.soak_secs * 1e6) as i64,
            phases,
            controller_interval: Duration::from_millis(self.controller_interval_ms),
            compliance_interval: Duration::from_secs_f64(self.compliance_interval_secs),
            attestation_interval: Duration::from_secs_f64(self.attestation_interval_secs),
            silence: qunimbus_trust::cadence::SilenceRule {
                intervals: self.silence_intervals,
                floor_micros: (self.min_silence_secs * 1e6) as i64,
            },
            report_intervals: self
                .report_interval_secs
                .iter()
                .filter_map(|(r, secs)| {
                    Some((regions.canonical(r)?.to_string(), (secs * 1e6) as i64))
                })
                .collect(),
        }
    }
}
