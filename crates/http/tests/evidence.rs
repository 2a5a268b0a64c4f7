//! Figures from evidence (issue 17): region health detected from the
//! telemetry a region stops and resumes sending, a status set by `PUT` as
//! down time, and every change of the effective configuration on the
//! ledger (ISO 27001 evidence), across restarts and on both backends.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{reference_run, Backend, TestNode};

/// Silence past max(5 reports, 0.3 s) is a failure; the controller ticks
/// every 50 ms.
async fn watching_node(backend: Backend) -> TestNode {
    TestNode::start_with(backend, |c| {
        c.trust.controller_interval_ms = 50;
        c.trust.compliance_interval_secs = 0.1;
        c.trust.silence_intervals = 5.0;
        c.trust.min_silence_secs = 0.3;
    })
    .await
}

fn eu_run(id: &str) -> Value {
    let mut run = reference_run(id);
    run["region"] = json!("EU");
    run
}

/// EU's detected events, polled until `count` of them are recorded.
async fn detected_events(t: &TestNode, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events: Vec<Value> = t.get_ok("/v1/regions/EU/events").await["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["source"] == json!("detected"))
            .cloned()
            .collect();
        if events.len() >= count || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn micros(text: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text.as_str().unwrap())
        .unwrap()
        .timestamp_micros()
}

async fn silence_is_detected_and_resumed_telemetry_recovers(backend: Backend) {
    let mut t = watching_node(backend).await;
    // Twelve reports 40 ms apart teach the node EU's cadence.
    let mut last_sent = Instant::now();
    for i in 0..12 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        t.ingest_new(&eu_run(&format!("eu-{i}"))).await;
        last_sent = Instant::now();
    }
    let eu = t.get_ok("/v1/regions/EU").await;
    assert_eq!(eu["report_interval_source"], json!("learned"), "{eu}");
    let interval = eu["report_interval_ms"].as_f64().unwrap();
    assert!((35.0..200.0).contains(&interval), "{eu}");

    let events = detected_events(&t, 1).await;
    let detected_after = last_sent.elapsed();
    assert_eq!(events.len(), 1, "no detected failure");
    let failure = &events[0];
    assert_eq!(failure["kind"], json!("failure"));
    // Not before the threshold (0.3 s), and within it plus a few ticks.
    assert!(
        detected_after >= Duration::from_millis(250) && detected_after < Duration::from_secs(3),
        "detected {detected_after:?} after the last run"
    );
    let block = t
        .get_ok(&format!("/v1/ledger/blocks/{}", failure["block_index"]))
        .await;
    assert_eq!(block["kind"], json!("health"));
    assert_eq!(block["region"], json!("EU"));
    let payload = &block["payload"];
    assert_eq!(
        (&payload["event"], &payload["source"], &payload["status"]),
        (&json!("failure"), &json!("detected"), &json!("down"))
    );
    let evidence = &payload["evidence"];
    assert_eq!(evidence["interval"], json!("learned"));
    let expected = evidence["expected_interval_ms"].as_f64().unwrap();
    assert_eq!(
        evidence["threshold_ms"].as_f64().unwrap(),
        (5.0 * expected).max(300.0),
        "{evidence}"
    );
    assert!(
        evidence["silent_ms"].as_f64().unwrap() > 300.0,
        "{evidence}"
    );
    assert_eq!(
        micros(&failure["at"]),
        micros(&evidence["last_report_at"])
            + (evidence["expected_interval_ms"].as_f64().unwrap() * 1e3) as i64,
        "the failure is dated when the first report was missed: {block}"
    );
    let eu = t.get_ok("/v1/regions/EU").await;
    assert_eq!(
        (&eu["status"], &eu["failures"]),
        (&json!("down"), &json!(1)),
        "{eu}"
    );
    assert!(eu["availability"].as_f64().unwrap() < 1.0, "{eu}");
    // Regions that never reported (and have no configured interval) have
    // no cadence and are not judged.
    let polar = t.get_ok("/v1/regions/Polar").await;
    assert_eq!(
        (&polar["status"], &polar["failures"]),
        (&json!("active"), &json!(0))
    );
    assert_eq!(polar["report_interval_ms"], Value::Null);

    // Across a restart the node still waits for EU's next report.
    t.restart().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        detected_events(&t, 1).await.len(),
        1,
        "nothing new while silent"
    );
    let resumed = chrono::Utc::now().timestamp_micros();
    t.ingest_new(&eu_run("eu-back")).await;
    let events = detected_events(&t, 2).await;
    assert_eq!(events.len(), 2, "no detected recovery: {events:?}");
    let recovery = &events[1];
    assert_eq!(recovery["kind"], json!("recovery"));
    let at = micros(&recovery["at"]);
    assert!(
        (resumed..resumed + 1_000_000).contains(&at),
        "recovery at the report: {recovery}"
    );
    let block = t
        .get_ok(&format!("/v1/ledger/blocks/{}", recovery["block_index"]))
        .await;
    assert_eq!(block["payload"]["source"], json!("detected"));
    assert!(
        block["payload"]["evidence"]["down_ms"].as_f64().unwrap() > 300.0,
        "{block}"
    );
    let eu = t.get_ok("/v1/regions/EU").await;
    assert_eq!(
        (&eu["status"], &eu["failures"]),
        (&json!("active"), &json!(1)),
        "{eu}"
    );
    t.stop().await;
}
on_both_backends!(silence_is_detected_and_resumed_telemetry_recovers);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_set_down_counts_as_down_time_from_that_moment() {
    let t = watching_node(Backend::Sqlite).await;
    let admin = t.admin_token();
    let put = |status: &'static str| {
        let t = &t;
        async move {
            t.send(
                Method::PUT,
                "/v1/regions/MENA",
                Some(admin),
                &json!({ "status": status }).to_string(),
            )
            .await
        }
    };
    let before = t.get_ok("/v1/regions/MENA").await;
    assert_eq!(before["availability"], json!(1.0));
    let (status, changed) = put("down").await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mena = t.get_ok("/v1/regions/MENA").await;
    assert_eq!(mena["failures"], json!(1), "{mena}");
    assert!(mena["availability"].as_f64().unwrap() < 1.0, "{mena}");
    assert_eq!(mena["uptime_hours"], json!(0.0));
    let events = &mena["events"];
    assert_eq!(events.as_array().unwrap().len(), 1, "{mena}");
    assert_eq!(
        (
            &events[0]["kind"],
            &events[0]["source"],
            &events[0]["block_index"]
        ),
        (
            &json!("failure"),
            &json!("operator"),
            &changed["block_index"]
        )
    );
    let block = t
        .get_ok(&format!("/v1/ledger/blocks/{}", changed["block_index"]))
        .await;
    assert_eq!(block["kind"], json!("override"));
    assert_eq!(block["payload"]["health_event"], json!("failure"));

    // Draining is down too: no second failure. Back to active recovers.
    assert_eq!(put("draining").await.0, StatusCode::OK);
    assert_eq!(put("active").await.0, StatusCode::OK);
    let mena = t.get_ok("/v1/regions/MENA").await;
    assert_eq!(mena["failures"], json!(1), "{mena}");
    let kinds: Vec<&Value> = mena["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["kind"])
        .collect();
    assert_eq!(kinds, [&json!("failure"), &json!("recovery")]);
    let down = 1.0 - mena["availability"].as_f64().unwrap();
    assert!(down > 0.0, "{mena}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_who_sets_a_detected_outage_down_keeps_it_down() {
    let t = watching_node(Backend::Sqlite).await;
    for i in 0..12 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        t.ingest_new(&eu_run(&format!("take-{i}"))).await;
    }
    assert_eq!(detected_events(&t, 1).await.len(), 1, "no detected failure");
    let (status, changed) = t
        .send(
            Method::PUT,
            "/v1/regions/EU",
            Some(t.admin_token()),
            &json!({ "status": "down" }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    // Reports resume; the outage is the operator's now, so the node does
    // not end it.
    t.ingest_new(&eu_run("take-back")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let eu = t.get_ok("/v1/regions/EU").await;
    assert_eq!(eu["status"], json!("down"), "{eu}");
    assert_eq!(
        detected_events(&t, 1).await.len(),
        1,
        "a detected recovery: {eu}"
    );
    t.stop().await;
}

/// The effective-configuration blocks on the ledger, oldest first.
async fn config_blocks(t: &TestNode) -> Vec<Value> {
    t.all_blocks()
        .await
        .into_iter()
        .filter(|b| b["kind"] == json!("config") && b["payload"]["config_sha256"].is_string())
        .collect()
}

async fn iso_27001(t: &TestNode) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let verdict =
            t.get_ok("/v1/compliance").await["compliance"]["frameworks"]["ISO-27001"].clone();
        if verdict["compliant"].is_boolean() || Instant::now() > deadline {
            return verdict;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn a_configuration_change_at_restart_is_a_block(backend: Backend) {
    let mut t = watching_node(backend).await;
    let first = config_blocks(&t).await;
    assert_eq!(first.len(), 1, "{first:?}");
    let payload = &first[0]["payload"];
    assert_eq!(
        payload["change"],
        json!("compliance policy in force; effective configuration recorded"),
        "the first start records both in one block"
    );
    assert_eq!(payload["config"]["valuation.eta_baseline"], json!(0.95));
    assert_eq!(payload["config"]["trust.silence_intervals"], json!(5.0));
    assert!(payload["config"]["qunimbus.version"].is_string());
    let text = payload.to_string();
    assert!(
        !text.contains(t.admin_token()) && !text.contains(t.ingest_token()),
        "no secret on the ledger"
    );
    assert!(payload["config"].get("auth.admin_token").is_none());
    let verdict = iso_27001(&t).await;
    assert_eq!(verdict["compliant"], json!(true), "{verdict}");

    // The same configuration again: nothing new.
    t.restart().await;
    assert_eq!(config_blocks(&t).await.len(), 1);

    t.restart_with(|c| c.valuation.eta_baseline = 0.9).await;
    let blocks = config_blocks(&t).await;
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    let payload = &blocks[1]["payload"];
    assert_eq!(payload["change"], json!("effective configuration changed"));
    assert_eq!(
        payload["previous_sha256"],
        first[0]["payload"]["config_sha256"]
    );
    assert_eq!(
        payload["changes"],
        json!([{"key": "valuation.eta_baseline", "old": 0.95, "new": 0.9}])
    );
    assert_eq!(payload["config"]["valuation.eta_baseline"], json!(0.9));
    let verdict = iso_27001(&t).await;
    assert_eq!(verdict["compliant"], json!(true), "{verdict}");
    assert!(
        verdict.to_string().contains(
            "the effective configuration is the one the newest configuration block records"
        ),
        "{verdict}"
    );
    // The valuation engine runs with the recorded value: the reference
    // run's efficiency multiplier is eta_ent / eta_baseline (SPEC §3).
    let stored = t.ingest_new(&reference_run("after-change")).await;
    let phi = stored["phi_qevf"].as_f64().unwrap();
    let expected = 212.71929824561406 * 0.95 / 0.9;
    assert!(
        (phi - expected).abs() < 1e-9 * expected,
        "{phi} vs {expected}"
    );
    t.stop().await;
}
on_both_backends!(a_configuration_change_at_restart_is_a_block);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valuation_block_names_the_policy_and_rules_that_verified_it() {
    let t = watching_node(Backend::Sqlite).await;
    let stored = t.ingest_new(&reference_run("verified-1")).await;
    let policy = t.get_ok("/v1/policy").await;
    let block = t
        .get_ok(&format!("/v1/ledger/blocks/{}", stored["block_index"]))
        .await;
    assert_eq!(
        block["payload"]["policy_sha256"], policy["sha256"],
        "{block}"
    );
    assert_eq!(
        block["payload"]["verified_by"],
        json!(["itar-accept-region", "gdpr-accept-region"])
    );
    assert_eq!(block["compliance_attestations"]["ITAR"], json!("verified"));
    assert_eq!(
        block["compliance_attestations"]["DO-178C"],
        json!("pending")
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_reports_its_own_eph_and_no_global_figure() {
    let t = watching_node(Backend::Sqlite).await;
    t.ingest_new(&reference_run("eph-1")).await;
    let metrics = t.get_text("/metrics").await.1;
    let node = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"qunimbus_eph_throughput{scope="node"} "#))
        .unwrap_or_else(|| panic!("no node-scope EPH figure: {metrics}"));
    assert!(node.parse::<f64>().unwrap() > 0.0, "{node}");
    assert!(
        !metrics.contains(r#"qunimbus_eph_throughput{region="global"}"#),
        "a single node claims a cluster-wide figure"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_partner_leaves_the_status_after_the_latency_window() {
    let t = TestNode::start_with(Backend::Sqlite, |c| c.market.latency_window_secs = 1).await;
    let (status, partner) = t
        .post(
            "/v1/partners",
            Some(t.admin_token()),
            &json!({"name": "fading", "region": "EU"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{partner}");
    let stats = std::sync::Arc::new(qunimbus_node::feed_client::PartnerStats::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let client = tokio::spawn(qunimbus_node::feed_client::run_partner(
        t.url("/v1/market/feed").replacen("http://", "ws://", 1),
        partner["api_key"].as_str().unwrap().to_string(),
        stats.clone(),
        None,
        stopped,
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    let listed = |s: &Value| s["latency"]["per_partner"].get("fading").is_some();
    while !listed(&t.get_ok("/v1/market/status").await) {
        assert!(
            Instant::now() < deadline,
            "the partner's acks were never measured"
        );
        t.ingest_new(&reference_run(&format!("fade-{i}"))).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = t.get_ok("/v1/market/status").await;
    assert_eq!(status["latency_window_seconds"], json!(1.0), "{status}");
    assert!(t
        .get_text("/metrics")
        .await
        .1
        .contains(r#"qunimbus_market_latency_ms{partner="fading"}"#));
    let id = partner["id"].as_str().unwrap();
    let (status, _) = t
        .post(
            &format!("/v1/partners/{id}/disable"),
            Some(t.admin_token()),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    stop.send_replace(true);
    client.await.unwrap();
    let disabled = Instant::now();
    while listed(&t.get_ok("/v1/market/status").await) {
        assert!(
            disabled.elapsed() < Duration::from_secs(5),
            "a disabled partner is still listed after the 1 s window"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The window is 1 s in slots of 1/6 s: gone within two seconds.
    assert!(
        disabled.elapsed() <= Duration::from_secs(2),
        "{:?}",
        disabled.elapsed()
    );
    let metrics = t.get_text("/metrics").await.1;
    assert!(
        !metrics.contains(r#"qunimbus_market_latency_ms{partner="fading"}"#),
        "{metrics}"
    );
    t.stop().await;
}
