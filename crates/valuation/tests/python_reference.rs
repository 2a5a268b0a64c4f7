//! Cross-checks the engine against an independent implementation of the
//! SPEC §3 formulas in CPython (IEEE 754 binary64), bit for bit.

use qunimbus_core::RunMetrics;
use qunimbus_valuation::ValuationEngine;
use std::io::Write;
use std::process::{Command, Stdio};

const REFERENCE: &str = r#"
import sys
base, bl, th, cap, s = 1000.0, 0.95, 0.02, 120.0, 10.0
for line in sys.stdin:
    eta, cv, rt, eph = (float(x) for x in line.split())
    phi = base * (eta / bl) * max(0.0, 1.0 - cv / th) * (min(rt, cap) / cap)
    pm = max(0.0, 1.0 + (eta - bl) * s)
    print(repr(phi), repr(pm), repr(phi * pm), repr(phi / eph))
"#;

#[test]
fn engine_matches_cpython_bit_for_bit() {
    // A deterministic spread of inputs (a simple LCG; no extra dependency).
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let inputs: Vec<RunMetrics> = (0..2000)
        .map(|_| RunMetrics {
            eta_ent: next(),
            coherence_variance: next() * 0.03,
            runtime_hours: next() * 200.0,
            eph_delivered: 1e-3 + next() * 1e4,
        })
        .collect();
    let mut child = Command::new("python3")
        .args(["-c", REFERENCE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is required for this cross-check");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for m in &inputs {
            // `{:?}` prints the shortest text that round-trips exactly.
            writeln!(
                stdin,
                "{:?} {:?} {:?} {:?}",
                m.eta_ent, m.coherence_variance, m.runtime_hours, m.eph_delivered
            )
            .unwrap();
        }
    }
    let output = child.wait_with_output().expect("python3 output");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let engine = ValuationEngine::default();
    let mut lines = 0;
    for (m, line) in inputs.iter().zip(text.lines()) {
        let expected: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let v = engine.value(m);
        let got = [v.phi_qevf, v.price_multiplier, v.market_value, v.eph_price];
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(
                g.to_bits(),
                e.to_bits(),
                "{m:?}: got {got:?}, CPython {expected:?}"
            );
        }
        lines += 1;
    }
    assert_eq!(lines, inputs.len());
}
