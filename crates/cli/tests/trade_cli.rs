//! `qunimbus trade backtest` as a process: a deterministic report, an HTML
//! report that headless Chromium opens, and bad input refused with status
//! 2, one line naming the problem and no report.

#[path = "common/browser.rs"]
mod browser;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

fn qunimbus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qunimbus"))
        .args(args)
        .output()
        .expect("run qunimbus")
}

/// 3,000 one-minute BTCUSDT klines of a wave, so SMAs cross many times.
fn write_klines(path: &Path) {
    let mut text = String::new();
    for i in 0..3_000u64 {
        let phase = i as f64 / 40.0;
        let close = 60_000.0 + 800.0 * phase.sin() + (i % 7) as f64;
        let open = close - 3.0;
        let t = 1_700_000_000_000 + i * 60_000;
        text.push_str(&format!(
            "{t},{open:.2},{:.2},{:.2},{close:.2},1.5,{},90000,10,0.7,42000,0\n",
            close + 10.0,
            open - 10.0,
            t + 59_999
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// `sma_cross` (5, 20) on `data` with `extra` arguments; must succeed.
fn sma_backtest(data: &Path, extra: &[&str]) {
    let mut args = vec!["trade", "backtest", "--data", data.to_str().unwrap()];
    args.extend_from_slice(&[
        "--strategy",
        "sma_cross",
        "--param",
        "fast=5",
        "--param",
        "slow=20",
    ]);
    args.extend_from_slice(extra);
    let out = qunimbus(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_backtest_report_is_byte_identical_on_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("BTCUSDT-1m.csv");
    write_klines(&data);
    let reports = ["a.json", "b.json"].map(|name| dir.path().join(name));
    for report in &reports {
        sma_backtest(&data, &["--json", report.to_str().unwrap()]);
    }
    let (a, b) = (
        std::fs::read(&reports[0]).unwrap(),
        std::fs::read(&reports[1]).unwrap(),
    );
    assert_eq!(a, b);
    let report: serde_json::Value = serde_json::from_slice(&a).unwrap();
    let trades = report["trades"].as_array().unwrap();
    assert!(trades.len() > 10, "{} trades", trades.len());
    assert_eq!(
        report["metrics"]["trades"].as_u64().unwrap() as usize,
        trades.len()
    );
    assert_eq!(report["metrics"]["bars"], 3000);
    assert_eq!(trades[0]["symbol"], "BTCUSDT");
    // Fills are on the universe's grid: BTCUSDT lot 0.00001.
    let quantity: f64 = trades[0]["quantity"].as_str().unwrap().parse().unwrap();
    assert!(
        (quantity * 1e5 - (quantity * 1e5).round()).abs() < 1e-6,
        "{quantity}"
    );
    assert!(report["metrics"]["annualisation"]
        .as_str()
        .unwrap()
        .contains("sqrt(365)"));
    // Kelly sizing (the default) reports what the risk controls decided,
    // every denial code included; the first 30 trades are probes.
    let risk = &report["risk"];
    assert_eq!(risk["enforced"], true);
    let codes: Vec<&str> = risk["denials"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(codes.len(), 12, "{codes:?}");
    assert!(codes.contains(&"kill_switch") && codes.contains(&"trading_state_reducing"));
    // Every trade was also measured, except one still open when the data ended.
    assert!(risk["measured_trades"].as_u64().unwrap() + 1 >= trades.len() as u64);
    let notional = entry_notional(&trades[0]);
    assert!(notional < 10_000.0 * 0.0025 + 1.0, "first entry {notional}");
}

fn entry_notional(trade: &serde_json::Value) -> f64 {
    let number = |k: &str| trade[k].as_str().unwrap().parse::<f64>().unwrap();
    number("entry_price") * number("quantity")
}

/// `qunimbus trade backtest ARGS --json REPORT` must be refused.
fn refused(args: &[&str], report: &str, needle: &str) {
    let mut all = vec!["trade", "backtest"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", report]);
    let args = all.as_slice();
    let out = qunimbus(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr} lacks {needle:?}"
    );
}

#[test]
fn bad_input_exits_2_naming_file_line_and_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("BTCUSDT-1m.csv");
    write_klines(&data);
    let bad = dir.path().join("ETHUSDT-1m.csv");
    std::fs::write(
        &bad,
        "60000,1,2,0.5,1,1,0,0,0,0,0,0\n120000,1,0.5,2,1,1,0,0,0,0,0,0\n",
    )
    .unwrap();
    let report = dir.path().join("r.json");
    let (d, r) = (data.to_str().unwrap(), report.to_str().unwrap());
    let b = bad.to_str().unwrap();
    refused(
        &["--data", b, "--strategy", "sma_cross"],
        r,
        &format!("{b}:2: `high`"),
    );
    refused(
        &["--data", d, "--strategy", "macd"],
        r,
        "unknown strategy \"macd\"",
    );
    refused(
        &["--data", d, "--strategy", "sma_cross", "--param", "fats=3"],
        r,
        "no parameter \"fats\"",
    );
    refused(
        &["--data", d, "--strategy", "sma_cross", "--fee=-0.001"],
        r,
        "--fee",
    );
    let universe = dir.path().join("u.toml");
    let default = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../trading/universe/default.toml"
    ))
    .unwrap();
    let eth = &default[default.find("[[symbol]]\nsymbol = \"ETHUSDT\"").unwrap()..];
    let eth = &eth[..eth.find("\n\n").unwrap()];
    std::fs::write(&universe, format!("{default}\n{eth}\n")).unwrap();
    let u = universe.to_str().unwrap();
    refused(
        &["--data", d, "--strategy", "sma_cross", "--universe", u],
        r,
        "listed twice",
    );
    assert!(!report.exists(), "no report after a refusal");
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".partial")));
}

/// The HTML report stands alone: Chromium opens it with every request
/// other than the file itself failing the test, draws both charts, lists
/// every trade of the JSON report and sorts them by pnl on a click.
#[test]
fn the_html_report_opens_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("BTCUSDT-1m.csv");
    write_klines(&data);
    let (json, html) = (dir.path().join("r.json"), dir.path().join("r.html"));
    let (j, h) = (json.to_str().unwrap(), html.to_str().unwrap());
    sma_backtest(&data, &["--sizing", "all_in", "--json", j, "--html", h]);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let trades = report["trades"].as_array().unwrap().len();
    assert!(trades > 10, "{trades} trades");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the report links out"
    );
    let screenshot = browser::artifacts_dir().join("backtest-report.png");
    let summary = browser::run_script(
        "backtest_report.mjs",
        &[
            html.as_os_str(),
            OsStr::new(&trades.to_string()),
            screenshot.as_os_str(),
        ],
    );
    assert_eq!(summary["rows"], trades);
    let pnls: Vec<f64> = report["trades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["pnl"].as_str().unwrap().parse().unwrap())
        .collect();
    let lowest = pnls.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        (summary["lowest_pnl"].as_f64().unwrap() - lowest).abs() < 1e-4,
        "{summary}"
    );
    browser::assert_screenshot(&screenshot);
}
