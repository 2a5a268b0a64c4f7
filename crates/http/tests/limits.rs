//! Limits and abuse (SPEC §11), tried as an attacker would: bodies that are
//! costly to parse, bodies that trickle, clients that stop reading, clients
//! that open too many streams or send too many requests, and a Python
//! client that sends its whole body before reading the answer.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use support::{reference_run, varied_run, Backend, TestNode};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn addr_of(node: &TestNode) -> String {
    node.url("").trim_start_matches("http://").to_string()
}

/// A raw HTTP/1.1 request over a plain socket; returns the socket.
fn raw(node: &TestNode, head: &str) -> std::net::TcpStream {
    let mut socket = std::net::TcpStream::connect(addr_of(node)).unwrap();
    socket.write_all(head.as_bytes()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket
}

/// Reads what the server sends until it closes the connection or 10 s pass.
fn read_all(socket: &mut std::net::TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_thousand_keys_are_refused_in_milliseconds() {
    let node = TestNode::start(Backend::Sqlite).await;
    let mut body = String::from("{");
    for i in 0..60_000 {
        body.push_str(&format!("\"k{i}\":0,"));
    }
    body.push_str("\"eta_ent\":0.97}");
    assert!(body.len() > 600_000 && body.len() < 1024 * 1024);
    let mut took = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let response = node
            .http
            .post(node.url("/v1/valuation/quote"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        took.push(started.elapsed());
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["code"], "unknown_field");
        assert_eq!(answer["error"]["field"], "k0");
    }
    took.sort();
    // The quadratic duplicate check took 4.6 s of CPU for this body.
    assert!(
        took[2] < Duration::from_millis(50),
        "median {:?} (all {took:?})",
        took[2]
    );
    node.stop().await;
}

/// Python's urllib sends the whole body before it reads the answer: the
/// node must read (and drop) what it refuses rather than reset the socket.
/// (8 MiB: more than the kernel buffers, so without the lingering close
/// urllib fails with a broken pipe.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_urllib_reads_the_early_413_and_401() {
    let node = TestNode::start(Backend::Sqlite).await;
    let script = r#"
import json, sys, urllib.request, urllib.error
url, token = sys.argv[1], sys.argv[2]
body = b'{"run_id":"' + b'x' * (8 * 1024 * 1024) + b'"}'
for auth in (token, None):
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", "Bearer " + auth)
    try:
        urllib.request.urlopen(request, timeout=20)
        print("accepted")
    except urllib.error.HTTPError as e:
        print(e.code, json.loads(e.read())["error"]["code"])
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &node.url("/v1/telemetry"),
            node.ingest_token(),
        ])
        .output()
        .expect("python3 is required (scripts/test checks it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["413 body_too_large", "401 unauthorized"]
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_gets_408_and_trickled_headers_are_cut_off() {
    let node = TestNode::start_with(Backend::Sqlite, |c| {
        c.limits.body_read_timeout_ms = 400;
        c.limits.header_read_timeout_ms = 400;
    })
    .await;
    let head = format!(
        "POST /v1/valuation/quote HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        addr_of(&node)
    );
    let started = Instant::now();
    let mut socket = raw(&node, &head);
    let dripper = {
        let mut socket = socket.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..5 {
                if socket.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let answer = read_all(&mut socket);
    let took = started.elapsed();
    dripper.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"body_timeout\""), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Headers that never finish: the connection is closed after 400 ms.
    let started = Instant::now();
    let mut socket = raw(&node, "GET /v1/ledger HTTP/1.1\r\nHost: x\r\n");
    let answer = read_all(&mut socket);
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_expensive_routes_are_rate_limited_per_client() {
    let node = TestNode::start_with(Backend::Sqlite, |c| {
        c.limits.verify = qunimbus_node::config::RateLimit {
            per_minute: 6,
            burst: 2,
        };
    })
    .await;
    for _ in 0..2 {
        assert_eq!(node.get("/v1/ledger/verify").await.0, StatusCode::OK);
    }
    let response = node
        .http
        .get(node.url("/v1/ledger/verify"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Other routes and token holders are not limited by it.
    assert_eq!(node.get("/v1/ledger").await.0, StatusCode::OK);
    let (status, _) = node
        .send(
            reqwest::Method::GET,
            "/v1/ledger/verify",
            Some(node.admin_token()),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_concurrency_limit_the_node_answers_503_at_once() {
    let node = TestNode::start_with(Backend::Sqlite, |c| {
        c.limits.max_concurrent_requests = 1;
        c.limits.body_read_timeout_ms = 3_000;
    })
    .await;
    // One request in progress: its body is still on its way.
    let head = format!(
        "POST /v1/valuation/quote HTTP/1.1\r\nHost: {}\r\nContent-Length: 50\r\n\r\n",
        addr_of(&node)
    );
    let mut holder = raw(&node, &head);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let response = node.http.get(node.url("/v1/ledger")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    assert!(started.elapsed() < Duration::from_secs(1), "no queueing");
    holder.write_all(&[b' '; 50]).unwrap();
    let answer = read_all(&mut holder);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(node.get("/v1/ledger").await.0, StatusCode::OK);
    node.stop().await;
}

async fn add_partner(node: &TestNode, name: &str) -> String {
    let (status, partner) = node
        .post(
            "/v1/partners",
            Some(node.admin_token()),
            &json!({"name": name, "region": "EU"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{partner}");
    partner["api_key"].as_str().unwrap().to_string()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect_feed(node: &TestNode, key: &str) -> Result<Ws, u16> {
    let mut request = node
        .url("/v1/market/feed")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("{e}"),
    }
}

async fn next_type(ws: &mut Ws, wanted: &str) -> Value {
    use futures_util::StreamExt;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {wanted} message in time"))
            .unwrap()
            .unwrap();
        if let Ok(text) = message.to_text() {
            let value: Value = serde_json::from_str(text).unwrap();
            if value["type"] == wanted {
                return value;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_connections_are_capped_per_partner_while_the_first_keep_streaming() {
    let node = TestNode::start_with(Backend::Sqlite, |c| {
        c.limits.max_feed_connections_per_partner = 3;
    })
    .await;
    let key = add_partner(&node, "capped").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut ws = connect_feed(&node, &key).await.unwrap();
        next_type(&mut ws, "snapshot").await;
        open.push(ws);
    }
    assert_eq!(connect_feed(&node, &key).await.err(), Some(429));
    let other = add_partner(&node, "other").await;
    assert!(connect_feed(&node, &other).await.is_ok(), "per partner");
    node.ingest_new(&varied_run("cap-1", 1)).await;
    for ws in &mut open {
        let live = next_type(ws, "valuation").await;
        assert_eq!(live["run_id"], "cap-1");
    }
    // A closed connection gives its place back.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match connect_feed(&node, &key).await {
            Ok(_) => break,
            Err(429) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(status) => panic!("the freed place was not given back: {status}"),
        }
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_dashboard_stream() {
    let node = TestNode::start_with(Backend::Sqlite, |c| {
        c.limits.max_dashboard_streams_per_client = 2;
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let response = node
            .http
            .get(node.url("/v1/dashboard/stream"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response);
    }
    let third = node
        .http
        .get(node.url("/v1/dashboard/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key("retry-after"));
    node.stop().await;
}

/// A partner that stops reading its SSE stream is cut off by the send
/// timeout: the node closes the connection instead of keeping the socket,
/// its task and its unsent bytes for ever. (Without the timeout the node
/// would wait, and finish the response normally once the client reads.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = TestNode::start_with(Backend::Sqlite, |c| {
        c.limits.send_timeout_ms = 500;
        c.market.queue_capacity = 20_000;
    })
    .await;
    let key = add_partner(&node, "stalled").await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = addr_of(&node).parse().unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    let head = format!(
        "GET /v1/market/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\r\n"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Never read; fill the pipe with valuations.
    for batch in 0..4 {
        let runs: Vec<Value> = (0..2500)
            .map(|i| varied_run(&format!("stall-{batch}-{i}"), i))
            .collect();
        node.ingest_batch(&runs).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Now read: what the kernel buffered, then the end of the connection.
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(closed, "the node kept the stalled connection open");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "the response was completed, not cut off"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_text_past_its_cap_is_422_naming_the_field() {
    let node = TestNode::start(Backend::Sqlite).await;
    let admin = Some(node.admin_token());
    let long = "r".repeat(1001);
    let cases = [
        (
            reqwest::Method::PUT,
            "/v1/regions/eu",
            json!({"status": "degraded", "trust_score": 0.5, "reason": long}),
            "reason",
        ),
        (
            reqwest::Method::POST,
            "/v1/partners",
            json!({"name": "p".repeat(65), "region": "EU"}),
            "name",
        ),
        (
            reqwest::Method::POST,
            "/v1/rollouts",
            json!({"version": "v".repeat(65)}),
            "version",
        ),
    ];
    let length = node.chain_length().await;
    for (method, path, body, field) in cases {
        let (status, answer) = node.send(method, path, admin, &body.to_string()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "too_long", "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    assert_eq!(node.chain_length().await, length, "nothing was recorded");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_rollout_without_phases_is_refused_at_start() {
    let mut node = TestNode::start(Backend::Sqlite).await;
    let (status, rollout) = node
        .post(
            "/v1/rollouts",
            Some(node.admin_token()),
            r#"{"version":"1.0.0"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rollout}");
    let config = node.config().clone();
    node.stop_only().await;
    let db = format!("sqlite:{}", config.data_dir.join("qunimbus.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let stored: String = sqlx::query_scalar("SELECT state FROM rollouts")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let mut state: Value = serde_json::from_str(&stored).unwrap();
    state["phases"] = json!([]);
    sqlx::query("UPDATE rollouts SET state = $1")
        .bind(state.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let refused = qunimbus_http::RunningNode::start(&config)
        .await
        .err()
        .expect("a node with a broken stored rollout must not start");
    let message = refused.to_string();
    assert!(
        message.contains("stored rollout") && message.contains("at least one phase"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("fresh").join("data");
    let node = TestNode::start_with(Backend::Sqlite, |c| c.data_dir = dir.clone()).await;
    node.ingest_new(&reference_run("private-1")).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for file in ["qunimbus.db", "qunimbus.db-wal", "qunimbus.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    node.stop().await;
}
