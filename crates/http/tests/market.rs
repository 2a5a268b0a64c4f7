//! The QMP market feed end to end (SPEC §5, §9): partner administration,
//! feed authentication, live delivery with measured ack latency, replay with
//! `from_seq` (on SQLite and PostgreSQL), SSE, isolation of a stalled
//! partner, disabling a connected partner, persisted activation and the
//! distribution policy. Every wait has a deadline.

#[macro_use]
mod support;

use futures_util::{SinkExt, StreamExt};
use qunimbus_http::RunningNode;
use qunimbus_node::config::Config;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{varied_run, Backend, TestNode, DEADLINE};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

/// The feed fields a valuation message copies from the stored run.
const RUN_FIELDS: [&str; 14] = [
    "run_id",
    "run_ref",
    "region",
    "data_class",
    "eta_ent",
    "coherence_variance",
    "runtime_hours",
    "eph_delivered",
    "phi_qevf",
    "price_multiplier",
    "market_value",
    "eph_price",
    "accepted_at",
    "block_index",
];

// ---- HTTP side -------------------------------------------------------------------

/// How to reach one node: base URL, tokens and a client.
#[derive(Clone)]
struct Api {
    base: String,
    admin: String,
    ingest: String,
    http: reqwest::Client,
}

/// A registered partner and its (once shown) API key.
#[derive(Clone, Debug)]
struct Partner {
    id: String,
    name: String,
    key: String,
}

impl Api {
    fn of(node: &TestNode) -> Self {
        Self {
            base: node.url(""),
            admin: node.admin_token().to_string(),
            ingest: node.ingest_token().to_string(),
            http: node.http.clone(),
        }
    }

    fn of_running(node: &RunningNode) -> Self {
        Self {
            base: node.url(),
            admin: node.credentials().admin_token().to_string(),
            ingest: node.credentials().ingest_token().to_string(),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `host:port` of the node.
    fn addr(&self) -> std::net::SocketAddr {
        self.base.strip_prefix("http://").unwrap().parse().unwrap()
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what} ({status}) is not JSON ({e}): {text}"));
        (status, value)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request, &format!("GET {path}")).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request, &format!("POST {path}")).await
    }

    async fn admin_post(&self, path: &str, body: &str) -> Value {
        let (status, value) = self.post(path, Some(&self.admin), body).await;
        assert!(status.is_success(), "POST {path}: {status} {value}");
        value
    }

    async fn status(&self) -> Value {
        let (status, value) = self.get("/v1/market/status", None).await;
        assert_eq!(status, StatusCode::OK, "{value}");
        value
    }

    async fn metrics(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    async fn add_partner(&self, name: &str, region: &str) -> Partner {
        let body = json!({ "name": name, "region": region }).to_string();
        let (status, value) = self.post("/v1/partners", Some(&self.admin), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{value}");
        Partner {
            id: value["id"].as_str().unwrap().to_string(),
            name: value["name"].as_str().unwrap().to_string(),
            key: value["api_key"].as_str().unwrap().to_string(),
        }
    }

    /// Posts one new run; returns the ingest response.
    async fn ingest(&self, run: &Value) -> Value {
        let (status, value) = self
            .post("/v1/telemetry", Some(&self.ingest), &run.to_string())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{run} -> {value}");
        value
    }

    /// Posts a batch of new runs; returns the per-run responses.
    async fn ingest_batch(&self, runs: &[Value]) -> Vec<Value> {
        let body = Value::Array(runs.to_vec()).to_string();
        let (status, value) = self
            .post("/v1/telemetry/batch", Some(&self.ingest), &body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{value}");
        assert_eq!(value["accepted"].as_u64(), Some(runs.len() as u64));
        value["runs"].as_array().unwrap().clone()
    }

    /// Polls the status until `check` holds for it.
    async fn wait_status(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let status = self.status().await;
            if check(&status) {
                return status;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "status never showed {what} within {DEADLINE:?}: {status}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The value of the sample `name` (exactly, labels included) in a scrape.
fn metric(scrape: &str, name: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// A run with the given id, region and data class.
fn classed_run(id: &str, i: usize, region: &str, class: &str) -> Value {
    let mut run = varied_run(id, i);
    run["region"] = json!(region);
    run["data_class"] = json!(class);
    run
}

/// Checks a valuation message against what ingest answered for the run.
fn assert_same_run(message: &Value, ingested: &Value) {
    assert_eq!(message["type"], "valuation", "{message}");
    for field in RUN_FIELDS {
        assert_eq!(
            message[field], ingested[field],
            "{field} differs: feed {message} vs ingest {ingested}"
        );
    }
    assert_rfc3339_micros(&message["server_time"]);
    assert!(
        message["server_time"].as_str() >= message["accepted_at"].as_str(),
        "sent before it was accepted: {message}"
    );
}

fn assert_rfc3339_micros(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"));
    let b = text.as_bytes();
    let ok = b.len() == 27
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[26] == b'Z'
        && b[20..26].iter().all(u8::is_ascii_digit);
    assert!(ok, "not RFC 3339 UTC with microseconds: {text:?}");
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, field: Option<&str>) {
    assert_eq!(status, expected, "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "{body}");
    }
}

// ---- WebSocket side --------------------------------------------------------------

/// How a feed client presents its key.
#[derive(Clone, Copy)]
enum Key<'a> {
    None,
    Bearer(&'a str),
    /// `?api_key=` (refused: a key never goes in a URL).
    Query(&'a str),
    /// `?ticket=` from `POST /v1/market/ticket`.
    Ticket(&'a str),
}

/// One feed connection.
struct Feed {
    ws: WebSocketStream<TcpStream>,
}

/// What reading a feed produced.
#[derive(Debug)]
enum Next {
    Message(Value),
    Closed,
    Quiet,
}

/// Opens `GET /v1/market/feed?query` as a WebSocket; `recv_buffer` shrinks the
/// client's socket receive buffer. Err is the refused upgrade's status and JSON.
async fn try_feed(
    api: &Api,
    key: Key<'_>,
    query: &str,
    recv_buffer: Option<u32>,
) -> Result<Feed, (StatusCode, Value)> {
    let mut params: Vec<String> = Vec::new();
    match key {
        Key::Query(k) => params.push(format!("api_key={k}")),
        Key::Ticket(t) => params.push(format!("ticket={t}")),
        Key::None | Key::Bearer(_) => {}
    }
    if !query.is_empty() {
        params.push(query.to_string());
    }
    let mut url = format!("ws://{}/v1/market/feed", api.addr());
    if !params.is_empty() {
        url = format!("{url}?{}", params.join("&"));
    }
    let mut request = url.into_client_request().unwrap();
    if let Key::Bearer(k) = key {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let stream = socket.connect(api.addr()).await.unwrap();
    let handshake =
        tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("the WebSocket handshake did not finish in time");
    match handshake {
        Ok((ws, response)) => {
            assert_eq!(response.status().as_u16(), 101);
            Ok(Feed { ws })
        }
        Err(tungstenite::Error::Http(response)) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
            let body = response.body().clone().unwrap_or_default();
            let value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!(
                    "refused upgrade ({status}) has no JSON body ({e}): {:?}",
                    String::from_utf8_lossy(&body)
                )
            });
            Err((status, value))
        }
        Err(e) => panic!("WebSocket handshake failed: {e}"),
    }
}

/// Connects with the key as a bearer token; returns the feed and its snapshot.
async fn open_feed(api: &Api, partner: &Partner, query: &str) -> (Feed, Value) {
    let mut feed = try_feed(api, Key::Bearer(&partner.key), query, None)
        .await
        .unwrap_or_else(|(status, body)| panic!("feed refused: {status} {body}"));
    let snapshot = feed.recv().await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    (feed, snapshot)
}

impl Feed {
    /// The next message, the end of the connection, or `Quiet` after `wait`.
    async fn next_within(&mut self, wait: Duration) -> Next {
        let until = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(until, self.ws.next()).await {
                Err(_) => return Next::Quiet,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                    return Next::Closed
                }
                Ok(Some(Ok(Message::Text(text)))) => {
                    let value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("feed message is not JSON ({e}): {text}"));
                    return Next::Message(value);
                }
                Ok(Some(Ok(Message::Binary(_)))) => panic!("the feed sent a binary frame"),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The next message; fails the test on close or after the deadline.
    async fn recv(&mut self) -> Value {
        match self.next_within(DEADLINE).await {
            Next::Message(value) => value,
            other => panic!("expected a feed message, got {other:?}"),
        }
    }

    /// The next `count` valuations, checking their seqs run on from `first`.
    async fn valuations(&mut self, first: u64, count: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(count);
        for k in 0..count as u64 {
            let message = self.recv().await;
            assert_eq!(message["type"], "valuation", "{message}");
            assert_eq!(message["seq"].as_u64(), Some(first + k), "{message}");
            out.push(message);
        }
        out
    }

    async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).await.unwrap();
    }

    async fn ack(&mut self, seq: u64) {
        self.send_text(&json!({"type": "ack", "seq": seq}).to_string())
            .await;
    }

    /// Nothing arrives within `wait`.
    async fn assert_quiet(&mut self, wait: Duration) {
        match self.next_within(wait).await {
            Next::Quiet => {}
            other => panic!("expected no feed message, got {other:?}"),
        }
    }

    /// The node closes the connection (within the deadline).
    async fn assert_closes(&mut self) {
        match self.next_within(DEADLINE).await {
            Next::Closed => {}
            other => panic!("expected the feed to close, got {other:?}"),
        }
    }
}

// ---- 1. partner administration ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_admin_api() {
    let node = TestNode::start(Backend::Sqlite).await;
    let api = Api::of(&node);
    let good = r#"{"name":"acme-eu_1.x","region":"EU"}"#;

    let (status, body) = api.post("/v1/partners", None, good).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, None);
    let (status, body) = api.post("/v1/partners", Some(&api.ingest), good).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, None);
    let (status, body) = api.get("/v1/partners", None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, None);

    let (status, created) = api.post("/v1/partners", Some(&api.admin), good).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let mut keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["api_key", "created_at", "id", "name", "region"]);
    assert_eq!(created["name"], "acme-eu_1.x");
    assert_eq!(created["region"], "EU");
    assert_rfc3339_micros(&created["created_at"]);
    let id = created["id"].as_str().unwrap();
    let key = created["api_key"].as_str().unwrap();
    assert!(key.len() >= 32, "{key}");

    // Region names are canonicalised.
    let (status, other) = api
        .post(
            "/v1/partners",
            Some(&api.admin),
            r#"{"name":"acme-am","region":"americas"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    assert_eq!(other["region"], "Americas");
    assert_ne!(other["api_key"], created["api_key"]);
    assert_ne!(other["id"], created["id"]);

    // Listed, without the key.
    let (status, list) = api.get("/v1/partners", Some(&api.admin)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["count"], 2);
    let listed = list["partners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {list}"));
    assert_eq!(listed["name"], "acme-eu_1.x");
    assert_eq!(listed["region"], "EU");
    assert_eq!(listed["disabled"], false);
    assert_eq!(listed["created_at"], created["created_at"]);
    for p in list["partners"].as_array().unwrap() {
        assert!(p.get("api_key").is_none(), "{p}");
        assert!(p.get("key_hash").is_none(), "{p}");
    }
    let text = list.to_string();
    assert!(!text.contains(key), "the API key is listed: {text}");

    // Invalid input names the field.
    let cases = [
        (r#"{"name":"","region":"EU"}"#, "name"),
        (r#"{"name":"has space","region":"EU"}"#, "name"),
        (r#"{"name":"slash/y","region":"EU"}"#, "name"),
        (
            &*format!(r#"{{"name":"{}","region":"EU"}}"#, "n".repeat(65)),
            "name",
        ),
        (r#"{"name":7,"region":"EU"}"#, "name"),
        (r#"{"region":"EU"}"#, "name"),
        (r#"{"name":"x1","region":"Atlantis"}"#, "region"),
        (r#"{"name":"x2"}"#, "region"),
        (r#"{"name":"x3","region":"EU","tier":"gold"}"#, "tier"),
    ];
    for (body, field) in cases {
        let (status, value) = api.post("/v1/partners", Some(&api.admin), body).await;
        assert_error(
            status,
            &value,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(field),
        );
    }
    let (status, value) = api
        .post("/v1/partners", Some(&api.admin), "{not json")
        .await;
    assert_error(status, &value, StatusCode::BAD_REQUEST, None);

    // Duplicate name.
    let (status, value) = api
        .post(
            "/v1/partners",
            Some(&api.admin),
            r#"{"name":"acme-eu_1.x","region":"APAC"}"#,
        )
        .await;
    assert_error(status, &value, StatusCode::CONFLICT, Some("name"));
    let (_, list) = api.get("/v1/partners", Some(&api.admin)).await;
    assert_eq!(list["count"], 2, "{list}");

    // Disable.
    let path = format!("/v1/partners/{id}/disable");
    let (status, value) = api.post(&path, None, "").await;
    assert_error(status, &value, StatusCode::UNAUTHORIZED, None);
    let (status, value) = api.post(&path, Some(&api.ingest), "").await;
    assert_error(status, &value, StatusCode::FORBIDDEN, None);
    let (status, value) = api.post(&path, Some(&api.admin), "").await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["id"], id);
    assert_eq!(value["disabled"], true);
    let (status, value) = api.post(&path, Some(&api.admin), "").await;
    assert_eq!(status, StatusCode::OK, "disabling twice: {value}");
    let (status, value) = api
        .post("/v1/partners/p_nope/disable", Some(&api.admin), "")
        .await;
    assert_error(status, &value, StatusCode::NOT_FOUND, None);
    let (_, list) = api.get("/v1/partners", Some(&api.admin)).await;
    let listed = list["partners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap();
    assert_eq!(listed["disabled"], true, "{list}");
    assert_rfc3339_micros(&listed["disabled_at"]);
    node.stop().await;
}

// ---- 2. feed authentication ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_auth() {
    let node = TestNode::start(Backend::Sqlite).await;
    let api = Api::of(&node);
    let partner = api.add_partner("auth-eu", "EU").await;
    let gone = api.add_partner("auth-gone", "EU").await;
    api.admin_post(&format!("/v1/partners/{}/disable", gone.id), "")
        .await;
    let origin = api.status().await["origin"].clone();
    assert!(origin.as_str().is_some_and(|o| !o.is_empty()), "{origin}");

    let refused = |result: Result<Feed, (StatusCode, Value)>| match result {
        Ok(_) => panic!("the upgrade was accepted"),
        Err(refusal) => refusal,
    };
    let (status, body) = refused(try_feed(&api, Key::None, "", None).await);
    assert_error(status, &body, StatusCode::UNAUTHORIZED, None);
    let (status, body) = refused(try_feed(&api, Key::Bearer("qmp_wrong"), "", None).await);
    assert_error(status, &body, StatusCode::UNAUTHORIZED, None);
    // A key in the URL is refused, even a valid one: URLs end up in logs.
    let (status, body) = refused(try_feed(&api, Key::Query(&partner.key), "", None).await);
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("api_key"),
    );
    let (status, body) = refused(try_feed(&api, Key::Ticket("qmt_forged"), "", None).await);
    assert_error(status, &body, StatusCode::UNAUTHORIZED, None);
    // Admin and ingest tokens are not partner keys.
    let (status, body) = refused(try_feed(&api, Key::Bearer(&api.admin), "", None).await);
    assert_error(status, &body, StatusCode::UNAUTHORIZED, None);
    let (status, body) = refused(try_feed(&api, Key::Bearer(&gone.key), "", None).await);
    assert_error(status, &body, StatusCode::FORBIDDEN, None);
    let (status, body) = api.post("/v1/market/ticket", Some(&gone.key), "").await;
    assert_error(status, &body, StatusCode::FORBIDDEN, None);

    // A header key or a single-use ticket; the first message is a snapshot.
    api.ingest(&varied_run("auth-1", 1)).await;
    let (status, issued) = api.post("/v1/market/ticket", Some(&partner.key), "").await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["expires_in_seconds"], 30);
    let ticket = issued["ticket"].as_str().unwrap().to_string();
    for key in [Key::Bearer(&partner.key), Key::Ticket(&ticket)] {
        let mut feed = try_feed(&api, key, "", None)
            .await
            .unwrap_or_else(|(s, b)| panic!("refused: {s} {b}"));
        let snapshot = feed.recv().await;
        assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
        assert_eq!(snapshot["origin"], origin);
        assert_eq!(snapshot["active"], true);
        assert_eq!(snapshot["next_seq"], 2, "{snapshot}");
        assert_rfc3339_micros(&snapshot["server_time"]);
        let latest = snapshot["latest"].as_array().unwrap();
        assert_eq!(latest.len(), 1, "{snapshot}");
        assert_eq!(latest[0]["run_id"], "auth-1");
        assert_eq!(latest[0]["seq"], 1);
    }
    let (status, body) = refused(try_feed(&api, Key::Ticket(&ticket), "", None).await);
    assert_error(status, &body, StatusCode::UNAUTHORIZED, None);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("used"),
        "a ticket works once: {body}"
    );

    // The SSE stream and the ack endpoint authenticate the same way.
    let response = api
        .http
        .get(api.url("/v1/market/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = api
        .http
        .get(api.url("/v1/market/stream"))
        .bearer_auth(&gone.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (status, body) = api
        .post("/v1/market/ack", None, r#"{"type":"ack","seq":1}"#)
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, None);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_seq_is_validated() {
    let node = TestNode::start(Backend::Sqlite).await;
    let api = Api::of(&node);
    let partner = api.add_partner("fs-eu", "EU").await;
    for bad in ["0", "abc", "-1", "1.5", "", "18446744073709551616"] {
        let query = format!("from_seq={bad}");
        match try_feed(&api, Key::Bearer(&partner.key), &query, None).await {
            Ok(_) => panic!("from_seq={bad:?} was accepted"),
            Err((status, body)) => assert_error(
                status,
                &body,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("from_seq"),
            ),
        }
        let (status, body) = api
            .get(&format!("/v1/market/stream?{query}"), Some(&partner.key))
            .await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("from_seq"),
        );
    }
    match try_feed(&api, Key::Bearer(&partner.key), "from=3", None).await {
        Ok(_) => panic!("an unknown parameter was accepted"),
        Err((status, body)) => assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("from"),
        ),
    }
    // A from_seq beyond the head replays nothing and then follows live.
    let (mut feed, snapshot) = open_feed(&api, &partner, "from_seq=1").await;
    assert_eq!(snapshot["next_seq"], 1);
    let replayed = feed.recv().await;
    assert_eq!(replayed["type"], "replayed", "{replayed}");
    let ingested = api.ingest(&varied_run("fs-1", 1)).await;
    let live = feed.valuations(1, 1).await;
    assert_same_run(&live[0], &ingested);
    node.stop().await;
}

// ---- 3. live feed and ack latency -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_feed_and_ack_latency() {
    let node = TestNode::start(Backend::Sqlite).await;
    let api = Api::of(&node);
    let partner = api.add_partner("live-eu", "EU").await;
    api.ingest(&varied_run("live-0", 0)).await;

    let (mut feed, snapshot) = open_feed(&api, &partner, "").await;
    let first = snapshot["next_seq"].as_u64().unwrap();
    assert_eq!(first, 2, "{snapshot}");
    let status = api
        .wait_status("one partner connected", |s| s["partners_connected"] == 1)
        .await;
    assert_eq!(status["connected"][0]["name"], partner.name, "{status}");
    assert_eq!(
        status["latency"]["p99_ms"]["value"],
        Value::Null,
        "{status}"
    );

    // One run, then a batch: one valuation each, gap-free from next_seq.
    let mut ingested = vec![api.ingest(&varied_run("live-1", 1)).await];
    let batch: Vec<Value> = (2..7)
        .map(|i| varied_run(&format!("live-{i}"), i))
        .collect();
    ingested.extend(api.ingest_batch(&batch).await);
    let received = feed.valuations(first, ingested.len()).await;
    for (message, run) in received.iter().zip(&ingested) {
        assert_same_run(message, run);
        assert_eq!(message["origin"], snapshot["origin"]);
        let (status, stored) = api
            .get(
                &format!("/v1/valuations/{}", run["run_id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(message["block_index"], stored["block_index"], "{message}");
        assert!(message["block_index"].as_u64().unwrap() >= 1);
    }
    for message in &received {
        feed.ack(message["seq"].as_u64().unwrap()).await;
    }
    let acks = received.len() as u64;
    let status = api
        .wait_status("every ack measured", |s| {
            s["latency"]["overall"]["count"].as_u64() == Some(acks)
        })
        .await;
    assert_eq!(status["partners_connected"], 1, "{status}");
    assert_eq!(status["active"], true);
    let overall = &status["latency"]["overall"];
    let p99 = overall["p99_ms"].as_f64().unwrap();
    assert!(p99 > 0.0, "{status}");
    assert!(overall["p50_ms"].as_f64().unwrap() > 0.0, "{status}");
    assert!(overall["max_ms"].as_f64().unwrap() >= p99, "{status}");
    let verdict = &status["latency"]["p99_ms"];
    assert_eq!(verdict["value"].as_f64(), Some(p99), "{status}");
    assert_eq!(verdict["target"].as_f64(), Some(10.0), "{status}");
    assert_eq!(verdict["met"].as_bool(), Some(p99 <= 10.0), "{status}");
    assert_eq!(
        status["latency"]["per_partner"]["live-eu"]["count"].as_u64(),
        Some(acks),
        "{status}"
    );
    assert!(status["eph_throughput_per_hour"]["value"].as_f64().unwrap() > 0.0);

    // A repeated or unknown ack is not measured again.
    feed.ack(first).await;
    feed.ack(9_999).await;

    // A malformed client message is answered with `error`; the session goes on.
    for (text, code) in [
        ("not json", "malformed_json"),
        (r#"{"type":"ack"}"#, "missing_field"),
        (r#"{"type":"ack","seq":0}"#, "invalid_value"),
        (r#"{"type":"subscribe"}"#, "unknown_type"),
    ] {
        feed.send_text(text).await;
        let reply = feed.recv().await;
        assert_eq!(reply["type"], "error", "{text}: {reply}");
        assert_eq!(reply["code"], code, "{text}: {reply}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Acks are cumulative: one ack of the newest seq measures all three
    // messages; an ack naming another node's origin measures nothing here.
    let later: Vec<Value> = (7..10)
        .map(|i| varied_run(&format!("live-{i}"), i))
        .collect();
    let later = api.ingest_batch(&later).await;
    assert_eq!(later.len(), 3);
    let messages = feed.valuations(first + acks, 3).await;
    for (message, run) in messages.iter().zip(&later) {
        assert_same_run(message, run);
    }
    let newest = first + acks + 2;
    feed.send_text(&json!({"type": "ack", "seq": newest, "origin": "another/node"}).to_string())
        .await;
    // The connection handles its messages in order: once this error is
    // back, the foreign ack has been handled.
    feed.send_text("not json").await;
    assert_eq!(feed.recv().await["type"], "error");
    let status = api.status().await;
    assert_eq!(
        status["latency"]["overall"]["count"].as_u64(),
        Some(acks),
        "{status}"
    );
    feed.ack(newest).await;
    let status = api
        .wait_status("the cumulative ack measured", |s| {
            s["latency"]["overall"]["count"].as_u64() >= Some(acks + 3)
        })
        .await;
    assert_eq!(
        status["latency"]["overall"]["count"].as_u64(),
        Some(acks + 3),
        "{status}"
    );
    assert_eq!(status["partners_connected"], 1, "{status}");

    let scrape = api.metrics().await;
    let gauge = metric(&scrape, "qunimbus_market_latency_ms{partner=\"live-eu\"}")
        .unwrap_or_else(|| panic!("no per-partner latency gauge in\n{scrape}"));
    assert!(gauge > 0.0, "{gauge}");
    assert_eq!(metric(&scrape, "qunimbus_partners_connected"), Some(1.0));
    assert_eq!(
        metric(
            &scrape,
            "qunimbus_market_latency_seconds_count{partner=\"live-eu\"}"
        ),
        Some((acks + 3) as f64),
        "{scrape}"
    );

    drop(feed);
    api.wait_status("no partner connected", |s| s["partners_connected"] == 0)
        .await;
    node.stop().await;
}

// ---- 4. replay then live -------------------------------------------------------------------

/// 30 runs with nobody connected; a partner asks from seq 5 while more runs
/// are being ingested: replay 5..=head, `replayed`, then live from head + 1,
/// each seq exactly once and in order.
async fn replay_then_live(backend: Backend) {
    const BEFORE: u64 = 30;
    const TOTAL: u64 = 80;
    let node = TestNode::start(backend).await;
    let api = Api::of(&node);
    let partner = api.add_partner("replay-eu", "EU").await;
    let runs: Vec<Value> = (1..=BEFORE as usize)
        .map(|i| varied_run(&format!("rp-{i}"), i))
        .collect();
    api.ingest_batch(&runs).await;

    // Ingest concurrently with the replay: one run at a time, so run i gets
    // seq i. Connect once the first of them is in, while the rest go on.
    let (progress_tx, mut progress) = tokio::sync::watch::channel(BEFORE);
    let background = {
        let api = api.clone();
        tokio::spawn(async move {
            for i in BEFORE + 1..=TOTAL {
                api.ingest(&varied_run(&format!("rp-{i}"), i as usize))
                    .await;
                progress_tx.send_replace(i);
            }
        })
    };
    tokio::time::timeout(DEADLINE, progress.wait_for(|n| *n > BEFORE))
        .await
        .expect("the background ingest did not start")
        .unwrap();
    let (mut feed, snapshot) = open_feed(&api, &partner, "from_seq=5").await;
    let head = snapshot["next_seq"].as_u64().unwrap() - 1;
    assert!((BEFORE + 1..=TOTAL).contains(&head), "{snapshot}");
    eprintln!("replay head at connect: {head}");

    let mut expected = 5;
    let mut replayed = None;
    while expected <= TOTAL {
        let message = feed.recv().await;
        match message["type"].as_str() {
            Some("valuation") => {
                assert_eq!(message["seq"].as_u64(), Some(expected), "{message}");
                assert_eq!(message["run_id"], format!("rp-{expected}"), "{message}");
                assert_rfc3339_micros(&message["server_time"]);
                expected += 1;
            }
            Some("replayed") => {
                assert!(replayed.is_none(), "a second replayed: {message}");
                assert_eq!(message["from_seq"], 5, "{message}");
                assert_eq!(message["to_seq"].as_u64(), Some(head), "{message}");
                assert_eq!(message["origin"], snapshot["origin"]);
                assert_eq!(expected, head + 1, "replayed came early or late");
                replayed = Some(message);
            }
            _ => panic!("unexpected message {message}"),
        }
    }
    assert!(replayed.is_some(), "no replayed message");
    background.await.unwrap();
    // Nothing after the last run.
    feed.assert_quiet(Duration::from_millis(100)).await;
    node.stop().await;
}

on_both_backends!(replay_then_live);

// ---- 5. SSE -----------------------------------------------------------------------------

/// A minimal `text/event-stream` reader.
struct Sse {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Sse {
    /// The next event with data: (event name, parsed data).
    async fn next_event(&mut self) -> (String, Value) {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(block).unwrap();
                let mut event = String::from("message");
                let mut data: Vec<&str> = Vec::new();
                for line in block.lines() {
                    let line = line.trim_end_matches('\r');
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim_start().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    continue; // comment / keep-alive
                }
                let data = data.join("\n");
                let value = serde_json::from_str(&data)
                    .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {data}"));
                return (event, value);
            }
            let chunk = tokio::time::timeout_at(until, self.response.chunk())
                .await
                .expect("no SSE event within the deadline")
                .unwrap();
            match chunk {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => panic!("the SSE stream ended"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_stream_and_ack() {
    let node = TestNode::start(Backend::Sqlite).await;
    let api = Api::of(&node);
    let partner = api.add_partner("sse-eu", "EU").await;
    let older = api.ingest(&varied_run("sse-0", 0)).await;

    // An `EventSource` cannot send headers: it opens the stream with a ticket.
    for via_query in [false, true] {
        let mut request = api.http.get(api.url(&if via_query {
            let (status, issued) = api.post("/v1/market/ticket", Some(&partner.key), "").await;
            assert_eq!(status, StatusCode::CREATED, "{issued}");
            format!(
                "/v1/market/stream?ticket={}",
                issued["ticket"].as_str().unwrap()
            )
        } else {
            "/v1/market/stream".to_string()
        }));
        if !via_query {
            request = request.bearer_auth(&partner.key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let mut sse = Sse {
            response,
            buffer: Vec::new(),
        };
        let (event, snapshot) = sse.next_event().await;
        assert_eq!(event, "snapshot");
        assert_eq!(snapshot["type"], "snapshot");
        assert_eq!(snapshot["active"], true);
        let next = snapshot["next_seq"].as_u64().unwrap();

        let run_id = format!("sse-live-{via_query}");
        let ingested = api.ingest(&varied_run(&run_id, 3)).await;
        let (event, message) = sse.next_event().await;
        assert_eq!(event, "valuation", "{message}");
        assert_eq!(message["seq"].as_u64(), Some(next));
        assert_same_run(&message, &ingested);

        let body = json!({"type": "ack", "seq": next}).to_string();
        let (status, acked) = api.post("/v1/market/ack", Some(&partner.key), &body).await;
        assert_eq!(status, StatusCode::OK, "{acked}");
        assert_eq!(acked["seq"].as_u64(), Some(next));
        assert_eq!(acked["acked"], 1, "{acked}");
        let latency = acked["latency_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("no latency for a live message: {acked}"));
        assert!(latency > 0.0 && latency < 60_000.0, "{acked}");
        // Acked twice: nothing more to measure.
        let (status, again) = api.post("/v1/market/ack", Some(&partner.key), &body).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["latency_ms"], Value::Null, "{again}");
        assert_eq!(again["acked"], 0, "{again}");
    }
    let status = api.status().await;
    assert_eq!(status["latency"]["overall"]["count"], 2, "{status}");

    // A replayed message is not a live one: no latency.
    let (_, stored) = api.get("/v1/valuations/sse-0", None).await;
    assert_eq!(stored["block_index"], older["block_index"]);
    let response = api
        .http
        .get(api.url("/v1/market/stream?from_seq=1"))
        .bearer_auth(&partner.key)
        .send()
        .await
        .unwrap();
    let mut sse = Sse {
        response,
        buffer: Vec::new(),
    };
    assert_eq!(sse.next_event().await.0, "snapshot");
    let (event, replayed) = sse.next_event().await;
    assert_eq!(event, "valuation");
    assert_eq!(replayed["seq"], 1);
    assert_same_run(&replayed, &older);
    let (status, acked) = api
        .post(
            "/v1/market/ack",
            Some(&partner.key),
            r#"{"type":"ack","seq":1}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(acked["latency_ms"], Value::Null, "{acked}");
    assert_eq!(sse.next_event().await.0, "valuation");
    assert_eq!(sse.next_event().await.0, "valuation");
    let (event, done) = sse.next_event().await;
    assert_eq!(event, "replayed", "{done}");
    assert_eq!(done["to_seq"], 3, "{done}");

    // Bad acks name the field.
    for (body, field) in [
        (r#"{"type":"ack"}"#, "seq"),
        (r#"{"type":"ack","seq":"x"}"#, "seq"),
        (r#"{"seq":1}"#, "type"),
    ] {
        let (status, value) = api.post("/v1/market/ack", Some(&partner.key), body).await;
        assert_error(
            status,
            &value,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(field),
        );
    }
    // Not JSON, or not an object: a malformed document.
    for body in ["nope", "[1]", r#""ack""#] {
        let (status, value) = api.post("/v1/market/ack", Some(&partner.key), body).await;
        assert_error(status, &value, StatusCode::BAD_REQUEST, None);
    }
    node.stop().await;
}

// ---- 6. a stalled partner never slows others ---------------------------------------------

/// What the healthy partner's reader has seen.
#[derive(Clone, Debug, Default)]
struct Seen {
    last_seq: u64,
    failure: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_partner_is_isolated() {
    const QUEUE: usize = 16;
    /// Runs per batch: below the queue (minus the slot kept for `disconnect`).
    const BATCH: usize = 12;
    /// Enough to fill any loopback socket buffers many times over.
    const MAX_RUNS: usize = 30_000;
    let node = TestNode::start_with(Backend::Sqlite, |config| {
        config.market.queue_capacity = QUEUE;
    })
    .await;
    let api = Api::of(&node);
    let stalled = api.add_partner("stalled", "EU").await;
    let healthy = api.add_partner("healthy", "EU").await;

    // The stalled partner completes the handshake and never reads again.
    let mut stalled_feed = try_feed(&api, Key::Bearer(&stalled.key), "", Some(4096))
        .await
        .unwrap_or_else(|(s, b)| panic!("refused: {s} {b}"));
    let (mut healthy_feed, snapshot) = open_feed(&api, &healthy, "").await;
    assert_eq!(snapshot["next_seq"], 1);
    api.wait_status("both partners connected", |s| s["partners_connected"] == 2)
        .await;

    // The healthy partner reads, checks order and acks everything.
    let (seen_tx, mut seen) = tokio::sync::watch::channel(Seen::default());
    let reader = tokio::spawn(async move {
        let mut expected = 1;
        loop {
            let message = match healthy_feed.next_within(Duration::from_secs(60)).await {
                Next::Message(m) => m,
                other => {
                    seen_tx.send_modify(|s| s.failure = Some(format!("{other:?}")));
                    return healthy_feed;
                }
            };
            if message["type"] != "valuation" || message["seq"].as_u64() != Some(expected) {
                seen_tx.send_modify(|s| {
                    s.failure = Some(format!("expected valuation {expected}, got {message}"))
                });
                return healthy_feed;
            }
            healthy_feed.ack(expected).await;
            seen_tx.send_modify(|s| s.last_seq = expected);
            expected += 1;
        }
    });
    let wait_healthy = |seen: &mut tokio::sync::watch::Receiver<Seen>, seq: u64| {
        let mut seen = seen.clone();
        async move {
            let got = tokio::time::timeout(
                DEADLINE,
                seen.wait_for(|s| s.last_seq >= seq || s.failure.is_some()),
            )
            .await
            .unwrap_or_else(|_| panic!("the healthy partner did not get seq {seq} in time"))
            .unwrap()
            .clone();
            assert!(got.failure.is_none(), "healthy partner: {got:?}");
        }
    };

    // Ingest in small batches until the stalled partner is cut off.
    let long_id = "x".repeat(100);
    let mut total = 0usize;
    let mut next_check = 0usize;
    let started = Instant::now();
    let cut_off_at = loop {
        let runs: Vec<Value> = (total..total + BATCH)
            .map(|i| varied_run(&format!("{long_id}-{i}"), i))
            .collect();
        api.ingest_batch(&runs).await;
        total += BATCH;
        wait_healthy(&mut seen, total as u64).await;
        if total >= next_check {
            next_check = total + 8 * BATCH;
            let scrape = api.metrics().await;
            if metric(&scrape, "qunimbus_partner_disconnects_total").unwrap_or(0.0) >= 1.0 {
                break total;
            }
        }
        assert!(
            total < MAX_RUNS && started.elapsed() < DEADLINE,
            "the stalled partner was never cut off ({total} runs, {:?})",
            started.elapsed()
        );
    };
    eprintln!(
        "stalled partner cut off after at most {cut_off_at} runs in {:?}",
        started.elapsed()
    );
    // A few more runs: the healthy partner still gets every one.
    let runs: Vec<Value> = (total..total + BATCH)
        .map(|i| varied_run(&format!("{long_id}-{i}"), i))
        .collect();
    api.ingest_batch(&runs).await;
    total += BATCH;
    let total = total as u64;
    wait_healthy(&mut seen, total).await;

    let status = api
        .wait_status(
            "only the healthy partner connected, every ack measured",
            |s| {
                s["partners_connected"] == 1
                    && s["latency"]["overall"]["count"].as_u64() == Some(total)
            },
        )
        .await;
    assert_eq!(status["connected"][0]["name"], healthy.name, "{status}");
    let per_partner = &status["latency"]["per_partner"];
    assert_eq!(
        per_partner["healthy"]["count"].as_u64(),
        Some(total),
        "{status}"
    );
    assert!(per_partner.get("stalled").is_none(), "{status}");
    let scrape = api.metrics().await;
    assert!(metric(&scrape, "qunimbus_partner_disconnects_total").unwrap() >= 1.0);
    assert_eq!(metric(&scrape, "qunimbus_partners_connected"), Some(1.0));

    // What the stalled partner finds when it finally reads: the messages that
    // were buffered, in order, then `disconnect` (or just the close).
    let message = stalled_feed.recv().await;
    assert_eq!(message["type"], "snapshot", "{message}");
    let mut received = 0u64;
    let resume = loop {
        match stalled_feed.next_within(DEADLINE).await {
            Next::Message(m) if m["type"] == "valuation" => {
                assert_eq!(m["seq"].as_u64(), Some(received + 1), "{m}");
                received += 1;
            }
            Next::Message(m) if m["type"] == "disconnect" => {
                let reason = m["reason"].as_str().unwrap();
                assert!(
                    reason.contains("queue full") || reason.contains("too slow"),
                    "{m}"
                );
                let resume = m["resume_from_seq"].as_u64().unwrap();
                assert!((1..=received + 1).contains(&resume), "{m} after {received}");
                stalled_feed.assert_closes().await;
                break resume;
            }
            Next::Closed => break received + 1,
            other => panic!("stalled partner: unexpected {other:?} after {received}"),
        }
    };
    assert!(received < total, "the stalled partner got everything");
    eprintln!("stalled partner had {received} messages buffered; resumes from {resume}");

    // It resumes where it was cut off and gets the rest without gaps.
    let (mut resumed, snapshot) = open_feed(&api, &stalled, &format!("from_seq={resume}")).await;
    assert_eq!(snapshot["next_seq"].as_u64(), Some(total + 1));
    let rest = resumed
        .valuations(resume, (total + 1 - resume) as usize)
        .await;
    assert_eq!(rest.last().unwrap()["seq"].as_u64(), Some(total));
    let done = resumed.recv().await;
    assert_eq!(done["type"], "replayed", "{done}");
    assert_eq!(done["to_seq"].as_u64(), Some(total), "{done}");

    // A full replay is paced to the reader, never cut off by the small queue.
    let (mut full, _) = open_feed(&api, &healthy, "from_seq=1").await;
    full.valuations(1, total as usize).await;
    assert_eq!(full.recv().await["type"], "replayed");

    reader.abort();
    let _ = reader.await;
    node.stop().await;
}

// ---- 7. disabling a connected partner --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_while_connected() {
    let node = TestNode::start(Backend::Sqlite).await;
    let api = Api::of(&node);
    let partner = api.add_partner("doomed", "EU").await;
    let bystander = api.add_partner("bystander", "EU").await;
    let (mut feed, snapshot) = open_feed(&api, &partner, "").await;
    let (mut other, _) = open_feed(&api, &bystander, "").await;
    let next = snapshot["next_seq"].as_u64().unwrap();
    api.ingest(&varied_run("dis-1", 1)).await;
    feed.valuations(next, 1).await;
    other.valuations(next, 1).await;

    api.admin_post(&format!("/v1/partners/{}/disable", partner.id), "")
        .await;
    let message = feed.recv().await;
    assert_eq!(message["type"], "disconnect", "{message}");
    assert!(
        message["reason"].as_str().unwrap().contains("disabled"),
        "{message}"
    );
    assert_eq!(message["resume_from_seq"].as_u64(), Some(next + 1));
    feed.assert_closes().await;

    match try_feed(&api, Key::Bearer(&partner.key), "", None).await {
        Ok(_) => panic!("a disabled partner connected again"),
        Err((status, body)) => assert_error(status, &body, StatusCode::FORBIDDEN, None),
    }
    api.wait_status("only the bystander connected", |s| {
        s["partners_connected"] == 1
    })
    .await;
    // The other partner is untouched.
    api.ingest(&varied_run("dis-2", 2)).await;
    other.valuations(next + 1, 1).await;
    node.stop().await;
}

// ---- 8. activation, persisted ------------------------------------------------------------

/// A node on a data dir that outlives it.
struct Restartable {
    dir: tempfile::TempDir,
    node: Option<RunningNode>,
}

impl Restartable {
    async fn start(&mut self) -> Api {
        let config = Config {
            data_dir: self.dir.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            ..Config::default()
        };
        let node = RunningNode::start(&config).await.unwrap();
        let api = Api::of_running(&node);
        self.node = Some(node);
        api
    }

    async fn stop(&mut self) {
        let node = self.node.take().unwrap();
        tokio::time::timeout(DEADLINE, node.shutdown())
            .await
            .expect("the node did not stop in time")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_is_persisted() {
    let mut node = Restartable {
        dir: tempfile::tempdir().unwrap(),
        node: None,
    };
    let api = node.start().await;
    let partner = api.add_partner("act-eu", "EU").await;
    api.ingest_batch(&[varied_run("act-1", 1), varied_run("act-2", 2)])
        .await;
    let (mut feed, snapshot) = open_feed(&api, &partner, "").await;
    assert_eq!(snapshot["active"], true);
    assert_eq!(snapshot["next_seq"], 3);
    assert_eq!(api.status().await["active"], true);

    let (status, body) = api.post("/v1/market/deactivate", None, "").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, None);
    let (status, body) = api
        .post("/v1/market/deactivate", Some(&api.ingest), "")
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, None);
    let body = api.admin_post("/v1/market/deactivate", "").await;
    assert_eq!(body["active"], false);
    assert_eq!(api.status().await["active"], false);

    // Runs are still accepted (and get seqs) but are not published.
    api.ingest(&varied_run("act-3", 3)).await;
    api.ingest_batch(&[varied_run("act-4", 4)]).await;
    feed.send_text("sync").await;
    let reply = feed.recv().await;
    assert_eq!(reply["type"], "error", "published while inactive: {reply}");
    feed.assert_quiet(Duration::from_millis(150)).await;
    let (_, snapshot) = open_feed(&api, &partner, "").await;
    assert_eq!(snapshot["active"], false);
    assert_eq!(snapshot["next_seq"], 5);

    // Stopping the node ends the session; the flag survives the restart.
    node.stop().await;
    feed.assert_closes().await;
    let api = node.start().await;
    let status = api.status().await;
    assert_eq!(status["active"], false, "{status}");
    let (mut feed, snapshot) = open_feed(&api, &partner, "").await;
    assert_eq!(snapshot["active"], false);
    assert_eq!(snapshot["next_seq"], 5);
    let scrape = api.metrics().await;
    assert_eq!(metric(&scrape, "qunimbus_partners_connected"), Some(1.0));

    let body = api.admin_post("/v1/market/activate", "").await;
    assert_eq!(body["active"], true);
    assert_eq!(api.status().await["active"], true);
    let ingested = api.ingest(&varied_run("act-5", 5)).await;
    let live = feed.valuations(5, 1).await;
    assert_same_run(&live[0], &ingested);

    // The runs missed while inactive come back with from_seq.
    let (mut replay, _) = open_feed(&api, &partner, "from_seq=3").await;
    let replayed = replay.valuations(3, 3).await;
    let ids: Vec<&str> = replayed
        .iter()
        .map(|m| m["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["act-3", "act-4", "act-5"]);
    let done = replay.recv().await;
    assert_eq!(done["type"], "replayed", "{done}");
    assert_eq!(done["to_seq"], 5);

    // And it persists the other way too.
    node.stop().await;
    let api = node.start().await;
    assert_eq!(api.status().await["active"], true);
    node.stop().await;
}

// ---- 9. distribution policy --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_policy() {
    let node = TestNode::start(Backend::Sqlite).await;
    let api = Api::of(&node);
    let eu = api.add_partner("policy-eu", "EU").await;
    let americas = api.add_partner("policy-am", "Americas").await;
    let (mut eu_feed, eu_snapshot) = open_feed(&api, &eu, "").await;
    let (mut am_feed, _) = open_feed(&api, &americas, "").await;
    let next = eu_snapshot["next_seq"].as_u64().unwrap();
    assert_eq!(next, 1);

    let itar = api
        .ingest(&classed_run("pol-itar", 1, "Americas", "itar"))
        .await;
    let personal = api
        .ingest(&classed_run("pol-personal", 2, "EU", "personal"))
        .await;
    let public = api
        .ingest(&classed_run("pol-public", 3, "APAC", "public"))
        .await;
    let origin = eu_snapshot["origin"].clone();

    let check_withheld = |message: &Value, seq: u64, class: &str| {
        assert_eq!(message["type"], "withheld", "{message}");
        assert_eq!(message["seq"].as_u64(), Some(seq), "{message}");
        assert_eq!(message["origin"], origin);
        assert!(
            message["reason"].as_str().unwrap().contains(class),
            "{message}"
        );
        for field in ["run_id", "phi_qevf", "region", "eta_ent"] {
            assert!(
                message.get(field).is_none(),
                "withheld leaks {field}: {message}"
            );
        }
    };

    // EU: no ITAR, personal yes.
    check_withheld(&eu_feed.recv().await, 1, "itar");
    let got = eu_feed.valuations(2, 2).await;
    assert_same_run(&got[0], &personal);
    assert_same_run(&got[1], &public);
    // Americas: ITAR yes, personal no.
    let got = am_feed.valuations(1, 1).await;
    assert_same_run(&got[0], &itar);
    check_withheld(&am_feed.recv().await, 2, "personal");
    let got = am_feed.valuations(3, 1).await;
    assert_same_run(&got[0], &public);

    // Replay and the snapshot follow the same policy.
    let (mut eu_replay, snapshot) = open_feed(&api, &eu, "from_seq=1").await;
    let latest: Vec<&str> = snapshot["latest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["run_id"].as_str().or(v["run_ref"].as_str()).unwrap())
        .collect();
    let personal_ref = personal["run_ref"].as_str().unwrap();
    assert!(personal.get("run_id").is_none(), "{personal}");
    assert!(!latest.contains(&"pol-itar"), "{snapshot}");
    assert!(latest.contains(&personal_ref), "{snapshot}");
    check_withheld(&eu_replay.recv().await, 1, "itar");
    eu_replay.valuations(2, 2).await;
    assert_eq!(eu_replay.recv().await["type"], "replayed");
    let (mut am_replay, snapshot) = open_feed(&api, &americas, "from_seq=1").await;
    let latest: Vec<&str> = snapshot["latest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["run_id"].as_str().or(v["run_ref"].as_str()).unwrap())
        .collect();
    assert!(latest.contains(&"pol-itar"), "{snapshot}");
    assert!(!latest.contains(&personal_ref), "{snapshot}");
    am_replay.valuations(1, 1).await;
    check_withheld(&am_replay.recv().await, 2, "personal");
    am_replay.valuations(3, 1).await;

    let scrape = api.metrics().await;
    assert_eq!(metric(&scrape, "qunimbus_feed_withheld_total"), Some(4.0));
    node.stop().await;
}
