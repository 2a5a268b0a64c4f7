//! `qunimbus bench feed`: end-to-end latency from telemetry receipt to
//! partner ack over loopback WebSockets, as the node itself measures it.

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use qunimbus_http::RunningNode;
use qunimbus_node::config::Config;
use qunimbus_node::feed_client::{run_partner, PartnerStats};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// One measured phase.
struct Phase {
    partners: u32,
    rate: f64,
    seconds: f64,
    stalled: bool,
}

/// What a phase measured.
struct Outcome {
    sent: u64,
    acks: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    delivered: u64,
    disconnects: u64,
    /// Ingest request to its 201 answer (durable commit included), µs.
    ingest: Histogram<u64>,
}

/// Runs the benchmark: the issue's fixed scenarios, then a rate sweep with
/// 100 partners until p99 exceeds 10 ms.
pub async fn run(
    seconds: f64,
    max_rate: f64,
    single: Option<(u32, f64)>,
    stalled: bool,
) -> Result<()> {
    if !(seconds > 0.0 && max_rate > 0.0) {
        bail!("--seconds and --max-rate must be positive");
    }
    if let Some((partners, rate)) = single {
        if partners == 0 || rate.is_nan() || rate <= 0.0 {
            bail!("--partners and --rate must be positive");
        }
        let phase = Phase {
            partners,
            rate,
            seconds,
            stalled,
        };
        report(&phase, &measure(&phase).await?);
        return Ok(());
    }
    let scenarios = [
        Phase {
            partners: 100,
            rate: 1000.0,
            seconds,
            stalled: false,
        },
        Phase {
            partners: 100,
            rate: 1000.0,
            seconds,
            stalled: true,
        },
        Phase {
            partners: 1000,
            rate: 100.0,
            seconds,
            stalled: false,
        },
    ];
    for phase in &scenarios {
        report(phase, &measure(phase).await?);
    }
    let mut rate = 125.0;
    let mut below: Option<f64> = None;
    while rate <= max_rate {
        let phase = Phase {
            partners: 100,
            rate,
            seconds,
            stalled: false,
        };
        let outcome = measure(&phase).await?;
        report(&phase, &outcome);
        if outcome.p99_ms > 10.0 {
            match below {
                Some(ok) => println!(
                    "feed: with 100 partners p99 crosses 10 ms between {ok} and {rate} runs/s"
                ),
                None => {
                    println!("feed: with 100 partners p99 is above 10 ms already at {rate} runs/s")
                }
            }
            return Ok(());
        }
        below = Some(rate);
        rate *= 2.0;
    }
    println!(
        "feed: p99 stayed under 10 ms up to {} runs/s with 100 partners",
        rate / 2.0
    );
    Ok(())
}

fn report(phase: &Phase, o: &Outcome) {
    println!(
        "feed: {} partners{} @ {:.0} runs/s for {:.0} s: {} runs, {} acks measured, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {} messages delivered, {} disconnects",
        phase.partners,
        if phase.stalled { " + 1 stalled" } else { "" },
        phase.rate,
        phase.seconds,
        o.sent,
        o.acks,
        o.p50_ms,
        o.p99_ms,
        o.max_ms,
        o.delivered,
        o.disconnects
    );
    println!(
        "      of which ingest request -> 201 (validation + durable commit, seen by the sender): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        o.ingest.value_at_quantile(0.5) as f64 / 1000.0,
        o.ingest.value_at_quantile(0.99) as f64 / 1000.0,
        o.ingest.max() as f64 / 1000.0
    );
}

async fn measure(phase: &Phase) -> Result<Outcome> {
    let dir = tempfile::Builder::new()
        .prefix("qunimbus-bench-feed-")
        .tempdir()?;
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    };
    config.market.queue_capacity = 4096;
    let node = RunningNode::start(&config).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let admin = node.credentials().admin_token().to_string();
    let mut keys = Vec::new();
    for i in 0..phase.partners + u32::from(phase.stalled) {
        let created: serde_json::Value = http
            .post(format!("{}/v1/partners", node.url()))
            .bearer_auth(&admin)
            .json(&serde_json::json!({ "name": format!("bench_{i}"), "region": "Americas" }))
            .send()
            .await?
            .json()
            .await?;
        keys.push(
            created["api_key"]
                .as_str()
                .context("no api_key")?
                .to_string(),
        );
    }
    let ws_url = format!("ws://{}/v1/market/feed", node.local_addr());
    let (stop, stop_rx) = watch::channel(false);
    let mut clients = Vec::new();
    let mut stats = Vec::new();
    let stalled_key = if phase.stalled { keys.pop() } else { None };
    for key in keys {
        let s = Arc::new(PartnerStats::default());
        stats.push(s.clone());
        clients.push(tokio::spawn(run_partner(
            ws_url.clone(),
            key,
            s,
            None,
            stop_rx.clone(),
        )));
    }
    // A partner that connects and then never reads its socket.
    let _stalled = match stalled_key {
        Some(key) => {
            let mut request = ws_url.as_str().into_client_request()?;
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {key}").parse()?);
            Some(tokio_tungstenite::connect_async(request).await?.0)
        }
        None => None,
    };
    let expected = u64::from(phase.partners) + u64::from(phase.stalled);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: serde_json::Value = http
            .get(format!("{}/v1/market/status", node.url()))
            .send()
            .await?
            .json()
            .await?;
        let connected: u64 = status["connected"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["connections"].as_u64()).sum())
            .unwrap_or(0);
        if connected >= expected {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {connected} of {expected} partners connected");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let total = (phase.rate * phase.seconds).round() as u64;
    let senders = 16u64;
    let interval = Duration::from_secs_f64(senders as f64 / phase.rate);
    let token = node.credentials().ingest_token().to_string();
    let url = format!("{}/v1/telemetry", node.url());
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (http, token, url) = (http.clone(), token.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            // Staggered starts: the senders together make an even stream, not bursts.
            tokio::time::sleep(interval.mul_f64(s as f64 / senders as f64)).await;
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut sent = 0u64;
            let mut took = latency_histogram()?;
            for i in (s..total).step_by(senders as usize) {
                ticker.tick().await;
                let started = Instant::now();
                let body = format!(
                    r#"{{"run_id":"feed-{i}","region":"Americas","eta_ent":0.96,"coherence_variance":0.01,"runtime_hours":10,"eph_delivered":100}}"#
                );
                let response = http.post(&url).bearer_auth(&token).header("content-type", "application/json").body(body).send().await?;
                if response.status().as_u16() != 201 {
                    bail!("ingest answered {}", response.status());
                }
                took.saturating_record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
                sent += 1;
            }
            Ok::<_, anyhow::Error>((sent, took))
        }));
    }
    let mut sent = 0;
    let mut ingest = latency_histogram()?;
    for task in tasks {
        let (count, took) = task.await??;
        sent += count;
        ingest.add(&took)?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status: serde_json::Value = http
        .get(format!("{}/v1/market/status", node.url()))
        .send()
        .await?
        .json()
        .await?;
    stop.send_replace(true);
    for client in clients {
        let _ = client.await;
    }
    node.shutdown().await?;
    let overall = &status["latency"]["overall"];
    Ok(Outcome {
        sent,
        acks: overall["count"].as_u64().unwrap_or(0),
        p50_ms: overall["p50_ms"].as_f64().unwrap_or(f64::NAN),
        p99_ms: overall["p99_ms"].as_f64().unwrap_or(f64::NAN),
        max_ms: overall["max_ms"].as_f64().unwrap_or(f64::NAN),
        delivered: stats
            .iter()
            .map(|s| s.valuations.load(Ordering::Relaxed))
            .sum(),
        disconnects: stats
            .iter()
            .map(|s| s.disconnects.load(Ordering::Relaxed))
            .sum(),
        ingest,
    })
}

/// 1 µs .. 60 s, 3 significant digits.
fn latency_histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}
