//! `qunimbus credentials …` through the real binary: a client token, a
//! rotation of the admin token with no grace (the CLI keeps working: the
//! credentials file follows), and the list, which shows no secret.

// Shared by the process tests; this one needs `qunimbus()` and `spawn_serve`.
#[allow(dead_code)]
mod common;

use common::{qunimbus, spawn_serve, terminate, text};
use std::path::Path;
use std::process::{Output, Stdio};

fn credentials(url: &str, data_dir: &Path, args: &[&str]) -> Output {
    qunimbus()
        .arg("credentials")
        .args(args)
        .args(["--url", url, "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run qunimbus credentials")
}

fn secret(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no secret printed: {}", text(out)))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_issues_a_client_token_rotates_the_admin_token_and_lists_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = spawn_serve(dir.path(), |_| {});
    let file = dir.path().join("credentials.toml");
    let before = std::fs::read_to_string(&file).unwrap();

    let out = credentials(
        &url,
        dir.path(),
        &[
            "create-client",
            "--name",
            "bot",
            "--scope",
            "read",
            "--reason",
            "a reader",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let bot = secret(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("client:bot"),
        "{}",
        text(&out)
    );

    let out = credentials(
        &url,
        dir.path(),
        &["rotate", "admin", "--grace-secs", "0", "--reason", "drill"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let admin = secret(&out);
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(
        after.contains(&admin) && after != before,
        "the file follows the rotation"
    );

    // The CLI reads the new token from the file; the old one is refused.
    let out = credentials(&url, dir.path(), &["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        list.contains("client:bot") && list.contains("admin"),
        "{list}"
    );
    assert!(
        !list.contains(&admin) && !list.contains(&bot),
        "a secret in the list: {list}"
    );
    let old = before
        .lines()
        .find_map(|l| l.strip_prefix("admin_token = \""))
        .map(|l| l.trim_end_matches('"').to_string())
        .unwrap();
    let refused = reqwest::Client::new()
        .get(format!("{url}/v1/credentials"))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    let out = credentials(
        &url,
        dir.path(),
        &["rotate", "client:nobody", "--reason", "x"],
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("no credential"), "{}", text(&out));
    terminate(child);
}
