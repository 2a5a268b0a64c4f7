//! `qunimbus serve --agent` and `qunimbus agent …` through the real binary:
//! the agent trades on paper, the CLI reads and commands it, and after the
//! node stops `ledger verify` accepts its fills — and names the block when
//! one stored fill is changed.

// Shared by the process tests; this one needs `qunimbus()` and `spawn_serve`.
#[allow(dead_code)]
mod common;

use common::{qunimbus, spawn_serve, terminate, text};
use serde_json::Value;
use sqlx::Connection;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

fn agent_cli(url: &str, data_dir: &Path, args: &[&str]) -> Output {
    qunimbus()
        .arg("agent")
        .args(args)
        .args(["--url", url, "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run qunimbus agent")
}

async fn status(url: &str) -> Value {
    reqwest::get(format!("{url}/v1/agent"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn verify(data_dir: &Path) -> Output {
    qunimbus()
        .args(["ledger", "verify", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run qunimbus ledger verify")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_cli_commands_and_a_tampered_fill_fails_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = spawn_serve(dir.path(), |command| {
        command.arg("--agent");
        command.env("QUNIMBUS_AGENT__BAR_INTERVAL_MS", "5");
        command.env("QUNIMBUS_LEDGER__CHECKPOINT_INTERVAL_MS", "50");
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&url).await["fills"].as_u64().unwrap_or(0) < 4 {
        assert!(
            Instant::now() < deadline,
            "no fills: {}",
            status(&url).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = agent_cli(&url, dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("mode paper"), "{}", text(&out));
    assert!(
        stdout.contains("level GREEN") || stdout.contains("level YELLOW"),
        "{}",
        text(&out)
    );

    let out = agent_cli(&url, dir.path(), &["trades", "--limit", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("block ")
            .count(),
        2,
        "{}",
        text(&out)
    );

    let out = agent_cli(&url, dir.path(), &["orders"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = agent_cli(
        &url,
        dir.path(),
        &[
            "reload",
            "--set",
            "daily_loss_limit=0.02",
            "--reason",
            "news",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("reload: done, config block "),
        "{}",
        text(&out)
    );
    let out = agent_cli(
        &url,
        dir.path(),
        &["reload", "--set", "bogus=1", "--reason", "x"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("agent.bogus"),
        "{}",
        text(&out)
    );
    let out = agent_cli(&url, dir.path(), &["exchange"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no exchange"),
        "{}",
        text(&out)
    );

    let out = agent_cli(&url, dir.path(), &["kill"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--reason is required: {}",
        text(&out)
    );
    let out = agent_cli(&url, dir.path(), &["kill", "--reason", "drill"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("kill: done, risk block "),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("level BLACK"), "{}", text(&out));
    let out = agent_cli(&url, dir.path(), &["reset", "--reason", "drill over"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = agent_cli(&url, dir.path(), &["reset", "--reason", "twice"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("BLACK"),
        "{}",
        text(&out)
    );
    terminate(child);

    let out = verify(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ledger OK"),
        "{}",
        text(&out)
    );

    // One stored fill's price, changed: verify names that block.
    let db = format!("sqlite:{}", dir.path().join("qunimbus.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
    let (index, payload): (i64, String) = sqlx::query_as(
        "SELECT idx, payload FROM blocks WHERE kind = 'trade' ORDER BY idx LIMIT 1 OFFSET 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let mut fill: Value = serde_json::from_str(&payload).unwrap();
    let price: f64 = fill["price"].as_str().unwrap().parse().unwrap();
    fill["price"] = Value::String(format!("{}", price * 0.5));
    sqlx::query("UPDATE blocks SET payload = $1 WHERE idx = $2")
        .bind(fill.to_string())
        .bind(index)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let out = verify(dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("FAILED at block {index}:")) && stdout.contains("hash mismatch"),
        "{}",
        text(&out)
    );
}

/// A Binance kline CSV of `bars` one-minute bars: a slow wave with a
/// faster ripple (so a moving-average cross trades now and then), prices on
/// a 0.01 tick.
fn kline_file(path: &Path, base: f64, phase: f64, bars: usize) {
    let start_ms: i64 = 1_704_067_200_000;
    let mut text = String::new();
    for i in 0..bars {
        let x = i as f64;
        let price = |x: f64| {
            let p = base * (1.0 + 0.04 * (x / 97.0 + phase).sin() + 0.01 * (x / 13.0).sin());
            (p * 100.0).round() / 100.0
        };
        let (open, close) = (price(x), price(x + 1.0));
        let high = open.max(close) + 0.05;
        let low = open.min(close) - 0.05;
        let t = start_ms + i as i64 * 60_000;
        text.push_str(&format!(
            "{t},{open:.2},{high:.2},{low:.2},{close:.2},10.0,{},1000.0,10,5.0,500.0,0\n",
            t + 59_999
        ));
    }
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candle_replay_trades_what_the_backtest_of_the_same_files_trades() {
    let dir = tempfile::tempdir().unwrap();
    let candles = dir.path().join("candles");
    std::fs::create_dir(&candles).unwrap();
    let files = [
        candles.join("BTCUSDT-1m.csv"),
        candles.join("ETHUSDT-1m.csv"),
    ];
    kline_file(&files[0], 42_000.0, 0.0, 3000);
    kline_file(&files[1], 2_300.0, 1.3, 3000);
    let report = dir.path().join("report.json");
    let out = qunimbus()
        .args([
            "trade",
            "backtest",
            "--strategy",
            "sma_cross",
            "--cash",
            "100000",
            "--json",
        ])
        .arg(&report)
        .arg("--data")
        .arg(&files[0])
        .arg("--data")
        .arg(&files[1])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let backtest: Vec<Value> = report["trades"].as_array().unwrap().clone();

    let data = dir.path().join("node");
    let (child, url) = spawn_serve(&data, |command| {
        command.arg("--market-replay").arg(&candles);
        command.env("QUNIMBUS_AGENT__BAR_INTERVAL_MS", "1");
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = status(&url).await;
        if s["market_ended"] == Value::Bool(true) && s["pending_blocks"] == 0 {
            break s;
        }
        assert!(Instant::now() < deadline, "the replay did not end: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(s["market"], "replay", "{s}");
    assert_eq!(s["bars"], 6000, "{s}");
    let fills: Value = reqwest::get(format!("{url}/v1/agent/trades?limit=1000"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    terminate(child);

    // The agent's round trips, in exit order, from its fills (oldest first).
    let mut open = std::collections::BTreeMap::new();
    let mut trips = Vec::new();
    for f in fills["fills"].as_array().unwrap().iter().rev() {
        let symbol = f["symbol"].as_str().unwrap().to_string();
        match f["side"].as_str().unwrap() {
            "buy" => {
                open.insert(symbol, f.clone());
            }
            _ => {
                let entry = open.remove(&symbol).expect("a sell closes a buy");
                trips.push((
                    symbol,
                    entry["price"].clone(),
                    f["price"].clone(),
                    f["quantity"].clone(),
                ));
            }
        }
    }
    assert!(trips.len() >= 10, "{} round trips: {fills}", trips.len());
    // The backtest also closes what is open when the data ends; the agent
    // keeps it. Everything before that is the same, trade for trade.
    assert_eq!(backtest.len(), trips.len() + open.len(), "{backtest:?}");
    for (trip, b) in trips.iter().zip(&backtest) {
        let theirs = (
            b["symbol"].as_str().unwrap().to_string(),
            b["entry_price"].clone(),
            b["exit_price"].clone(),
            b["quantity"].clone(),
        );
        assert_eq!(*trip, theirs);
    }
    assert_eq!(s["trades_closed"], trips.len());
}

async fn risk(url: &str) -> Value {
    reqwest::get(format!("{url}/v1/agent/risk"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the daily loss limit in force is `want`.
async fn wait_for_limit(url: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while risk(url).await["limits"]["daily_loss_limit"] != want {
        assert!(
            Instant::now() < deadline,
            "daily_loss_limit never became {want}: {}",
            risk(url).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_config_file_reloads_the_agent_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qunimbus.toml");
    let write = |extra: &str| {
        std::fs::write(
            &file,
            format!("[agent]\nenabled = true\nbar_interval_ms = 5\n{extra}"),
        )
        .unwrap();
    };
    write("daily_loss_limit = 0.03\n");
    let data = dir.path().join("data");
    let (child, url) = spawn_serve(&data, |command| {
        command.arg("--config").arg(&file);
    });
    wait_for_limit(&url, "0.03").await;
    write("daily_loss_limit = 0.025\n");
    wait_for_limit(&url, "0.025").await;
    // Invalid, then session-shaping: both refused, the limit stays.
    write("daily_loss_limit = 2.5\n");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    write("daily_loss_limit = 0.02\ncash = \"5\"\n");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(risk(&url).await["limits"]["daily_loss_limit"], "0.025");
    let blocks: Value = reqwest::get(format!("{url}/v1/ledger/blocks?limit=1000"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reloads: Vec<&Value> = blocks["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["payload"]["change"] == "trading agent settings reloaded")
        .collect();
    assert_eq!(reloads.len(), 1, "{reloads:?}");
    assert!(reloads[0]["payload"]["reason"]
        .as_str()
        .unwrap()
        .contains("qunimbus.toml changed"));
    terminate(child);
}
