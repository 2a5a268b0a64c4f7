//! The node against real Prometheus tools (Debian's `prometheus` package,
//! installed by `scripts/test`): `promtool check metrics` accepts the node's
//! `/metrics`, every metric deploy/metrics.txt calls "exposed" is registered,
//! and a real `prometheus` server scraping the node (with the shipped alert
//! rules loaded) stores exactly the `phi_qevf` the node computed. Also runs
//! the alert rules' unit tests. These tests fail, never skip, when
//! `promtool` or `prometheus` is missing.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

// Shared by the process tests; this one uses part of it.
#[allow(dead_code)]
mod common;

use common::{credential, spawn_serve};

/// The repository's deploy/ directory.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The full path of a Prometheus tool on PATH; panics (the test fails) when
/// it is missing.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: install Debian's prometheus package \
                 (apt-get install prometheus; scripts/test does it)"
            )
        })
}

/// A child process killed (and reaped) when dropped, also when a test fails.
struct Killed {
    name: &'static str,
    child: Child,
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            eprintln!("kill {}: {e}", self.name);
        }
        let _ = self.child.wait();
    }
}

/// `qunimbus serve` on a free loopback port, with the address it reported
/// and the tokens it generated.
struct Node {
    _process: Killed,
    addr: String,
    ingest_token: String,
    admin_token: String,
}

fn start_node(data_dir: &Path) -> Node {
    // With the trading agent, so its series are linted and listed too.
    let (child, url) = spawn_serve(data_dir, |command| {
        command.arg("--agent");
        command.env("QUNIMBUS_AGENT__BAR_INTERVAL_MS", "20");
        // An exchange adapter (nothing is called), so its series exist too.
        command.env("QUNIMBUS_AGENT__EXCHANGE__URL", "http://127.0.0.1:9");
    });
    Node {
        _process: Killed {
            name: "qunimbus",
            child,
        },
        addr: url.trim_start_matches("http://").to_string(),
        ingest_token: credential(data_dir, "ingest_token"),
        admin_token: credential(data_dir, "admin_token"),
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

fn output_text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a promtool command, returning its output.
fn promtool(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(tool("promtool"))
        .args(args)
        .current_dir(deploy_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    let mut pipe = child.stdin.take().expect("promtool stdin");
    pipe.write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write promtool stdin");
    drop(pipe);
    child.wait_with_output().expect("promtool output")
}

/// The (name, type) pairs that deploy/metrics.txt marks "exposed" (counters
/// under their `_total` name, as in the Prometheus text format).
fn exposed_metrics() -> Vec<(String, String)> {
    let list = std::fs::read_to_string(deploy_dir().join("metrics.txt")).expect("metrics.txt");
    list.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(fields.len(), 3, "metrics.txt line {l:?}");
            (fields[2] == "exposed").then(|| (fields[0].to_string(), fields[1].to_string()))
        })
        .collect()
}

fn run(id: &str, region: &str, eta: f64, variance: f64, hours: f64) -> String {
    format!(
        r#"{{"run_id":"{id}","region":"{region}","eta_ent":{eta},"coherence_variance":{variance},"runtime_hours":{hours},"eph_delivered":40}}"#
    )
}

/// The next text message of the feed, as JSON.
async fn next_message<S, E>(feed: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Debug,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("a feed message within 10 s")
            .expect("the feed is open")
            .expect("a feed frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).expect("feed JSON");
        }
    }
}

/// The last lines of a log file, for a failure message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_phi_the_node_computed() {
    // Look the tools up first: missing tools fail the test at once.
    let prometheus_bin = tool("prometheus");
    tool("promtool");

    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("node");
    let node = start_node(&node_dir);
    let base = format!("http://{}", node.addr);
    let http = reqwest::Client::new();

    // A partner on the WebSocket feed acks every valuation, so the latency
    // histogram and gauge have samples.
    let partner: Value = http
        .post(format!("{base}/v1/partners"))
        .bearer_auth(&node.admin_token)
        .body(json!({"name": "partner_prom", "region": "EU"}).to_string())
        .send()
        .await
        .expect("add partner")
        .json()
        .await
        .expect("partner JSON");
    let key = partner["api_key"].as_str().expect("api_key");
    let mut request = format!("ws://{}/v1/market/feed", node.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let (mut feed, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect to the feed");
    assert_eq!(next_message(&mut feed).await["type"], "snapshot");

    // Two EU runs (the gauge keeps the last) and one APAC run.
    let mut expected = Vec::new();
    for (id, region, eta, variance, hours, label) in [
        ("prom-1", "EU", 0.96, 0.01, 12.0, "eu"),
        ("prom-2", "APAC", 0.99, 0.004, 80.0, "apac"),
        ("prom-3", "EU", 0.97, 0.0125, 100.0, "eu"),
    ] {
        let response = http
            .post(format!("{base}/v1/telemetry"))
            .bearer_auth(&node.ingest_token)
            .header("content-type", "application/json")
            .body(run(id, region, eta, variance, hours))
            .send()
            .await
            .expect("post telemetry");
        assert_eq!(response.status(), 201, "run {id} was not accepted");
        let valuation: Value = response.json().await.expect("valuation JSON");
        let phi = valuation["phi_qevf"].as_f64().expect("phi_qevf");
        expected.retain(|(l, _)| *l != label);
        expected.push((label, phi));
        let message = next_message(&mut feed).await;
        assert_eq!(message["type"], "valuation", "{message}");
        assert_eq!(message["run_id"], id, "{message}");
        let ack = json!({"type": "ack", "seq": message["seq"]}).to_string();
        feed.send(Message::text(ack)).await.expect("send ack");
    }
    // One rejected input, so the rejection counter has a sample too.
    let rejected = http
        .post(format!("{base}/v1/telemetry"))
        .bearer_auth(&node.ingest_token)
        .header("content-type", "application/json")
        .body(run("prom-bad", "EU", 1.7, 0.01, 1.0))
        .send()
        .await
        .expect("post invalid telemetry");
    assert_eq!(rejected.status(), 422);
    // One backup, so the backup series have their samples.
    let backup = http
        .post(format!("{base}/v1/admin/backup"))
        .bearer_auth(&node.admin_token)
        .send()
        .await
        .expect("post backup");
    assert_eq!(backup.status(), 201);
    // The acks are processed asynchronously: wait until the node counted them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        if metrics.contains(r#"qunimbus_market_latency_seconds_count{partner="partner_prom"} 3"#)
            && metrics.contains("qbtc_confidence_level{")
        {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not record 3 acks:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        expected[0].1 != expected[1].1,
        "the regions' phi values should differ"
    );

    // promtool accepts the exposition: no parse error, no missing help text,
    // no lint finding except the one for SPEC §7's own metric name
    // `qunimbus_market_latency_ms` (promtool prefers base units; the SPEC
    // fixes this name, and qunimbus_market_latency_seconds is the histogram
    // in base units).
    const SPEC_NAME_LINT: &str =
        "qunimbus_market_latency_ms metric names should not contain abbreviated units";
    let checked = promtool(&["check", "metrics"], Some(&metrics));
    let findings: Vec<String> = String::from_utf8_lossy(&checked.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&checked.stdout).lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != SPEC_NAME_LINT)
        .map(str::to_string)
        .collect();
    // promtool exits 3 for lint findings only, 1 for a parse error.
    let exit_ok = matches!(checked.status.code(), Some(0) | Some(3));
    assert!(
        exit_ok && findings.is_empty(),
        "promtool check metrics found problems in the node's /metrics:\n{}\n--- /metrics:\n{metrics}",
        output_text(&checked)
    );
    let exposed = exposed_metrics();
    assert!(exposed.len() > 10, "metrics.txt lists {exposed:?}");
    for (name, kind) in exposed {
        let type_line = format!("# TYPE {name} {kind}");
        assert!(
            metrics.lines().any(|l| l == type_line),
            "deploy/metrics.txt lists {name} ({kind}) as exposed, but /metrics has no `{type_line}`"
        );
    }

    // A real Prometheus server scraping the node every second, with the
    // shipped alert rules.
    let prom_port = free_port();
    let config = dir.path().join("prometheus.yml");
    let rules = deploy_dir().join("prometheus/alerts.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: qunimbus\n    static_configs:\n      - targets: ['{}']\n",
            node.addr
        ),
    )
    .unwrap();
    let log = dir.path().join("prometheus.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut prometheus = Killed {
        name: "prometheus",
        child: Command::new(prometheus_bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn prometheus"),
    };
    let api = format!("http://127.0.0.1:{prom_port}/api/v1");

    let deadline = Instant::now() + Duration::from_secs(60);
    let series = loop {
        if let Some(status) = prometheus.child.try_wait().unwrap() {
            panic!("prometheus exited ({status}):\n{}", log_tail(&log));
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not report qunimbus_phi_qevf for eu and apac within 60 s:\n{}",
            log_tail(&log)
        );
        let answer = http
            .get(format!("{api}/query"))
            .query(&[("query", "qunimbus_phi_qevf")])
            .send()
            .await;
        // Until its storage is ready Prometheus answers 503 in plain text.
        if let Ok(answer) = answer.and_then(|a| a.error_for_status()) {
            let body: Value = answer.json().await.expect("query answer JSON");
            let result = body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let regions = |r: &str| result.iter().any(|s| s["metric"]["region"] == r);
            if regions("eu") && regions("apac") {
                break result;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(series.len(), 2, "one series per posted region: {series:?}");
    for (region, phi) in &expected {
        let sample = series
            .iter()
            .find(|s| s["metric"]["region"] == *region)
            .unwrap();
        assert_eq!(sample["metric"]["job"], "qunimbus");
        assert_eq!(sample["metric"]["instance"], node.addr.as_str());
        let stored: f64 = sample["value"][1]
            .as_str()
            .expect("sample value")
            .parse()
            .expect("numeric sample value");
        assert_eq!(
            stored.to_bits(),
            phi.to_bits(),
            "Prometheus stored {stored} for region {region}, the node computed {phi}"
        );
    }

    // Prometheus scrapes OpenMetrics; counters keep their `_total` name.
    let body: Value = http
        .get(format!("{api}/query"))
        .query(&[("query", r#"qunimbus_runs_accepted_total{job="qunimbus"}"#)])
        .send()
        .await
        .expect("query runs accepted")
        .json()
        .await
        .expect("query answer JSON");
    let accepted: Vec<(String, String)> = body["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|s| {
            let region = s["metric"]["region"].as_str().unwrap_or_default();
            let value = s["value"][1].as_str().unwrap_or_default();
            (region.to_string(), value.to_string())
        })
        .collect();
    assert!(
        accepted.contains(&("eu".into(), "2".into()))
            && accepted.contains(&("apac".into(), "1".into())),
        "runs accepted per region in Prometheus: {accepted:?}"
    );
    let body: Value = http
        .get(format!("{api}/query"))
        .query(&[("query", "qunimbus_market_latency_seconds_count")])
        .send()
        .await
        .expect("query latency count")
        .json()
        .await
        .expect("query answer JSON");
    let result = &body["data"]["result"];
    assert_eq!(result[0]["metric"]["partner"], "partner_prom", "{body}");
    assert_eq!(result[0]["value"][1], "3", "{body}");

    // The shipped alert rules load and evaluate cleanly against the node's
    // real series, and the node is not reported down.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body: Value = http
            .get(format!("{api}/rules"))
            .send()
            .await
            .expect("GET /api/v1/rules")
            .json()
            .await
            .expect("rules JSON");
        let rules: Vec<&Value> = body["data"]["groups"]
            .as_array()
            .expect("rule groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().expect("rules").iter())
            .collect();
        assert_eq!(rules.len(), 13, "alerts.yml has 13 alert rules: {body}");
        let evaluated = rules
            .iter()
            .all(|r| r["health"] == "ok" && r["evaluationTime"].as_f64().is_some());
        if evaluated {
            for rule in &rules {
                assert_eq!(rule["type"], "alerting", "{rule}");
                if rule["name"] == "NodeDown" {
                    assert_eq!(rule["state"], "inactive", "the node is up: {rule}");
                }
            }
            break;
        }
        let unhealthy: Vec<_> = rules.iter().filter(|r| r["health"] == "err").collect();
        assert!(
            unhealthy.is_empty(),
            "rules failed to evaluate: {unhealthy:?}"
        );
        assert!(
            Instant::now() < deadline,
            "alert rules were not evaluated within 30 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let checked = promtool(&["check", "rules", "prometheus/alerts.yml"], None);
    assert!(checked.status.success(), "{}", output_text(&checked));
    let tested = promtool(&["test", "rules", "prometheus/alerts_test.yml"], None);
    assert!(
        tested.status.success() && String::from_utf8_lossy(&tested.stdout).contains("SUCCESS"),
        "{}",
        output_text(&tested)
    );
}
