//! Runs a `tests/browser/*.mjs` script against Debian's headless Chromium
//! (through the npm package `playwright-core`). node, the npm package and
//! Chromium are required: the caller fails, never skips, when one is
//! missing (`scripts/test` installs them).

use serde_json::Value;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a browser script may run.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Where screenshots go: `$QUNIMBUS_ARTIFACTS_DIR`, default
/// `target/ci-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("QUNIMBUS_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/ci-artifacts"));
    std::fs::create_dir_all(&dir).expect("create the artifacts dir");
    dir
}

/// Fails with what to install when a prerequisite is missing.
fn require_tools(browser_dir: &Path, chromium: &Path) {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("`node --version` failed: {out:?}"),
        Err(e) => panic!(
            "node is required by the browser tests and was not found ({e}); \
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

/// Runs `tests/browser/{script}` with `args` and returns the JSON summary
/// it prints; panics with its output when it fails or runs too long.
pub fn run_script(script: &str, args: &[&OsStr]) -> Value {
    let browser_dir = repo_root().join("tests/browser");
    let chromium = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    require_tools(&browser_dir, &chromium);
    let mut child = Command::new("node")
        .arg(browser_dir.join(script))
        .args(args)
        .env("CHROMIUM_PATH", &chromium)
        .current_dir(&browser_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let stdout = read_all(child.stdout.take().expect("stdout"));
    let stderr = read_all(child.stderr.take().expect("stderr"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let status = status
        .unwrap_or_else(|| panic!("{script} ran over {SCRIPT_DEADLINE:?}\n{stdout}\n{stderr}"));
    assert!(
        status.success(),
        "{script} failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script}'s summary is not JSON ({e}): {stdout}"));
    assert_eq!(report["ok"], true, "{report}");
    report
}

/// Reads a screenshot and checks it is a real PNG.
pub fn assert_screenshot(path: &Path) -> usize {
    let png = std::fs::read(path).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "not a real screenshot: {} bytes",
        png.len()
    );
    png.len()
}
