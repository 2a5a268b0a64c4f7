//! `qunimbus serve --agent` and `qunimbus agent …` through the real binary:
//! the agent trades on paper, the CLI reads and commands it, and after the
//! node stops `ledger verify` accepts its fills — and names the block when
//! one stored fill is changed.

// Shared by the process tests; this one needs `qunimbus()` and `spawn_serve`.
#[allow(dead_code)]
mod common;

use common::{qunimbus, spawn_serve};
use serde_json::Value;
use sqlx::Connection;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
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

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn status(url: &str) -> Value {
    reqwest::get(format!("{url}/v1/agent"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn terminate(mut child: Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "node exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "node did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
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
