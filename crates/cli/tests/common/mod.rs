//! Shared by the tests that run the `qunimbus` binary as a process.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_qunimbus");

/// The binary, with no `QUNIMBUS_*` variables inherited from the caller.
pub fn qunimbus() -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("QUNIMBUS_")) {
        command.env_remove(name);
    }
    command
}

/// Starts `qunimbus serve` on a free loopback port with JSON logs in
/// `data_dir` (`adjust` adds flags or variables) and waits until it reports
/// its address; returns the child and `http://addr`.
pub fn spawn_serve(data_dir: &Path, adjust: impl FnOnce(&mut Command)) -> (Child, String) {
    let mut command = qunimbus();
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
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    adjust(&mut command);
    let mut child = command.spawn().expect("spawn qunimbus serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(Instant::now() < deadline, "node did not report its address");
        let line = lines
            .next()
            .expect("node exited before listening")
            .expect("read node stderr");
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if event["message"] == "QuNimbus node listening" {
            break event["addr"].as_str().expect("addr field").to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://{addr}"))
}

/// A generated token (`ingest_token`, `admin_token`) from `DATA_DIR/credentials.toml`.
pub fn credential(data_dir: &Path, key: &str) -> String {
    let credentials =
        std::fs::read_to_string(data_dir.join("credentials.toml")).expect("credentials file");
    credentials
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{key} in credentials.toml"))
        .to_string()
}

/// Stops a spawned node with SIGTERM and waits (30 s at most) for a clean exit.
pub fn terminate(mut child: Child) {
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

/// A finished command's exit code and output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
