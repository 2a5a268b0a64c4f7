//! RFC 3161 end to end: the built-in TSA answers OpenSSL's requests, every
//! checkpoint gets a token that `openssl ts -verify` accepts, and a TSA that
//! is down never blocks appends — tokens stay pending and arrive once it is back.

mod support;

use qunimbus_http::RunningNode;
use qunimbus_node::config::Config;
use reqwest::StatusCode;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{reference_run, require_openssl, varied_run, Backend, TestNode};

const DEADLINE: Duration = Duration::from_secs(20);

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is required for this test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("Verification: OK"),
        text,
    )
}

/// Polls until checkpoint `size` has a token, returning it.
async fn wait_for_token(http: &reqwest::Client, base: &str, size: u64) -> Vec<u8> {
    let started = Instant::now();
    loop {
        let response = http
            .get(format!(
                "{base}/v1/ledger/checkpoint/timestamp?tree_size={size}"
            ))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap().to_vec();
        if status == StatusCode::OK {
            return body;
        }
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            started.elapsed() < DEADLINE,
            "no token for checkpoint {size}: {}",
            String::from_utf8_lossy(&body)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_checkpoint_gets_a_token_that_openssl_verifies() {
    require_openssl();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let t = TestNode::start(backend).await;
        let note = t.grow("ts", 5).await;
        let token = wait_for_token(&t.http, &t.url(""), note.size).await;
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        std::fs::write(dir.join("body.txt"), &note.body).unwrap();
        std::fs::write(dir.join("token.der"), &token).unwrap();
        let chain = t
            .http
            .get(t.url("/tsa/certs"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        std::fs::write(dir.join("chain.pem"), &chain).unwrap();
        std::fs::copy(t.data_dir().join("tsa/root.pem"), dir.join("root.pem")).unwrap();
        let verify = [
            "ts",
            "-verify",
            "-data",
            "body.txt",
            "-in",
            "token.der",
            "-token_in",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
        ];
        let (ok, text) = openssl(dir, &verify);
        assert!(
            ok,
            "{backend:?}: openssl rejected the checkpoint token: {text}"
        );

        let mut tampered = note.body.clone().into_bytes();
        tampered[0] ^= 1;
        std::fs::write(dir.join("body.txt"), &tampered).unwrap();
        let (ok, text) = openssl(dir, &verify);
        assert!(
            !ok,
            "{backend:?}: openssl accepted a token for a changed body: {text}"
        );

        let report = t.get_ok("/v1/ledger/verify").await;
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["timestamps"]["verified"], 1, "{report}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_tsa_answers_openssl_requests() {
    require_openssl();
    let t = TestNode::start(Backend::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(dir.join("data.txt"), b"a document to time-stamp\n").unwrap();
    let (_, text) = openssl(
        dir,
        &[
            "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "req.tsq",
        ],
    );
    assert!(
        dir.join("req.tsq").exists(),
        "openssl ts -query failed: {text}"
    );
    let response = t
        .http
        .post(t.url("/tsa"))
        .header("content-type", "application/timestamp-query")
        .body(std::fs::read(dir.join("req.tsq")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/timestamp-reply"
    );
    std::fs::write(dir.join("resp.tsr"), response.bytes().await.unwrap()).unwrap();
    let chain = t
        .http
        .get(t.url("/tsa/certs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(dir.join("chain.pem"), chain).unwrap();
    std::fs::copy(t.data_dir().join("tsa/root.pem"), dir.join("root.pem")).unwrap();
    let (ok, text) = openssl(
        dir,
        &[
            "ts",
            "-verify",
            "-in",
            "resp.tsr",
            "-queryfile",
            "req.tsq",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
        ],
    );
    assert!(ok, "openssl rejected our response: {text}");
    let (ok, text) = openssl(
        dir,
        &[
            "ts",
            "-verify",
            "-in",
            "resp.tsr",
            "-data",
            "chain.pem",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
        ],
    );
    assert!(!ok, "openssl accepted the response for other data: {text}");

    let garbage = t
        .http
        .post(t.url("/tsa"))
        .header("content-type", "application/timestamp-query")
        .body(b"not a request".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        garbage.status(),
        StatusCode::OK,
        "RFC 3161 rejections travel in a TimeStampResp"
    );
    std::fs::write(dir.join("reject.tsr"), garbage.bytes().await.unwrap()).unwrap();
    let out = Command::new("openssl")
        .args(["ts", "-reply", "-in", "reject.tsr", "-text"])
        .current_dir(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        text.contains("status: rejected"),
        "expected a rejection status: {text}"
    );

    let wrong_type = t
        .http
        .post(t.url("/tsa"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    t.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tsa_that_is_down_never_blocks_appends_and_tokens_follow_when_it_returns() {
    require_openssl();
    // Node A is the external TSA for node B. It is down while B takes runs.
    let tsa_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let tsa_config = Config {
        data_dir: tsa_dir.path().to_path_buf(),
        listen: format!("127.0.0.1:{port}"),
        ..Config::default()
    };
    RunningNode::start(&tsa_config)
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    let roots = tsa_dir.path().join("tsa/root.pem");

    let t = TestNode::start_with(Backend::Sqlite, |c| {
        c.tsa.url = Some(format!("http://127.0.0.1:{port}/tsa"));
        c.tsa.roots_file = Some(roots.clone());
        c.tsa.retry_initial_ms = 50;
        c.tsa.retry_max_ms = 200;
        c.tsa.timeout_ms = 1000;
    })
    .await;
    for i in 0..10 {
        let (status, body) = t.ingest(&varied_run(&format!("down-{i}"), i)).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "appends go on while the TSA is down: {body}"
        );
    }
    let note = t.wait_for_checkpoint(11).await;
    let started = Instant::now();
    loop {
        let metrics = t.get_text("/metrics").await.1;
        let failures = metrics
            .lines()
            .find_map(|l| l.strip_prefix("qunimbus_tsa_failures_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if failures >= 2.0 {
            assert!(!metrics.contains("qunimbus_tsa_pending 0\n"), "{metrics}");
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no failed TSA attempts counted: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (status, pending) = t
        .get(&format!(
            "/v1/ledger/checkpoint/timestamp?tree_size={}",
            note.size
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(pending["error"]["code"], "timestamp_pending", "{pending}");

    // The TSA comes back on the same address with the same key.
    let tsa = RunningNode::start(&tsa_config).await.unwrap();
    let token = wait_for_token(&t.http, &t.url(""), note.size).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(dir.join("body.txt"), &note.body).unwrap();
    std::fs::write(dir.join("token.der"), &token).unwrap();
    std::fs::copy(&roots, dir.join("root.pem")).unwrap();
    std::fs::copy(tsa_dir.path().join("tsa/chain.pem"), dir.join("chain.pem")).unwrap();
    let (ok, text) = openssl(
        dir,
        &[
            "ts",
            "-verify",
            "-data",
            "body.txt",
            "-in",
            "token.der",
            "-token_in",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
        ],
    );
    assert!(ok, "{text}");
    let (status, _) = t.ingest(&reference_run("after")).await;
    assert_eq!(status, StatusCode::CREATED);
    t.stop().await;
    tsa.shutdown().await.unwrap();
}
