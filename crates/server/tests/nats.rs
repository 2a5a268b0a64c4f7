//! Scale-out through a real NATS JetStream server: a partner connected to
//! node B receives the runs accepted on node A, in order, in A's seq space,
//! and B's own runs in B's. Needs NATS at NATS_TEST_URL (default
//! nats://127.0.0.1:4222); fails when it is unreachable.

mod support;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};
use support::{varied_run, Backend, TestNode};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn nats_url() -> String {
    std::env::var("NATS_TEST_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn require_nats() {
    let url = nats_url();
    let addr = url.trim_start_matches("nats://");
    std::net::TcpStream::connect(addr).unwrap_or_else(|e| {
        panic!("NATS at {url} (NATS_TEST_URL) is required for this test and is not reachable: {e}")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_on_node_b_receives_node_a_runs_in_order() {
    require_nats();
    let unique = format!("T{}_{}", std::process::id(), rand_suffix());
    let configure = |c: &mut qunimbus_server::config::Config| {
        c.nats_url = Some(nats_url());
        c.nats.stream = format!("QUNIMBUS_TEST_{unique}");
        c.nats.subject_prefix = format!("qunimbus_test.{unique}");
    };
    let a = TestNode::start_with(Backend::Sqlite, configure).await;
    let b = TestNode::start_with(Backend::Sqlite, configure).await;
    let origin_a = a.get_ok("/v1/ledger").await["origin"]
        .as_str()
        .unwrap()
        .to_string();
    let origin_b = b.get_ok("/v1/ledger").await["origin"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(origin_a, origin_b, "each node has its own log");

    let (status, partner) = b
        .post(
            "/v1/partners",
            Some(b.admin_token()),
            r#"{"name":"partner_b","region":"Americas"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{partner}");
    let key = partner["api_key"].as_str().unwrap();
    let mut request = b
        .url("/v1/market/feed")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    // B's relay consumer delivers what is published after it attaches.
    let started = Instant::now();
    loop {
        let metrics = b.get_text("/metrics").await.1;
        if metrics.contains("qunimbus_feed_relay_connected 1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "B's relay never attached: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for i in 0..20 {
        let (status, body) = a.ingest(&varied_run(&format!("a-{i}"), i)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for i in 0..5 {
        let (status, body) = b.ingest(&varied_run(&format!("b-{i}"), i)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let mut from_a = Vec::new();
    let mut from_b = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while from_a.len() < 20 || from_b.len() < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "got {} runs of A and {} of B",
            from_a.len(),
            from_b.len()
        );
        let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(left, socket.next()).await
        else {
            panic!(
                "feed closed; got {} runs of A and {} of B",
                from_a.len(),
                from_b.len()
            );
        };
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["type"] != "valuation" {
            continue;
        }
        let seq = message["seq"].as_u64().unwrap();
        let run_id = message["run_id"].as_str().unwrap().to_string();
        if message["origin"] == origin_a.as_str() {
            from_a.push((seq, run_id));
        } else {
            assert_eq!(message["origin"], origin_b.as_str(), "{message}");
            from_b.push((seq, run_id));
        }
        socket
            .send(Message::Text(
                format!(r#"{{"type":"ack","seq":{seq}}}"#).into(),
            ))
            .await
            .unwrap();
    }
    let expected_a: Vec<(u64, String)> =
        (0..20).map(|i| (i as u64 + 1, format!("a-{i}"))).collect();
    assert_eq!(
        from_a, expected_a,
        "A's runs arrive at B in order, in A's seq space, once"
    );
    let expected_b: Vec<(u64, String)> = (0..5).map(|i| (i as u64 + 1, format!("b-{i}"))).collect();
    assert_eq!(from_b, expected_b);

    let metrics = a.get_text("/metrics").await.1;
    assert!(
        metrics.contains("qunimbus_feed_published_nats_total 20"),
        "{metrics}"
    );
    let metrics = b.get_text("/metrics").await.1;
    assert!(
        metrics.contains("qunimbus_feed_relayed_nats_total 20"),
        "{metrics}"
    );

    drop(socket);
    a.stop().await;
    b.stop().await;
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.delete_stream(format!("QUNIMBUS_TEST_{unique}"))
        .await
        .unwrap();
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000
}
