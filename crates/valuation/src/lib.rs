//! The Dynamic Phi-Valuation Engine (SPEC §3): turns the measured quantities
//! of a run into `phi_qevf` (USD), a price multiplier, a market value and an
//! EPH price, using exactly the documented formulas and order of operations
//! so results are reproducible to the last bit. Also a bounded history of
//! recent `phi_qevf` values with summary statistics.
//!
//! Pure: no I/O, no clock, no global state.

#![warn(missing_docs)]

mod history;

pub use history::{nearest_rank, PhiHistory, PhiStats};

use qunimbus_core::RunMetrics;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Engine parameters (SPEC §3), configurable per node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValuationParams {
    /// Phi of a run at baseline efficiency, no coherence penalty and full runtime (USD).
    pub base_phi_value: f64,
    /// The efficiency that earns a multiplier of exactly 1.
    pub eta_baseline: f64,
    /// Coherence variance at which the penalty reaches 0 (fraction).
    pub coherence_variance_threshold: f64,
    /// Runtime beyond which longer runs earn no more (hours).
    pub runtime_cap_hours: f64,
    /// How strongly the price multiplier follows efficiency above/below baseline.
    pub price_sensitivity: f64,
}

impl Default for ValuationParams {
    fn default() -> Self {
        Self {
            base_phi_value: 1000.0,
            eta_baseline: 0.95,
            coherence_variance_threshold: 0.02,
            runtime_cap_hours: 120.0,
            price_sensitivity: 10.0,
        }
    }
}

/// A parameter that fails validation; `param` is the configuration key.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{param}: {message}")]
pub struct ParamError {
    /// The offending parameter's name.
    pub param: &'static str,
    /// Why it is rejected.
    pub message: String,
}

impl ValuationParams {
    /// Checks that every parameter is finite, that baseline, threshold, cap and
    /// base value are > 0, and that sensitivity is ≥ 0.
    pub fn validate(&self) -> Result<(), ParamError> {
        let positive = [
            ("base_phi_value", self.base_phi_value),
            ("eta_baseline", self.eta_baseline),
            (
                "coherence_variance_threshold",
                self.coherence_variance_threshold,
            ),
            ("runtime_cap_hours", self.runtime_cap_hours),
        ];
        for (param, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(ParamError {
                    param,
                    message: format!("must be a finite number greater than 0, got {value}"),
                });
            }
        }
        if !(self.price_sensitivity.is_finite() && self.price_sensitivity >= 0.0) {
            return Err(ParamError {
                param: "price_sensitivity",
                message: format!(
                    "must be a finite number of at least 0, got {}",
                    self.price_sensitivity
                ),
            });
        }
        Ok(())
    }
}

/// The priced result for one run, with the intermediate factors so a reader
/// can see how the price was reached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Valuation {
    /// `eta_ent / eta_baseline`.
    pub efficiency_multiplier: f64,
    /// `max(0, 1 - coherence_variance / threshold)`, in [0, 1].
    pub coherence_penalty: f64,
    /// `min(runtime_hours, cap) / cap`, in [0, 1].
    pub runtime_factor: f64,
    /// Quantum Economic Value Function (USD).
    pub phi_qevf: f64,
    /// `max(0, 1 + (eta_ent - eta_baseline) * price_sensitivity)`.
    pub price_multiplier: f64,
    /// `phi_qevf * price_multiplier` (USD).
    pub market_value: f64,
    /// `phi_qevf / eph_delivered` (USD per entanglement pair-hour).
    pub eph_price: f64,
    /// `coherence_variance < threshold`.
    pub coherence_within_threshold: bool,
}

impl Valuation {
    /// Whether every figure is finite. Valid inputs always give finite
    /// figures except `eph_price` for a vanishingly small `eph_delivered`
    /// (e.g. 5e-324), where the division overflows.
    pub fn is_finite(&self) -> bool {
        [
            self.efficiency_multiplier,
            self.coherence_penalty,
            self.runtime_factor,
            self.phi_qevf,
            self.price_multiplier,
            self.market_value,
            self.eph_price,
        ]
        .iter()
        .all(|v| v.is_finite())
    }
}

/// Prices runs with a fixed, validated set of parameters (default: SPEC §3 defaults).
#[derive(Debug, Clone, Copy, Default)]
pub struct ValuationEngine {
    params: ValuationParams,
}

impl ValuationEngine {
    /// Creates an engine after validating `params`.
    pub fn new(params: ValuationParams) -> Result<Self, ParamError> {
        params.validate()?;
        Ok(Self { params })
    }

    /// The parameters in force.
    pub fn params(&self) -> &ValuationParams {
        &self.params
    }

    /// Prices one run. `metrics` must already be validated (SPEC §2 ranges);
    /// the formulas are evaluated in the order SPEC §3 gives.
    pub fn value(&self, metrics: &RunMetrics) -> Valuation {
        let p = &self.params;
        let efficiency_multiplier = metrics.eta_ent / p.eta_baseline;
        let coherence_penalty =
            (1.0 - metrics.coherence_variance / p.coherence_variance_threshold).max(0.0);
        let runtime_factor = metrics.runtime_hours.min(p.runtime_cap_hours) / p.runtime_cap_hours;
        let phi_qevf =
            p.base_phi_value * efficiency_multiplier * coherence_penalty * runtime_factor;
        let price_multiplier =
            (1.0 + (metrics.eta_ent - p.eta_baseline) * p.price_sensitivity).max(0.0);
        let market_value = phi_qevf * price_multiplier;
        let eph_price = phi_qevf / metrics.eph_delivered;
        Valuation {
            efficiency_multiplier,
            coherence_penalty,
            runtime_factor,
            phi_qevf,
            price_multiplier,
            market_value,
            eph_price,
            coherence_within_threshold: metrics.coherence_variance < p.coherence_variance_threshold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(eta: f64, cv: f64, rt: f64, eph: f64) -> RunMetrics {
        RunMetrics {
            eta_ent: eta,
            coherence_variance: cv,
            runtime_hours: rt,
            eph_delivered: eph,
        }
    }

    // Expected values were computed independently with CPython's float (IEEE
    // 754 binary64) using the SPEC §3 formulas in the same order.
    #[test]
    fn reference_run_matches_spec_to_the_bit() {
        let v = ValuationEngine::default().value(&metrics(0.97, 0.015, 100.0, 1000.0));
        assert_eq!(v.efficiency_multiplier, 1.0210526315789474);
        assert_eq!(v.coherence_penalty, 0.25);
        assert_eq!(v.runtime_factor, 0.8333333333333334);
        assert_eq!(v.phi_qevf, 212.71929824561406);
        assert_eq!(v.price_multiplier, 1.2000000000000002);
        assert_eq!(v.market_value, 255.2631578947369);
        assert_eq!(v.eph_price, 0.21271929824561406);
        assert!(v.coherence_within_threshold);
    }

    #[test]
    fn penalty_and_multiplier_floor_at_zero() {
        let v = ValuationEngine::default().value(&metrics(0.5, 0.03, 200.0, 10.0));
        assert_eq!(v.efficiency_multiplier, 0.5263157894736842);
        assert_eq!(v.coherence_penalty, 0.0);
        assert_eq!(v.runtime_factor, 1.0);
        assert_eq!(v.phi_qevf, 0.0);
        assert_eq!(v.price_multiplier, 0.0);
        assert_eq!(v.market_value, 0.0);
        assert!(!v.coherence_within_threshold);
    }

    #[test]
    fn more_reference_values() {
        let e = ValuationEngine::default();
        let v = e.value(&metrics(0.8, 0.0, 120.0, 3.0));
        assert_eq!(v.phi_qevf, 842.1052631578948);
        assert_eq!(v.price_multiplier, 0.0);
        assert_eq!(v.eph_price, 280.70175438596493);
        let v = e.value(&metrics(1.0, 0.019999, 500.0, 7.5));
        assert_eq!(v.coherence_penalty, 4.999999999999449e-05);
        assert_eq!(v.phi_qevf, 0.05263157894736262);
        assert_eq!(v.price_multiplier, 1.5000000000000004);
        assert_eq!(v.market_value, 0.07894736842104395);
        assert_eq!(v.eph_price, 0.007017543859648349);
    }

    #[test]
    fn tiny_eph_overflows_the_price() {
        let v = ValuationEngine::default().value(&metrics(0.97, 0.01, 100.0, 5e-324));
        assert!(!v.is_finite());
        assert!(ValuationEngine::default()
            .value(&metrics(0.97, 0.01, 100.0, 1e-300))
            .is_finite());
    }

    #[test]
    fn threshold_is_exclusive() {
        let v = ValuationEngine::default().value(&metrics(0.97, 0.02, 100.0, 1.0));
        assert!(!v.coherence_within_threshold);
        assert_eq!(v.phi_qevf, 0.0);
    }

    #[test]
    fn zero_runtime_gives_zero_phi() {
        let v = ValuationEngine::default().value(&metrics(0.97, 0.01, 0.0, 1.0));
        assert_eq!(v.phi_qevf, 0.0);
    }

    #[test]
    fn invalid_params_name_the_parameter() {
        let cases = [
            (
                ValuationParams {
                    eta_baseline: 0.0,
                    ..Default::default()
                },
                "eta_baseline",
            ),
            (
                ValuationParams {
                    coherence_variance_threshold: -1.0,
                    ..Default::default()
                },
                "coherence_variance_threshold",
            ),
            (
                ValuationParams {
                    runtime_cap_hours: 0.0,
                    ..Default::default()
                },
                "runtime_cap_hours",
            ),
            (
                ValuationParams {
                    base_phi_value: f64::NAN,
                    ..Default::default()
                },
                "base_phi_value",
            ),
            (
                ValuationParams {
                    price_sensitivity: f64::INFINITY,
                    ..Default::default()
                },
                "price_sensitivity",
            ),
        ];
        for (params, name) in cases {
            assert_eq!(ValuationEngine::new(params).unwrap_err().param, name);
        }
    }
}
