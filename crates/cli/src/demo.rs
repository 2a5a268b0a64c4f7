//! `qunimbus demo`: a node on embedded storage plus the seeded runtime
//! simulator, which sends its runs through the node's public HTTP API exactly
//! as an external runtime would.

use crate::demo_outages::OutageLog;
use crate::{logging, shutdown_signal, NodeArgs};
use anyhow::{Context, Result};
use clap::Args;
use qunimbus_http::RunningNode;
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
    /// Wall-clock milliseconds per one-minute bar of the paper-trading
    /// agent's synthetic market.
    #[arg(long, default_value_t = 100)]
    agent_bar_ms: u64,
    /// Run without the paper-trading agent.
    #[arg(long)]
    no_agent: bool,
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
    feed: Mutex<Option<(u64, Option<f64>, f64)>>,
    down: Mutex<BTreeMap<String, bool>>,
    trust: Mutex<Option<String>>,
    agent: Mutex<Option<String>>,
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
        let feed = match *self.feed.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((partners, Some(p99), target)) => {
                format!(" | {partners} partners, feed p99 {p99:.2} ms (target {target} ms)")
            }
            Some((partners, None, _)) => format!(" | {partners} partners"),
            None => String::new(),
        };
        let trust = self
            .trust
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        let agent = self
            .agent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        format!(
            "runs accepted {} | duplicates {} | rejected {} | failed {}{ledger}{feed}{trust} | last phi: {}{agent}",
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
    let mut config = args.node.load_config()?;
    compress_trust_time(&mut config);
    if !args.no_agent {
        config.agent.enabled = true;
        config.agent.bar_interval_ms = args.agent_bar_ms;
    }
    logging::init(config.log_format, "warn");
    let mut model = SimModel::six_regions();
    if let Some(rate) = args.rate {
        model.runs_per_second = rate;
    }
    // Outages five times as often as the model's, so a demo of a few
    // minutes sees some (the model's regions fail every 3-30 min); their
    // length is the model's, long enough for the node to detect most of them
    // from the silence alone.
    for region in &mut model.regions {
        region.mean_time_between_outages_secs /= 5.0;
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
        "  simulator:     seed {}, {} runs/s over {} regions, outages 5x as often (the node is not told: it detects them); Ctrl-C stops",
        args.seed,
        model.runs_per_second,
        model.regions.len()
    );

    if config.agent.enabled {
        println!(
            "  agent:         paper trading on a seeded synthetic market (seed {}) and on EPH-USD per region from the feed (as partner qbtc-agent), one-minute bars every {} ms; fills are ledger blocks: curl {url}/v1/agent",
            config.agent.seed, config.agent.bar_interval_ms
        );
    }
    let tally = Arc::new(Tally::default());
    let (stop_partners, partners_stop) = tokio::sync::watch::channel(false);
    let partner_tasks = start_partners(&node, &config.data_dir, partners_stop).await?;
    println!(
        "  partners:      {} connected over WebSocket, acking every valuation",
        partner_tasks.len()
    );
    println!(
        "  trust kernel:  time compressed 1 h → 1 s: window {:.0} s, MTBF target {:.0} s, pause below {:.0} s, soak {} s per phase",
        config.trust.window_hours * 3600.0,
        config.trust.mtbf_target_hours * 3600.0,
        config.trust.pause_mtbf_hours * 3600.0,
        config.trust.soak_secs
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let admin = node.credentials().admin_token().to_string();
    let rollout = client
        .post(format!("{url}/v1/rollouts"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "version": format!("demo-{}", args.seed) }))
        .send()
        .await
        .context("starting the demo rollout")?;
    if rollout.status().is_success() {
        println!(
            "  rollout:       demo-{} started at the Americas canary; outages feed the gates",
            args.seed
        );
    } else {
        println!(
            "  rollout:       not started ({}: an earlier rollout is still active)",
            rollout.status()
        );
    }
    let prefix = format!("demo{}", std::process::id());
    let region_names: Vec<String> = model.regions.iter().map(|r| r.name.clone()).collect();
    let mut sim = Simulator::new(args.seed, model, &prefix);
    let mut outages = OutageLog::default();
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
                    outages.down(&region);
                    tally
                        .down
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(region, true);
                }
                SimEvent::RegionUp { region } => {
                    outages.up(&region);
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    refresh_ledger(&client, &url, &tally).await;
    print_summary(&tally, interactive);
    if interactive {
        println!();
    }
    println!("{}", outages.report(&client, &url, &region_names).await);
    println!("{}", take_backup(&client, &url, &admin).await);
    stop_partners.send_replace(true);
    for task in partner_tasks {
        let _ = task.await;
    }
    node.shutdown().await?;
    println!("demo stopped cleanly");
    drop(temp_dir);
    Ok(())
}

/// Takes a backup of the running node (`POST /v1/admin/backup`) and
/// describes it: what was copied and the checkpoint it verified against.
async fn take_backup(client: &reqwest::Client, url: &str, admin: &str) -> String {
    let answer = client
        .post(format!("{url}/v1/admin/backup"))
        .bearer_auth(admin)
        .send()
        .await;
    let body: serde_json::Value = match answer {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(e) => return format!("  backup:        failed: {e}"),
    };
    let manifest = &body["manifest"];
    match (
        body["path"].as_str(),
        manifest["tree_size"].as_u64(),
        body["bytes"].as_f64(),
        body["took_ms"].as_f64(),
    ) {
        (Some(path), Some(tree_size), Some(bytes), Some(took_ms)) => format!(
            "  backup:        {path} ({:.1} MB): {} blocks copied while the node ran, verified against its checkpoint of tree size {tree_size} in {:.2} s (POST /v1/admin/backup)",
            bytes / 1e6,
            manifest["blocks"],
            took_ms / 1000.0,
        ),
        _ => format!("  backup:        failed: {}", body["error"]["message"]),
    }
}

/// The demo compresses the Trust Kernel's clock by 3600 (one hour of the
/// defaults per second) so the simulator's outages move MTBF and trust, and
/// the rollout's phases soak, within a short run. Every figure is still
/// measured; only the window, targets and soak are scaled.
fn compress_trust_time(config: &mut qunimbus_node::config::Config) {
    let t = &mut config.trust;
    t.window_hours /= 3600.0;
    t.mtbf_target_hours /= 3600.0;
    t.pause_mtbf_hours /= 3600.0;
    t.soak_secs = 15.0;
    t.controller_interval_ms = 500;
    t.compliance_interval_secs = 2.0;
    // Silence thresholds stay in real seconds (the runs are real-time);
    // the floor is lowered so the busiest regions' shorter outages count.
    t.min_silence_secs = 2.0;
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
    let Ok(response) = client.get(format!("{url}/v1/market/status")).send().await else {
        return;
    };
    let Ok(status) = response.json::<serde_json::Value>().await else {
        return;
    };
    refresh_trust(client, url, tally).await;
    refresh_agent(client, url, tally).await;
    let latency = &status["latency"]["p99_ms"];
    *tally.feed.lock().unwrap_or_else(PoisonError::into_inner) = Some((
        status["partners_connected"].as_u64().unwrap_or(0),
        latency["value"].as_f64(),
        latency["target"].as_f64().unwrap_or(0.0),
    ));
}

/// Reads the newest rollout and the lowest-trust region for the summary.
async fn refresh_trust(client: &reqwest::Client, url: &str, tally: &Tally) {
    let get = |path: &str| client.get(format!("{url}{path}")).send();
    let (Ok(rollouts), Ok(regions)) = (get("/v1/rollouts").await, get("/v1/regions").await) else {
        return;
    };
    let (Ok(rollouts), Ok(regions)) = (
        rollouts.json::<serde_json::Value>().await,
        regions.json::<serde_json::Value>().await,
    ) else {
        return;
    };
    let mut line = String::new();
    if let Some(r) = rollouts["rollouts"].get(0) {
        let phase = r["phase"].as_u64().unwrap_or(0) as usize;
        line.push_str(&format!(
            " | rollout {} {} %",
            r["state"].as_str().unwrap_or("?"),
            r["phases"][phase]["percent"]
        ));
    }
    let lowest = regions["regions"]
        .as_array()
        .into_iter()
        .flatten()
        .min_by(|a, b| {
            let t = |v: &serde_json::Value| v["trust_score"].as_f64().unwrap_or(1.0);
            t(a).total_cmp(&t(b))
        });
    if let Some(r) = lowest {
        line.push_str(&format!(
            " | lowest trust {} {:.3}, {} failures",
            r["name"].as_str().unwrap_or("?"),
            r["trust_score"].as_f64().unwrap_or(f64::NAN),
            regions["regions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["failures"].as_u64().unwrap_or(0))
                .sum::<u64>()
        ));
    }
    *tally.trust.lock().unwrap_or_else(PoisonError::into_inner) = Some(line);
}

/// Reads the agent's state for the summary (nothing when it is off).
async fn refresh_agent(client: &reqwest::Client, url: &str, tally: &Tally) {
    let Ok(response) = client.get(format!("{url}/v1/agent")).send().await else {
        return;
    };
    if !response.status().is_success() {
        return;
    }
    let Ok(s) = response.json::<serde_json::Value>().await else {
        return;
    };
    let confidence: Vec<String> = s["confidence"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["level"].to_string())
        .collect();
    let line = format!(
        " | agent equity {:.2} drawdown {:.2}% {} {} confidence {} fills {}",
        s["equity"]
            .as_str()
            .and_then(|e| e.parse::<f64>().ok())
            .unwrap_or(f64::NAN),
        s["drawdown"].as_f64().unwrap_or(f64::NAN) * 100.0,
        s["emergency_level"].as_str().unwrap_or("?"),
        s["trading_state"].as_str().unwrap_or("?"),
        confidence.join("/"),
        s["fills"]
    );
    *tally.agent.lock().unwrap_or_else(PoisonError::into_inner) = Some(line);
}

/// The demo's liquidity partners: name and home region.
const DEMO_PARTNERS: [(&str, &str); 3] = [
    ("partner_americas", "Americas"),
    ("partner_eu", "EU"),
    ("partner_apac", "APAC"),
];

/// File in the data dir keeping the demo partners' API keys (shown only once by the API).
const DEMO_PARTNERS_FILE: &str = "demo-partners.toml";

/// Registers the demo partners (or reuses their saved keys) and connects each.
async fn start_partners(
    node: &RunningNode,
    data_dir: &std::path::Path,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let keys_file = data_dir.join(DEMO_PARTNERS_FILE);
    let mut keys: toml::Table = match std::fs::read_to_string(&keys_file) {
        Ok(text) => text
            .parse()
            .with_context(|| format!("{} is not valid TOML", keys_file.display()))?,
        Err(_) => toml::Table::new(),
    };
    let client = reqwest::Client::new();
    let mut changed = false;
    for (name, region) in DEMO_PARTNERS {
        if keys.contains_key(name) {
            continue;
        }
        let response = client
            .post(format!("{}/v1/partners", node.url()))
            .bearer_auth(node.credentials().admin_token())
            .json(&serde_json::json!({ "name": name, "region": region }))
            .send()
            .await
            .context("registering a demo partner")?;
        if !response.status().is_success() {
            anyhow::bail!("registering {name} failed: HTTP {}", response.status());
        }
        let created: serde_json::Value = response.json().await?;
        let key = created["api_key"]
            .as_str()
            .context("no api_key in the answer")?;
        keys.insert(name.to_string(), key.into());
        changed = true;
    }
    if changed {
        qunimbus_node::credentials::write_private(&keys_file, &toml::to_string(&keys)?)
            .with_context(|| format!("writing {}", keys_file.display()))?;
    }
    let ws_url = format!("ws://{}/v1/market/feed", node.local_addr());
    Ok(DEMO_PARTNERS
        .iter()
        .filter_map(|(name, _)| keys.get(*name).and_then(|k| k.as_str()).map(str::to_string))
        .map(|key| {
            let stats = Arc::new(qunimbus_node::feed_client::PartnerStats::default());
            tokio::spawn(qunimbus_node::feed_client::run_partner(
                ws_url.clone(),
                key,
                stats,
                None,
                stop.clone(),
            ))
        })
        .collect())
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
