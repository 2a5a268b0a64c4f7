//! The HTTP API end to end against a node on a temporary SQLite database.

use qunimbus_http::RunningNode;
use qunimbus_node::config::Config;
use reqwest::StatusCode;
use serde_json::{json, Value};

const REFERENCE: &str = r#"{"run_id":"r1","region":"Americas","eta_ent":0.97,"coherence_variance":0.015,"runtime_hours":100,"eph_delivered":1000}"#;

struct TestNode {
    node: RunningNode,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn config_in(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    }
}

impl TestNode {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path());
        adjust(&mut config);
        let node = RunningNode::start(&config).await.unwrap();
        Self {
            node,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.node.url())
    }

    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn ingest(&self, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let token = self.node.credentials().ingest_token().to_string();
        self.post("/v1/telemetry", Some(&token), body).await
    }

    async fn batch(&self, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let token = self.node.credentials().ingest_token().to_string();
        self.post("/v1/telemetry/batch", Some(&token), body).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn stored_count(&self) -> u64 {
        self.get("/v1/valuations/stats").await.1["count"]
            .as_u64()
            .unwrap()
    }
}

fn run(id: &str, region: &str, eta: f64) -> Value {
    json!({"run_id": id, "region": region, "eta_ent": eta, "coherence_variance": 0.01, "runtime_hours": 50, "eph_delivered": 10})
}

#[tokio::test]
async fn reference_run_returns_the_exact_spec_values() {
    let t = TestNode::start().await;
    let (status, body) = t.ingest(REFERENCE).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["phi_qevf"].as_f64(), Some(212.71929824561406));
    assert_eq!(body["price_multiplier"].as_f64(), Some(1.2000000000000002));
    assert_eq!(body["market_value"].as_f64(), Some(255.2631578947369));
    assert_eq!(body["eph_price"].as_f64(), Some(0.21271929824561406));
    assert_eq!(body["eta_ent"].as_f64(), Some(0.97));
    assert_eq!(body["coherence_variance"].as_f64(), Some(0.015));
    assert_eq!(body["coherence_within_threshold"], json!(true));
    assert_eq!(body["region"], json!("Americas"));
    assert_eq!(body["run_id"], json!("r1"));
    let accepted_at = body["accepted_at"].as_str().unwrap();
    assert_eq!(
        accepted_at.len(),
        "2026-01-01T00:00:00.000000Z".len(),
        "{accepted_at}"
    );
    assert!(accepted_at.ends_with('Z'));

    let (status, fetched) = t.get("/v1/valuations/r1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, body);
}

#[tokio::test]
async fn resending_a_run_id_returns_the_original_result() {
    let t = TestNode::start().await;
    let (_, first) = t.ingest(REFERENCE).await;
    let (status, again) = t.ingest(REFERENCE.replace("0.97", "0.5")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    assert_eq!(t.stored_count().await, 1);
}

#[tokio::test]
async fn bad_input_gets_a_named_error_and_stores_nothing() {
    let t = TestNode::start().await;
    let huge = format!(r#"{{"run_id":"big","pad":"{}"}}"#, "x".repeat(1024 * 1024));
    let cases: Vec<(String, StatusCode, &str, Option<&str>)> = vec![
        (
            REFERENCE.replace("0.97", "1.5"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_range",
            Some("eta_ent"),
        ),
        (
            REFERENCE.replace("0.97", "NaN"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        (
            REFERENCE.replace("0.97", "1e999"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_finite",
            Some("eta_ent"),
        ),
        (
            REFERENCE.replace("0.015", "-1e999"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_finite",
            Some("coherence_variance"),
        ),
        (
            REFERENCE.replace(":100,", ":-3,"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_range",
            Some("runtime_hours"),
        ),
        (
            REFERENCE.replace(":1000}", ":0}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_range",
            Some("eph_delivered"),
        ),
        (
            REFERENCE.replace(":1000}", ":5e-324}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_range",
            Some("eph_delivered"),
        ),
        (
            REFERENCE.replace("Americas", "Atlantis"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_region",
            Some("region"),
        ),
        (
            REFERENCE.replace("\"r1\"", "\"r 1\""),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_run_id",
            Some("run_id"),
        ),
        (
            REFERENCE.replace("\"r1\"", &format!("\"{}\"", "a".repeat(129))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_run_id",
            Some("run_id"),
        ),
        (
            REFERENCE.replace("}", ",\"extra\":true}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            Some("extra"),
        ),
        (
            REFERENCE.replace("\"eph_delivered\":1000", "\"eph_delivered\":\"1000\""),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_type",
            Some("eph_delivered"),
        ),
        (
            REFERENCE.replace(",\"eph_delivered\":1000", ""),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field",
            Some("eph_delivered"),
        ),
        (
            REFERENCE.replace("}", ",\"data_class\":\"secret\"}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_choice",
            Some("data_class"),
        ),
        (
            REFERENCE[..40].to_string(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        (
            format!("[{REFERENCE}]"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            None,
        ),
        (huge, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", None),
    ];
    for (body, status, code, field) in cases {
        let shown = body.chars().take(80).collect::<String>();
        let (got, error) = t.ingest(body).await;
        assert_eq!(got, status, "{shown}: {error}");
        assert_eq!(error["error"]["code"], json!(code), "{shown}");
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(error["error"]["field"].as_str(), field, "{shown}");
    }
    assert_eq!(t.stored_count().await, 0);
    let metrics = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"qunimbus_rejected_inputs_total{reason="out_of_range"} 4"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn ingest_and_admin_endpoints_need_the_right_token() {
    let t = TestNode::start().await;
    let response = t
        .http
        .post(t.url("/v1/telemetry"))
        .body(REFERENCE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, body) = t
        .post("/v1/telemetry", Some("not-the-token"), REFERENCE)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let ingest = t.node.credentials().ingest_token().to_string();
    let admin = t.node.credentials().admin_token().to_string();
    let (status, _) = t
        .post("/v1/valuations/history/reset", Some(&ingest), "")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = t.post("/v1/telemetry", Some(&admin), REFERENCE).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(t.stored_count().await, 1);
}

#[tokio::test]
async fn reads_can_be_closed_by_config() {
    let t = TestNode::start_with(|c| c.auth.protect_reads = true).await;
    assert_eq!(
        t.get("/v1/valuations/stats").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(t.get("/healthz").await.0, StatusCode::OK);
    let token = t.node.credentials().ingest_token().to_string();
    let response = t
        .http
        .get(t.url("/v1/valuations/stats"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_valid_batch_is_stored_whole() {
    let t = TestNode::start().await;
    let body = json!([
        run("b1", "EU", 0.9),
        run("b2", "apac", 0.95),
        run("b1", "EU", 0.1)
    ]);
    let (status, response) = t.batch(body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
    assert_eq!(response["accepted"], json!(2));
    assert_eq!(response["duplicates"], json!(1));
    assert_eq!(response["runs"][1]["region"], json!("APAC"));
    assert_eq!(response["runs"][2]["eta_ent"].as_f64(), Some(0.9));
    assert_eq!(t.stored_count().await, 2);
    let (status, again) = t.batch(body.to_string()).await;
    assert_eq!(
        (status, again["accepted"].as_u64()),
        (StatusCode::OK, Some(0))
    );
}

#[tokio::test]
async fn an_invalid_batch_lists_every_bad_item_and_stores_nothing() {
    let t = TestNode::start().await;
    let mut bad_region = run("x3", "EU", 0.9);
    bad_region["region"] = json!("Nowhere");
    let body = json!([
        run("x0", "EU", 0.9),
        run("x1", "EU", 7.0),
        run("x2", "EU", 0.9),
        bad_region,
        "not an object"
    ]);
    let (status, response) = t.batch(body.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = &response["error"];
    assert_eq!(error["code"], json!("invalid_batch"));
    assert_eq!(error["field"], json!("[1].eta_ent"));
    let items: Vec<(u64, Option<&str>)> = error["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["index"].as_u64().unwrap(), i["field"].as_str()))
        .collect();
    assert_eq!(
        items,
        vec![(1, Some("eta_ent")), (3, Some("region")), (4, None)]
    );
    assert_eq!(t.stored_count().await, 0);

    assert_eq!(t.batch("[]").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(t.batch("{}").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(t.stored_count().await, 0);
}

#[tokio::test]
async fn batches_over_the_run_limit_are_refused() {
    let t = TestNode::start_with(|c| c.ingest.max_batch_runs = 3).await;
    let body: Vec<Value> = (0..4).map(|i| run(&format!("l{i}"), "EU", 0.9)).collect();
    let (status, response) = t.batch(json!(body).to_string()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response["error"]["code"], json!("batch_too_large"));
    assert_eq!(t.stored_count().await, 0);
}

#[tokio::test]
async fn quote_prices_without_recording() {
    let t = TestNode::start().await;
    let (status, body) = t
        .post("/v1/valuation/quote", None, r#"{"eta_ent":0.97,"coherence_variance":0.015,"runtime_hours":100,"eph_delivered":1000}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["phi_qevf"].as_f64(), Some(212.71929824561406));
    assert_eq!(body["coherence_penalty"].as_f64(), Some(0.25));
    let (status, body) = t
        .post("/v1/valuation/quote", None, r#"{"eta_ent":2}"#)
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("eta_ent"))
    );
    assert_eq!(t.stored_count().await, 0);
}

#[tokio::test]
async fn listing_filters_by_region_newest_first_and_validates_parameters() {
    let t = TestNode::start().await;
    for (i, region) in ["EU", "APAC", "EU", "EU", "Orbit"].iter().enumerate() {
        assert_eq!(
            t.ingest(run(&format!("v{i}"), region, 0.9).to_string())
                .await
                .0,
            StatusCode::CREATED
        );
    }
    let (status, body) = t.get("/v1/valuations?region=eu&limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["valuations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["v3", "v2"]);
    assert_eq!(t.get("/v1/valuations").await.1["count"], json!(5));
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=1001", "limit"),
        ("region=Mars", "region"),
        ("sort=asc", "sort"),
    ] {
        let (status, body) = t.get(&format!("/v1/valuations?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["error"]["field"], json!(field), "{query}");
    }
    let (status, body) = t.get("/v1/valuations/nope").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn stats_cover_all_runs_and_the_recent_window_can_be_reset() {
    let t = TestNode::start().await;
    // phi for eta e, cv 0.01, 50 h: 1000 * (e/0.95) * 0.5 * (50/120)
    for (i, eta) in [0.95, 0.5, 0.76].iter().enumerate() {
        t.ingest(run(&format!("s{i}"), "MENA", *eta).to_string())
            .await;
    }
    let phi = |eta: f64| 1000.0 * (eta / 0.95) * (1.0 - 0.01 / 0.02) * (50.0f64.min(120.0) / 120.0);
    let (_, stats) = t.get("/v1/valuations/stats").await;
    assert_eq!(stats["count"], json!(3));
    assert_eq!(stats["min"].as_f64(), Some(phi(0.5)));
    assert_eq!(stats["max"].as_f64(), Some(phi(0.95)));
    assert_eq!(stats["p50"].as_f64(), Some(phi(0.76)));
    assert_eq!(stats["p95"].as_f64(), Some(phi(0.95)));
    assert_eq!(stats["recent"]["count"], json!(3));
    assert_eq!(stats["recent"]["window"], json!(1000));

    let admin = t.node.credentials().admin_token().to_string();
    let (status, body) = t
        .post("/v1/valuations/history/reset", Some(&admin), "")
        .await;
    assert_eq!(
        (status, body["cleared"].as_u64()),
        (StatusCode::OK, Some(3))
    );
    let (_, stats) = t.get("/v1/valuations/stats").await;
    assert_eq!(stats["count"], json!(3));
    assert_eq!(stats["recent"]["count"], json!(0));
    assert_eq!(stats["recent"]["mean"], Value::Null);
}

#[tokio::test]
async fn health_readiness_metrics_and_json_errors_for_unknown_routes() {
    let t = TestNode::start().await;
    assert_eq!(
        t.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let (status, ready) = t.get("/readyz").await;
    assert_eq!(
        (status, &ready["status"]),
        (StatusCode::OK, &json!("ready"))
    );
    for task in ["checkpointer", "timestamper", "trust_controller"] {
        assert_eq!(ready["tasks"][task]["running"], json!(true), "{ready}");
        assert_eq!(ready["tasks"][task]["restarts"], json!(0), "{ready}");
    }
    t.ingest(REFERENCE).await;
    let metrics = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"qunimbus_phi_qevf{region="americas"} 212.71929824561406"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"qunimbus_runs_accepted_total{region="americas"} 1"#));
    assert!(metrics.contains("qunimbus_stored_runs 1"));
    // Two commits: the config block recording the policy at start, the run.
    assert!(
        metrics.contains("qunimbus_commit_rows_count 2"),
        "{metrics}"
    );
    let (status, body) = t.get("/v1/nothing").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = t.get("/v1/telemetry").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn concurrent_ingest_is_all_acknowledged_and_stored() {
    let t = std::sync::Arc::new(TestNode::start().await);
    let tasks: Vec<_> = (0..256)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                t.ingest(run(&format!("c{i}"), "Polar", 0.9).to_string())
                    .await
                    .0
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::CREATED);
    }
    assert_eq!(t.stored_count().await, 256);
}

#[tokio::test]
async fn data_and_recent_history_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let node = RunningNode::start(&config).await.unwrap();
    let http = reqwest::Client::new();
    let token = node.credentials().ingest_token().to_string();
    let response = http
        .post(format!("{}/v1/telemetry", node.url()))
        .bearer_auth(&token)
        .body(REFERENCE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let original: Value = response.json().await.unwrap();
    node.shutdown().await.unwrap();

    let node = RunningNode::start(&config).await.unwrap();
    assert_eq!(
        node.credentials().ingest_token(),
        token,
        "generated tokens persist"
    );
    let fetched: Value = http
        .get(format!("{}/v1/valuations/r1", node.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, original);
    let stats: Value = http
        .get(format!("{}/v1/valuations/stats", node.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["recent"]["count"], json!(1));
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn generated_tokens_are_refused_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "0.0.0.0:0".into(),
        ..config_in(dir.path())
    };
    let err = RunningNode::start(&config).await.err().unwrap();
    assert!(err.to_string().contains("refusing to listen"), "{err}");
}
