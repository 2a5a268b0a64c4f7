//! Block tests. Known answers were computed independently (Python
//! `json.dumps(sort_keys=True, separators=(",", ":"))` + `hashlib`, which
//! equals RFC 8785 for this ASCII, exponent-free content).

use serde_json::json;

use super::*;
use crate::merkle::leaf_hash;

const T0: &str = "2025-01-01T00:00:00.000000Z";
const GENESIS_HASH: &str = "9e7e519fe808dc630595b3a28893d99cf3c4e8e801c0978041e06400574d74ff";
const GENESIS_JCS: &str = r#"{"compliance_attestations":{"CMMC-2.0":"genesis","DO-178C":"genesis","GDPR":"genesis","ISO-27001":"genesis","ITAR":"genesis","NIST-800-53":"genesis"},"eta_ent":null,"index":0,"kind":"genesis","phi_qevf":null,"previous_hash":"0000000000000000000000000000000000000000000000000000000000000000","timestamp":"2025-01-01T00:00:00.000000Z"}"#;
const VALUATION_HASH: &str = "51f0f3bbecead11aeae537fdbcff2a70a1a357efd67388605dda5657fe13d902";
const VALUATION_LEAF: &str = r#"{"compliance_attestations":{"GDPR":"verified","ITAR":"waived"},"eta_ent":0.25,"hash":"51f0f3bbecead11aeae537fdbcff2a70a1a357efd67388605dda5657fe13d902","index":1,"kind":"valuation","payload":{"a":null,"b":[1,2.5,"x"]},"phi_qevf":0.8731,"previous_hash":"9e7e519fe808dc630595b3a28893d99cf3c4e8e801c0978041e06400574d74ff","region":"eu-west","run_id":"run-0001","timestamp":"2025-01-01T00:00:01.250000Z"}"#;
const VALUATION_LEAF_HASH: &str =
    "1e10aa0a7fa8ebd4700405479b7bdf45b3ef522826283225ff8db28342242786";

fn valuation_draft() -> BlockDraft {
    BlockDraft {
        timestamp: "2025-01-01T00:00:01.250000Z".into(),
        kind: BlockKind::Valuation,
        phi_qevf: Some(0.8731),
        eta_ent: Some(0.25),
        compliance_attestations: [
            ("GDPR".to_string(), AttestationStatus::Verified),
            ("ITAR".to_string(), AttestationStatus::Waived),
        ]
        .into_iter()
        .collect(),
        region: Some("eu-west".into()),
        run_id: Some("run-0001".into()),
        payload: Some(json!({"b": [1, 2.5, "x"], "a": null})),
    }
}

fn minimal_draft(kind: BlockKind) -> BlockDraft {
    BlockDraft {
        timestamp: T0.into(),
        kind,
        phi_qevf: None,
        eta_ent: None,
        compliance_attestations: BTreeMap::new(),
        region: None,
        run_id: None,
        payload: None,
    }
}

#[test]
fn genesis_known_answer() {
    let g = Block::genesis(T0, &DEFAULT_FRAMEWORKS).unwrap();
    assert_eq!(g.index, 0);
    assert_eq!(g.kind, BlockKind::Genesis);
    assert_eq!(g.previous_hash, GENESIS_PREVIOUS_HASH);
    assert_eq!(GENESIS_PREVIOUS_HASH.len(), 64);
    assert!(GENESIS_PREVIOUS_HASH.bytes().all(|b| b == b'0'));
    assert_eq!(g.phi_qevf, None);
    assert_eq!(g.compliance_attestations.len(), 6);
    assert!(g
        .compliance_attestations
        .values()
        .all(|s| *s == AttestationStatus::Genesis));
    assert_eq!(
        String::from_utf8(canonicalize(&g.content_json()).unwrap()).unwrap(),
        GENESIS_JCS
    );
    assert_eq!(g.hash, GENESIS_HASH);
    assert_eq!(g.compute_hash().unwrap(), GENESIS_HASH);
}

#[test]
fn valuation_known_answer() {
    let b = Block::seal(valuation_draft(), 1, GENESIS_HASH).unwrap();
    assert_eq!(b.hash, VALUATION_HASH);
    let leaf = b.leaf_bytes().unwrap();
    assert_eq!(String::from_utf8(leaf.clone()).unwrap(), VALUATION_LEAF);
    assert_eq!(hex::encode(&leaf_hash(&leaf)), VALUATION_LEAF_HASH);
}

#[test]
fn json_shape() {
    let g = Block::genesis(T0, &["GDPR"]).unwrap();
    let v = g.to_json();
    // Key order is not part of the shape (JCS sorts keys when hashing).
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "compliance_attestations",
            "eta_ent",
            "hash",
            "index",
            "kind",
            "phi_qevf",
            "previous_hash",
            "timestamp"
        ]
    );
    assert!(v["phi_qevf"].is_null());
    assert!(g.content_json().get("hash").is_none());

    let b = Block::seal(valuation_draft(), 1, &g.hash).unwrap();
    let v = b.to_json();
    assert_eq!(v["region"], "eu-west");
    assert_eq!(v["run_id"], "run-0001");
    assert_eq!(v["payload"]["b"][1], 2.5);
    assert_eq!(v["phi_qevf"], 0.8731);
    assert_eq!(v["kind"], "valuation");
    assert_eq!(v["compliance_attestations"]["ITAR"], "waived");
}

#[test]
fn serde_and_from_json_roundtrip() {
    let g = Block::genesis(T0, &DEFAULT_FRAMEWORKS).unwrap();
    let b = Block::seal(valuation_draft(), 1, &g.hash).unwrap();
    for block in [g, b] {
        let text = serde_json::to_string(&block).unwrap();
        let back: Block = serde_json::from_str(&text).unwrap();
        assert_eq!(back, block);
        assert_eq!(Block::from_json(&block.to_json()).unwrap(), block);
        assert_eq!(serde_json::to_value(&block).unwrap(), block.to_json());
    }
}

#[test]
fn float_roundtrip_is_exact() {
    let g = Block::genesis(T0, &[]).unwrap();
    let mut draft = minimal_draft(BlockKind::Valuation);
    draft.phi_qevf = Some(0.1 + 0.2);
    draft.eta_ent = Some(-1.2345678901234567e-300);
    let b = Block::seal(draft, 1, &g.hash).unwrap();
    let text = serde_json::to_string(&b).unwrap();
    let back: Block = serde_json::from_str(&text).unwrap();
    assert_eq!(back.phi_qevf, b.phi_qevf);
    assert_eq!(back.eta_ent, b.eta_ent);
    assert_eq!(back.compute_hash().unwrap(), b.hash);
}

#[test]
fn non_finite_numbers_rejected() {
    let g = Block::genesis(T0, &[]).unwrap();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut draft = minimal_draft(BlockKind::Valuation);
        draft.phi_qevf = Some(bad);
        assert_eq!(
            Block::seal(draft, 1, &g.hash),
            Err(LedgerError::NonFiniteNumber { field: "phi_qevf" })
        );
        let mut draft = minimal_draft(BlockKind::Valuation);
        draft.eta_ent = Some(bad);
        assert_eq!(
            Block::seal(draft, 1, &g.hash),
            Err(LedgerError::NonFiniteNumber { field: "eta_ent" })
        );
    }
    let mut b = Block::seal(minimal_draft(BlockKind::Valuation), 1, &g.hash).unwrap();
    b.phi_qevf = Some(f64::NAN);
    assert!(b.compute_hash().is_err());
    assert!(b.leaf_bytes().is_err());
    assert!(serde_json::to_string(&b).is_err());
}

#[test]
fn seal_enforces_chain_rules() {
    let g = Block::genesis(T0, &[]).unwrap();
    assert!(matches!(
        Block::seal(
            minimal_draft(BlockKind::Valuation),
            0,
            GENESIS_PREVIOUS_HASH
        ),
        Err(LedgerError::InvalidBlock(_))
    ));
    assert!(matches!(
        Block::seal(minimal_draft(BlockKind::Genesis), 0, &g.hash),
        Err(LedgerError::InvalidBlock(_))
    ));
    assert!(matches!(
        Block::seal(minimal_draft(BlockKind::Genesis), 1, &g.hash),
        Err(LedgerError::InvalidBlock(_))
    ));
    assert!(Block::seal(minimal_draft(BlockKind::Genesis), 0, GENESIS_PREVIOUS_HASH).is_ok());
    for bad_prev in ["", "abc", &g.hash.to_uppercase(), &format!("{}0", g.hash)] {
        assert!(matches!(
            Block::seal(minimal_draft(BlockKind::Trade), 1, bad_prev),
            Err(LedgerError::InvalidBlock(_))
        ));
    }
    assert_eq!(
        Block::seal(
            minimal_draft(BlockKind::Trade),
            MAX_SAFE_INTEGER + 1,
            &g.hash
        ),
        Err(LedgerError::IndexTooLarge(MAX_SAFE_INTEGER + 1))
    );
}

#[test]
fn null_payload_is_dropped() {
    let g = Block::genesis(T0, &[]).unwrap();
    let mut draft = minimal_draft(BlockKind::Override);
    draft.payload = Some(Value::Null);
    let b = Block::seal(draft, 1, &g.hash).unwrap();
    assert_eq!(b.payload, None);
    assert!(b.to_json().get("payload").is_none());
}

#[test]
fn entry_size_limit() {
    let g = Block::genesis(T0, &[]).unwrap();
    let mut draft = minimal_draft(BlockKind::Rollout);
    draft.payload = Some(Value::String("x".repeat(MAX_ENTRY_BYTES)));
    assert!(matches!(
        Block::seal(draft, 1, &g.hash),
        Err(LedgerError::EntryTooLarge {
            max: MAX_ENTRY_BYTES,
            ..
        })
    ));
    let mut draft = minimal_draft(BlockKind::Rollout);
    draft.payload = Some(Value::String("x".repeat(60_000)));
    let b = Block::seal(draft, 1, &g.hash).unwrap();
    assert!(b.leaf_bytes().unwrap().len() <= MAX_ENTRY_BYTES);
}

#[test]
fn from_json_is_strict() {
    let g = Block::genesis(T0, &["GDPR"]).unwrap();
    let good = g.to_json();
    let with = |key: &str, value: Value| {
        let mut v = good.clone();
        v.as_object_mut().unwrap().insert(key.into(), value);
        v
    };
    let without = |key: &str| {
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove(key);
        v
    };
    let rejects = [
        with("extra", json!(1)),
        with("region", Value::Null),
        with("run_id", Value::Null),
        with("payload", Value::Null),
        with("region", json!(5)),
        with("index", json!(-1)),
        with("index", json!(1.5)),
        with("index", json!("0")),
        with("kind", json!("mint")),
        with("kind", json!("Genesis")),
        with("phi_qevf", json!("0.5")),
        with("compliance_attestations", json!({"GDPR": "ok"})),
        with("compliance_attestations", json!(["GDPR"])),
        with("hash", json!(null)),
        without("index"),
        without("timestamp"),
        without("kind"),
        without("phi_qevf"),
        without("eta_ent"),
        without("compliance_attestations"),
        without("previous_hash"),
        without("hash"),
        json!([1, 2]),
        json!(null),
    ];
    for (i, v) in rejects.iter().enumerate() {
        assert!(
            matches!(Block::from_json(v), Err(LedgerError::InvalidBlock(_))),
            "case {i}: {v}"
        );
    }
    let accepted = Block::from_json(&with("region", json!("us-east"))).unwrap();
    assert_eq!(accepted.region.as_deref(), Some("us-east"));
    assert!(serde_json::from_str::<Block>(r#"{"index":0}"#).is_err());
}

#[test]
fn enum_names() {
    for k in BlockKind::ALL {
        assert_eq!(BlockKind::parse(k.as_str()), Some(k));
        assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        assert_eq!(k.to_string(), k.as_str());
    }
    for s in AttestationStatus::ALL {
        assert_eq!(AttestationStatus::parse(s.as_str()), Some(s));
        assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
    }
    assert_eq!(BlockKind::parse("override"), Some(BlockKind::Override));
    assert_eq!(BlockKind::parse("VALUATION"), None);
    assert_eq!(
        AttestationStatus::parse("waived"),
        Some(AttestationStatus::Waived)
    );
    assert_eq!(AttestationStatus::parse(""), None);
}
