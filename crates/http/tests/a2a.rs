//! The node as an A2A 1.0 agent, driven by the protocol's own Python SDK
//! (`a2a-sdk` from PyPI, `tests/a2a_client.py`) as a new user would: the
//! card, a quote whose artifact is exactly the quote endpoint's answer, a
//! backtest to completion, another canceled, a stream, scopes, errors;
//! then the JSON-RPC edge cases by hand, and the tasks across a restart.

#[macro_use]
mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::Command;
use support::{Backend, TestNode};

/// The Python that has `a2a-sdk` (scripts/test makes its virtualenv).
fn a2a_python() -> String {
    let python = std::env::var("QUNIMBUS_A2A_PYTHON").unwrap_or_else(|_| {
        panic!(
            "QUNIMBUS_A2A_PYTHON is not set: it names a Python with the PyPI package a2a-sdk \
             (scripts/test creates one in ~/.cache/qunimbus/a2a-venv)"
        )
    });
    let out = Command::new(&python)
        .args(["-c", "import a2a.client"])
        .output()
        .unwrap_or_else(|e| panic!("{python} could not be run: {e}"));
    assert!(
        out.status.success(),
        "{python} has no a2a-sdk (pip install a2a-sdk==1.3.0): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

async fn rpc(
    t: &TestNode,
    token: Option<&str>,
    version: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(t.url("/a2a"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(version) = version {
        request = request.header("A2A-Version", version);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

async fn call(t: &TestNode, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
    let (status, answer) = rpc(t, Some(t.admin_token()), Some("1.0"), &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["id"], json!(7), "{answer}");
    answer
}

/// The root an inclusion path gives for leaf `index` of a tree of `size`
/// (RFC 9162 §2.1.3.2), `None` when the path has the wrong length.
fn fold_inclusion(index: u64, size: u64, leaf: [u8; 32], path: &[[u8; 32]]) -> Option<[u8; 32]> {
    if index >= size {
        return None;
    }
    let (mut f, mut s, mut r) = (index, size - 1, leaf);
    for p in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = support::rfc6962_node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = support::rfc6962_node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

fn error_code(answer: &Value) -> i64 {
    answer["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error: {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_a2a_sdk_client_quotes_backtests_cancels_and_is_held_to_its_scopes() {
    let python = a2a_python();
    let mut t = TestNode::start_with(Backend::Sqlite, |c| {
        c.agent.enabled = true;
        c.agent.bar_interval_ms = 20;
    })
    .await;
    // A client token of the read scope only.
    let (status, reader) = t
        .post(
            "/v1/credentials/clients",
            Some(t.admin_token()),
            r#"{"name":"a2a-reader","scopes":["read"],"reason":"the A2A test's reader"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reader}");
    let reader = reader["secret"].as_str().unwrap().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/a2a_client.py");
    let out = tokio::process::Command::new(&python)
        .args([script, &t.url(""), t.admin_token(), &reader])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the a2a-sdk client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    // The card: the JSON-RPC interface at /a2a, bearer security, every skill.
    let card = &seen["card"];
    let interface = &card["supportedInterfaces"][0];
    assert_eq!(interface["protocolBinding"], json!("JSONRPC"));
    assert_eq!(interface["protocolVersion"], json!("1.0"));
    assert_eq!(interface["url"], json!(t.url("/a2a")));
    let skills: Vec<&str> = card["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        skills,
        [
            "valuation.quote",
            "ledger.status",
            "ledger.prove",
            "agent.status",
            "agent.backtest",
            "agent.pause",
            "agent.resume"
        ]
    );

    // The quote task's artifact is the quote endpoint's answer, exactly.
    assert_eq!(
        seen["quote"]["state"],
        json!("TASK_STATE_COMPLETED"),
        "{seen}"
    );
    let (_, direct) = t
        .post(
            "/v1/valuation/quote",
            None,
            r#"{"region":"Americas","eta_ent":0.97,"coherence_variance":0.015,"runtime_hours":100,"eph_delivered":1000}"#,
        )
        .await;
    let quoted = &seen["quote"]["data"];
    for key in [
        "phi_qevf",
        "eph_price",
        "market_value",
        "price_multiplier",
        "region",
    ] {
        assert_eq!(quoted[key], direct[key], "{key}: {quoted} vs {direct}");
    }
    assert_eq!(quoted["phi_qevf"], json!(212.71929824561406));

    // A backtest to completion, its report deterministic and complete.
    let backtest = &seen["backtest"];
    assert_eq!(
        backtest["state"],
        json!("TASK_STATE_COMPLETED"),
        "{backtest}"
    );
    let report = &backtest["report"];
    // (A data part's numbers are protobuf doubles on the client's side.)
    assert_eq!(report["inputs"]["bars"].as_f64(), Some(3000.0), "{report}");
    assert!(
        report["metrics"].is_object() && report["equity"].is_array(),
        "{report}"
    );

    // Another canceled while it ran: canceled, and stored so.
    assert_eq!(seen["long_started"], json!("TASK_STATE_WORKING"), "{seen}");
    let canceled = &seen["canceled"];
    assert_eq!(
        canceled["state"],
        json!("TASK_STATE_CANCELED"),
        "{canceled}"
    );
    assert_eq!(
        canceled["stored"],
        json!("TASK_STATE_CANCELED"),
        "{canceled}"
    );
    assert!(
        canceled["why"].as_str().unwrap().contains("canceled after"),
        "{canceled}"
    );

    // A stream: the task first, its artifact, and its end; then it closes.
    let stream = &seen["stream"];
    assert_eq!(stream["kinds"][0], json!("task"), "{stream}");
    assert!(
        stream["kinds"]
            .as_array()
            .unwrap()
            .contains(&json!("artifact_update")),
        "{stream}"
    );
    assert_eq!(
        stream["states"].as_array().unwrap().last(),
        Some(&json!("TASK_STATE_COMPLETED")),
        "{stream}"
    );

    // Bad messages are rejected tasks that say why.
    assert_eq!(seen["bad_quote"]["state"], json!("TASK_STATE_REJECTED"));
    assert!(
        seen["bad_quote"]["why"]
            .as_str()
            .unwrap()
            .contains("eta_ent"),
        "{seen}"
    );
    assert!(
        seen["unknown_skill"]["why"]
            .as_str()
            .unwrap()
            .contains("unknown skill \"ledger.burn\""),
        "{seen}"
    );

    // Scopes: a read-scope token may not pause; the admin may, on the ledger.
    assert_eq!(
        seen["pause_as_reader"]["state"],
        json!("TASK_STATE_REJECTED")
    );
    assert!(
        seen["pause_as_reader"]["why"]
            .as_str()
            .unwrap()
            .contains("needs the admin scope"),
        "{seen}"
    );
    assert_eq!(
        seen["pause_as_admin"]["state"],
        json!("TASK_STATE_COMPLETED")
    );
    let index = seen["pause_as_admin"]["data"]["block_index"]
        .as_f64()
        .unwrap() as u64;
    let block = t.get_ok(&format!("/v1/ledger/blocks/{index}")).await;
    assert_eq!(block["kind"], json!("risk"), "{block}");
    assert_eq!(block["payload"]["reason"], json!("a2a drill"), "{block}");
    assert_eq!(seen["resume_as_admin"], json!("TASK_STATE_COMPLETED"));
    assert_eq!(t.get_ok("/v1/agent").await["paused"], json!(false));

    // The ledger skills answer what the ledger routes answer.
    let ledger = t.get_ok("/v1/ledger").await;
    assert_eq!(
        seen["ledger_status"]["genesis_hash"],
        ledger["genesis_hash"]
    );
    assert_eq!(seen["ledger_status"]["public_key"], ledger["public_key"]);
    let proof = &seen["proof"];
    let size = proof["tree_size"].as_f64().unwrap() as u64;
    let direct = t
        .get_ok(&format!(
            "/v1/ledger/proof/inclusion?index=0&tree_size={size}"
        ))
        .await;
    for key in ["leaf_hash", "root_hash", "hashes"] {
        assert_eq!(proof[key], direct[key], "{key}");
    }
    // The caller can verify it: the path folds to the root (RFC 9162
    // §2.1.3.2, with the test's own SHA-256), and a changed path does not.
    let leaf = support::b64_hash(&proof["leaf_hash"]);
    let path = support::b64_hashes(&proof["hashes"]);
    let root = support::b64_hash(&proof["root_hash"]);
    assert_eq!(fold_inclusion(0, size, leaf, &path), Some(root));
    let mut bent = path.clone();
    bent[0] = support::sha256(
        path.first()
            .expect("a tree of more than one block has a path"),
    );
    assert_ne!(fold_inclusion(0, size, leaf, &bent), Some(root));

    // Pages without overlap; each caller sees only its own tasks.
    let first = seen["list"]["first"].as_array().unwrap();
    let second = seen["list"]["second"].as_array().unwrap();
    assert_eq!((first.len(), second.len()), (3, 3), "{seen}");
    assert!(first.iter().all(|id| !second.contains(id)));
    assert_eq!(seen["list"]["total"], json!(11), "{seen}");
    assert_eq!(seen["reader_sees"].as_array().unwrap().len(), 3, "{seen}");
    assert_eq!(seen["missing"], json!("TaskNotFoundError"));
    assert_eq!(seen["cancel_done"], json!("TaskNotCancelableError"));
    assert!(
        seen["anonymous"].as_str().unwrap().contains("401"),
        "{seen}"
    );

    // By hand: 401 before JSON-RPC, the version, the envelope, the params.
    let get = r#"{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"x"}}"#;
    let (status, e) = rpc(&t, None, Some("1.0"), get).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
    for version in [None, Some("0.3"), Some("2.0")] {
        let (status, e) = rpc(&t, Some(t.admin_token()), version, get).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(error_code(&e), -32009, "{version:?}: {e}");
    }
    for (body, code) in [
        ("{not json", -32700),
        ("[]", -32600),
        (r#"{"jsonrpc":"1.0","id":1,"method":"GetTask"}"#, -32600),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{}}"#,
            -32601,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":5}}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"SubscribeToTask","params":{"id":"x"}}"#,
            -32004,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{"pageSize":0}}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{"pageToken":"zz"}}"#,
            -32602,
        ),
    ] {
        let (status, e) = rpc(&t, Some(t.admin_token()), Some("1.0"), body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(error_code(&e), code, "{body}: {e}");
    }

    // A backtest left running at a stop is failed at the next start; the
    // finished tasks are there as they were.
    let running = call(
        &t,
        "SendMessage",
        json!({"message": {"messageId": "m-1", "role": "ROLE_USER",
            "parts": [{"data": {"skill": "agent.backtest", "params": {"bars": 1000000}}}]},
            "configuration": {"returnImmediately": true}}),
    )
    .await;
    let running_id = running["result"]["task"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Two backtests at once at most: a third is rejected as busy.
    let long = |id: &str| {
        json!({"message": {"messageId": id, "role": "ROLE_USER",
            "parts": [{"data": {"skill": "agent.backtest", "params": {"bars": 1000000}}}]},
            "configuration": {"returnImmediately": true}})
    };
    let second = call(&t, "SendMessage", long("m-2")).await;
    assert_eq!(
        second["result"]["task"]["status"]["state"],
        json!("TASK_STATE_WORKING"),
        "{second}"
    );
    let third = call(&t, "SendMessage", long("m-3")).await;
    assert_eq!(
        third["result"]["task"]["status"]["state"],
        json!("TASK_STATE_REJECTED"),
        "{third}"
    );
    assert!(
        third.to_string().contains("busy: 2 backtests are running"),
        "{third}"
    );
    assert_eq!(
        running["result"]["task"]["status"]["state"],
        json!("TASK_STATE_WORKING"),
        "{running}"
    );
    let quote_id = seen["quote"]["id"].as_str().unwrap().to_string();
    let before = call(&t, "GetTask", json!({"id": quote_id})).await;
    t.restart().await;
    let after = call(&t, "GetTask", json!({"id": quote_id})).await;
    assert_eq!(after["result"], before["result"]);
    let interrupted = call(&t, "GetTask", json!({"id": running_id})).await;
    assert_eq!(
        interrupted["result"]["status"]["state"],
        json!("TASK_STATE_FAILED"),
        "{interrupted}"
    );
    assert!(
        interrupted.to_string().contains("the node restarted"),
        "{interrupted}"
    );
    let canceled_id = canceled["id"].as_str().unwrap();
    let still = call(&t, "GetTask", json!({"id": canceled_id})).await;
    assert_eq!(
        still["result"]["status"]["state"],
        json!("TASK_STATE_CANCELED")
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_agent_the_card_lists_no_agent_skill_sqlite() {
    without_the_agent(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_agent_the_card_lists_no_agent_skill_postgres() {
    without_the_agent(Backend::Postgres).await;
}

async fn without_the_agent(backend: Backend) {
    let t = TestNode::start_with(backend, |c| {
        c.public_url = Some("https://node.example/".into());
    })
    .await;
    let card = t.get_ok("/.well-known/agent-card.json").await;
    // Behind a proxy the card names the configured URL, never the caller's Host.
    assert_eq!(
        card["supportedInterfaces"][0]["url"],
        json!("https://node.example/a2a")
    );
    let skills: Vec<&str> = card["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(skills, ["valuation.quote", "ledger.status", "ledger.prove"]);
    let answer = call(
        &t,
        "SendMessage",
        json!({"message": {"messageId": "m-2", "role": "ROLE_USER",
            "parts": [{"data": {"skill": "agent.status"}}]}}),
    )
    .await;
    let task = &answer["result"]["task"];
    assert_eq!(
        task["status"]["state"],
        json!("TASK_STATE_REJECTED"),
        "{answer}"
    );
    assert!(answer.to_string().contains("not enabled"), "{answer}");

    // Tasks are stored, listed in pages, found by id (the SQL on both backends).
    for i in 0..3 {
        let quote = json!({"message": {"messageId": format!("q-{i}"), "role": "ROLE_USER",
            "parts": [{"data": {"skill": "valuation.quote", "params": {"eta_ent": 0.9, "coherence_variance": 0.01, "runtime_hours": 1 + i, "eph_delivered": 10}}}]}});
        let done = call(&t, "SendMessage", quote).await;
        assert_eq!(
            done["result"]["task"]["status"]["state"],
            json!("TASK_STATE_COMPLETED"),
            "{done}"
        );
    }
    let page = call(&t, "ListTasks", json!({"pageSize": 2})).await;
    assert_eq!(page["result"]["totalSize"], json!(4), "{page}");
    assert_eq!(page["result"]["tasks"].as_array().unwrap().len(), 2);
    let token = page["result"]["nextPageToken"].clone();
    let rest = call(&t, "ListTasks", json!({"pageSize": 2, "pageToken": token})).await;
    assert_eq!(
        rest["result"]["tasks"].as_array().unwrap().len(),
        2,
        "{rest}"
    );
    assert_eq!(rest["result"]["nextPageToken"], json!(""));
    let rejected = call(&t, "ListTasks", json!({"status": "TASK_STATE_REJECTED"})).await;
    assert_eq!(
        rejected["result"]["tasks"][0]["id"], task["id"],
        "{rejected}"
    );
    let found = call(&t, "GetTask", json!({"id": task["id"]})).await;
    assert_eq!(found["result"]["id"], task["id"]);
    t.stop().await;
}
