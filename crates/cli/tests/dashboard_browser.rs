//! The built-in dashboard in a real browser: `qunimbus demo` as a process,
//! then `tests/browser/dashboard.mjs` drives Debian's headless Chromium
//! (through the npm package `playwright-core`) against it. The script fails on
//! any console or page error, waits for live phi points of at least three
//! regions and measured feed latency, clicks "Verify now", and saves a
//! full-page screenshot to `$QUNIMBUS_ARTIFACTS_DIR/dashboard.png`
//! (default `target/ci-artifacts/`).
//!
//! node, the npm package and Chromium are required: this test fails, never
//! skips, when one is missing (`scripts/test` installs them).

// Shared by the process tests; this one needs only `qunimbus()`.
#[allow(dead_code)]
mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the browser script may run.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// A running `qunimbus demo`, killed when dropped.
struct Demo {
    child: Child,
    url: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    fn start(data_dir: &Path) -> Self {
        // The node rejects unknown QUNIMBUS_* variables (QUNIMBUS_ARTIFACTS_DIR is ours).
        let mut child = common::qunimbus()
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--duration",
                "60",
                "--data-dir",
            ])
            .arg(data_dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn qunimbus demo");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Reads the URL line, then keeps draining so the demo never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("QuNimbus demo node: ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the demo did not print its URL within 60 s");
        let mut demo = Self { child, url };
        if let Ok(Some(status)) = demo.child.try_wait() {
            panic!("the demo exited early: {status}");
        }
        demo.url.push('/');
        demo
    }
}

/// Fails with what to install when a prerequisite is missing.
fn require_tools(browser_dir: &Path, chromium: &Path) {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("`node --version` failed: {out:?}"),
        Err(e) => panic!(
            "node is required by the dashboard browser test and was not found ({e}); \
             install Node.js (apt-get install nodejs npm) or run scripts/test"
        ),
    }
    let package = browser_dir.join("node_modules/playwright-core/package.json");
    assert!(
        package.is_file(),
        "the npm package playwright-core is missing ({} not found); run `npm ci` in {} \
         (scripts/test does)",
        package.display(),
        browser_dir.display()
    );
    assert!(
        chromium.is_file(),
        "Chromium is required at {} (apt-get install chromium, or set CHROMIUM_PATH); \
         scripts/test installs it",
        chromium.display()
    );
}

fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

#[test]
fn dashboard_in_headless_chromium() {
    let root = repo_root();
    let browser_dir = root.join("tests/browser");
    let chromium = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    require_tools(&browser_dir, &chromium);
    let artifacts = std::env::var_os("QUNIMBUS_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/ci-artifacts"));
    std::fs::create_dir_all(&artifacts).expect("create the artifacts dir");
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);

    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());

    let mut script = Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .arg(&demo.url)
        .arg(&screenshot)
        .env("CHROMIUM_PATH", &chromium)
        .current_dir(&browser_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let stdout = read_all(script.stdout.take().unwrap());
    let stderr = read_all(script.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = script.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_DEADLINE {
            let _ = script.kill();
            let _ = script.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        panic!("the browser script ran over {SCRIPT_DEADLINE:?}\n{stdout}\n{stderr}")
    });
    assert!(
        status.success(),
        "the browser script failed ({status}) against {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        demo.url
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the script's report is not JSON ({e}): {stdout}"));
    assert_eq!(report["ok"], true, "{report}");
    let png = std::fs::read(&screenshot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "not a real screenshot: {} bytes",
        png.len()
    );
    eprintln!(
        "dashboard screenshot: {} ({} bytes); {report}",
        screenshot.display(),
        png.len()
    );
}
