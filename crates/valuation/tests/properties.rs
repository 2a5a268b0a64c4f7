//! Property tests for the valuation invariants in SPEC §3.

use proptest::prelude::*;
use qunimbus_core::RunMetrics;
use qunimbus_valuation::ValuationEngine;

fn metrics() -> impl Strategy<Value = RunMetrics> {
    (0.0..=1.0f64, 0.0..1.0f64, 0.0..1000.0f64, 1e-6..1e12f64).prop_map(|(eta, cv, rt, eph)| {
        RunMetrics {
            eta_ent: eta,
            coherence_variance: cv,
            runtime_hours: rt,
            eph_delivered: eph,
        }
    })
}

proptest! {
    #[test]
    fn phi_is_non_negative_and_penalty_bounded(m in metrics()) {
        let v = ValuationEngine::default().value(&m);
        prop_assert!(v.phi_qevf >= 0.0 && v.phi_qevf.is_finite());
        prop_assert!((0.0..=1.0).contains(&v.coherence_penalty));
        prop_assert!((0.0..=1.0).contains(&v.runtime_factor));
        prop_assert!(v.price_multiplier >= 0.0);
        prop_assert!(v.market_value >= 0.0 && v.eph_price >= 0.0);
    }

    #[test]
    fn phi_non_decreasing_in_eta(m in metrics(), a in 0.0..=1.0f64, b in 0.0..=1.0f64) {
        let e = ValuationEngine::default();
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let v_lo = e.value(&RunMetrics { eta_ent: lo, ..m });
        let v_hi = e.value(&RunMetrics { eta_ent: hi, ..m });
        prop_assert!(v_lo.phi_qevf <= v_hi.phi_qevf);
        prop_assert!(v_lo.market_value <= v_hi.market_value);
    }

    #[test]
    fn phi_non_decreasing_in_runtime_up_to_cap(m in metrics(), a in 0.0..500.0f64, b in 0.0..500.0f64) {
        let e = ValuationEngine::default();
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let v_lo = e.value(&RunMetrics { runtime_hours: lo, ..m });
        let v_hi = e.value(&RunMetrics { runtime_hours: hi, ..m });
        prop_assert!(v_lo.phi_qevf <= v_hi.phi_qevf);
        if lo >= e.params().runtime_cap_hours {
            prop_assert_eq!(v_lo.phi_qevf, v_hi.phi_qevf);
        }
    }

    #[test]
    fn phi_non_increasing_in_coherence_variance(m in metrics(), a in 0.0..0.1f64, b in 0.0..0.1f64) {
        let e = ValuationEngine::default();
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let v_lo = e.value(&RunMetrics { coherence_variance: lo, ..m });
        let v_hi = e.value(&RunMetrics { coherence_variance: hi, ..m });
        prop_assert!(v_lo.phi_qevf >= v_hi.phi_qevf);
    }
}
