//! The ledger HTTP API end to end (SPEC §4), every scenario on SQLite and on
//! a fresh PostgreSQL schema: summary, blocks, errors, attestations, inclusion
//! and consistency proofs checked against signed checkpoints, online
//! verification, the Grafana export and the C2SP tlog-tiles read side.

#[macro_use]
mod support;

use qunimbus_ledger::checkpoint::NoteVerifier;
use qunimbus_ledger::merkle::{verify_consistency, verify_inclusion, Hash};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{
    b64_hash, b64_hashes, reference_run, rfc6962_leaf, rfc6962_root, varied_run, Backend, Note,
    TestNode, REFERENCE_PHI,
};

const FRAMEWORKS: [&str; 6] = [
    "DO-178C",
    "NIST-800-53",
    "CMMC-2.0",
    "ISO-27001",
    "ITAR",
    "GDPR",
];

const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `{framework: status}` for every default framework.
fn all_frameworks(status: &str) -> Value {
    Value::Object(
        FRAMEWORKS
            .iter()
            .map(|f| (f.to_string(), json!(status)))
            .collect(),
    )
}

/// Asserts a JSON error body `{"error": {"code", "message", "field"?}}`.
fn assert_error(
    what: &str,
    status: StatusCode,
    body: &Value,
    want: StatusCode,
    field: Option<&str>,
) {
    assert_eq!(status, want, "{what}: {body}");
    let error = &body["error"];
    assert!(
        error["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: no error code in {body}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no error message in {body}"
    );
    if let Some(field) = field {
        assert_eq!(error["field"], json!(field), "{what}: {body}");
    }
}

/// The Merkle leaf input of a block: its JCS bytes (including `hash`).
fn leaf_of(block: &Value) -> Hash {
    let bytes = qunimbus_ledger::jcs::canonicalize(block).unwrap();
    rfc6962_leaf(&bytes)
}

/// JSON equality that compares numbers by value (`100` == `100.0`).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

// ---- summary and blocks -------------------------------------------------------

async fn summary_and_blocks(backend: Backend) {
    let t = TestNode::start(backend).await;

    // A new ledger holds the genesis block and the config block recording
    // the compliance policy in force.
    let summary = t.get_ok("/v1/ledger").await;
    assert_eq!(summary["chain_length"], json!(2), "{summary}");
    let config = t.get_ok("/v1/ledger/blocks/1").await;
    assert_eq!(config["kind"], json!("config"), "{config}");
    assert_eq!(summary["latest_hash"], config["hash"], "{summary}");
    assert_eq!(summary["latest_phi_qevf"], Value::Null, "{summary}");
    assert_eq!(summary["compliance_frameworks"], json!(FRAMEWORKS));
    let (_, vkey) = t.get_text("/v1/ledger/public-key").await;
    assert_eq!(summary["public_key"], json!(vkey.trim()));
    let origin = summary["origin"].as_str().unwrap().to_string();
    assert!(vkey.starts_with(&format!("{origin}+")), "{vkey} / {origin}");

    let genesis = t.get_ok("/v1/ledger/blocks/0").await;
    assert_eq!(genesis["index"], json!(0));
    assert_eq!(genesis["kind"], json!("genesis"));
    assert_eq!(genesis["previous_hash"], json!(ZERO_HASH));
    assert_eq!(genesis["phi_qevf"], Value::Null);
    assert_eq!(genesis["eta_ent"], Value::Null);
    assert_eq!(
        genesis["compliance_attestations"],
        all_frameworks("genesis")
    );
    for absent in ["run_id", "region", "payload"] {
        assert!(genesis.get(absent).is_none(), "{genesis}");
    }
    assert_eq!(genesis["hash"], summary["genesis_hash"]);

    // One valuation block per accepted run.
    let reference = t.ingest_new(&reference_run("ref-1")).await;
    assert_eq!(reference["phi_qevf"].as_f64(), Some(REFERENCE_PHI));
    assert_eq!(reference["block_index"], json!(2));
    let mut accepted = vec![reference];
    for i in 0..3 {
        accepted.push(t.ingest_new(&varied_run(&format!("v-{i}"), i)).await);
    }
    let length_before_replay = t.chain_length().await;
    assert_eq!(length_before_replay, 6);

    // A replayed run_id (even with other numbers) adds no block.
    let mut replay = reference_run("ref-1");
    replay["eta_ent"] = json!(0.5);
    let (status, again) = t.ingest(&replay).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, accepted[0]);
    let batch_replay = t
        .post(
            "/v1/telemetry/batch",
            Some(t.ingest_token()),
            &json!([varied_run("v-0", 0), varied_run("v-1", 1)]).to_string(),
        )
        .await;
    assert_eq!(batch_replay.0, StatusCode::OK, "{}", batch_replay.1);
    assert_eq!(batch_replay.1["duplicates"], json!(2));
    assert_eq!(t.chain_length().await, 6, "replays must not add blocks");

    let blocks = t.all_blocks().await;
    assert_eq!(blocks.len(), 6);
    let summary = t.get_ok("/v1/ledger").await;
    assert_eq!(summary["chain_length"], json!(6));
    assert_eq!(summary["genesis_hash"], blocks[0]["hash"]);
    assert_eq!(summary["latest_hash"], blocks[5]["hash"]);
    let last = accepted.last().unwrap();
    assert_eq!(
        summary["latest_phi_qevf"].as_f64(),
        last["phi_qevf"].as_f64()
    );
    assert_eq!(summary["latest_eta_ent"].as_f64(), last["eta_ent"].as_f64());
    assert_eq!(
        summary["latest_valuation_timestamp"],
        blocks[5]["timestamp"]
    );

    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(block["index"], json!(i));
        assert_eq!(t.get_ok(&format!("/v1/ledger/blocks/{i}")).await, *block);
        if i > 0 {
            assert_eq!(block["previous_hash"], blocks[i - 1]["hash"], "block {i}");
        }
    }
    for run in &accepted {
        let i = run["block_index"].as_u64().unwrap() as usize;
        let block = &blocks[i];
        assert_eq!(block["kind"], json!("valuation"), "{block}");
        assert_eq!(block["run_id"], run["run_id"]);
        assert_eq!(block["region"], run["region"]);
        assert_eq!(block["phi_qevf"].as_f64(), run["phi_qevf"].as_f64());
        assert_eq!(block["eta_ent"].as_f64(), run["eta_ent"].as_f64());
        // The run passed the ITAR and GDPR policy rules; nothing here
        // evidences the other frameworks per run.
        let mut expected = all_frameworks("pending");
        expected["ITAR"] = json!("verified");
        expected["GDPR"] = json!("verified");
        assert_eq!(block["compliance_attestations"], expected);
        assert_eq!(
            block["timestamp"], run["accepted_at"],
            "the block is stamped with the run's acceptance time"
        );
        let payload = &block["payload"];
        for key in [
            "coherence_variance",
            "runtime_hours",
            "eph_delivered",
            "market_value",
            "eph_price",
            "price_multiplier",
        ] {
            assert_eq!(payload[key].as_f64(), run[key].as_f64(), "{key} in {block}");
        }
        assert_eq!(payload["data_class"], json!("public"));
    }
    assert_eq!(blocks[2]["phi_qevf"].as_f64(), Some(REFERENCE_PHI));

    // Pages.
    let page = t.get_ok("/v1/ledger/blocks?from=2&limit=2").await;
    assert_eq!(page["from"], json!(2));
    assert_eq!(page["count"], json!(2));
    assert_eq!(page["blocks"], json!([blocks[2], blocks[3]]));
    let page = t.get_ok("/v1/ledger/blocks").await;
    assert_eq!(page["count"], json!(6));
    assert_eq!(page["blocks"], json!(blocks));
    let page = t.get_ok("/v1/ledger/blocks?from=5&limit=1000").await;
    assert_eq!(page["blocks"], json!([blocks[5]]));
    let page = t.get_ok("/v1/ledger/blocks?from=6").await;
    assert_eq!(page["count"], json!(0));
    assert_eq!(page["blocks"], json!([]));

    // Bad indexes and parameters: JSON errors naming the field, no change.
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let cases: Vec<(&str, StatusCode, Option<&str>)> = vec![
        ("/v1/ledger/blocks/6", StatusCode::NOT_FOUND, Some("index")),
        (
            "/v1/ledger/blocks/99999",
            StatusCode::NOT_FOUND,
            Some("index"),
        ),
        ("/v1/ledger/blocks/abc", unprocessable, Some("index")),
        ("/v1/ledger/blocks/-1", unprocessable, Some("index")),
        ("/v1/ledger/blocks/1.5", unprocessable, Some("index")),
        ("/v1/ledger/blocks?limit=0", unprocessable, Some("limit")),
        ("/v1/ledger/blocks?limit=1001", unprocessable, Some("limit")),
        ("/v1/ledger/blocks?limit=ten", unprocessable, Some("limit")),
        ("/v1/ledger/blocks?from=-1", unprocessable, Some("from")),
        ("/v1/ledger/blocks?from=x", unprocessable, Some("from")),
        ("/v1/ledger/blocks?size=3", unprocessable, Some("size")),
        ("/v1/ledger/proof/inclusion", unprocessable, Some("index")),
        (
            "/v1/ledger/proof/inclusion?index=5&tree_size=5",
            unprocessable,
            Some("index"),
        ),
        (
            "/v1/ledger/proof/inclusion?index=0&tree_size=0",
            unprocessable,
            Some("tree_size"),
        ),
        (
            "/v1/ledger/proof/inclusion?index=0&tree_size=99",
            unprocessable,
            None,
        ),
        (
            "/v1/ledger/proof/inclusion?index=x",
            unprocessable,
            Some("index"),
        ),
        ("/v1/ledger/proof/consistency", unprocessable, Some("first")),
        (
            "/v1/ledger/proof/consistency?first=0&second=3",
            unprocessable,
            Some("first"),
        ),
        (
            "/v1/ledger/proof/consistency?first=3&second=2",
            unprocessable,
            Some("first"),
        ),
        (
            "/v1/ledger/proof/consistency?first=1&second=99",
            unprocessable,
            None,
        ),
        (
            "/v1/ledger/export/grafana?limit=0",
            unprocessable,
            Some("limit"),
        ),
        (
            "/v1/ledger/attestations/SOX",
            StatusCode::NOT_FOUND,
            Some("framework"),
        ),
    ];
    for (path, want, field) in cases {
        let (status, body) = t.get(path).await;
        assert_error(path, status, &body, want, field);
    }
    assert_eq!(t.all_blocks().await, blocks, "bad requests change nothing");
    t.stop().await;
}
on_both_backends!(summary_and_blocks);

// ---- attestations ---------------------------------------------------------------

async fn attestations(backend: Backend) {
    let t = TestNode::start(backend).await;
    let path = "/v1/ledger/attestations";
    let body = r#"{"ITAR":"verified","GDPR":"failed"}"#;

    let (status, err) = t.post(path, None, body).await;
    assert_error("no token", status, &err, StatusCode::UNAUTHORIZED, None);
    let (status, err) = t.post(path, Some("not-a-token"), body).await;
    assert_error("bad token", status, &err, StatusCode::UNAUTHORIZED, None);
    let (status, err) = t.post(path, Some(t.ingest_token()), body).await;
    assert_error("ingest token", status, &err, StatusCode::FORBIDDEN, None);

    let admin = Some(t.admin_token());
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let invalid: Vec<(&str, Option<&str>)> = vec![
        (r#"{"SOX":"verified"}"#, Some("SOX")),
        (r#"{"ITAR":"verified","SOX":"failed"}"#, Some("SOX")),
        (r#"{"ITAR":"maybe"}"#, Some("ITAR")),
        (r#"{"GDPR":"Verified"}"#, Some("GDPR")),
        (r#"{"ITAR":"genesis"}"#, Some("ITAR")),
        (r#"{"ITAR":5}"#, Some("ITAR")),
        (r#"{"ITAR":null}"#, Some("ITAR")),
        (r#"{}"#, None),
    ];
    for (bad, field) in invalid {
        let (status, err) = t.post(path, admin, bad).await;
        assert_error(bad, status, &err, unprocessable, field);
    }
    let (status, err) = t.post(path, admin, "{not json").await;
    assert_error("malformed", status, &err, StatusCode::BAD_REQUEST, None);
    assert_eq!(
        t.chain_length().await,
        2,
        "rejected attestations add nothing"
    );

    let config = t.get_ok("/v1/ledger/blocks/1").await;
    let (status, first) = t.post(path, admin, body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["index"], json!(2));
    assert_eq!(first["kind"], json!("attestation"));
    assert_eq!(
        first["compliance_attestations"],
        json!({"GDPR": "failed", "ITAR": "verified"}),
        "exactly the given statuses"
    );
    assert_eq!(first["phi_qevf"], Value::Null);
    assert_eq!(first["eta_ent"], Value::Null);
    assert_eq!(first["previous_hash"], config["hash"]);
    for absent in ["run_id", "region", "payload"] {
        assert!(first.get(absent).is_none(), "{first}");
    }
    assert_eq!(t.get_ok("/v1/ledger/blocks/2").await, first);

    let run = t.ingest_new(&reference_run("att-run")).await;
    assert_eq!(run["block_index"], json!(3));
    let (status, second) = t
        .post(path, admin, r#"{"ITAR":"waived","ISO-27001":"pending"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["index"], json!(4));
    assert_eq!(
        second["compliance_attestations"],
        json!({"ISO-27001": "pending", "ITAR": "waived"})
    );

    // History per framework, newest first, attestation blocks only.
    let itar = t.get_ok("/v1/ledger/attestations/ITAR").await;
    assert_eq!(itar["framework"], json!("ITAR"));
    assert_eq!(itar["count"], json!(2), "{itar}");
    let expect = |block: &Value, status: &str| json!({"index": block["index"], "timestamp": block["timestamp"], "status": status, "hash": block["hash"]});
    assert_eq!(
        itar["history"],
        json!([expect(&second, "waived"), expect(&first, "verified")])
    );
    let gdpr = t.get_ok("/v1/ledger/attestations/GDPR").await;
    assert_eq!(gdpr["history"], json!([expect(&first, "failed")]));
    let iso = t.get_ok("/v1/ledger/attestations/ISO-27001").await;
    assert_eq!(iso["history"], json!([expect(&second, "pending")]));
    let none = t.get_ok("/v1/ledger/attestations/DO-178C").await;
    assert_eq!(none["count"], json!(0));
    assert_eq!(none["history"], json!([]));

    // The summary's phi is the latest valuation's, not the latest block's.
    let summary = t.get_ok("/v1/ledger").await;
    assert_eq!(summary["chain_length"], json!(5));
    assert_eq!(summary["latest_hash"], second["hash"]);
    assert_eq!(summary["latest_phi_qevf"].as_f64(), Some(REFERENCE_PHI));
    t.stop().await;
}
on_both_backends!(attestations);

// ---- proofs, checkpoints and verification ---------------------------------------------

async fn proofs_and_verification(backend: Backend) {
    let t = TestNode::start(backend).await;
    let verifier = NoteVerifier::from_vkey(t.get_text("/v1/ledger/public-key").await.1.trim())
        .expect("the public key is a note verifier key");
    let origin = t.get_ok("/v1/ledger").await["origin"]
        .as_str()
        .unwrap()
        .to_string();

    // Checkpoints at sizes 2 (genesis + config), 4, 8 (powers of two), 13 and 33.
    let mut notes: Vec<Note> = vec![t.wait_for_checkpoint(2).await];
    for (prefix, count) in [("a", 2), ("b", 4), ("c", 5), ("d", 20)] {
        notes.push(t.grow(prefix, count).await);
    }
    let sizes: Vec<u64> = notes.iter().map(|n| n.size).collect();
    assert_eq!(sizes, [2, 4, 8, 13, 33]);

    let blocks = t.all_blocks().await;
    let leaves: Vec<Hash> = blocks.iter().map(leaf_of).collect();
    for note in &notes {
        assert_eq!(note.origin, origin);
        let signed = verifier
            .verify_checkpoint(&note.text)
            .unwrap_or_else(|e| panic!("checkpoint {} does not verify: {e}", note.size));
        assert_eq!((signed.size, signed.root), (note.size, note.root));
        assert_eq!(
            note.root,
            rfc6962_root(&leaves[..note.size as usize]),
            "the signed root of size {} is the RFC 6962 root of the first blocks",
            note.size
        );
    }
    let latest = notes.last().unwrap();

    // Inclusion of every block at the latest checkpoint (default tree size),
    // and of every block of every older checkpoint at that checkpoint's size.
    for i in 0..latest.size {
        let proof = t
            .get_ok(&format!("/v1/ledger/proof/inclusion?index={i}"))
            .await;
        assert_eq!(proof["index"], json!(i));
        assert_eq!(proof["tree_size"], json!(latest.size));
        assert_eq!(b64_hash(&proof["root_hash"]), latest.root);
        let leaf = b64_hash(&proof["leaf_hash"]);
        assert_eq!(leaf, leaves[i as usize], "leaf hash of block {i}");
        let hashes = b64_hashes(&proof["hashes"]);
        verify_inclusion(i, latest.size, &leaf, &hashes, &latest.root)
            .unwrap_or_else(|e| panic!("inclusion of {i} in {}: {e}", latest.size));
        let other = leaves[((i + 1) % latest.size) as usize];
        assert!(
            verify_inclusion(i, latest.size, &other, &hashes, &latest.root).is_err(),
            "the proof of {i} must not prove another leaf"
        );
    }
    for note in &notes[..notes.len() - 1] {
        for i in 0..note.size {
            let proof = t
                .get_ok(&format!(
                    "/v1/ledger/proof/inclusion?index={i}&tree_size={}",
                    note.size
                ))
                .await;
            assert_eq!(b64_hash(&proof["root_hash"]), note.root);
            verify_inclusion(
                i,
                note.size,
                &leaves[i as usize],
                &b64_hashes(&proof["hashes"]),
                &note.root,
            )
            .unwrap_or_else(|e| panic!("inclusion of {i} in {}: {e}", note.size));
        }
    }

    // Consistency between every pair of signed sizes (and a size with itself).
    for (a, first) in notes.iter().enumerate() {
        for second in &notes[a..] {
            let proof = t
                .get_ok(&format!(
                    "/v1/ledger/proof/consistency?first={}&second={}",
                    first.size, second.size
                ))
                .await;
            assert_eq!(b64_hash(&proof["first_root"]), first.root);
            assert_eq!(b64_hash(&proof["second_root"]), second.root);
            let hashes = b64_hashes(&proof["hashes"]);
            verify_consistency(first.size, second.size, &first.root, &second.root, &hashes)
                .unwrap_or_else(|e| panic!("consistency {} -> {}: {e}", first.size, second.size));
            if first.size != second.size {
                assert!(
                    verify_consistency(first.size, second.size, &second.root, &first.root, &hashes)
                        .is_err(),
                    "swapped roots must not verify"
                );
            }
        }
    }
    let by_default = t.get_ok("/v1/ledger/proof/consistency?first=4").await;
    assert_eq!(by_default["second"], json!(latest.size));
    verify_consistency(
        4,
        latest.size,
        &notes[1].root,
        &latest.root,
        &b64_hashes(&by_default["hashes"]),
    )
    .unwrap();

    // Online verification.
    let report = t.get_ok("/v1/ledger/verify").await;
    assert_eq!(report["ok"], json!(true), "{report}");
    assert_eq!(report["signature"], json!("verified"), "{report}");
    assert_eq!(report["blocks_checked"], json!(latest.size));
    assert_eq!(report["checkpoint_size"], json!(latest.size));
    assert_eq!(report["failure"], Value::Null);
    let summary = t.get_ok("/v1/ledger").await;
    assert_eq!(summary["last_verification"]["ok"], json!(true));
    assert_eq!(summary["checkpoint"]["tree_size"], json!(latest.size));
    assert_eq!(b64_hash(&summary["checkpoint"]["root_hash"]), latest.root);
    assert_eq!(b64_hash(&summary["root_hash"]), latest.root);
    t.stop().await;
}
on_both_backends!(proofs_and_verification);

// ---- Grafana export -----------------------------------------------------------------

/// Epoch milliseconds of an RFC 3339 UTC timestamp `YYYY-MM-DDTHH:MM:SS.ffffffZ`,
/// computed by hand (days-from-civil), not with the product's code.
fn epoch_millis(ts: &str) -> i64 {
    let b = ts.as_bytes();
    assert!(ts.len() == 27 && b[10] == b'T' && ts.ends_with('Z'), "{ts}");
    let n = |range: std::ops::Range<usize>| ts[range].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss, micros) = (n(11..13), n(14..16), n(17..19), n(20..26));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + micros / 1000
}

async fn grafana_export(backend: Backend) {
    let t = TestNode::start(backend).await;
    t.ingest_new(&reference_run("g-ref")).await;
    t.post(
        "/v1/ledger/attestations",
        Some(t.admin_token()),
        r#"{"ITAR":"verified"}"#,
    )
    .await;
    t.grow("g", 5).await;
    let blocks = t.all_blocks().await;
    assert_eq!(blocks.len(), 9);

    let rows = t.get_ok("/v1/ledger/export/grafana").await;
    let rows = rows.as_array().expect("a JSON array");
    assert_eq!(rows.len(), blocks.len(), "one row per block");
    for (row, block) in rows.iter().zip(&blocks) {
        let row = row.as_object().expect("each row is an object");
        for (key, value) in row {
            assert!(
                !value.is_object() && !value.is_array(),
                "row {} is not flat: {key} = {value}",
                block["index"]
            );
        }
        let ts = block["timestamp"].as_str().unwrap();
        assert_eq!(row["time"].as_i64(), Some(epoch_millis(ts)), "{ts}");
        for key in [
            "index",
            "kind",
            "hash",
            "previous_hash",
            "phi_qevf",
            "eta_ent",
        ] {
            assert_eq!(row[key], block[key], "{key}");
        }
        for key in ["run_id", "region"] {
            assert_eq!(row[key], block.get(key).cloned().unwrap_or(Value::Null));
        }
        let statuses = block["compliance_attestations"].as_object().unwrap();
        for (framework, status) in statuses {
            assert_eq!(row[&format!("attestation_{framework}")], *status);
        }
        let attestation_columns = row.keys().filter(|k| k.starts_with("attestation_")).count();
        assert_eq!(attestation_columns, statuses.len());
        if let Some(payload) = block["payload"].as_object() {
            // Flat rows: scalar payload fields become columns.
            for (key, value) in payload
                .iter()
                .filter(|(_, v)| !v.is_array() && !v.is_object())
            {
                assert_eq!(row[&format!("payload_{key}")], *value, "payload {key}");
            }
        }
    }
    assert_eq!(rows[1]["kind"], json!("config"));
    assert_eq!(rows[2]["phi_qevf"].as_f64(), Some(REFERENCE_PHI));
    assert_eq!(rows[3]["kind"], json!("attestation"));

    let page = t.get_ok("/v1/ledger/export/grafana?from=2&limit=2").await;
    assert_eq!(page, json!([rows[2], rows[3]]));
    t.stop().await;
}
on_both_backends!(grafana_export);

// ---- tlog-tiles -------------------------------------------------------------------

/// Splits a C2SP entry bundle into its entries (16-bit big-endian length prefixes).
fn bundle_entries(bundle: &[u8]) -> Vec<Vec<u8>> {
    let mut entries = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        assert!(rest.len() >= 2, "truncated length prefix");
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        assert!(rest.len() >= 2 + len, "truncated entry");
        entries.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    entries
}

fn tile_hashes(tile: &[u8]) -> Vec<Hash> {
    assert_eq!(
        tile.len() % 32,
        0,
        "a hash tile is a whole number of hashes"
    );
    tile.chunks(32).map(|c| c.try_into().unwrap()).collect()
}

async fn tlog_tiles(backend: Backend) {
    let t = TestNode::start(backend).await;
    // 301 blocks (genesis, config, 299 runs): one full tile (256) and a
    // partial tile of 45 at level 0.
    let note = t.grow("tile", 299).await;
    assert_eq!(note.size, 301);

    let (status, tlog) = t.get_text("/tlog/checkpoint").await;
    assert_eq!(status, StatusCode::OK);
    let (_, v1) = t.get_text("/v1/ledger/checkpoint").await;
    assert_eq!(tlog, v1);
    assert_eq!(tlog, note.text);

    let blocks = t.all_blocks().await;
    assert_eq!(blocks.len(), 301);
    let mut hashes = Vec::new();
    let mut entries = Vec::new();
    for (tile, entries_path) in [
        ("/tlog/tile/0/000", "/tlog/tile/entries/000"),
        ("/tlog/tile/0/001.p/45", "/tlog/tile/entries/001.p/45"),
    ] {
        let (status, bytes) = t.get_bytes(tile).await;
        assert_eq!(status, StatusCode::OK, "{tile}");
        hashes.extend(tile_hashes(&bytes));
        let (status, bytes) = t.get_bytes(entries_path).await;
        assert_eq!(status, StatusCode::OK, "{entries_path}");
        entries.extend(bundle_entries(&bytes));
    }
    assert_eq!(hashes.len(), 301);
    assert_eq!(entries.len(), 301);
    for (i, (entry, block)) in entries.iter().zip(&blocks).enumerate() {
        assert_eq!(
            hashes[i],
            rfc6962_leaf(entry),
            "level-0 tile hash {i} is SHA-256(0x00 || entry {i})"
        );
        let parsed: Value =
            serde_json::from_slice(entry).unwrap_or_else(|e| panic!("entry {i} is not JSON: {e}"));
        assert!(
            same_json(&parsed, block),
            "entry {i} is block {i}: {parsed}"
        );
    }
    assert_eq!(
        rfc6962_root(&hashes),
        note.root,
        "tiles rebuild the signed root"
    );

    // Level 1 holds the root of each full 256-leaf subtree.
    let (status, bytes) = t.get_bytes("/tlog/tile/1/000.p/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tile_hashes(&bytes), vec![rfc6962_root(&hashes[..256])]);

    // A partial tile that fits inside the tree is served as a prefix.
    let (status, bytes) = t.get_bytes("/tlog/tile/0/001.p/10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tile_hashes(&bytes), hashes[256..266]);

    // Beyond the tree, or not a tile path: 404 with a JSON error.
    for path in [
        "/tlog/tile/0/001",
        "/tlog/tile/0/001.p/46",
        "/tlog/tile/0/002.p/1",
        "/tlog/tile/entries/001",
        "/tlog/tile/entries/001.p/46",
        "/tlog/tile/entries/002.p/1",
        "/tlog/tile/1/000",
        "/tlog/tile/1/000.p/2",
        "/tlog/tile/2/000.p/1",
        "/tlog/tile/0/000.p/0",
        "/tlog/tile/0/000.p/256",
        "/tlog/tile/0/0.p/1",
        "/tlog/tile/0/x000/001",
        "/tlog/tile/64/000.p/1",
        "/tlog/tile/nope",
    ] {
        let (status, body) = t.get_text(path).await;
        let body: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: {status} {body:?} is not JSON: {e}"));
        assert_error(path, status, &body, StatusCode::NOT_FOUND, None);
    }
    t.stop().await;
}
on_both_backends!(tlog_tiles);
