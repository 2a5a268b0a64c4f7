//! The `qunimbus` binary as a process: durability across SIGKILL, graceful
//! SIGTERM, configuration errors, and the demo.

use serde_json::Value;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Shared by the process tests; this one uses part of it.
#[allow(dead_code)]
mod common;

use common::{credential, qunimbus, spawn_serve};

/// A `qunimbus serve` child process and the address it reported.
struct Served {
    child: Child,
    url: String,
    token: String,
}

fn serve(data_dir: &Path) -> Served {
    let (child, url) = spawn_serve(data_dir, |_| {});
    Served {
        child,
        url,
        token: credential(data_dir, "ingest_token"),
    }
}

fn body(id: &str) -> String {
    format!(
        r#"{{"run_id":"{id}","region":"EU","eta_ent":0.96,"coherence_variance":0.01,"runtime_hours":12,"eph_delivered":50}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = serve(dir.path());
    let http = reqwest::Client::new();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..16 {
        let (http, url, token, acked, stop) = (
            http.clone(),
            node.url.clone(),
            node.token.clone(),
            acknowledged.clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("k{c}-{i}");
                i += 1;
                let sent = http
                    .post(format!("{url}/v1/telemetry"))
                    .bearer_auth(&token)
                    .body(body(&id))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => acked.lock().unwrap().push(id),
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let acked = acknowledged.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "only {} runs acknowledged before the kill",
        acked.len()
    );

    let mut node = serve(dir.path());
    let stats: Value = http
        .get(format!("{}/v1/valuations/stats", node.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["count"].as_u64().unwrap() >= acked.len() as u64);
    for id in &acked {
        let response = http
            .get(format!("{}/v1/valuations/{id}", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "acknowledged run {id} was lost");
    }
    node.child.kill().unwrap();
    node.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_work_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = serve(dir.path());
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/v1/telemetry", node.url))
        .bearer_auth(&node.token)
        .body(body("t1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let pid = node.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "node did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let mut node = serve(dir.path());
    let response = http
        .get(format!("{}/v1/valuations/t1", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    node.child.kill().unwrap();
    node.child.wait().unwrap();
}

/// Peak resident memory of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

/// A batch body of 8 million tiny elements is refused once element
/// `max_batch_runs + 1` is read, without building all of them: the node's
/// peak memory grows by less than 64 MiB for a 16 MiB body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_batch_of_zeros_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = serve(dir.path());
    let http = reqwest::Client::new();
    let warm = http
        .post(format!("{}/v1/telemetry", node.url))
        .bearer_auth(&node.token)
        .body(body("warm-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 201);
    let before = peak_rss(node.child.id());
    let mut zeros = String::with_capacity(16 * 1024 * 1024);
    zeros.push('[');
    while zeros.len() < 16 * 1024 * 1024 - 1024 {
        zeros.push_str("0,");
    }
    zeros.push_str("0]");
    let response = http
        .post(format!("{}/v1/telemetry/batch", node.url))
        .bearer_auth(&node.token)
        .body(zeros)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "batch_too_large", "{answer}");
    let growth = peak_rss(node.child.id()).saturating_sub(before);
    eprintln!(
        "peak RSS growth for a 16 MiB batch: {:.1} MiB",
        growth as f64 / 1048576.0
    );
    assert!(
        growth < 64 * 1024 * 1024,
        "peak RSS grew by {} MiB",
        growth / (1024 * 1024)
    );
    node.child.kill().unwrap();
    node.child.wait().unwrap();
}

#[test]
fn config_check_accepts_the_example_and_names_bad_keys() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../qunimbus.example.toml");
    let ok = qunimbus()
        .args(["config", "check"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[valuation]\ncoherence_variance_threshold = 0\n").unwrap();
    let out = qunimbus()
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("valuation.coherence_variance_threshold"),
        "{stderr}"
    );
}

#[test]
fn environment_overrides_are_validated_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let out = qunimbus()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("QUNIMBUS_VALUATION__ETA_BASELINE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("valuation.eta_baseline"), "{stderr}");
    assert!(
        !dir.path().join("qunimbus.db").exists(),
        "nothing is created for an invalid config"
    );
}

#[test]
fn demo_serves_simulated_runs_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = qunimbus()
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--duration",
            "4",
            "--rate",
            "50",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("QuNimbus demo node: http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("demo stopped cleanly"), "{stdout}");
    let last = stdout
        .lines()
        .rfind(|l| l.starts_with("runs accepted"))
        .expect("a summary line");
    let accepted: u64 = last
        .strip_prefix("runs accepted ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("accepted count");
    assert!(accepted > 50, "{last}");
    assert!(last.contains("failed 0"), "{last}");
}

/// Runs `qunimbus args…` against `served`'s node; returns (success, stdout, stderr).
fn against(served: &Served, data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = qunimbus()
        .args(args)
        .args(["--url", &served.url, "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run qunimbus");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn trust_commands_drive_a_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(dir.path());
    let (ok, out, err) = against(&served, dir.path(), &["region", "list"]);
    assert!(ok, "{err}");
    for region in ["Americas", "EU", "MENA", "APAC", "Polar", "Orbit"] {
        assert!(out.contains(region), "{out}");
    }
    assert!(out.contains("mesh: 6/6 active"), "{out}");
    let (ok, out, err) = against(
        &served,
        dir.path(),
        &["region", "event", "eu", "--kind", "failure"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("recorded in block"), "{out}");
    let (ok, _, err) = against(
        &served,
        dir.path(),
        &[
            "region", "set", "apac", "--status", "degraded", "--trust", "0.9",
        ],
    );
    assert!(!ok, "a trust override without a reason is refused");
    assert!(err.contains("reason"), "{err}");
    let (ok, out, err) = against(
        &served,
        dir.path(),
        &["rollout", "start", "--version", "9.9.9"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("version 9.9.9  running at phase 0"), "{out}");
    let (ok, out, _) = against(&served, dir.path(), &["rollout", "list"]);
    assert!(ok && out.contains("9.9.9"), "{out}");
    let (ok, out, err) = against(&served, dir.path(), &["compliance", "--attest"]);
    assert!(ok, "{err}");
    assert!(out.contains("ITAR         compliant"), "{out}");
    assert!(out.contains("attestation recorded in block"), "{out}");

    let policy = dir.path().join("policy.cedar");
    let output = qunimbus()
        .args(["policy", "check"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("5 rules"));
    let broken = dir.path().join("broken.cedar");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&policy)
            .unwrap()
            .replace("resource.region", "resource.regoin"),
    )
    .unwrap();
    let output = qunimbus()
        .args(["policy", "check"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("regoin"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    served.child.kill().unwrap();
    served.child.wait().unwrap();
}

#[test]
fn import_posts_batches_and_names_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(dir.path());
    let file = dir.path().join("runs.jsonl");
    let good: Vec<String> = (0..5).map(|i| body(&format!("imp-{i}"))).collect();
    std::fs::write(
        &file,
        format!("{}\n\n{}\n", good[..3].join("\n"), good[3..].join("\n")),
    )
    .unwrap();
    let import = |file: &Path| {
        qunimbus()
            .args(["import", "--batch", "2", "--url", &served.url, "--data-dir"])
            .arg(dir.path())
            .arg(file)
            .output()
            .unwrap()
    };
    let output = import(&file);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains("imported 5 runs") && out.contains("5 accepted, 0 duplicates"),
        "{out}"
    );
    let again = import(&file);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 accepted, 5 duplicates"));

    // An invalid run: its batch is refused, the line is named.
    let bad = dir.path().join("bad.jsonl");
    let invalid = body("imp-bad").replace("0.96", "1.5");
    std::fs::write(
        &bad,
        format!("{}\n{}\n{invalid}\n", body("imp-5"), body("imp-6")),
    )
    .unwrap();
    let output = import(&bad);
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("line 3") && err.contains("eta_ent"), "{err}");
    assert!(err.contains("2 runs accepted"), "{err}");

    // A line that is not JSON stops the import before anything is sent.
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, format!("{}\n{{oops\n", body("imp-never"))).unwrap();
    let output = import(&broken);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("broken.jsonl:2: not a JSON value"));
    let url = format!("{}/v1/valuations/imp-never", served.url);
    let status = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { reqwest::get(url).await.unwrap().status() });
    assert_eq!(status, 404, "nothing was sent");
    served.child.kill().unwrap();
    served.child.wait().unwrap();
}
