//! The exchange adapter against a local server that answers Binance spot's
//! documented endpoints (`/api/v3/ping`, signed `/api/v3/account`, checking
//! the HMAC-SHA256 signature with `openssl`, the timestamp and the API key
//! header) and injects 429 with `Retry-After`, 418, 5xx and timeouts. No
//! exchange is reachable from this build; this server is what the adapter
//! is tested against.

#[macro_use]
mod support;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Backend, TestNode};

const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Normal,
    TooMany,
    Banned,
    Broken,
    Slow,
}

#[derive(Clone)]
struct Mock {
    mode: Arc<Mutex<Mode>>,
    hits: Arc<AtomicU64>,
}

/// `openssl dgst -sha256 -hmac SECRET` of `text`, lower-case hex.
fn openssl_hmac(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", SECRET])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is required for this test (scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    out.rsplit(' ').next().unwrap().trim().to_string()
}

async fn account(State(m): State<Mock>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    m.hits.fetch_add(1, Ordering::SeqCst);
    let mode = *m.mode.lock().unwrap();
    match mode {
        Mode::TooMany => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "2")],
                r#"{"code":-1003,"msg":"Too many requests"}"#,
            )
                .into_response()
        }
        Mode::Banned => {
            return (
                StatusCode::IM_A_TEAPOT,
                [("retry-after", "3")],
                r#"{"code":-1003,"msg":"banned"}"#,
            )
                .into_response()
        }
        Mode::Broken => return (StatusCode::BAD_GATEWAY, "upstream").into_response(),
        Mode::Slow => tokio::time::sleep(Duration::from_secs(2)).await,
        Mode::Normal => {}
    }
    let query = query.unwrap_or_default();
    let Some((signed, signature)) = query.rsplit_once("&signature=") else {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"code":-1102,"msg":"signature missing"}"#,
        )
            .into_response();
    };
    let fresh = signed
        .split('&')
        .find_map(|p| p.strip_prefix("timestamp="))
        .and_then(|t| t.parse::<i64>().ok())
        .is_some_and(|t| (chrono::Utc::now().timestamp_millis() - t).abs() < 5000);
    let key_ok = headers.get("x-mbx-apikey").and_then(|v| v.to_str().ok()) == Some(KEY);
    if !key_ok || !fresh || openssl_hmac(signed) != signature {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"code":-1022,"msg":"Signature for this request is not valid."}"#,
        )
            .into_response();
    }
    axum::Json(json!({
        "canTrade": true,
        "balances": [
            {"asset": "BTC", "free": "0.50000000", "locked": "0.00000000"},
            {"asset": "LTC", "free": "0.00000000", "locked": "0.00000000"},
            {"asset": "USDT", "free": "1200.00000000", "locked": "34.50000000"}
        ]
    }))
    .into_response()
}

async fn mock() -> (String, Mock) {
    let m = Mock {
        mode: Arc::new(Mutex::new(Mode::Normal)),
        hits: Arc::new(AtomicU64::new(0)),
    };
    let app = axum::Router::new()
        .route("/api/v3/account", axum::routing::get(account))
        .with_state(m.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), m)
}

async fn exchange(t: &TestNode) -> Value {
    t.send(
        reqwest::Method::GET,
        "/v1/agent/exchange",
        Some(t.admin_token()),
        "",
    )
    .await
    .1
}

fn set(m: &Mock, mode: Mode) {
    *m.mode.lock().unwrap() = mode;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_signs_backs_off_and_breaks_the_circuit() {
    let (url, m) = mock().await;
    let t = TestNode::start_with(Backend::Sqlite, |c| {
        c.agent.enabled = true;
        c.agent.bar_interval_ms = 50;
        c.agent.exchange.url = Some(url);
        c.agent.exchange.timeout_ms = 300;
        c.agent.exchange.breaker_failures = 2;
        c.agent.exchange.breaker_open_secs = 1;
    })
    .await;
    // No keys yet: nothing is sent.
    let s = exchange(&t).await;
    assert_eq!(
        (s["keys_loaded"].clone(), s["breaker"].clone()),
        (json!(false), json!("closed")),
        "{s}"
    );
    assert!(s["error"].as_str().unwrap().contains("QBTC_API_KEY"), "{s}");
    assert_eq!(m.hits.load(Ordering::SeqCst), 0);
    let (status, e) = t
        .post(
            "/v1/agent/credentials",
            Some(t.admin_token()),
            r#"{"api_key":"k","reason":"new keys"}"#,
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].clone()),
        (
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            json!("api_secret")
        ),
        "{e}"
    );
    let (status, e) = t.post("/v1/agent/credentials", None, "").await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{e}");

    // Wrong keys: the exchange refuses the signature (a 4xx is the caller's
    // fault, not the exchange's: the breaker stays closed).
    let wrong = r#"{"api_key":"vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A","api_secret":"not-the-secret","reason":"first keys"}"#;
    let (_, loaded) = t
        .post("/v1/agent/credentials", Some(t.admin_token()), wrong)
        .await;
    assert_eq!(loaded["keys_loaded"], json!(true), "{loaded}");
    let s = exchange(&t).await;
    assert!(s["error"].as_str().unwrap().contains("-1022"), "{s}");
    assert_eq!(s["breaker"], json!("closed"));

    // The documented keys: the signature verifies with openssl.
    let right =
        format!(r#"{{"api_key":"{KEY}","api_secret":"{SECRET}","reason":"the documented keys"}}"#);
    let (_, loaded) = t
        .post("/v1/agent/credentials", Some(t.admin_token()), &right)
        .await;
    assert_eq!(loaded["source"], json!("request"), "{loaded}");
    let s = exchange(&t).await;
    assert_eq!(s["error"], Value::Null, "{s}");
    assert_eq!(s["can_trade"], json!(true));
    assert_eq!(
        s["balances"],
        json!([
            {"asset": "BTC", "free": "0.50000000", "locked": "0.00000000"},
            {"asset": "USDT", "free": "1200.00000000", "locked": "34.50000000"}
        ])
    );
    assert!(
        !format!("{s}{loaded}").contains(SECRET),
        "the secret is never shown"
    );
    // The change is a block that names who and why, never the keys.
    let index = loaded["block_index"].as_u64().expect("a block");
    let block = t.get_ok(&format!("/v1/ledger/blocks/{index}")).await;
    assert_eq!(block["payload"]["credential"], json!("exchange"), "{block}");
    assert_eq!(block["payload"]["reason"], json!("the documented keys"));
    assert!(
        !block.to_string().contains(SECRET) && !block.to_string().contains(KEY),
        "{block}"
    );

    // Two 5xx open the breaker; while open nothing reaches the exchange.
    set(&m, Mode::Broken);
    for _ in 0..2 {
        exchange(&t).await;
    }
    let hits = m.hits.load(Ordering::SeqCst);
    let s = exchange(&t).await;
    assert_eq!(s["breaker"], json!("open"), "{s}");
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("circuit breaker open"),
        "{s}"
    );
    assert_eq!(m.hits.load(Ordering::SeqCst), hits, "no call while open");
    let (_, metrics) = t.get_text("/metrics").await;
    assert!(
        metrics.contains("qbtc_circuit_open{mode=\"paper\"} 1"),
        "{metrics}"
    );
    // After the open period one probe goes out; its success closes it.
    set(&m, Mode::Normal);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let s = exchange(&t).await;
    assert_eq!(
        (s["breaker"].clone(), s["error"].clone()),
        (json!("closed"), Value::Null),
        "{s}"
    );

    // 429 with Retry-After: 2 s opens it at once for 2 s (longer than its 1 s).
    set(&m, Mode::TooMany);
    let s = exchange(&t).await;
    assert_eq!(s["breaker"], json!("open"), "{s}");
    assert!(s["retry_in_ms"].as_u64().unwrap() > 1500, "{s}");
    set(&m, Mode::Normal);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(exchange(&t).await["breaker"], json!("closed"));
    // 418 (banned) likewise.
    set(&m, Mode::Banned);
    assert_eq!(exchange(&t).await["breaker"], json!("open"));
    set(&m, Mode::Normal);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    // Timeouts count as failures.
    set(&m, Mode::Slow);
    let s = exchange(&t).await;
    assert!(
        s["error"].as_str().unwrap().contains("did not answer"),
        "{s}"
    );

    let (_, metrics) = t.get_text("/metrics").await;
    for outcome in [
        "ok",
        "http_4xx",
        "http_5xx",
        "http_429",
        "http_418",
        "timeout",
        "breaker_open",
    ] {
        let series = format!("qbtc_exchange_requests_total{{outcome=\"{outcome}\"}}");
        assert!(metrics.contains(&series), "{series} missing:\n{metrics}");
    }
    t.stop().await;
}
