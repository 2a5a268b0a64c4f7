//! `qunimbus bench agent`: the trading agent inside a running node. Two
//! `qunimbus serve` processes side by side on fresh SQLite stores — one with
//! the agent trading the synthetic market of every symbol as fast as its tick
//! allows, one without — then the agent's own measurements (bar arrival to
//! decision, HDR quantiles in ns), both processes' resident memory (the
//! difference is the agent's share), and a restart of the agent's node with
//! the time its replay took to resume the session.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `qunimbus serve` child, stopped (SIGTERM, then kill) when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path, agent: bool, bar_ms: u64) -> Result<Served> {
    let exe = std::env::current_exe().context("locating the qunimbus binary")?;
    let mut command = Command::new(exe);
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(data_dir)
        .env("QUNIMBUS_AGENT__BAR_INTERVAL_MS", bar_ms.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if agent {
        command.arg("--agent");
    }
    let mut child = command.spawn().context("starting qunimbus serve")?;
    let stderr = child.stderr.take().context("the child's stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let Some(line) = lines.next() else {
            bail!("qunimbus serve exited before listening");
        };
        let event: Value = serde_json::from_str(&line?).unwrap_or(Value::Null);
        if event["message"] == "QuNimbus node listening" {
            break event["addr"].as_str().unwrap_or_default().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Served {
        child,
        url: format!("http://{addr}"),
    })
}

/// Resident and peak resident memory of `pid`, MiB (Linux /proc).
fn memory_mib(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |key: &str| -> Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
        let value: f64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("bad {key} line {line:?}"))?;
        Ok(value / 1024.0)
    };
    Ok((kib("VmRSS:")?, kib("VmHWM:")?))
}

async fn status(url: &str) -> Result<Value> {
    let response = reqwest::get(format!("{url}/v1/agent")).await?;
    if !response.status().is_success() {
        bail!("GET /v1/agent: {}", response.status());
    }
    Ok(response.json().await?)
}

fn quantiles(v: &Value) -> String {
    if v.is_null() {
        return "none recorded".into();
    }
    format!(
        "p50 {:.2} µs, p99 {:.2} µs, max {:.1} µs over {} bars",
        v["p50_us"].as_f64().unwrap_or(f64::NAN),
        v["p99_us"].as_f64().unwrap_or(f64::NAN),
        v["max_us"].as_f64().unwrap_or(f64::NAN),
        v["count"]
    )
}

/// Runs the benchmark for `seconds` with a tick every `bar_ms`.
pub async fn run(seconds: f64, bar_ms: u64) -> Result<()> {
    let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
    let with = serve(dirs.0.path(), true, bar_ms)?;
    let without = serve(dirs.1.path(), false, bar_ms)?;
    tokio::time::sleep(Duration::from_secs_f64(seconds.max(1.0))).await;
    let s = status(&with.url).await?;
    println!(
        "agent in the node: {} lanes (the EPH lanes get bars only from ingested runs: none here), a tick every {bar_ms} ms, for {seconds} s (two processes side by side)",
        s["symbols"]
    );
    let (rss_with, peak_with) = memory_mib(with.child.id())?;
    let (rss_without, peak_without) = memory_mib(without.child.id())?;
    let bars = s["bars"].as_u64().unwrap_or(0);
    println!(
        "  bars processed:       {bars} ({:.0} bars/s), fills {}, trades closed {}",
        bars as f64 / seconds.max(1.0),
        s["fills"],
        s["trades_closed"]
    );
    println!(
        "  bar -> decision:      {}",
        quantiles(&s["decision_latency"])
    );
    println!(
        "  bar -> sized entry:   {}",
        quantiles(&s["sizing_latency"])
    );
    let p99 = s["decision_latency"]["p99_us"].as_f64().unwrap_or(f64::NAN);
    println!(
        "    target p99 < 50 µs (SPEC §8): {}",
        if p99 < 50.0 { "met" } else { "NOT met" }
    );
    println!(
        "  RSS with agent:       {rss_with:.1} MiB (peak {peak_with:.1}); without: {rss_without:.1} MiB (peak {peak_without:.1})"
    );
    let share = rss_with - rss_without;
    println!(
        "  agent's share:        {share:.1} MiB (ratio {:.2}x); target < 64 MB: {}",
        rss_with / rss_without.max(f64::MIN_POSITIVE),
        if share < 64.0 { "met" } else { "NOT met" }
    );
    drop(without);
    drop(with);
    let restarted = serve(dirs.0.path(), true, bar_ms)?;
    let mut s = status(&restarted.url).await?;
    while s["resuming"] == Value::Bool(true) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = status(&restarted.url).await?;
    }
    let resumed = &s["resumed"];
    let millis = resumed["millis"].as_f64().unwrap_or(f64::NAN);
    println!(
        "  restart: resumed {} blocks over {} bars in {millis:.0} ms ({:.0} bars/s replayed); refused: {}",
        resumed["blocks"],
        resumed["bars"],
        resumed["bars"].as_f64().unwrap_or(0.0) / (millis / 1000.0),
        s["refused"]
    );
    Ok(())
}
