//! Tests of message signing, verification and URL redaction.

use super::*;

/// A feed message of `origin` as a node publishes it (the only place
/// these tests spell out the valuation fields).
fn payload(origin: &str, seq: u64) -> Vec<u8> {
    serde_json::json!({
        "type": "valuation", "origin": origin, "seq": seq,
        "server_time": "2026-01-01T00:00:00.000000Z",
        "accepted_at": "2026-01-01T00:00:00.000000Z",
        "region": "Americas", "data_class": "public", "run_id": "r-1",
        "eta_ent": 0.97, "coherence_variance": 0.01, "runtime_hours": 10.0,
        "eph_delivered": 50.0, "phi_qevf": 42.0, "price_multiplier": 1.2,
        "market_value": 50.4, "eph_price": 0.84, "block_index": 3
    })
    .to_string()
    .into_bytes()
}

fn signer(name: &str, fill: u8) -> NoteSigner {
    NoteSigner::new(name, [fill; 32]).unwrap()
}

struct Nodes {
    a: NoteSigner,
    c: NoteSigner,
    b_keys: PeerKeys,
}

/// Node B knows the keys of A and C.
fn nodes() -> Nodes {
    let a = signer("qunimbus/a", 1);
    let b = signer("qunimbus/b", 2);
    let c = signer("qunimbus/c", 3);
    let b_keys = PeerKeys::new(&b, [a.verifier(), c.verifier()]);
    Nodes { a, c, b_keys }
}

fn reject(reason: RejectReason) -> Verdict {
    Verdict::Reject(reason)
}

#[test]
fn the_context_is_valid() {
    signer("x", 1).sign_bytes(SIGNATURE_CONTEXT, b"").unwrap();
}

#[test]
fn a_peer_message_signed_by_its_origin_is_accepted() {
    let n = nodes();
    let body = payload("qunimbus/a", 7);
    let headers = sign_message(&n.a, &body).unwrap();
    let id = headers.get(KEY_ID_HEADER).unwrap().as_str().to_string();
    assert_eq!(id, qunimbus_ledger::hex::encode(&n.a.key_id()));
    let signature = headers.get(SIGNATURE_HEADER).unwrap().as_str().to_string();
    assert_eq!(STANDARD.decode(&signature).unwrap().len(), 64);
    match check_message(Some(&headers), &body, &n.b_keys) {
        Verdict::Accept(v) => assert_eq!((v.origin.as_str(), v.seq), ("qunimbus/a", 7)),
        other => panic!("{other:?}"),
    }
    assert_eq!(n.b_keys.len(), 2);
}

#[test]
fn unsigned_unknown_and_bad_signatures_are_rejected() {
    let n = nodes();
    let body = payload("qunimbus/a", 7);
    let keys = &n.b_keys;
    assert_eq!(
        check_message(None, &body, keys),
        reject(RejectReason::Unsigned)
    );
    assert_eq!(
        check_message(Some(&HeaderMap::new()), &body, keys),
        reject(RejectReason::Unsigned)
    );
    // Signed by a key B does not know.
    let stranger = signer("qunimbus/a", 9);
    let headers = sign_message(&stranger, &body).unwrap();
    assert_eq!(
        check_message(Some(&headers), &body, keys),
        reject(RejectReason::UnknownKey)
    );
    // Key ID header missing or malformed.
    let mut headers = HeaderMap::new();
    let good = sign_message(&n.a, &body).unwrap();
    headers.insert(
        SIGNATURE_HEADER,
        good.get(SIGNATURE_HEADER).unwrap().as_str(),
    );
    assert_eq!(
        check_message(Some(&headers), &body, keys),
        reject(RejectReason::UnknownKey)
    );
    for id in ["", "zzzzzzzz", "0123456", "012345678"] {
        let mut h = headers.clone();
        h.insert(KEY_ID_HEADER, id);
        assert_eq!(
            check_message(Some(&h), &body, keys),
            reject(RejectReason::UnknownKey),
            "{id:?}"
        );
    }
    // Tampered payload under A's signature.
    let tampered = payload("qunimbus/a", 8);
    assert_eq!(
        check_message(Some(&good), &tampered, keys),
        reject(RejectReason::BadSignature)
    );
    // A's key ID with C's signature, and garbage signatures.
    let mut swapped = sign_message(&n.c, &body).unwrap();
    swapped.insert(
        KEY_ID_HEADER,
        qunimbus_ledger::hex::encode(&n.a.key_id()).as_str(),
    );
    assert_eq!(
        check_message(Some(&swapped), &body, keys),
        reject(RejectReason::BadSignature)
    );
    let long = "A".repeat(4096);
    for garbage in ["", "not base64!", "AAAA", long.as_str()] {
        let mut h = good.clone();
        h.insert(SIGNATURE_HEADER, garbage);
        assert_eq!(
            check_message(Some(&h), &body, keys),
            reject(RejectReason::BadSignature),
            "{garbage:?}"
        );
    }
}

#[test]
fn a_forged_origin_and_a_malformed_payload_are_rejected() {
    let n = nodes();
    // C is a peer, but signs a valuation claiming to be A's.
    let forged = payload("qunimbus/a", 7);
    let headers = sign_message(&n.c, &forged).unwrap();
    assert_eq!(
        check_message(Some(&headers), &forged, &n.b_keys),
        reject(RejectReason::OriginMismatch)
    );
    for body in [&b"not json"[..], b"{\"type\":\"valuation\"}", b"\xff\xfe"] {
        let headers = sign_message(&n.c, body).unwrap();
        assert_eq!(
            check_message(Some(&headers), body, &n.b_keys),
            reject(RejectReason::Malformed)
        );
    }
    // A validly signed message of another type is ignored, not counted.
    let other = br#"{"type":"disconnect","reason":"x","resume_from_seq":1}"#;
    let headers = sign_message(&n.c, other).unwrap();
    assert_eq!(
        check_message(Some(&headers), other, &n.b_keys),
        Verdict::Ignore
    );
}

#[test]
fn own_messages_are_skipped() {
    let b = signer("qunimbus/b", 2);
    let a = signer("qunimbus/a", 1);
    // B lists its own key among the peers, as a shared config would.
    let keys = PeerKeys::new(&b, [a.verifier(), b.verifier()]);
    let body = payload("qunimbus/b", 1);
    let headers = sign_message(&b, &body).unwrap();
    assert_eq!(check_message(Some(&headers), &body, &keys), Verdict::Own);
    // A peer key named like this node (e.g. its previous key): skipped.
    let old_b = signer("qunimbus/b", 5);
    let keys = PeerKeys::new(&b, [old_b.verifier()]);
    let headers = sign_message(&old_b, &body).unwrap();
    assert_eq!(check_message(Some(&headers), &body, &keys), Verdict::Own);
}

#[test]
fn urls_are_shown_without_credentials() {
    assert_eq!(redact_url("nats://u:p@host:4222"), "nats://host:4222");
    assert_eq!(redact_url("tls://tok@h:1/x@y"), "tls://h:1/x@y");
    assert_eq!(redact_url("nats://host:4222"), "nats://host:4222");
    assert_eq!(redact_url("host:4222"), "host:4222");
}
