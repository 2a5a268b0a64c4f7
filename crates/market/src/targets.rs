//! Targets for the measured feed latency and throughput, and whether the
//! measurements meet them (SPEC §5).

use crate::latency::LatencyReport;
use serde::{Deserialize, Serialize};

/// Default latency target: p99 within 10 ms.
pub const DEFAULT_LATENCY_P99_MS: f64 = 10.0;
/// Default throughput target: 5×10⁹ EPH per hour.
pub const DEFAULT_EPH_PER_HOUR: f64 = 5e9;

/// Configurable targets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Targets {
    /// Overall p99 feed latency must be at most this, ms (default 10).
    pub latency_p99_ms: f64,
    /// Throughput must be at least this, EPH per hour (default 5×10⁹).
    pub eph_per_hour: f64,
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            latency_p99_ms: DEFAULT_LATENCY_P99_MS,
            eph_per_hour: DEFAULT_EPH_PER_HOUR,
        }
    }
}

/// A measured value beside its target.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Measured<T> {
    /// What was measured; `None` when nothing was.
    pub value: Option<T>,
    /// The target.
    pub target: T,
    /// Whether the value meets the target; `None` when nothing was measured.
    pub met: Option<bool>,
}

/// Overall p99 latency against [`Targets::latency_p99_ms`]: met when
/// p99 ≤ target; `None` when no latency was recorded.
pub fn latency_status(report: &LatencyReport, targets: &Targets) -> Measured<f64> {
    let value = report.overall.as_ref().map(|q| q.p99_ms);
    Measured {
        value,
        target: targets.latency_p99_ms,
        met: value.map(|p99| p99 <= targets.latency_p99_ms),
    }
}

/// Throughput against [`Targets::eph_per_hour`]: met when value ≥ target;
/// value and verdict are `None` when no delivery fell in the window.
pub fn throughput_status(
    eph_per_hour: f64,
    samples_in_window: bool,
    targets: &Targets,
) -> Measured<f64> {
    let value = samples_in_window.then_some(eph_per_hour);
    Measured {
        value,
        target: targets.eph_per_hour,
        met: value.map(|v| v >= targets.eph_per_hour),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Quantiles;
    use std::collections::BTreeMap;

    fn report(p99_ms: f64) -> LatencyReport {
        LatencyReport {
            overall: Some(Quantiles {
                count: 1,
                p50_ms: p99_ms,
                p99_ms,
                max_ms: p99_ms,
            }),
            per_partner: BTreeMap::new(),
        }
    }

    #[test]
    fn defaults() {
        let t = Targets::default();
        assert_eq!(t.latency_p99_ms, 10.0);
        assert_eq!(t.eph_per_hour, 5e9);
        let parsed: Targets = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, t);
        let parsed: Targets = serde_json::from_str(r#"{"latency_p99_ms":2.5}"#).unwrap();
        assert_eq!(parsed.latency_p99_ms, 2.5);
        assert_eq!(parsed.eph_per_hour, 5e9);
        assert!(serde_json::from_str::<Targets>(r#"{"latency":1}"#).is_err());
    }

    #[test]
    fn latency_met_unmet_none() {
        let t = Targets::default();
        assert_eq!(
            latency_status(&report(9.9), &t),
            Measured {
                value: Some(9.9),
                target: 10.0,
                met: Some(true)
            }
        );
        assert_eq!(latency_status(&report(10.0), &t).met, Some(true));
        assert_eq!(latency_status(&report(10.001), &t).met, Some(false));
        let empty = LatencyReport {
            overall: None,
            per_partner: BTreeMap::new(),
        };
        assert_eq!(
            latency_status(&empty, &t),
            Measured {
                value: None,
                target: 10.0,
                met: None
            }
        );
    }

    #[test]
    fn throughput_met_unmet_none() {
        let t = Targets::default();
        assert_eq!(throughput_status(5e9, true, &t).met, Some(true));
        assert_eq!(throughput_status(6e9, true, &t).value, Some(6e9));
        assert_eq!(throughput_status(4.9e9, true, &t).met, Some(false));
        assert_eq!(
            throughput_status(0.0, false, &t),
            Measured {
                value: None,
                target: 5e9,
                met: None
            }
        );
        assert_eq!(
            serde_json::to_value(throughput_status(0.0, false, &t)).unwrap(),
            serde_json::json!({"value": null, "target": 5e9, "met": null})
        );
    }
}
