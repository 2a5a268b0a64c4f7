//! `qunimbus demo`: a node on embedded storage plus the seeded runtime
//! simulator, which sends its runs through the node's public HTTP API exactly
//! as an external runtime would.

use crate::{logging, shutdown_signal, NodeArgs};
use anyhow::{Context, Result};
use clap::Args;
use qunimbus_server::RunningNode;
use qunimbus_sim::{SimEvent, SimModel, SimulatedRun, Simulator};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Options of `qunimbus demo`.
#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Simulator seed: the same seed gives the same runs and outages.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Aggregate runs per second across all regions (default: the model's 20).
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
}

/// Requests the simulator may have in flight at once.
const MAX_IN_FLIGHT: usize = 64;
/// Simulator step.
const TICK: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    last_phi: Mutex<BTreeMap<String, f64>>,
    ledger: Mutex<Option<(u64, Option<u64>)>>,
    down: Mutex<BTreeMap<String, bool>>,
}

impl Tally {
    fn summary(&self) -> String {
        let phis = self.last_phi.lock().unwrap_or_else(PoisonError::into_inner);
        let down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        let regions: Vec<String> = phis
            .iter()
            .map(|(region, phi)| {
                let mark = if down.get(region).copied().unwrap_or(false) {
                    " (down)"
                } else {
                    ""
                };
                format!("{region} {phi:.1}{mark}")
            })
            .collect();
        let ledger = match *self.ledger.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((blocks, Some(signed))) => format!(" | ledger {blocks} blocks, {signed} signed"),
            Some((blocks, None)) => format!(" | ledger {blocks} blocks"),
            None => String::new(),
        };
        format!(
            "runs accepted {} | duplicates {} | rejected {} | failed {}{ledger} | last phi: {}",
            self.accepted.load(Ordering::Relaxed),
            self.duplicates.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            if regions.is_empty() {
                "-".to_string()
            } else {
                regions.join(", ")
            }
        )
    }
}

/// Runs the demo until Ctrl-C/SIGTERM or `--duration`.
pub async fn run(mut args: DemoArgs) -> Result<()> {
    let temp_dir =
        if args.node.data_dir.is_none() && std::env::var_os("QUNIMBUS_DATA_DIR").is_none() {
            let dir = tempfile::Builder::new()
                .prefix("qunimbus-demo-")
                .tempdir()
                .context("creating a temporary data dir")?;
            args.node.data_dir = Some(dir.path().to_path_buf());
            Some(dir)
        } else {
            None
        };
    let config = args.node.load_config()?;
    logging::init(config.log_format, "warn");
    let mut model = SimModel::six_regions();
    if let Some(rate) = args.rate {
        model.runs_per_second = rate;
    }
    model
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid --rate: {e}"))?;

    let node = RunningNode::start(&config).await?;
    let url = node.url();
    println!("QuNimbus demo node: {url}");
    println!("  data dir:      {}", config.data_dir.display());
    if let Some(file) = &node.credentials().file {
        println!("  tokens:        {}", file.display());
    }
    println!("  try:           curl {url}/v1/valuations/stats");
    println!(
        "  simulator:     seed {}, {} runs/s over {} regions; Ctrl-C stops",
        args.seed,
        model.runs_per_second,
        model.regions.len()
    );

    let tally = Arc::new(Tally::default());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let prefix = format!("demo{}", std::process::id());
    let mut sim = Simulator::new(args.seed, model, &prefix);
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let ingest_url = format!("{url}/v1/telemetry");
    let token = node.credentials().ingest_token().to_string();
    let deadline = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let interactive = std::io::stdout().is_terminal();
    let mut ticker = tokio::time::interval(TICK);
    let mut last_print = Instant::now();
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = &mut stop => { r?; break; }
            _ = ticker.tick() => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        for event in sim.advance(TICK) {
            match event {
                SimEvent::Run(run) => {
                    let permit = limit
                        .clone()
                        .acquire_owned()
                        .await
                        .context("request limiter closed")?;
                    let (client, url, token, tally) = (
                        client.clone(),
                        ingest_url.clone(),
                        token.clone(),
                        tally.clone(),
                    );
                    tokio::spawn(async move {
                        send_run(&client, &url, &token, &run, &tally).await;
                        drop(permit);
                    });
                }
                SimEvent::RegionDown { region } => {
                    tally
                        .down
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(region, true);
                }
                SimEvent::RegionUp { region } => {
                    tally
                        .down
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(region, false);
                }
            }
        }
        let every = if interactive {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        if last_print.elapsed() >= every {
            last_print = Instant::now();
            refresh_ledger(&client, &url, &tally).await;
            print_summary(&tally, interactive);
        }
    }
    let _ = limit.acquire_many(MAX_IN_FLIGHT as u32).await;
    refresh_ledger(&client, &url, &tally).await;
    print_summary(&tally, interactive);
    if interactive {
        println!();
    }
    node.shutdown().await?;
    println!("demo stopped cleanly");
    drop(temp_dir);
    Ok(())
}

/// Reads the ledger length and newest checkpoint size from the node's API.
async fn refresh_ledger(client: &reqwest::Client, url: &str, tally: &Tally) {
    let Ok(response) = client.get(format!("{url}/v1/ledger")).send().await else {
        return;
    };
    let Ok(summary) = response.json::<serde_json::Value>().await else {
        return;
    };
    if let Some(blocks) = summary["chain_length"].as_u64() {
        let signed = summary["checkpoint"]["tree_size"].as_u64();
        *tally.ledger.lock().unwrap_or_else(PoisonError::into_inner) = Some((blocks, signed));
    }
}

fn print_summary(tally: &Tally, interactive: bool) {
    let line = tally.summary();
    let mut out = std::io::stdout().lock();
    let _ = if interactive {
        write!(out, "\r\x1b[2K{line}")
    } else {
        writeln!(out, "{line}")
    };
    let _ = out.flush();
}

async fn send_run(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    run: &SimulatedRun,
    tally: &Tally,
) {
    let body = serde_json::json!({
        "run_id": run.run_id,
        "region": run.region,
        "data_class": run.data_class.as_str(),
        "eta_ent": run.metrics.eta_ent,
        "coherence_variance": run.metrics.coherence_variance,
        "runtime_hours": run.metrics.runtime_hours,
        "eph_delivered": run.metrics.eph_delivered,
    });
    let response = client.post(url).bearer_auth(token).json(&body).send().await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, run_id = %run.run_id, "sending a simulated run failed");
            tally.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let status = response.status();
    let counter = match status.as_u16() {
        201 => &tally.accepted,
        200 => &tally.duplicates,
        400..=499 => &tally.rejected,
        _ => &tally.failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if status.is_success() {
        if let Ok(value) = response.json::<serde_json::Value>().await {
            if let Some(phi) = value.get("phi_qevf").and_then(serde_json::Value::as_f64) {
                tally
                    .last_phi
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(run.region.clone(), phi);
            }
        }
    } else {
        let text = response.text().await.unwrap_or_default();
        tracing::warn!(%status, body = %text, run_id = %run.run_id, "the node did not accept a simulated run");
    }
}
