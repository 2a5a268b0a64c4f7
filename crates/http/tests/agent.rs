//! The trading agent in the node (SPEC §8): it trades on paper, every fill
//! is a `trade` block whose fields match the fill, the cash the ledger's
//! fills imply is exactly the agent's cash, and the operator's commands
//! (with their reasons) are `risk` blocks; bad commands change nothing.

#[macro_use]
mod support;

use std::str::FromStr;
use std::time::Duration;

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use support::{Backend, TestNode};

/// A node whose agent takes a bar every 5 ms (compliance re-evaluated
/// every 100 ms).
async fn agent_node(backend: Backend) -> TestNode {
    TestNode::start_with(backend, |c| {
        c.agent.enabled = true;
        c.agent.bar_interval_ms = 5;
        c.trust.compliance_interval_secs = 0.1;
    })
    .await
}

/// Polls `GET /v1/agent` until `done` holds.
async fn wait_for(t: &TestNode, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1500 {
        let s = t.get_ok("/v1/agent").await;
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("agent never {what}: {}", t.get_ok("/v1/agent").await);
}

/// The agent's state once it finished resuming its session.
async fn resumed(t: &TestNode) -> Value {
    wait_for(t, "resumed", |s| s["resuming"] == json!(false)).await
}

async fn command(t: &TestNode, name: &str, body: &str) -> (StatusCode, Value) {
    t.post(&format!("/v1/agent/{name}"), Some(t.admin_token()), body)
        .await
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("not a decimal string: {v}")),
    )
    .unwrap()
}

/// Cash implied by the ledger's fills: start cash, less each buy's
/// notional and fee, plus each sell's notional less its fee.
fn cash_from_fills(start: Decimal, trades: &[&Value]) -> Decimal {
    trades.iter().fold(start, |cash, b| {
        let p = &b["payload"];
        let notional = dec(&p["price"]) * dec(&p["quantity"]);
        assert_eq!(dec(&p["notional"]), notional, "{p}");
        match p["side"].as_str() {
            Some("buy") => cash - notional - dec(&p["fee"]),
            Some("sell") => cash + notional - dec(&p["fee"]),
            other => panic!("side {other:?} in {p}"),
        }
    })
}

async fn trades_to_ledger_then_kill_and_reset(backend: Backend) {
    let t = agent_node(backend).await;
    wait_for(&t, "filled 6 orders", |s| s["fills"].as_u64().unwrap() >= 6).await;
    let list = t.get_ok("/v1/agent/trades?limit=3").await;
    let fills = list["fills"].as_array().unwrap();
    assert_eq!(fills.len(), 3, "{list}");

    // Every listed fill is the trade block its index names.
    for fill in fills {
        // The agent writes a bar's blocks before it lets a reader in.
        let index = fill["block_index"]
            .as_u64()
            .expect("a listed fill's block is written");
        let block = t.get_ok(&format!("/v1/ledger/blocks/{index}")).await;
        assert_eq!(block["kind"], json!("trade"), "{block}");
        let p = &block["payload"];
        for key in [
            "order_id",
            "symbol",
            "side",
            "quantity",
            "price",
            "fee",
            "strategy",
            "market_time",
        ] {
            assert_eq!(p[key], fill[key], "{key}: {p} vs {fill}");
        }
        assert_eq!(p["mode"], json!("paper"));
        let purposes: &[&str] = if p["side"] == json!("buy") {
            &["entry"]
        } else {
            &["exit", "flatten"]
        };
        assert!(purposes.contains(&p["purpose"].as_str().unwrap()), "{p}");
        if p["side"] == json!("buy") {
            let s = &p["sizing"];
            assert!(s["fraction"].as_f64().unwrap() > 0.0, "{p}");
            assert!(s["confidence_level"].as_u64().unwrap() >= 2, "{p}");
        }
    }

    // The kill switch: flatten, BLACK, HALTED, recorded with the reason.
    let (status, killed) = command(&t, "kill", r#"{"reason":"drill: exchange incident"}"#).await;
    assert_eq!(status, StatusCode::OK, "{killed}");
    assert_eq!(killed["changed"], json!(true));
    let kill_block = killed["block_index"]
        .as_u64()
        .expect("the kill's block was written");
    assert_eq!(killed["status"]["emergency_level"], json!("BLACK"));
    assert_eq!(killed["status"]["trading_state"], json!("HALTED"));
    let flat = wait_for(&t, "flattened", |s| {
        s["open_positions"] == json!(0) && s["pending_blocks"] == json!(0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Nothing left to do: a second kill or a flatten changes nothing.
    for name in ["kill", "flatten"] {
        let (status, again) = command(&t, name, r#"{"reason":"again"}"#).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(
            (again["changed"].clone(), again["block_index"].clone()),
            (json!(false), Value::Null),
            "{name}: {again}"
        );
    }
    assert!(t
        .get_ok("/v1/agent/orders")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    assert!(t
        .get_ok("/v1/agent/positions")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    let flat_after = t.get_ok("/v1/agent").await;
    assert_eq!(flat_after["fills"], flat["fills"], "HALTED: no new fills");

    // The ledger's fills account for the agent's cash to the last digit.
    let blocks = t.all_blocks().await;
    let started = blocks
        .iter()
        .find(|b| {
            b["kind"] == json!("config") && b["payload"]["change"] == json!("trading agent started")
        })
        .expect("the agent's start is a config block");
    // The universe's 77 symbols, then one EPH lane per region.
    let symbols = started["payload"]["symbols"].as_array().unwrap();
    assert_eq!(symbols.len(), 77 + 6, "{symbols:?}");
    assert_eq!(symbols[77], json!("EPH-USD@Americas"));
    assert_eq!(symbols[82], json!("EPH-USD@Orbit"));
    let trades: Vec<&Value> = blocks
        .iter()
        .filter(|b| b["kind"] == json!("trade"))
        .collect();
    assert_eq!(trades.len() as u64, flat_after["fills"].as_u64().unwrap());
    let start_cash = dec(&started["payload"]["cash"]);
    assert_eq!(
        cash_from_fills(start_cash, &trades),
        dec(&flat_after["cash"])
    );
    assert_eq!(dec(&flat_after["equity"]), dec(&flat_after["cash"]));
    // The sells the kill caused are flattens, not strategy exits.
    let after_kill: Vec<&&Value> = trades
        .iter()
        .filter(|b| b["index"].as_u64().unwrap() > kill_block)
        .collect();
    assert!(
        after_kill
            .iter()
            .all(|b| b["payload"]["side"] == json!("sell")
                && b["payload"]["purpose"] == json!("flatten")),
        "{after_kill:?}"
    );
    let kill = &blocks[kill_block as usize];
    assert_eq!(kill["kind"], json!("risk"));
    assert_eq!(kill["payload"]["action"], json!("kill"));
    assert_eq!(kill["payload"]["reason"], json!("drill: exchange incident"));
    assert_eq!(kill["payload"]["after"]["emergency_level"], json!("BLACK"));
    assert!(
        blocks.iter().any(|b| b["kind"] == json!("risk")
            && b["payload"]["event"] == json!("emergency_level")
            && b["payload"]["to"] == json!("BLACK")),
        "the ladder's move to BLACK is a block"
    );

    // A reset needs a reason; without one nothing changes.
    for body in ["", r#"{"reason":"   "}"#, r#"{}"#] {
        let (status, e) = command(&t, "reset", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body:?}: {e}");
        assert_eq!(e["error"]["field"], json!("reason"), "{e}");
    }
    let (status, e) = command(&t, "reset", r#"{"reason": 5}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(
        t.get_ok("/v1/agent").await["emergency_level"],
        json!("BLACK")
    );
    let resets = |blocks: &[Value]| {
        blocks
            .iter()
            .filter(|b| b["payload"]["action"] == json!("reset"))
            .count()
    };
    assert_eq!(
        resets(&t.all_blocks().await),
        0,
        "a refused command writes nothing"
    );
    let (status, reset) = command(&t, "reset", r#"{"reason":"incident closed"}"#).await;
    assert_eq!(status, StatusCode::OK, "{reset}");
    assert_ne!(reset["status"]["emergency_level"], json!("BLACK"));
    assert_eq!(reset["status"]["trading_state"], json!("ACTIVE"));
    assert_eq!(resets(&t.all_blocks().await), 1);
    let (status, e) = command(&t, "reset", r#"{"reason":"again"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"]["code"], json!("invalid_transition"));

    // Pause is idempotent: the second changes nothing and writes nothing.
    let (_, paused) = command(&t, "pause", r#"{"reason":"news"}"#).await;
    assert_eq!(paused["changed"], json!(true), "{paused}");
    assert_eq!(paused["status"]["trading_state"], json!("REDUCING"));
    assert!(paused["block_index"].is_u64());
    let (_, again) = command(&t, "pause", r#"{"reason":"news"}"#).await;
    assert_eq!(again["changed"], json!(false), "{again}");
    assert!(again["block_index"].is_null());
    let (_, resumed) = command(&t, "resume", r#"{"reason":"news passed"}"#).await;
    assert_eq!(
        resumed["status"]["trading_state"],
        json!("ACTIVE"),
        "{resumed}"
    );

    let verify = t.get_ok("/v1/ledger/verify").await;
    assert_eq!(verify["ok"], json!(true), "{verify}");

    // The agent's own config block does not hide the policy record from
    // ISO 27001's evidence (the newest policy block names the policy).
    let mut iso = Value::Null;
    for _ in 0..200 {
        iso = t.get_ok("/v1/compliance").await["compliance"]["frameworks"]["ISO-27001"].clone();
        if !iso["compliant"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(iso["compliant"], json!(true), "{iso}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_fills_are_ledger_blocks_and_commands_are_recorded_sqlite() {
    trades_to_ledger_then_kill_and_reset(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_fills_are_ledger_blocks_and_commands_are_recorded_postgres() {
    trades_to_ledger_then_kill_and_reset(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_commands_refuse_bad_requests() {
    let t = agent_node(Backend::Sqlite).await;
    let (status, e) = t.post("/v1/agent/pause", None, r#"{"reason":"x"}"#).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
    let (status, e) = t
        .post(
            "/v1/agent/pause",
            Some(t.ingest_token()),
            r#"{"reason":"x"}"#,
        )
        .await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED,
        "{status} {e}"
    );
    let (status, e) = command(&t, "explode", r#"{"reason":"x"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    let (status, e) = command(&t, "pause", r#"{"reason":"x","extra":1}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let long = "x".repeat(1001);
    let (status, e) = command(&t, "pause", &format!(r#"{{"reason":"{long}"}}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (status, e) = command(&t, "pause", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(t.get_ok("/v1/agent").await["paused"], json!(false));
    let (status, e) = t.get("/v1/agent/trades?limit=0").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (status, e) = t.get("/v1/agent/trades?limit=5&x=1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");

    // The risk view states the limits in force and counts every reason.
    let risk = t.get_ok("/v1/agent/risk").await;
    assert_eq!(risk["limits"]["kelly_fraction"], json!(0.25));
    assert_eq!(risk["limits"]["daily_loss_limit"], json!("0.03"));
    // The universe's six tiers and the EPH tier.
    let tiers = risk["limits"]["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 7, "{risk}");
    assert_eq!(tiers[6]["tier"], json!(7));
    assert_eq!(tiers[6]["max_notional_per_order"], json!("1000"));
    assert_eq!(
        risk["limits"]["tiers"][0]["max_notional_per_order"],
        json!("50000")
    );
    assert_eq!(risk["denials"].as_array().unwrap().len(), 12);

    // Its gauges are on /metrics once it has traded a bar.
    wait_for(&t, "took a bar", |s| s["bars"].as_u64().unwrap() > 0).await;
    let (_, metrics) = t.get_text("/metrics").await;
    for series in [
        "qbtc_equity{mode=\"paper\"}",
        "qbtc_drawdown_ratio{mode=\"paper\"}",
        "qbtc_emergency_level{mode=\"paper\"} 0",
        "qbtc_trading_state{mode=\"paper\"} 0",
        "qbtc_decision_seconds_count",
    ] {
        assert!(metrics.contains(series), "{series} missing from\n{metrics}");
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_agent_its_routes_say_so_and_no_series_is_invented() {
    let t = TestNode::start(Backend::Sqlite).await;
    let (status, e) = t.get("/v1/agent").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(e["error"]["code"], json!("agent_disabled"));
    let (status, e) = command(&t, "kill", r#"{"reason":"x"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    let (_, metrics) = t.get_text("/metrics").await;
    assert!(!metrics.contains("qbtc_equity{"), "{metrics}");
    t.stop().await;
}

async fn resumes_its_session_across_a_restart(backend: Backend) {
    let mut t = agent_node(backend).await;
    wait_for(&t, "filled 10 orders", |s| {
        s["fills"].as_u64().unwrap() >= 10
    })
    .await;
    let (_, paused) = command(&t, "pause", r#"{"reason":"before maintenance"}"#).await;
    assert_eq!(paused["changed"], json!(true), "{paused}");
    let (_, killed) = command(&t, "kill", r#"{"reason":"maintenance"}"#).await;
    assert_eq!(killed["changed"], json!(true), "{killed}");
    let before = wait_for(&t, "flattened", |s| {
        s["open_positions"] == json!(0) && s["pending_blocks"] == json!(0)
    })
    .await;
    t.stop_only().await;
    // What the ledger holds once the node stopped.
    t.restart_with(|c| c.agent.enabled = false).await;
    let blocks = t.all_blocks().await;
    t.stop_only().await;
    let trail = blocks
        .iter()
        .filter(|b| b["kind"] == json!("trade") || b["kind"] == json!("risk"))
        .count() as u64;
    let session = blocks
        .iter()
        .rev()
        .find(|b| b["payload"]["change"] == json!("trading agent started"))
        .unwrap()["index"]
        .as_u64()
        .unwrap();

    // Same settings (a different bar interval is allowed): the session
    // resumes where it stopped, every trail block reconciled.
    t.restart_with(|c| {
        c.agent.enabled = true;
        c.agent.bar_interval_ms = 7;
    })
    .await;
    let s = resumed(&t).await;
    assert_eq!(s["refused"], Value::Null, "{s}");
    assert_eq!(s["session_block"], json!(session), "{s}");
    assert_eq!(s["resumed"]["blocks"], json!(trail), "{s}");
    for key in [
        "cash",
        "fills",
        "trades_closed",
        "paused",
        "emergency_level",
        "trading_state",
        "fees_paid",
    ] {
        assert_eq!(
            s[key], before[key],
            "{key} after the restart: {s}\nbefore: {before}"
        );
    }
    assert_eq!(s["emergency_level"], json!("BLACK"));
    let trades: Vec<&Value> = blocks
        .iter()
        .filter(|b| b["kind"] == json!("trade"))
        .collect();
    let start_cash = dec(&blocks[session as usize]["payload"]["cash"]);
    assert_eq!(dec(&s["cash"]), cash_from_fills(start_cash, &trades));

    // It goes on trading from there.
    for (name, reason) in [("reset", "maintenance over"), ("resume", "trading again")] {
        let (status, answer) = command(&t, name, &format!(r#"{{"reason":"{reason}"}}"#)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let fills = before["fills"].as_u64().unwrap();
    wait_for(&t, "traded again", |s| s["fills"].as_u64().unwrap() > fills).await;

    // A different cash is a different session: a new start block names the
    // old one and what changed, and trading starts again from the new cash.
    t.restart_with(|c| c.agent.cash = qunimbus_node::config::DecimalSetting("5000".into()))
        .await;
    let s = resumed(&t).await;
    let new_session = s["session_block"]
        .as_u64()
        .expect("the new session's block is written");
    assert!(new_session > session, "{s}");
    let block = t.get_ok(&format!("/v1/ledger/blocks/{new_session}")).await;
    assert_eq!(
        block["payload"]["previous_session"]["block"],
        json!(session),
        "{block}"
    );
    assert_eq!(
        block["payload"]["previous_session"]["changed"],
        json!(["cash"]),
        "{block}"
    );
    assert_eq!(block["payload"]["cash"], json!("5000"));
    assert!(s["resumed"].is_null(), "{s}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_resumes_its_session_across_a_restart_sqlite() {
    resumes_its_session_across_a_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_resumes_its_session_across_a_restart_postgres() {
    resumes_its_session_across_a_restart(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_fill_on_the_ledger_makes_the_resumed_agent_refuse_to_trade() {
    use sqlx::Connection;
    let mut t = agent_node(Backend::Sqlite).await;
    wait_for(&t, "filled 6 orders", |s| s["fills"].as_u64().unwrap() >= 6).await;
    t.stop_only().await;
    let db = format!("sqlite:{}", t.data_dir().join("qunimbus.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
    let (index, payload): (i64, String) = sqlx::query_as(
        "SELECT idx, payload FROM blocks WHERE kind = 'trade' ORDER BY idx LIMIT 1 OFFSET 2",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let mut fill: Value = serde_json::from_str(&payload).unwrap();
    fill["quantity"] = json!(format!("{}1", fill["quantity"].as_str().unwrap()));
    sqlx::query("UPDATE blocks SET payload = $1 WHERE idx = $2")
        .bind(fill.to_string())
        .bind(index)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    t.restart().await;
    let s = resumed(&t).await;
    let why = s["refused"]
        .as_str()
        .unwrap_or_else(|| panic!("the agent trades: {s}"));
    assert!(
        why.contains(&format!("ledger block {index} (trade)")),
        "{why}"
    );
    let fills = s["fills"].clone();
    let (status, e) = command(&t, "resume", r#"{"reason":"try anyway"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"]["code"], json!("agent_refused"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        t.get_ok("/v1/agent").await["fills"],
        fills,
        "a refusing agent does not trade"
    );
    t.stop().await;
}

async fn reload(t: &TestNode, body: &str) -> (StatusCode, Value) {
    t.send(
        reqwest::Method::PUT,
        "/v1/agent/config",
        Some(t.admin_token()),
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_limits_on_the_ledger_and_survives_a_restart() {
    let mut t = agent_node(Backend::Sqlite).await;
    wait_for(&t, "filled 4 orders", |s| s["fills"].as_u64().unwrap() >= 4).await;
    // Refused reloads name the problem and change nothing.
    for (body, field) in [
        (r#"{"settings":{"daily_loss_limit":0.02}}"#, "reason"),
        (r#"{"reason":"x","settings":{"bogus":1}}"#, "agent.bogus"),
        (r#"{"reason":"x","settings":{"cash":"5"}}"#, "agent.cash"),
        (
            r#"{"reason":"x","settings":{"red_drawdown":0.05}}"#,
            "agent.red_drawdown",
        ),
        (
            r#"{"reason":"x","settings":{"orders_per_second":"fast"}}"#,
            "agent.orders_per_second",
        ),
        (r#"{"reason":"x","settings":[]}"#, "settings"),
        (r#"{"reason":"x","settings":{},"more":1}"#, "more"),
    ] {
        let (status, e) = reload(&t, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {e}");
        assert_eq!(e["error"]["field"], json!(field), "{body}: {e}");
    }
    let (_, e) = reload(&t, r#"{"reason":"x","settings":{"cash":"5"}}"#).await;
    assert!(
        e["error"]["message"].as_str().unwrap().contains("restart"),
        "{e}"
    );
    let risk = t.get_ok("/v1/agent/risk").await;
    assert_eq!(risk["limits"]["daily_loss_limit"], json!("0.03"));

    let body = r#"{"reason":"tighter for the news","settings":{"daily_loss_limit":0.02,"orders_per_second":2}}"#;
    let (status, done) = reload(&t, body).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["changed"], json!(true));
    let index = done["block_index"].as_u64().expect("the reload's block");
    let block = t.get_ok(&format!("/v1/ledger/blocks/{index}")).await;
    assert_eq!(block["kind"], json!("config"));
    assert_eq!(block["payload"]["reason"], json!("tighter for the news"));
    assert_eq!(
        block["payload"]["changed"],
        json!({"daily_loss_limit": {"from": 0.03, "to": 0.02}, "orders_per_second": {"from": 5, "to": 2}})
    );
    let risk = t.get_ok("/v1/agent/risk").await;
    assert_eq!(risk["limits"]["daily_loss_limit"], json!("0.02"));
    assert_eq!(risk["limits"]["orders_per_second"], json!(2));
    let (_, again) = reload(&t, body).await;
    assert_eq!(again["changed"], json!(false), "{again}");
    let (_, metrics) = t.get_text("/metrics").await;
    assert!(
        metrics.contains("qbtc_daily_loss_limit_ratio{mode=\"paper\"} 0.02"),
        "{metrics}"
    );
    // Many reloads (more config blocks than any fixed look-back): the
    // session's start block is still found at restart.
    for i in 0..70 {
        let limit = if i % 2 == 0 { 0.021 } else { 0.02 };
        let body = format!(r#"{{"reason":"churn {i}","settings":{{"daily_loss_limit":{limit}}}}}"#);
        let (status, answer) = reload(&t, &body).await;
        assert_eq!(
            (status, answer["changed"].clone()),
            (StatusCode::OK, json!(true)),
            "{answer}"
        );
    }
    let session = t.get_ok("/v1/agent").await["session_block"].clone();

    // The file unchanged: the session resumes and replays the reloads.
    t.restart().await;
    let s = resumed(&t).await;
    assert_eq!(
        (s["refused"].clone(), s["session_block"].clone()),
        (Value::Null, session.clone()),
        "{s}"
    );
    assert_eq!(
        t.get_ok("/v1/agent/risk").await["limits"]["daily_loss_limit"],
        json!("0.02")
    );
    // The file brought up to the reload: the same session still.
    t.restart_with(|c| {
        c.agent.daily_loss_limit = 0.02;
        c.agent.orders_per_second = 2;
    })
    .await;
    let s = resumed(&t).await;
    assert_eq!(
        (s["refused"].clone(), s["session_block"].clone()),
        (Value::Null, session),
        "{s}"
    );
    assert_eq!(
        t.get_ok("/v1/agent/risk").await["limits"]["orders_per_second"],
        json!(2)
    );
    t.stop().await;
}
