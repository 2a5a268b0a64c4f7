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

#[path = "common/browser.rs"]
mod browser;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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

#[test]
fn dashboard_in_headless_chromium() {
    let screenshot = browser::artifacts_dir().join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());
    let report = browser::run_script(
        "dashboard.mjs",
        &[OsStr::new(&demo.url), screenshot.as_os_str()],
    );
    let size = browser::assert_screenshot(&screenshot);
    eprintln!(
        "dashboard screenshot: {} ({size} bytes); {report}",
        screenshot.display()
    );
}
