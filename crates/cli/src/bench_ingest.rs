//! `qunimbus bench ingest`: durable HTTP ingest throughput and latency, and
//! under that load the lag from each run's submission to the first signed
//! checkpoint that covers its block (SPEC §11: p99 < 2 × the interval).

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use qunimbus_http::RunningNode;
use qunimbus_node::config::Config;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the checkpoint watcher asks for the newest checkpoint.
const WATCH_EVERY: Duration = Duration::from_millis(2);

/// One acknowledged run: when it was sent and its ledger block.
struct Acked {
    sent: Instant,
    block_index: u64,
}

/// What one client saw.
struct ClientReport {
    latency: Histogram<u64>,
    acked: Vec<Acked>,
    server_errors: u64,
    pushed_back: u64,
}

/// Runs the benchmark.
pub async fn run(clients: u32, runs: u64, batch: u64, checkpoint_interval_ms: u64) -> Result<()> {
    if clients == 0 || runs == 0 || batch == 0 {
        bail!("--clients, --runs and --batch must be at least 1");
    }
    let dir = tempfile::Builder::new()
        .prefix("qunimbus-bench-")
        .tempdir()
        .context("creating a temp dir")?;
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    };
    config.ledger.checkpoint_interval_ms = checkpoint_interval_ms;
    let node = RunningNode::start(&config).await?;
    let base = node.url();
    let token = node.credentials().ingest_token().to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients as usize + 1)
        .timeout(Duration::from_secs(30))
        .build()?;
    println!(
        "ingest: {runs} runs, {clients} concurrent clients, {batch} run(s) per request, node {base} \
         (SQLite WAL, synchronous=FULL), checkpoint interval {checkpoint_interval_ms} ms"
    );
    let cover = Arc::new(AtomicU64::new(u64::MAX));
    let watcher = tokio::spawn(watch_checkpoints(
        client.clone(),
        base.clone(),
        cover.clone(),
    ));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (client, base, token, next) =
            (client.clone(), base.clone(), token.clone(), next.clone());
        let work = Work { runs, batch };
        workers.push(tokio::spawn(post_runs(client, base, token, next, work)));
    }
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| anyhow!("{e}"))?;
    let mut acked = Vec::new();
    let (mut server_errors, mut pushed_back) = (0, 0);
    for worker in workers {
        let report = worker.await??;
        latency.add(report.latency).map_err(|e| anyhow!("{e}"))?;
        acked.extend(report.acked);
        server_errors += report.server_errors;
        pushed_back += report.pushed_back;
    }
    let took = started.elapsed();
    // The watcher stops once a checkpoint covers the last block.
    let last = acked.iter().map(|a| a.block_index).max().unwrap_or(0);
    cover.store(last, Ordering::Relaxed);
    let patience = Duration::from_millis(checkpoint_interval_ms * 10 + 5_000);
    let signed = tokio::time::timeout(patience, watcher)
        .await
        .map_err(|_| anyhow!("no checkpoint covered block {last} within {patience:?}"))???;
    let stored = stored_runs(&client, &base).await?;
    node.shutdown().await?;
    println!(
        "ingest: {:.0} durable runs/s ({} acknowledged in {:.2} s); request latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {server_errors} 5xx, {pushed_back} 429 (backpressure, retried)",
        acked.len() as f64 / took.as_secs_f64(),
        acked.len(),
        took.as_secs_f64(),
        latency.value_at_quantile(0.50) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
    );
    report_lag(&acked, &signed, checkpoint_interval_ms)?;
    if stored != acked.len() as u64 {
        bail!("stored {stored} runs but {} were acknowledged", acked.len());
    }
    if server_errors > 0 {
        bail!("{server_errors} requests got a 5xx answer");
    }
    Ok(())
}

/// How many runs in all, and per request.
#[derive(Clone, Copy)]
struct Work {
    runs: u64,
    batch: u64,
}

fn run_json(i: u64) -> String {
    format!(
        r#"{{"run_id":"bench-{i}","region":"{}","eta_ent":{},"coherence_variance":0.01,"runtime_hours":{},"eph_delivered":1000}}"#,
        qunimbus_core::DEFAULT_REGIONS[(i % 6) as usize],
        0.9 + (i % 100) as f64 / 1000.0,
        1 + i % 120,
    )
}

/// One client: posts runs (one per request, or batches) until all were
/// taken, one request at a time.
async fn post_runs(
    client: reqwest::Client,
    base: String,
    token: String,
    next: Arc<AtomicU64>,
    work: Work,
) -> Result<ClientReport> {
    let url = if work.batch == 1 {
        format!("{base}/v1/telemetry")
    } else {
        format!("{base}/v1/telemetry/batch")
    };
    let mut report = ClientReport {
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| anyhow!("{e}"))?,
        acked: Vec::new(),
        server_errors: 0,
        pushed_back: 0,
    };
    loop {
        let first = next.fetch_add(work.batch, Ordering::Relaxed);
        if first >= work.runs {
            return Ok(report);
        }
        let last = (first + work.batch).min(work.runs);
        let body = if work.batch == 1 {
            run_json(first)
        } else {
            let items: Vec<String> = (first..last).map(run_json).collect();
            format!("[{}]", items.join(","))
        };
        let mut sent = Instant::now();
        let response = loop {
            let response = client
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await?;
            if response.status().as_u16() != 429 {
                break response;
            }
            // Backpressure: wait as told, then submit again (the lag of a
            // run counts from the submission that was accepted).
            report.pushed_back += 1;
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            sent = Instant::now();
        };
        let status = response.status();
        let answer: serde_json::Value = response.json().await?;
        if status.is_server_error() {
            report.server_errors += 1;
            continue;
        }
        if status.as_u16() != 201 {
            bail!("runs from {first} got HTTP {status}: {answer}");
        }
        report
            .latency
            .record(sent.elapsed().as_micros().max(1) as u64)?;
        let views = match answer.get("runs") {
            Some(runs) => runs.as_array().cloned().unwrap_or_default(),
            None => vec![answer],
        };
        for view in views {
            let block_index = view["block_index"]
                .as_u64()
                .ok_or_else(|| anyhow!("runs from {first}: no block_index in {view}"))?;
            report.acked.push(Acked { sent, block_index });
        }
    }
}

/// Polls the newest checkpoint until one covers block `cover` (set when
/// the load is over); returns when each new tree size was first seen
/// signed, in order.
async fn watch_checkpoints(
    client: reqwest::Client,
    base: String,
    cover: Arc<AtomicU64>,
) -> Result<Vec<(u64, Instant)>> {
    let mut seen: Vec<(u64, Instant)> = Vec::new();
    loop {
        let size = newest_size(&client, &base).await?;
        if seen.last().is_none_or(|(last, _)| size > *last) {
            seen.push((size, Instant::now()));
        }
        if size > cover.load(Ordering::Relaxed) {
            return Ok(seen);
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// The tree size of the newest signed checkpoint (0 before the first).
async fn newest_size(client: &reqwest::Client, base: &str) -> Result<u64> {
    let response = client
        .get(format!("{base}/v1/ledger/checkpoint"))
        .send()
        .await?;
    if !response.status().is_success() {
        return Ok(0);
    }
    let note = response.text().await?;
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| anyhow!("checkpoint without a tree size: {note}"))
}

async fn stored_runs(client: &reqwest::Client, base: &str) -> Result<u64> {
    let stats: serde_json::Value = client
        .get(format!("{base}/v1/valuations/stats"))
        .send()
        .await?
        .json()
        .await?;
    Ok(stats["count"].as_u64().unwrap_or(0))
}

/// Prints p50/p99/max of submit → first covering checkpoint seen.
fn report_lag(acked: &[Acked], signed: &[(u64, Instant)], interval_ms: u64) -> Result<()> {
    let mut lag =
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).map_err(|e| anyhow!("{e}"))?;
    let mut uncovered = 0;
    for run in acked {
        // The first checkpoint whose tree holds the run's block.
        let first = signed.partition_point(|(size, _)| *size <= run.block_index);
        match signed.get(first) {
            Some((_, at)) => {
                lag.record(at.saturating_duration_since(run.sent).as_micros().max(1) as u64)?
            }
            None => uncovered += 1,
        }
    }
    let p99_ms = lag.value_at_quantile(0.99) as f64 / 1000.0;
    println!(
        "checkpoint lag (submit → signed checkpoint covering the run, {} checkpoints): p50 {:.1} ms, p99 {p99_ms:.1} ms, max {:.1} ms; target p99 < {} ms: {}{}",
        signed.len(),
        lag.value_at_quantile(0.50) as f64 / 1000.0,
        lag.max() as f64 / 1000.0,
        2 * interval_ms,
        if p99_ms < 2.0 * interval_ms as f64 { "met" } else { "MISSED" },
        if uncovered > 0 {
            format!("; {uncovered} runs never covered")
        } else {
            String::new()
        }
    );
    Ok(())
}
