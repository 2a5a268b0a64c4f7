//! The agent's `EPH-USD` lanes (SPEC §8): the agent reads the node's own
//! feed as a registered partner over the WebSocket path, acks like any
//! partner, trades each region's EPH price on paper at the prices the
//! feed delivered, records its bars, and resumes on them after a restart;
//! a recording changed offline makes the resumed agent refuse to trade.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use qunimbus_node::config::{Config, StrategySetting};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use support::{Backend, TestNode};

fn eph_settings(c: &mut Config) {
    c.agent.enabled = true;
    c.agent.bar_interval_ms = 5;
    c.agent.symbols = vec!["BTCUSDT".into()];
    c.agent.eph.regions = vec!["eu".into()];
    c.agent.eph.strategy = StrategySetting {
        name: "sma_cross".into(),
        params: BTreeMap::from([
            ("fast".to_string(), toml::Value::Integer(2)),
            ("slow".to_string(), toml::Value::Integer(3)),
        ]),
    };
}

/// A run in the EU whose EPH price rises for three runs, then falls for three.
fn swinging_run(i: usize) -> Value {
    let up = (i / 3).is_multiple_of(2);
    json!({
        "run_id": format!("eph-{i}"),
        "region": "EU",
        "eta_ent": if up { 0.80 + 0.05 * (i % 3) as f64 } else { 0.95 - 0.05 * (i % 3) as f64 },
        "coherence_variance": 0.01,
        "runtime_hours": 2.0,
        "eph_delivered": 100.0,
    })
}

async fn wait_for(t: &TestNode, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1500 {
        let s = t.get_ok(path).await;
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never {what}: {}", t.get_ok(path).await);
}

fn eph_fills(list: &Value) -> Vec<Value> {
    list["fills"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["symbol"] == json!("EPH-USD@EU"))
        .cloned()
        .collect()
}

/// The EU's EPH prices as the node valued them.
async fn eu_prices(t: &TestNode) -> Vec<Decimal> {
    let list = t.get_ok("/v1/valuations?region=EU&limit=1000").await;
    list["valuations"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {list}"))
        .iter()
        .map(|v| Decimal::from_str(&v["eph_price"].to_string()).unwrap())
        .collect()
}

fn recording(t: &TestNode) -> std::path::PathBuf {
    let dir = std::fs::read_dir(t.data_dir().join("agent"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("eph-"))
        .expect("a recording directory");
    dir.join("EPH-USD@EU.csv")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_trades_eph_from_its_own_feed_connection_and_resumes_on_its_recording() {
    let mut t = TestNode::start_with(Backend::Sqlite, eph_settings).await;

    // A real partner connection: registered, connected, acking.
    let s = wait_for(&t, "/v1/agent", "registered its partner", |s| {
        s["eph_feed"]["partner_id"].is_string()
    })
    .await;
    assert_eq!(s["eph_feed"]["regions"], json!(["EU"]), "{s}");
    assert_eq!(s["eph_feed"]["partner_region"], json!("Americas"), "{s}");
    let (_, partners) = t
        .send(
            reqwest::Method::GET,
            "/v1/partners",
            Some(t.admin_token()),
            "",
        )
        .await;
    assert!(
        partners.to_string().contains("qbtc-agent"),
        "the agent's partner is listed: {partners}"
    );
    wait_for(&t, "/v1/market/status", "saw the agent connected", |m| {
        m["partners_connected"] == json!(1) && m["connected"][0]["name"] == json!("qbtc-agent")
    })
    .await;

    // Prices swing; the EPH lane's SMA crosses and the agent trades it.
    let mut i = 0;
    while eph_fills(&t.get_ok("/v1/agent/trades?limit=1000").await).len() < 2 {
        assert!(
            i < 1200,
            "no EPH fills after {i} runs: {}",
            t.get_ok("/v1/agent").await
        );
        t.ingest_new(&swinging_run(i)).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
    let runs = i as u64;
    let s = wait_for(&t, "/v1/agent", "priced every run", |s| {
        s["eph_feed"]["valuations_priced"] == json!(runs)
    })
    .await;
    assert_eq!(s["eph_feed"]["valuations_received"], json!(runs), "{s}");
    assert_eq!(s["eph_feed"]["valuations_ignored"], json!(0), "{s}");
    assert_eq!(s["eph_feed"]["connected"], json!(true), "{s}");
    assert_eq!(s["eph_feed"]["error"], Value::Null, "{s}");
    let market = wait_for(&t, "/v1/market/status", "measured the agent's acks", |m| {
        m["latency"]["overall"]["count"].as_u64() >= Some(runs)
    })
    .await;
    assert_eq!(market["connected"][0]["name"], json!("qbtc-agent"));

    // Every EPH fill is at an EPH price the node valued in the EU, rounded
    // to the tick against the trader.
    let prices = eu_prices(&t).await;
    let tick = Decimal::new(1, 6);
    let fills = eph_fills(&t.get_ok("/v1/agent/trades?limit=1000").await);
    for fill in &fills {
        let price = Decimal::from_str(fill["price"].as_str().unwrap()).unwrap();
        assert!(
            prices.iter().any(|p| (*p - price).abs() < tick),
            "fill {fill} is at no EU price {prices:?}"
        );
        let index = fill["block_index"].as_u64().unwrap();
        let block = t.get_ok(&format!("/v1/ledger/blocks/{index}")).await;
        assert_eq!(block["payload"]["symbol"], json!("EPH-USD@EU"), "{block}");
    }

    // The recording holds each bar the lane stepped, as Binance klines.
    let path = recording(&t);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 12, "{line}");
        for price in &fields[1..5] {
            let p = Decimal::from_str(price).unwrap();
            assert!(
                prices.iter().any(|q| (*q - p).abs() < Decimal::new(1, 9)),
                "{line}"
            );
        }
    }

    // A restart replays the session on the recorded bars and trades on.
    let before = wait_for(&t, "/v1/agent", "wrote every block", |s| {
        s["pending_blocks"] == json!(0)
    })
    .await;
    t.stop_only().await;
    let fills_before = before["fills"].as_u64().unwrap();
    t.restart().await;
    let s = wait_for(&t, "/v1/agent", "resumed", |s| {
        s["resuming"] == json!(false)
    })
    .await;
    assert_eq!(s["refused"], Value::Null, "{s}");
    assert!(s["fills"].as_u64().unwrap() >= fills_before, "{s}");
    assert!(s["resumed"]["blocks"].as_u64().unwrap() > 0, "{s}");
    wait_for(&t, "/v1/agent", "reconnected", |s| {
        s["eph_feed"]["partner_id"] == before["eph_feed"]["partner_id"]
    })
    .await;
    wait_for(&t, "/v1/market/status", "saw the agent reconnect", |m| {
        m["partners_connected"] == json!(1)
    })
    .await;
    t.stop_only().await;

    // The open of the bar the first EPH fill was priced at, raised 1 %
    // offline: the replay cannot reproduce that fill, and says so.
    let first = &fills[0];
    let at = chrono::DateTime::parse_from_rfc3339(first["market_time"].as_str().unwrap())
        .unwrap()
        .timestamp_micros();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut changed = false;
    let edited: Vec<String> = text
        .lines()
        .map(|line| {
            let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
            if fields[0] == at.to_string() {
                let open: f64 = fields[1].parse::<f64>().unwrap() * 1.01;
                let high: f64 = fields[2].parse().unwrap();
                fields[1] = open.to_string();
                fields[2] = high.max(open).to_string();
                changed = true;
            }
            fields.join(",")
        })
        .collect();
    assert!(changed, "no recorded bar at {at} µs for {first}");
    std::fs::write(&path, edited.join("\n") + "\n").unwrap();
    t.restart().await;
    let s = wait_for(&t, "/v1/agent", "resumed", |s| {
        s["resuming"] == json!(false)
    })
    .await;
    let why = s["refused"]
        .as_str()
        .unwrap_or_else(|| panic!("the agent trades on a changed recording: {s}"));
    let index = first["block_index"].as_u64().unwrap();
    assert!(
        why.contains(&format!("ledger block {index} (trade)")),
        "{why}"
    );

    // An operator disables the agent's partner: the connection ends, and
    // the status says so (it does not go on claiming a feed).
    let id = s["eph_feed"]["partner_id"].as_str().unwrap().to_string();
    let (status, e) = t
        .post(
            &format!("/v1/partners/{id}/disable"),
            Some(t.admin_token()),
            "",
        )
        .await;
    assert!(status.is_success(), "{e}");
    let s = wait_for(&t, "/v1/agent", "saw the feed end", |s| {
        s["eph_feed"]["connected"] == json!(false) && s["eph_feed"]["error"].is_string()
    })
    .await;
    assert!(
        s["eph_feed"]["error"].as_str().unwrap().contains("40"),
        "{s}"
    );
    t.stop().await;
}
