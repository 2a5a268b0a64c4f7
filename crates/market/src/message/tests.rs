//! Tests of the feed and client message shapes.

use super::*;
use serde_json::json;

fn valuation(seq: u64, region: &str) -> FeedValuation {
    FeedValuation {
        origin: "qunimbus.example/log".into(),
        seq,
        server_time: "2025-01-02T03:04:05.000007Z".into(),
        accepted_at: "2025-01-02T03:04:05.000001Z".into(),
        region: region.into(),
        data_class: DataClass::Public,
        run_id: Some(format!("run-{seq}")),
        run_ref: None,
        eta_ent: 0.97,
        coherence_variance: 0.015,
        runtime_hours: 100.0,
        eph_delivered: 1000.0,
        phi_qevf: 1234.5,
        price_multiplier: 1.25,
        market_value: 1543.125,
        eph_price: 1.543125,
        block_index: seq + 1,
    }
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

const VALUATION_KEYS: [&str; 16] = [
    "origin",
    "seq",
    "server_time",
    "accepted_at",
    "region",
    "data_class",
    "run_id",
    "eta_ent",
    "coherence_variance",
    "runtime_hours",
    "eph_delivered",
    "phi_qevf",
    "price_multiplier",
    "market_value",
    "eph_price",
    "block_index",
];

#[test]
fn valuation_message_shape() {
    let msg = ServerMessage::Valuation(valuation(7, "EU"));
    let v: Value = serde_json::from_str(&msg.to_json()).unwrap();
    let mut expected = VALUATION_KEYS.to_vec();
    expected.push("type");
    assert_eq!(keys(&v), sorted(&expected));
    assert_eq!(v["type"], "valuation");
    assert_eq!(v["seq"], 7);
    assert_eq!(v["block_index"], 8);
    assert_eq!(v["data_class"], "public");
    assert_eq!(v["region"], "EU");
    assert_eq!(v["eph_price"], 1.543125);
    assert_eq!(ServerMessage::from_json(&msg.to_json()).unwrap(), msg);
    // The tagged form also parses straight into the struct (replay form).
    let fv: FeedValuation = serde_json::from_str(&msg.to_json()).unwrap();
    assert_eq!(fv, valuation(7, "EU"));
    // The bare struct has no tag.
    let bare = serde_json::to_value(valuation(7, "EU")).unwrap();
    assert_eq!(keys(&bare), sorted(&VALUATION_KEYS));
}

#[test]
fn personal_runs_carry_their_reference_not_their_id() {
    let mut v = valuation(3, "EU");
    v.data_class = DataClass::Personal;
    v.run_id = None;
    v.run_ref = Some("ab".repeat(32));
    let text = ServerMessage::Valuation(v.clone()).to_json();
    let json: Value = serde_json::from_str(&text).unwrap();
    assert!(json.get("run_id").is_none(), "{text}");
    assert_eq!(json["run_ref"], "ab".repeat(32));
    assert_eq!(
        ServerMessage::from_json(&text).unwrap(),
        ServerMessage::Valuation(v)
    );
}

#[test]
fn itar_class_serializes_lowercase() {
    let mut v = valuation(1, "Americas");
    v.data_class = DataClass::Itar;
    let json: Value = serde_json::from_str(&ServerMessage::Valuation(v).to_json()).unwrap();
    assert_eq!(json["data_class"], "itar");
}

#[test]
fn snapshot_shape() {
    let msg = ServerMessage::Snapshot {
        origin: "o".into(),
        server_time: "2025-01-02T03:04:05.000000Z".into(),
        active: true,
        next_seq: 42,
        latest: vec![valuation(41, "EU")],
    };
    let v: Value = serde_json::from_str(&msg.to_json()).unwrap();
    assert_eq!(
        keys(&v),
        sorted(&[
            "type",
            "origin",
            "server_time",
            "active",
            "next_seq",
            "latest"
        ])
    );
    assert_eq!(v["type"], "snapshot");
    assert_eq!(v["active"], true);
    assert_eq!(v["next_seq"], 42);
    assert_eq!(keys(&v["latest"][0]), sorted(&VALUATION_KEYS));
    assert_eq!(ServerMessage::from_json(&msg.to_json()).unwrap(), msg);
}

#[test]
fn replayed_disconnect_error_shapes() {
    let cases = [
        (
            ServerMessage::Replayed {
                origin: "o".into(),
                from_seq: 3,
                to_seq: 9,
            },
            json!({"type":"replayed","origin":"o","from_seq":3,"to_seq":9}),
        ),
        (
            ServerMessage::Disconnect {
                reason: "slow consumer".into(),
                resume_from_seq: 17,
            },
            json!({"type":"disconnect","reason":"slow consumer","resume_from_seq":17}),
        ),
        (
            ServerMessage::Error {
                code: "unknown_type".into(),
                message: "nope".into(),
            },
            json!({"type":"error","code":"unknown_type","message":"nope"}),
        ),
    ];
    for (msg, expected) in cases {
        let v: Value = serde_json::from_str(&msg.to_json()).unwrap();
        assert_eq!(v, expected);
        assert_eq!(ServerMessage::from_json(&msg.to_json()).unwrap(), msg);
    }
}

#[test]
fn client_error_message() {
    let err = parse_client_message(r#"{"type":"nack","seq":1}"#).unwrap_err();
    let msg = ServerMessage::client_error(&err);
    assert_eq!(
        msg,
        ServerMessage::Error {
            code: "unknown_type".into(),
            message: "unknown message type \"nack\"; expected \"ack\"".into(),
        }
    );
}

#[test]
fn kind_is_the_serialized_type_tag() {
    let messages = [
        ServerMessage::Valuation(valuation(1, "EU")),
        ServerMessage::Replayed {
            origin: "o".into(),
            from_seq: 1,
            to_seq: 2,
        },
        ServerMessage::Withheld {
            origin: "o".into(),
            seq: 3,
            reason: "r".into(),
        },
        ServerMessage::Disconnect {
            reason: "r".into(),
            resume_from_seq: 4,
        },
        ServerMessage::Error {
            code: "c".into(),
            message: "m".into(),
        },
        ServerMessage::Snapshot {
            origin: "o".into(),
            server_time: "t".into(),
            active: true,
            next_seq: 1,
            latest: vec![],
        },
    ];
    for message in messages {
        let value: serde_json::Value = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(value["type"], message.kind());
    }
}

#[test]
fn client_message_shape() {
    let ack = ClientAck {
        seq: 5,
        origin: None,
    };
    assert_eq!(ack.to_json(), r#"{"type":"ack","seq":5}"#);
    assert_eq!(parse_client_message(&ack.to_json()), Ok(ack));
    let ack = ClientAck {
        seq: 6,
        origin: Some("other/log".into()),
    };
    assert_eq!(
        ack.to_json(),
        r#"{"type":"ack","seq":6,"origin":"other/log"}"#
    );
    assert_eq!(parse_client_message(&ack.to_json()), Ok(ack));
}

#[test]
fn parses_acks() {
    assert_eq!(
        parse_client_message(r#"{"type":"ack","seq":1}"#),
        Ok(ClientAck {
            seq: 1,
            origin: None
        })
    );
    let ack = parse_client_message(r#" {"seq": 18446744073709551615, "type": "ack"} "#).unwrap();
    assert_eq!(ack.seq, u64::MAX);
    assert_eq!(ack.origin_or("me"), "me");
    let ack = parse_client_message(r#"{"type":"ack","seq":9,"origin":"other/log"}"#).unwrap();
    assert_eq!(ack.origin.as_deref(), Some("other/log"));
    assert_eq!(ack.origin_or("me"), "other/log");
    let ack = parse_client_message(r#"{"type":"ack","seq":9,"origin":null}"#).unwrap();
    assert_eq!(ack.origin, None);
    // Unknown extra keys are tolerated.
    let ack = parse_client_message(r#"{"type":"ack","seq":2,"client_time":"x"}"#).unwrap();
    assert_eq!(ack.seq, 2);
}

#[test]
fn rejects_bad_client_messages() {
    use ClientMessageError as E;
    type Case = (&'static str, fn(&E) -> bool, &'static str);
    let cases: &[Case] = &[
        ("", |e| matches!(e, E::MalformedJson(_)), "malformed_json"),
        (
            "{\"type\":",
            |e| matches!(e, E::MalformedJson(_)),
            "malformed_json",
        ),
        (
            "ack",
            |e| matches!(e, E::MalformedJson(_)),
            "malformed_json",
        ),
        (
            "[1]",
            |e| *e == E::NotAnObject("an array"),
            "invalid_message",
        ),
        ("5", |e| *e == E::NotAnObject("a number"), "invalid_message"),
        ("null", |e| *e == E::NotAnObject("null"), "invalid_message"),
        (
            "\"ack\"",
            |e| *e == E::NotAnObject("a string"),
            "invalid_message",
        ),
        (r#"{"seq":1}"#, |e| *e == E::MissingType, "missing_field"),
        (
            r#"{"type":1,"seq":1}"#,
            |e| *e == E::InvalidType("1".into()),
            "invalid_value",
        ),
        (
            r#"{"type":"ACK","seq":1}"#,
            |e| *e == E::UnknownType("\"ACK\"".into()),
            "unknown_type",
        ),
        (
            r#"{"type":"subscribe"}"#,
            |e| matches!(e, E::UnknownType(_)),
            "unknown_type",
        ),
        (
            r#"{"type":"ack"}"#,
            |e| *e == E::MissingSeq,
            "missing_field",
        ),
        (
            r#"{"type":"ack","seq":-1}"#,
            |e| *e == E::InvalidSeq("-1".into()),
            "invalid_value",
        ),
        (
            r#"{"type":"ack","seq":0}"#,
            |e| *e == E::InvalidSeq("0".into()),
            "invalid_value",
        ),
        (
            r#"{"type":"ack","seq":1.5}"#,
            |e| *e == E::InvalidSeq("1.5".into()),
            "invalid_value",
        ),
        (
            r#"{"type":"ack","seq":2.0}"#,
            |e| *e == E::InvalidSeq("2.0".into()),
            "invalid_value",
        ),
        (
            r#"{"type":"ack","seq":1e3}"#,
            |e| matches!(e, E::InvalidSeq(_)),
            "invalid_value",
        ),
        (
            r#"{"type":"ack","seq":18446744073709551616}"#,
            |e| matches!(e, E::InvalidSeq(_)),
            "invalid_value",
        ),
        (
            r#"{"type":"ack","seq":1e400}"#,
            |e| matches!(e, E::MalformedJson(_)),
            "malformed_json",
        ),
        (
            r#"{"type":"ack","seq":"5"}"#,
            |e| *e == E::InvalidSeq("\"5\"".into()),
            "invalid_value",
        ),
        (
            r#"{"type":"ack","seq":null}"#,
            |e| *e == E::InvalidSeq("null".into()),
            "invalid_value",
        ),
        (
            r#"{"type":"ack","seq":[1]}"#,
            |e| *e == E::InvalidSeq("an array".into()),
            "invalid_value",
        ),
        (
            r#"{"type":"ack","seq":1,"origin":""}"#,
            |e| matches!(e, E::InvalidOrigin(_)),
            "invalid_value",
        ),
        (
            r#"{"type":"ack","seq":1,"origin":7}"#,
            |e| *e == E::InvalidOrigin("7".into()),
            "invalid_value",
        ),
    ];
    for (text, check, code) in cases {
        let err = parse_client_message(text).unwrap_err();
        assert!(check(&err), "{text}: unexpected {err:?}");
        assert_eq!(err.code(), *code, "{text}");
        assert!(!err.to_string().is_empty());
    }
    let long = format!(r#"{{"type":"ack","seq":1,"origin":"{}"}}"#, "x".repeat(300));
    let err = parse_client_message(&long).unwrap_err();
    assert!(matches!(err, E::InvalidOrigin(_)));
    assert!(err.to_string().len() < 200, "quotes are truncated");
    assert_eq!(err.field(), Some("origin"));
}

#[test]
fn errors_name_the_field() {
    assert_eq!(
        parse_client_message("{}").unwrap_err().field(),
        Some("type")
    );
    assert_eq!(
        parse_client_message(r#"{"type":"ack"}"#)
            .unwrap_err()
            .field(),
        Some("seq")
    );
    assert_eq!(parse_client_message("x").unwrap_err().field(), None);
    let msg = parse_client_message(r#"{"type":"ack","seq":-3}"#)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("\"seq\"") && msg.contains("-3"), "{msg}");
}

#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    let text = "[".repeat(100_000);
    assert!(matches!(
        parse_client_message(&text),
        Err(ClientMessageError::MalformedJson(_))
    ));
}

#[test]
fn latest_per_region_keeps_newest() {
    let mut latest = LatestPerRegion::new();
    assert!(latest.is_empty());
    assert!(latest.update(valuation(2, "EU")));
    assert!(!latest.update(valuation(1, "EU")));
    assert!(latest.update(valuation(3, "Americas")));
    assert!(latest.update(valuation(4, "EU")));
    assert_eq!(latest.len(), 2);
    let seqs: Vec<(String, u64)> = latest
        .latest()
        .into_iter()
        .map(|v| (v.region, v.seq))
        .collect();
    assert_eq!(seqs, vec![("Americas".into(), 3), ("EU".into(), 4)]);
    // Another origin: compared by accepted_at.
    let mut other = valuation(1, "EU");
    other.origin = "peer".into();
    other.accepted_at = "2025-01-02T03:04:06.000000Z".into();
    assert!(latest.update(other));
    assert_eq!(latest.get("EU").map(|v| v.origin.as_str()), Some("peer"));
    latest.clear();
    assert!(latest.is_empty());
}
