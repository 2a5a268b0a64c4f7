//! The Trust Kernel end to end (SPEC §6): regions and health events, MTBF
//! and trust, overrides on the ledger, the rollout controller (advance,
//! rollback on low trust, pause on low MTBF, restart mid-rollout), and
//! compliance enforced by the Cedar policy (ITAR/GDPR rejections with
//! nothing stored, personal data never in clear, policy edits without a
//! rebuild).

#[macro_use]
mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{reference_run, Backend, TestNode};

/// A node whose rollout phases soak for `soak` seconds, ticking every 50 ms.
async fn fast_node(backend: Backend, soak: f64) -> TestNode {
    TestNode::start_with(backend, |c| {
        c.trust.soak_secs = soak;
        c.trust.controller_interval_ms = 50;
        c.trust.compliance_interval_secs = 0.1;
    })
    .await
}

fn hours_ago(h: f64) -> String {
    let at = chrono::Utc::now() - chrono::Duration::milliseconds((h * 3.6e6) as i64);
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn region<'a>(regions: &'a Value, name: &str) -> &'a Value {
    regions["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == json!(name))
        .unwrap_or_else(|| panic!("no region {name} in {regions}"))
}

async fn wait_for_rollout(t: &TestNode, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        let r = t.get_ok(&format!("/v1/rollouts/{id}")).await;
        if done(&r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "rollout never reached the expected state: {}",
        t.get_ok(&format!("/v1/rollouts/{id}")).await
    );
}

async fn rollout_blocks(t: &TestNode, id: &str) -> Vec<Value> {
    t.all_blocks()
        .await
        .into_iter()
        .filter(|b| b["kind"] == json!("rollout") && b["payload"]["rollout_id"] == json!(id))
        .collect()
}

async fn regions_events_and_overrides(backend: Backend) {
    let t = TestNode::start(backend).await;
    let admin = Some(t.admin_token());
    let regions = t.get_ok("/v1/regions").await;
    assert_eq!(regions["regions"].as_array().unwrap().len(), 6);
    let eu = region(&regions, "EU");
    assert_eq!(
        (&eu["status"], &eu["trust_score"], &eu["failures"]),
        (&json!("active"), &json!(1.0), &json!(0))
    );
    assert_eq!(eu["mtbf_hours"], Value::Null);
    assert_eq!(
        eu["mtbf_compliant"],
        Value::Null,
        "minutes without a failure do not show a 120 h MTBF"
    );
    assert_eq!(t.get_ok("/v1/mesh").await["mtbf_compliant"], Value::Null);

    let (status, err) = t.get("/v1/regions/Atlantis").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], json!("unknown_region"));

    // A back-dated outage: down 10 h → 8 h ago. Observation starts at the
    // first event, so availability ≈ 8/10 and MTBF ≈ 8 h.
    let length = t.chain_length().await;
    for (kind, at) in [("failure", 10.0), ("recovery", 8.0)] {
        let body = json!({"kind": kind, "at": hours_ago(at)}).to_string();
        let (status, answer) = t.post("/v1/regions/eu/events", admin, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let block = t
            .get_ok(&format!("/v1/ledger/blocks/{}", answer["block_index"]))
            .await;
        assert_eq!(block["kind"], json!("health"));
        assert_eq!(block["region"], json!("EU"));
        assert_eq!(block["payload"]["event"], json!(kind));
    }
    assert_eq!(t.chain_length().await, length + 2);
    let eu = t.get_ok("/v1/regions/EU").await;
    assert_eq!(eu["failures"], json!(1), "{eu}");
    assert_eq!(eu["status"], json!("active"));
    let close = |v: &Value, x: f64| (v.as_f64().unwrap() - x).abs() < 1e-3;
    assert!(close(&eu["availability"], 0.8), "{eu}");
    assert!(close(&eu["mtbf_hours"], 8.0), "{eu}");
    assert!(close(&eu["trust_score"], 0.8), "{eu}");
    assert!(close(&eu["uptime_hours"], 8.0), "{eu}");
    assert_eq!(eu["mtbf_compliant"], json!(false));
    let mesh = t.get_ok("/v1/mesh").await;
    assert_eq!(mesh["total_regions"], json!(6));
    assert_eq!(mesh["failures"], json!(1));
    assert_eq!(mesh["mtbf_compliant"], json!(false), "{mesh}");
    assert_eq!(mesh["mtbf_target_hours"], json!(120.0));

    // Bad events change nothing.
    let length = t.chain_length().await;
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    for (body, field) in [
        (json!({"kind": "failure", "at": future}), "at"),
        (json!({"kind": "failure", "at": hours_ago(10_000.0)}), "at"),
        (json!({"kind": "failure", "at": "yesterday"}), "at"),
        (json!({"kind": "meltdown"}), "kind"),
        (json!({"kind": "failure", "extra": 1}), "extra"),
    ] {
        let (status, err) = t
            .post("/v1/regions/EU/events", admin, &body.to_string())
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert_eq!(err["error"]["field"], json!(field), "{body}: {err}");
    }
    let (status, _) = t
        .post(
            "/v1/regions/EU/events",
            Some(t.ingest_token()),
            r#"{"kind":"failure"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        t.chain_length().await,
        length,
        "rejected events add nothing"
    );

    // A trust override needs a reason, is clamped, and is an override block.
    let put = |body: Value| {
        let t = &t;
        async move {
            t.send(
                Method::PUT,
                "/v1/regions/apac",
                Some(t.admin_token()),
                &body.to_string(),
            )
            .await
        }
    };
    let (status, err) = put(json!({"status": "degraded", "trust_score": 0.4})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["field"], json!("reason"));
    let (status, err) = put(json!({"status": "sleepy"})).await;
    assert_eq!(
        (status, &err["error"]["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("status"))
    );
    assert_eq!(t.chain_length().await, length);
    let (status, answer) =
        put(json!({"status": "degraded", "trust_score": 1.7, "reason": "vendor audit passed"}))
            .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["region"]["trust_score"], json!(1.0), "clamped to 1");
    assert_eq!(answer["region"]["trust_source"], json!("override"));
    let block = t
        .get_ok(&format!("/v1/ledger/blocks/{}", answer["block_index"]))
        .await;
    assert_eq!(block["kind"], json!("override"));
    assert_eq!(block["region"], json!("APAC"));
    assert_eq!(block["payload"]["trust_override"], json!(1.0));
    assert_eq!(block["payload"]["reason"], json!("vendor audit passed"));
    assert_eq!(block["payload"]["previous_status"], json!("active"));
    // `null` clears the override.
    let (_, answer) = put(json!({"status": "active", "trust_score": null})).await;
    assert_eq!(answer["region"]["trust_source"], json!("computed"));

    let metrics = t.get_text("/metrics").await.1;
    assert!(
        metrics.contains(r#"qunimbus_trust_score{region="eu"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"qunimbus_region_mtbf_hours{region="eu"}"#));
    t.stop().await;
}
on_both_backends!(regions_events_and_overrides);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_walks_every_phase_then_rolls_back_a_second_one_on_low_trust() {
    let t = fast_node(Backend::Sqlite, 0.3).await;
    let admin = Some(t.admin_token());
    let (status, r) = t
        .post("/v1/rollouts", admin, r#"{"version":"1.4.0"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["deployed_regions"], json!(["Americas"]));
    assert_eq!(r["canary_region"], json!("Americas"));
    let (status, err) = t
        .post("/v1/rollouts", admin, r#"{"version":"1.5.0"}"#)
        .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (StatusCode::CONFLICT, &json!("rollout_active"))
    );

    let done = wait_for_rollout(&t, &id, |r| r["state"] == json!("completed")).await;
    let path: Vec<&str> = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        [
            "running@0",
            "running@1",
            "running@2",
            "running@3",
            "completed@3"
        ]
    );
    let blocks = rollout_blocks(&t, &id).await;
    assert_eq!(blocks.len(), 5, "every transition is a rollout block");
    for (h, b) in done["history"].as_array().unwrap().iter().zip(&blocks) {
        assert_eq!(h["block_index"], b["index"]);
        assert_eq!(h["to"], b["payload"]["to"]);
    }

    // Second rollout, canary EU: EU's trust falls below 0.7 → rollback.
    let (status, r) = t
        .post(
            "/v1/rollouts",
            admin,
            r#"{"version":"1.5.0","canary_region":"eu"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["phases"][0]["regions"], json!(["EU"]));
    assert_eq!(r["phases"][1]["regions"], json!(["Americas"]));
    let id = r["id"].as_str().unwrap().to_string();
    let (status, _) = t
        .send(
            Method::PUT,
            "/v1/regions/EU",
            admin,
            r#"{"status":"degraded","trust_score":0.5,"reason":"packet loss under investigation"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let back = wait_for_rollout(&t, &id, |r| r["state"] == json!("rolled_back")).await;
    assert!(
        back["reason"].as_str().unwrap().contains("EU 0.500"),
        "{back}"
    );
    assert_eq!(back["deployed_regions"], json!([]));
    let last = rollout_blocks(&t, &id).await.pop().unwrap();
    assert_eq!(last["payload"]["actor"], json!("controller"));
    assert_eq!(last["payload"]["to"], json!("rolled_back@0"));
    let (status, err) = t
        .post(&format!("/v1/rollouts/{id}/advance"), admin, "")
        .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (StatusCode::CONFLICT, &json!("invalid_transition"))
    );
    let (status, _) = t.post("/v1/rollouts", admin, r#"{"version":"x y"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = t
        .post(
            "/v1/rollouts",
            admin,
            r#"{"version":"2","canary_region":"Atlantis"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_mtbf_pauses_the_rollout_until_an_operator_acts() {
    let t = fast_node(Backend::Sqlite, 0.2).await;
    let admin = Some(t.admin_token());
    // Availability 9.5/10 keeps trust above 0.7; MTBF 9.5 h is below 100 h.
    for (kind, at) in [("failure", 10.0), ("recovery", 9.5)] {
        let body = json!({"kind": kind, "at": hours_ago(at)}).to_string();
        assert_eq!(
            t.post("/v1/regions/Americas/events", admin, &body).await.0,
            StatusCode::CREATED
        );
    }
    let (_, r) = t
        .post("/v1/rollouts", admin, r#"{"version":"2.0.0"}"#)
        .await;
    let id = r["id"].as_str().unwrap().to_string();
    let paused = wait_for_rollout(&t, &id, |r| r["state"] == json!("paused")).await;
    assert_eq!(
        paused["phase"],
        json!(0),
        "paused before leaving the canary"
    );
    assert!(
        paused["reason"]
            .as_str()
            .unwrap()
            .contains("MTBF below 100 h: Americas"),
        "{paused}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        t.get_ok(&format!("/v1/rollouts/{id}")).await["state"],
        json!("paused")
    );
    let (status, r) = t
        .post(
            &format!("/v1/rollouts/{id}/rollback"),
            admin,
            r#"{"reason":"flaky canary"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["state"], json!("rolled_back"));
    assert_eq!(r["reason"], json!("manual rollback: flaky canary"));
    t.stop().await;
}

async fn restart_mid_rollout_resumes_it(backend: Backend) {
    let mut t = fast_node(backend, 1.0).await;
    let admin = Some(t.admin_token().to_string());
    let (_, r) = t
        .post("/v1/rollouts", admin.as_deref(), r#"{"version":"3.1.0"}"#)
        .await;
    let id = r["id"].as_str().unwrap().to_string();
    let before = wait_for_rollout(&t, &id, |r| r["phase"].as_u64() >= Some(1)).await;
    t.restart().await;
    let after = t.get_ok(&format!("/v1/rollouts/{id}")).await;
    // Every transition made before the restart survives it unchanged (the
    // soak may already have moved the rollout on after the restart).
    let (before_history, after_history) = (
        before["history"].as_array().unwrap(),
        after["history"].as_array().unwrap(),
    );
    assert!(
        after_history.len() >= before_history.len()
            && after_history[..before_history.len()] == before_history[..],
        "history survives the restart: {before} then {after}"
    );
    assert!(
        after["state"] == json!("running") || after["state"] == json!("completed"),
        "{after}"
    );
    let done = wait_for_rollout(&t, &id, |r| r["state"] == json!("completed")).await;
    assert_eq!(done["history"].as_array().unwrap().len(), 5);
    assert_eq!(rollout_blocks(&t, &id).await.len(), 5);
    t.stop().await;
}
on_both_backends!(restart_mid_rollout_resumes_it);

async fn policy_enforced_on_ingest(backend: Backend) {
    let t = TestNode::start(backend).await;
    let length = t.chain_length().await;
    let mut itar_eu = reference_run("itar-eu-1");
    itar_eu["region"] = json!("EU");
    itar_eu["data_class"] = json!("itar");
    let (status, err) = t.ingest(&itar_eu).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"]["code"], json!("policy_violation"));
    assert_eq!(err["error"]["field"], json!("region"));
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("itar-accept-region") && message.contains("ITAR"),
        "{message}"
    );
    let (status, _) = t.get("/v1/valuations/itar-eu-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing stored");
    let mut personal_apac = reference_run("gdpr-apac-1");
    personal_apac["region"] = json!("APAC");
    personal_apac["data_class"] = json!("personal");
    let (status, err) = t.ingest(&personal_apac).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gdpr-accept-region"));
    // One violating run fails the whole batch.
    let (status, err) = t
        .post(
            "/v1/telemetry/batch",
            Some(t.ingest_token()),
            &json!([reference_run("ok-1"), itar_eu]).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"]["field"], json!("[1].region"));
    assert_eq!(t.chain_length().await, length, "rejections write nothing");
    let metrics = t.get_text("/metrics").await.1;
    assert!(
        metrics.contains(r#"qunimbus_compliance_violations_total{rule="itar-accept-region"} 2"#),
        "{metrics}"
    );

    let mut itar_americas = reference_run("itar-am-1");
    itar_americas["data_class"] = json!("itar");
    let accepted = t.ingest_new(&itar_americas).await;
    let block = t
        .get_ok(&format!("/v1/ledger/blocks/{}", accepted["block_index"]))
        .await;
    assert_eq!(block["compliance_attestations"]["ITAR"], json!("verified"));
    assert_eq!(
        block["compliance_attestations"]["DO-178C"],
        json!("pending")
    );
    t.stop().await;
}
on_both_backends!(policy_enforced_on_ingest);

async fn personal_data_never_in_clear_on_the_ledger(backend: Backend) {
    let t = TestNode::start(backend).await;
    let mut run = reference_run("patient-4711-mri");
    run["region"] = json!("EU");
    run["data_class"] = json!("personal");
    let accepted = t.ingest_new(&run).await;
    assert!(
        accepted.get("run_id").is_none(),
        "shown only to admin callers: {accepted}"
    );
    let block = t
        .get_ok(&format!("/v1/ledger/blocks/{}", accepted["block_index"]))
        .await;
    assert!(block.get("run_id").is_none(), "{block}");
    let reference = block["payload"]["run_ref"].as_str().unwrap();
    assert_eq!(accepted["run_ref"], json!(reference));
    // The open read API knows the run by its reference only; an admin
    // caller sees its id.
    let (status, _) = t.get("/v1/valuations/patient-4711-mri").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "personal ids are not public");
    let (status, as_admin) = t
        .send(
            Method::GET,
            "/v1/valuations/patient-4711-mri",
            Some(t.admin_token()),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{as_admin}");
    assert_eq!(as_admin["run_id"], json!("patient-4711-mri"));
    assert_eq!(as_admin["run_ref"], json!(reference));
    // run_ref = hex(SHA-256(salt ‖ ":" ‖ run_id)), recomputed by Python's
    // hashlib from the salt stored off-ledger.
    let salt = t
        .stored_salt("patient-4711-mri")
        .await
        .expect("the salt is stored with the run");
    let python = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256((sys.argv[1]+':'+sys.argv[2]).encode()).hexdigest())",
            &salt,
            "patient-4711-mri",
        ])
        .output()
        .expect("python3 is required (scripts/test checks it)");
    assert!(python.status.success());
    assert_eq!(String::from_utf8_lossy(&python.stdout).trim(), reference);
    // Every place the block is published carries the reference, never the id.
    for path in [
        "/v1/ledger/blocks?limit=1000",
        "/v1/ledger/export/grafana",
        "/v1/valuations?limit=1000",
        "/v1/valuations?region=EU",
    ] {
        let (status, text) = t.get_text(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        assert!(text.contains(reference), "{path} lacks the run_ref: {text}");
        assert!(
            !text.contains("patient-4711"),
            "{path} leaks the run id: {text}"
        );
    }
    let width = accepted["block_index"].as_u64().unwrap() + 1;
    let (status, entries) = t
        .get_bytes(&format!("/tlog/tile/entries/000.p/{width}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let entries = String::from_utf8_lossy(&entries);
    assert!(entries.contains(reference), "{entries}");
    assert!(!entries.contains("patient-4711"), "{entries}");
    // A second personal run with the same id elsewhere gets another salt.
    let mut other = reference_run("patient-4711-ct");
    other["region"] = json!("EU");
    other["data_class"] = json!("personal");
    let second = t.ingest_new(&other).await;
    let second_block = t
        .get_ok(&format!("/v1/ledger/blocks/{}", second["block_index"]))
        .await;
    assert_ne!(
        second_block["payload"]["run_ref"],
        block["payload"]["run_ref"]
    );
    let compliance = wait_for_verdict(&t, "GDPR").await;
    assert_eq!(
        compliance["frameworks"]["GDPR"]["compliant"],
        json!(true),
        "{compliance}"
    );

    // Erasure: the run id goes, the chain stays and records it by reference.
    let admin = Some(t.admin_token());
    let erase = |id: &str| {
        let path = format!("/v1/valuations/{id}");
        let t = &t;
        async move { t.send(Method::DELETE, &path, admin, "").await }
    };
    let length = t.chain_length().await;
    let (status, erased) = erase("patient-4711-mri").await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["run_ref"], block["payload"]["run_ref"]);
    let record = t
        .get_ok(&format!("/v1/ledger/blocks/{}", erased["block_index"]))
        .await;
    assert_eq!(record["kind"], json!("erasure"));
    assert_eq!(record["payload"]["run_ref"], block["payload"]["run_ref"]);
    assert_eq!(t.chain_length().await, length + 1);
    let (status, _) = t.get("/v1/valuations/patient-4711-mri").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the id no longer resolves");
    let tombstone = format!("erased:{}", &reference[..32]);
    let (status, kept) = t
        .send(
            Method::GET,
            &format!("/v1/valuations/{tombstone}"),
            admin,
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(
        kept["phi_qevf"], accepted["phi_qevf"],
        "the run's figures stay"
    );
    assert_eq!(t.stored_salt(&tombstone).await, None, "the salt is gone");
    assert!(
        t.stored_salt("patient-4711-ct").await.is_some(),
        "other personal runs keep theirs"
    );
    assert_eq!(
        t.get_ok(&format!("/v1/ledger/blocks/{}", accepted["block_index"]))
            .await,
        block,
        "the valuation block is untouched"
    );
    assert_eq!(t.get_ok("/v1/ledger/verify").await["ok"], json!(true));
    let (status, err) = erase("patient-4711-mri").await;
    assert_eq!(
        (status, &err["error"]["field"]),
        (StatusCode::NOT_FOUND, &json!("run_id"))
    );
    t.ingest_new(&reference_run("public-1")).await;
    let (status, err) = erase("public-1").await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (StatusCode::CONFLICT, &json!("not_personal_data"))
    );
    let (status, _) = t
        .send(
            Method::DELETE,
            "/v1/valuations/patient-4711-ct",
            Some(t.ingest_token()),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    t.stop().await;
}
on_both_backends!(personal_data_never_in_clear_on_the_ledger);

async fn wait_for_verdict(t: &TestNode, framework: &str) -> Value {
    for _ in 0..200 {
        let c = t.get_ok("/v1/compliance").await["compliance"].clone();
        if !c["frameworks"][framework]["compliant"].is_null() {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{framework} never evaluated: {}",
        t.get_ok("/v1/compliance").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_policy_file_changes_the_decision_without_a_rebuild() {
    let t = fast_node(Backend::Sqlite, 60.0).await;
    let admin = Some(t.admin_token());
    let policy_path = t.data_dir().join("policy.cedar");
    let original = std::fs::read_to_string(&policy_path).expect("default policy written");
    let mut run = reference_run("itar-eu-2");
    run["region"] = json!("EU");
    run["data_class"] = json!("itar");
    assert_eq!(t.ingest(&run).await.0, StatusCode::FORBIDDEN);

    let before = t.get_ok("/v1/policy").await;
    let widened = original.replace(
        r#"!(["Americas"].contains(resource.region))"#,
        r#"!(["Americas", "EU"].contains(resource.region))"#,
    );
    assert_ne!(widened, original);
    std::fs::write(&policy_path, &widened).unwrap();
    let (status, status_after) = t.post("/v1/policy/reload", admin, "").await;
    assert_eq!(status, StatusCode::OK, "{status_after}");
    assert_ne!(status_after["sha256"], before["sha256"]);
    let config = t
        .get_ok(&format!(
            "/v1/ledger/blocks/{}",
            status_after["block_index"]
        ))
        .await;
    assert_eq!(config["kind"], json!("config"));
    assert_eq!(config["payload"]["previous_sha256"], before["sha256"]);
    assert_eq!(t.ingest(&run).await.0, StatusCode::CREATED);

    // A broken edit is refused and the policy in force stays.
    std::fs::write(
        &policy_path,
        widened.replace("resource.region", "resource.regoin"),
    )
    .unwrap();
    let (status, err) = t.post("/v1/policy/reload", admin, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("regoin"),
        "{err}"
    );
    let mut apac = run.clone();
    apac["run_id"] = json!("itar-apac-1");
    apac["region"] = json!("APAC");
    assert_eq!(t.ingest(&apac).await.0, StatusCode::FORBIDDEN);
    assert!(t.get_ok("/v1/policy").await["last_error"].is_string());

    // The controller reloads the file by itself when it changes; back to
    // the original policy, the stored ITAR run in EU is now a finding.
    std::fs::write(&policy_path, &original).unwrap();
    for _ in 0..200 {
        if t.get_ok("/v1/policy").await["sha256"] == before["sha256"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(t.get_ok("/v1/policy").await["sha256"], before["sha256"]);
    let mut verdict = Value::Null;
    for _ in 0..200 {
        verdict = t.get_ok("/v1/compliance").await["compliance"]["frameworks"]["ITAR"].clone();
        if verdict["compliant"] == json!(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(verdict["compliant"], json!(false), "{verdict}");
    let accepted_under = format!(
        "1 itar runs accepted in EU under policy {} are forbidden there by policy {}, put in force later",
        &status_after["sha256"].as_str().unwrap()[..12],
        &before["sha256"].as_str().unwrap()[..12]
    );
    assert!(verdict.to_string().contains(&accepted_under), "{verdict}");
    let eu = t.get_ok("/v1/regions/EU").await;
    assert_eq!(eu["open_findings"], json!(1), "{eu}");
    assert!(eu["trust_score"].as_f64().unwrap() <= 0.75, "{eu}");

    // Widening the policy again does not make the run compliant after
    // the fact: it was accepted, then a policy in force forbade it.
    std::fs::write(&policy_path, &widened).unwrap();
    let (status, reloaded) = t.post("/v1/policy/reload", admin, "").await;
    assert_eq!(status, StatusCode::OK);
    let reloaded_at = reloaded["loaded_at"].as_str().unwrap().to_string();
    let mut verdict = Value::Null;
    for _ in 0..200 {
        let compliance = t.get_ok("/v1/compliance").await["compliance"].clone();
        // An evaluation made after the widened policy was put in force.
        if compliance["evaluated_at"].as_str().unwrap() > reloaded_at.as_str() {
            verdict = compliance["frameworks"]["ITAR"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(verdict["compliant"], json!(false), "{verdict}");
    assert!(verdict.to_string().contains(&accepted_under), "{verdict}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_attestation_records_the_verdicts() {
    let t = fast_node(Backend::Sqlite, 60.0).await;
    t.ingest_new(&reference_run("c-1")).await;
    let (status, answer) = t
        .post("/v1/compliance/attest", Some(t.admin_token()), "")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let frameworks = &answer["compliance"]["frameworks"];
    assert_eq!(frameworks["ITAR"]["compliant"], json!(true));
    assert_eq!(frameworks["GDPR"]["compliant"], json!(true));
    assert_eq!(
        frameworks["ISO-27001"]["compliant"],
        json!(true),
        "{frameworks}"
    );
    assert_eq!(frameworks["DO-178C"]["compliant"], Value::Null);
    let block = t
        .get_ok(&format!("/v1/ledger/blocks/{}", answer["block_index"]))
        .await;
    assert_eq!(block["kind"], json!("attestation"));
    // Asked for by an operator, not written by the schedule.
    assert_eq!(block["payload"]["scheduled"], json!(false));
    assert_eq!(
        block["compliance_attestations"],
        json!({"CMMC-2.0": "pending", "DO-178C": "pending", "GDPR": "verified",
               "ISO-27001": "verified", "ITAR": "verified", "NIST-800-53": "pending"})
    );
    let metrics = t.get_text("/metrics").await.1;
    assert!(
        metrics.contains(r#"qunimbus_compliance_status{framework="ITAR"} 1"#),
        "{metrics}"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_writes_scheduled_attestations() {
    let t = TestNode::start_with(Backend::Sqlite, |c| {
        c.trust.controller_interval_ms = 50;
        c.trust.compliance_interval_secs = 0.1;
        c.trust.attestation_interval_secs = 0.5;
    })
    .await;
    let mut scheduled = Vec::new();
    for _ in 0..200 {
        let answer = t.get_ok("/v1/ledger/blocks?limit=1000").await;
        scheduled = answer["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| {
                b["kind"] == json!("attestation") && b["payload"]["scheduled"] == json!(true)
            })
            .cloned()
            .collect();
        if scheduled.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(scheduled.len() >= 2, "{scheduled:?}");
    assert_eq!(
        scheduled[0]["compliance_attestations"]["ITAR"],
        json!("verified")
    );
    t.stop().await;
}
