//! `qunimbus bench backup`: backing up (copy + verification) a store of
//! `--blocks` blocks while the node keeps taking runs, and the ingest
//! throughput during the backup against the same load in the same run just
//! before it.

use anyhow::{bail, Context, Result};
use qunimbus_http::RunningNode;
use qunimbus_node::backup::{self, BackupOptions, DATABASE_FILE};
use qunimbus_node::config::Config;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Blocks appended per filler batch.
const FILL_BATCH: u64 = 4096;

/// Runs the benchmark.
pub async fn run(blocks: u64, clients: u32, baseline_secs: f64) -> Result<()> {
    if clients == 0 || blocks == 0 {
        bail!("--blocks and --clients must be at least 1");
    }
    let dir = tempfile::Builder::new()
        .prefix("qunimbus-bench-backup-")
        .tempdir()
        .context("creating a temp dir")?;
    let config = Config {
        data_dir: dir.path().join("node"),
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    };
    let node = RunningNode::start(&config).await?;
    let store = node.node().store.clone();
    let filling = Instant::now();
    let mut size = store.tree_head().size;
    while size < blocks {
        let batch = (blocks - size).min(FILL_BATCH);
        let drafts = (size..size + batch)
            .map(crate::bench_ledger::filler_draft)
            .collect();
        store.append_blocks(drafts).await?;
        size += batch;
    }
    println!(
        "backup: store grown to {size} blocks in {:.1} s",
        filling.elapsed().as_secs_f64()
    );
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::new();
    let url = format!("{}/v1/telemetry", node.url());
    let token = node.credentials().ingest_token().to_string();
    let mut senders = Vec::new();
    for c in 0..clients {
        let (client, url, token, acked, stop) = (
            client.clone(),
            url.clone(),
            token.clone(),
            acked.clone(),
            stop.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = format!(
                    r#"{{"run_id":"bb-{c}-{i}","region":"EU","eta_ent":0.95,"coherence_variance":0.01,"runtime_hours":10,"eph_delivered":100}}"#
                );
                let sent = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                if sent.is_ok_and(|r| r.status() == 201) {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    // The same load without a backup, then with one.
    let before = acked.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(baseline_secs)).await;
    let baseline = (acked.load(Ordering::Relaxed) - before) as f64 / baseline_secs;
    let out = dir.path().join("bench.backup");
    let started = Instant::now();
    let at_start = acked.load(Ordering::Relaxed);
    let report = backup::backup(
        &config.data_dir,
        &config.data_dir.join(DATABASE_FILE),
        &out,
        BackupOptions::default(),
        None,
        |_, _| {},
    )
    .await?;
    let took = started.elapsed();
    let during = (acked.load(Ordering::Relaxed) - at_start) as f64 / took.as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await?;
    }
    node.shutdown().await?;
    println!(
        "backup: {} blocks ({:.1} MB) copied and verified in {:.2} s; checkpoint {} of them",
        report.manifest.blocks,
        report.bytes as f64 / 1e6,
        took.as_secs_f64(),
        report.manifest.tree_size
    );
    println!(
        "backup: ingest {during:.0} runs/s during the backup vs {baseline:.0} runs/s in the {baseline_secs:.0} s before it ({clients} clients, one run per request): ratio {:.2}",
        during / baseline.max(f64::MIN_POSITIVE)
    );
    Ok(())
}
