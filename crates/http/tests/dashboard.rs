//! The built-in dashboard end to end: the embedded page and its assets with
//! their content types and Content-Security-Policy, `auth.protect_reads`, and
//! the throttled live stream `GET /v1/dashboard/stream` (a posted run shows
//! up with its region and phi_qevf and without its run_id; at most one point
//! per region per interval, every run counted; feed switched off and on; the
//! stream ends when the node stops). Every wait has a deadline.

#[macro_use]
mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{varied_run, Backend, TestNode, DEADLINE};

/// A minimal `text/event-stream` reader that keeps each event's raw data.
struct Sse {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

/// One event: name, raw data text, parsed data.
struct Received {
    name: String,
    raw: String,
    data: Value,
}

impl Sse {
    async fn open(node: &TestNode) -> Self {
        let response = node
            .http
            .get(node.url("/v1/dashboard/stream"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next event with data, or None when the stream ended.
    async fn next(&mut self, within: Duration) -> Option<Received> {
        let until = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(block).unwrap();
                let mut name = String::from("message");
                let mut data: Vec<&str> = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim_start().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment or retry hint
                }
                let raw = data.join("\n");
                let value = serde_json::from_str(&raw)
                    .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {raw}"));
                return Some(Received {
                    name,
                    raw,
                    data: value,
                });
            }
            let chunk = tokio::time::timeout_at(until, self.response.chunk())
                .await
                .expect("no dashboard event within the deadline")
                .expect("reading the stream");
            match chunk {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => return None,
            }
        }
    }

    async fn expect(&mut self, name: &str) -> Received {
        let event = self
            .next(DEADLINE)
            .await
            .unwrap_or_else(|| panic!("the stream ended before a {name:?} event"));
        assert_eq!(event.name, name, "{}", event.raw);
        event
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_and_assets_are_embedded_with_types_and_csp() {
    let node = TestNode::start(Backend::Sqlite).await;
    for (path, expected) in [
        ("/", "text/html"),
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/charts.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
    ] {
        let response = node.http.get(node.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        let content_type = headers["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(expected), "{path}: {content_type}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let body = response.text().await.unwrap();
        assert!(!body.is_empty(), "{path}");
        if path == "/" {
            assert!(body.contains(r#"<script type="module" src="/dashboard/dashboard.js">"#));
            assert!(!body.contains("https://"), "no external resources");
        }
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protect_reads_closes_the_dashboard_too() {
    let node = TestNode::start_with(Backend::Sqlite, |c| c.auth.protect_reads = true).await;
    for path in ["/", "/dashboard/dashboard.js", "/v1/dashboard/stream"] {
        let (status, body) = node.get(path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    let response = node
        .http
        .get(node.url("/"))
        .bearer_auth(node.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    node.stop().await;
}

/// Points of `region` in a `points` event.
fn points_of<'a>(event: &'a Received, region: &str) -> Vec<&'a Value> {
    event.data["points"]
        .as_array()
        .unwrap_or_else(|| panic!("no points array: {}", event.raw))
        .iter()
        .filter(|p| p["region"] == region)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_shows_posted_runs_throttled_without_run_ids() {
    let node = TestNode::start(Backend::Sqlite).await;
    let older = node.ingest_new(&varied_run("dash-older-run", 0)).await;

    let mut sse = Sse::open(&node).await;
    let hello = sse.expect("hello").await;
    assert_eq!(hello.data["market_active"], true, "{}", hello.raw);
    assert_eq!(hello.data["throttle_ms"], 250, "{}", hello.raw);
    assert_eq!(hello.data["regions"].as_array().unwrap().len(), 6);
    // The newest stored point per region, without the run's id.
    let latest = hello.data["latest"].as_array().unwrap();
    assert_eq!(latest.len(), 1, "{}", hello.raw);
    assert_eq!(latest[0]["region"], older["region"]);
    assert_eq!(latest[0]["phi_qevf"], older["phi_qevf"]);
    assert!(!hello.raw.contains("dash-older-run"), "{}", hello.raw);
    // The trend's backfill holds the stored run too, without its id.
    let recent = hello.data["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 1, "{}", hello.raw);
    assert_eq!(recent[0]["seq"], latest[0]["seq"]);
    assert_eq!(recent[0]["runs"], 1);

    // A posted run shows up with its region and phi_qevf and without its run_id.
    let secret = "dash-secret-run-id-42";
    let ingested = node.ingest_new(&varied_run(secret, 3)).await;
    let region = ingested["region"].as_str().unwrap().to_string();
    let event = sse.expect("points").await;
    let points = points_of(&event, &region);
    assert_eq!(points.len(), 1, "{}", event.raw);
    let point = points[0];
    assert_eq!(point["phi_qevf"], ingested["phi_qevf"], "{}", event.raw);
    assert_eq!(point["eph_price"], ingested["eph_price"], "{}", event.raw);
    assert_eq!(
        point["accepted_at"], ingested["accepted_at"],
        "{}",
        event.raw
    );
    assert_eq!(
        point["block_index"], ingested["block_index"],
        "{}",
        event.raw
    );
    assert!(point["seq"].as_u64().unwrap() >= 2, "{}", event.raw);
    assert_eq!(point["runs"], 1, "{}", event.raw);
    assert!(point.get("run_id").is_none(), "{}", event.raw);
    assert!(!event.raw.contains(secret), "{}", event.raw);
    for field in ["run_id", "eta_ent", "eph_delivered", "data_class"] {
        assert!(!event.raw.contains(field), "{field} in {}", event.raw);
    }

    // A burst: at most one point per region per 250 ms interval, each the
    // region's newest value, and every run counted in `runs`.
    let burst: Vec<Value> = (0..40)
        .map(|i| {
            let mut run = varied_run(&format!("dash-burst-{i}"), 0);
            run["region"] = json!(if i % 2 == 0 { "EU" } else { "MENA" });
            run["runtime_hours"] = json!(1.0 + i as f64);
            run
        })
        .collect();
    let mut runs_seen = 0;
    let mut last_at: Option<chrono::DateTime<chrono::FixedOffset>> = None;
    let mut first_at: Option<chrono::DateTime<chrono::FixedOffset>> = None;
    let mut events = 0i64;
    let mut newest_eu = 0.0;
    let sent = async {
        for chunk in burst.chunks(4) {
            node.ingest_batch(chunk).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    let received = async {
        while runs_seen < 40 {
            let event = sse.expect("points").await;
            for region in ["EU", "MENA"] {
                let points = points_of(&event, region);
                assert!(points.len() <= 1, "{}", event.raw);
                if let Some(p) = points.first() {
                    runs_seen += p["runs"].as_u64().unwrap();
                    if region == "EU" {
                        newest_eu = p["phi_qevf"].as_f64().unwrap();
                    }
                }
            }
            // Spaced by the server's throttle (its own clock, so client-side
            // delivery jitter does not matter). The throttle ticks on a
            // schedule: one tick may be stamped a few ms late and the next on
            // time, so single gaps get a margin and the rate is checked over
            // the whole stream below.
            let at =
                chrono::DateTime::parse_from_rfc3339(event.data["server_time"].as_str().unwrap())
                    .unwrap();
            if let Some(previous) = last_at {
                let gap = at - previous;
                assert!(
                    gap >= chrono::Duration::milliseconds(200),
                    "events {gap:?} apart"
                );
            }
            first_at.get_or_insert(at);
            last_at = Some(at);
            events += 1;
        }
    };
    tokio::join!(sent, received);
    assert_eq!(runs_seen, 40);
    // At most one event per 250 ms throttle interval over the stream.
    let span = last_at.unwrap() - first_at.unwrap();
    assert!(
        events - 1 <= span.num_milliseconds() / 250 + 1,
        "{events} events in {span:?}"
    );
    let (_, last_eu) = node.get("/v1/valuations/dash-burst-38").await;
    assert_eq!(newest_eu, last_eu["phi_qevf"].as_f64().unwrap());

    // Feed switched off and on: reported on the stream.
    let (status, _) = node
        .post("/v1/market/deactivate", Some(node.admin_token()), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    let off = sse.expect("status").await;
    assert_eq!(off.data["market_active"], false, "{}", off.raw);
    let (status, _) = node
        .post("/v1/market/activate", Some(node.admin_token()), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    let on = sse.expect("status").await;
    assert_eq!(on.data["market_active"], true, "{}", on.raw);

    // The stream ends when the node stops, and does not hold the stop up.
    let started = Instant::now();
    let stopping = tokio::spawn(node.stop());
    loop {
        match sse.next(DEADLINE).await {
            None => break,
            Some(event) => assert_eq!(event.name, "points", "{}", event.raw),
        }
    }
    stopping.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        started.elapsed()
    );
}
