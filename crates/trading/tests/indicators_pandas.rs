//! The indicators against independent implementations in Python: pandas'
//! rolling mean (SMA) and rolling max/min (Donchian), and Wilder's RSI as
//! published (seed = simple mean of the first `period` changes, then
//! Wilder's smoothing), computed by a script of its own. Needs python3 with
//! pandas (scripts/test installs it with the `backtesting` package); fails,
//! never skips, without it.

use qunimbus_trading::indicators::{Donchian, Rsi, Sma};
use std::process::Command;

const SCRIPT: &str = r#"
import sys, json
import pandas as pd
rows = json.load(open(sys.argv[1]))
close = pd.Series([r[0] for r in rows]); high = pd.Series([r[1] for r in rows]); low = pd.Series([r[2] for r in rows])
def wilder(values, n):
    out = [None] * len(values)
    gains = losses = 0.0
    for i in range(1, len(values)):
        ch = values[i] - values[i - 1]
        up, down = max(ch, 0.0), max(-ch, 0.0)
        if i <= n:
            gains += up / n; losses += down / n
            if i < n: continue
        else:
            gains = (gains * (n - 1) + up) / n; losses = (losses * (n - 1) + down) / n
        out[i] = 100.0 if losses == 0 else 100.0 - 100.0 / (1.0 + gains / losses)
    return out
nan = lambda s: [None if pd.isna(v) else float(v) for v in s]
print(json.dumps({
    "sma": nan(close.rolling(20).mean()),
    "upper": nan(high.rolling(20).max()),
    "lower": nan(low.rolling(20).min()),
    "rsi": wilder(list(close), 14),
}))
"#;

fn series(value: &serde_json::Value, key: &str) -> Vec<Option<f64>> {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing"))
        .iter()
        .map(serde_json::Value::as_f64)
        .collect()
}

fn close_enough(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        _ => false,
    }
}

#[test]
fn sma_rsi_and_donchian_agree_with_pandas() {
    // A deterministic walk with flat stretches and reversals.
    let mut rows = Vec::new();
    let mut price = 100.0f64;
    for i in 0..5_000u64 {
        let step = ((i * 7919 + 13) % 23) as f64 / 10.0 - 1.1;
        price = (price + if i % 97 < 5 { 0.0 } else { step }).max(1.0);
        rows.push([
            price,
            price + (i % 7) as f64 * 0.1,
            price - (i % 5) as f64 * 0.1,
        ]);
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bars.json");
    std::fs::write(&input, serde_json::to_string(&rows).unwrap()).unwrap();
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(&input)
        .output()
        .expect("python3 must be installed (scripts/test checks it)");
    assert!(
        out.status.success(),
        "python3 with pandas failed (scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (sma, rsi, upper, lower) = (
        series(&want, "sma"),
        series(&want, "rsi"),
        series(&want, "upper"),
        series(&want, "lower"),
    );
    let (mut s, mut r, mut d) = (Sma::new(20), Rsi::new(14), Donchian::new(20));
    for (i, [close, high, low]) in rows.iter().enumerate() {
        let got = s.push(*close);
        assert!(
            close_enough(got, sma[i]),
            "SMA at {i}: {got:?} vs pandas {:?}",
            sma[i]
        );
        let got = r.push(*close);
        assert!(
            close_enough(got, rsi[i]),
            "RSI at {i}: {got:?} vs {:?}",
            rsi[i]
        );
        let got = d.push(*high, *low);
        assert_eq!(got.map(|c| c.0), upper[i], "upper at {i}");
        assert_eq!(got.map(|c| c.1), lower[i], "lower at {i}");
    }
    assert!(sma[4_999].is_some() && rsi[4_999].is_some());
}
