//! Checkpoint and signed-note tests, including the known vectors of Go's
//! `golang.org/x/mod/sumdb/note` and the C2SP signed-note specification.

use super::*;
use crate::merkle::leaf_hash;

const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
/// Public key of PETER_VKEY, decoded by hand (Python base64).
const PETER_PUB_HEX: &str = "1a5cd907143c384c41e830c5bce12aa8817ec5649aaabf2c31388b35b2d744d6";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";
const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

fn signer(name: &str, fill: u8) -> NoteSigner {
    NoteSigner::new(name, [fill; 32]).unwrap()
}

fn checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "qunimbus.example/dvl".into(),
        size: 12345,
        root: leaf_hash(b"root"),
    }
}

#[test]
fn go_note_vector() {
    let s = NoteSigner::from_skey(PETER_SKEY).unwrap();
    assert_eq!(s.name(), "PeterNeumann");
    assert_eq!(hex::encode(&s.key_id()), "c74f20a3");
    assert_eq!(hex::encode(&s.public_key()), PETER_PUB_HEX);
    assert_eq!(s.to_skey(), PETER_SKEY);
    assert_eq!(s.verifier().to_vkey(), PETER_VKEY);
    // Ed25519 is deterministic, so our note equals Go's byte for byte.
    let note = s.sign(GO_TEXT);
    assert_eq!(note, format!("{GO_TEXT}\n{PETER_SIG}"));

    let v = NoteVerifier::from_vkey(PETER_VKEY).unwrap();
    assert_eq!(v, s.verifier());
    assert_eq!(v.verify(&note).unwrap(), GO_TEXT);

    // Go's TestOpen: a note signed by two keys opens with either.
    let enoch = NoteVerifier::from_vkey(ENOCH_VKEY).unwrap();
    for both in [
        format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}"),
        format!("{GO_TEXT}\n{ENOCH_SIG}{PETER_SIG}"),
    ] {
        assert_eq!(v.verify(&both).unwrap(), GO_TEXT);
        assert_eq!(enoch.verify(&both).unwrap(), GO_TEXT);
    }
    assert!(matches!(
        enoch.verify(&note),
        Err(LedgerError::NoSignature { .. })
    ));
}

#[test]
fn c2sp_spec_vector() {
    let v = NoteVerifier::from_vkey(SPEC_VKEY).unwrap();
    assert_eq!(v.name(), "example.com/foo");
    assert_eq!(v.to_vkey(), SPEC_VKEY);
    assert_eq!(
        v.verify(SPEC_NOTE).unwrap(),
        "This is an example message.\n"
    );
}

#[test]
fn key_id_rule_by_hand() {
    // SHA-256("PeterNeumann" ‖ 0x0A ‖ 0x01 ‖ pubkey)[..4], computed
    // independently in Python: c74f20a3.
    let public: [u8; 32] = hex::decode(PETER_PUB_HEX).unwrap().try_into().unwrap();
    assert_eq!(hex::encode(&key_id("PeterNeumann", &public)), "c74f20a3");
    let mut data = b"PeterNeumann".to_vec();
    data.extend_from_slice(&[0x0a, 0x01]);
    data.extend_from_slice(&public);
    assert_eq!(key_id("PeterNeumann", &public), sha256(&data)[..4]);
    assert_ne!(
        key_id("PeterNeumanN", &public),
        key_id("PeterNeumann", &public)
    );
}

#[test]
fn sign_verify_roundtrip() {
    let s = signer("qunimbus.example/dvl", 7);
    let body = checkpoint().body();
    let note = s.sign(&body);
    assert!(note.starts_with(&body));
    assert!(note.contains("\n\n\u{2014} qunimbus.example/dvl "));
    assert!(note.ends_with('\n'));
    let v = s.verifier();
    assert_eq!(v.verify(&note).unwrap(), body);
    assert_eq!(v.verify_checkpoint(&note).unwrap(), checkpoint());
    assert_eq!(s.try_sign(&body).unwrap(), note);
    // A note co-signed by another key still verifies with ours.
    let other = signer("witness.example", 9);
    let cosigned = format!("{note}{}", other.sign(&body).split_once("\n\n").unwrap().1);
    assert_eq!(v.verify(&cosigned).unwrap(), body);
    assert_eq!(other.verifier().verify(&cosigned).unwrap(), body);
}

#[test]
fn tampering_fails() {
    let s = signer("log", 1);
    let v = s.verifier();
    let note = s.sign(&checkpoint().body());

    let tampered_body = note.replacen("12345", "12346", 1);
    assert!(matches!(
        v.verify(&tampered_body),
        Err(LedgerError::BadSignature { .. })
    ));

    // Flip one signature character (keep the base64 valid).
    let (head, sig_line) = note.split_at(note.rfind("\n\n").unwrap() + 2);
    let mut chars: Vec<char> = sig_line.chars().collect();
    let pos = chars.len() - 10;
    chars[pos] = if chars[pos] == 'A' { 'B' } else { 'A' };
    let tampered_sig = format!("{head}{}", chars.into_iter().collect::<String>());
    assert!(matches!(
        v.verify(&tampered_sig),
        Err(LedgerError::BadSignature { .. })
    ));

    // Another key with another name, and another key with the same name.
    for other in [signer("other", 2).verifier(), signer("log", 2).verifier()] {
        assert!(matches!(
            other.verify(&note),
            Err(LedgerError::NoSignature { .. })
        ));
    }
}

#[test]
fn malformed_notes() {
    let s = signer("log", 1);
    let v = s.verifier();
    let note = s.sign("hello\n");
    for bad in [
        "hello\n".to_string(),
        "hello\n\n".to_string(),
        note.trim_end().to_string(),
        note.replace('\u{2014}', "-"),
        note.replace("\u{2014} log ", "\u{2014} log"),
        note.replace("\u{2014} log ", "\u{2014} lo g "),
        format!("{note}garbage\n"),
        note.replace("hello", "hel\rlo"),
        format!("{note}\u{2014} log !!!!\n"),
        format!("{note}\u{2014} log AAAA\n"),
        format!("hello\n\n{}", "\u{2014} x AAAAAAAA\n".repeat(101)),
    ] {
        assert!(
            matches!(v.verify(&bad), Err(LedgerError::MalformedNote(_))),
            "{bad:?} gave {:?}",
            v.verify(&bad)
        );
    }
    assert!(matches!(
        s.try_sign("no newline"),
        Err(LedgerError::MalformedNote(_))
    ));
    assert!(matches!(s.try_sign(""), Err(LedgerError::MalformedNote(_))));
    assert!(matches!(
        s.try_sign("a\tb\n"),
        Err(LedgerError::MalformedNote(_))
    ));
}

#[test]
fn signature_with_wrong_length_by_our_key_is_bad() {
    let s = signer("log", 1);
    let v = s.verifier();
    let mut blob = s.key_id().to_vec();
    blob.extend_from_slice(&[0u8; 10]);
    let note = format!("hello\n\n\u{2014} log {}\n", STANDARD.encode(blob));
    assert!(matches!(
        v.verify(&note),
        Err(LedgerError::BadSignature { .. })
    ));
    // A bad line by our key is an error even next to a good one.
    let good = s.sign("hello\n");
    let bad_line = note.split_once("\n\n").unwrap().1;
    assert!(matches!(
        v.verify(&format!("{good}{bad_line}")),
        Err(LedgerError::BadSignature { .. })
    ));
}

#[test]
fn key_names() {
    for bad in ["", "a b", "a+b", "tab\there", "nl\n", "nbsp\u{a0}x"] {
        assert!(
            matches!(
                NoteSigner::new(bad, [0; 32]),
                Err(LedgerError::InvalidKey(_))
            ),
            "{bad:?}"
        );
    }
    assert!(NoteSigner::new("example.com/log-1", [0; 32]).is_ok());
}

#[test]
fn skey_vkey_roundtrip_and_rejects() {
    let s = signer("qunimbus.example/dvl", 42);
    let skey = s.to_skey();
    assert!(skey.starts_with("PRIVATE+KEY+qunimbus.example/dvl+"));
    let back = NoteSigner::from_skey(&skey).unwrap();
    assert_eq!(back.to_skey(), skey);
    assert_eq!(back.public_key(), s.public_key());
    assert_eq!(back.sign("x\n"), s.sign("x\n"));
    let vkey = s.verifier().to_vkey();
    assert_eq!(NoteVerifier::from_vkey(&vkey).unwrap(), s.verifier());
    assert!(!format!("{s:?}").contains(&skey[skey.len() - 20..]));

    // Every truncation and every single-byte change of a vkey is rejected,
    // as in Go's TestNewVerifier (a changed key byte that still decodes is
    // caught by the key ID check).
    let b = PETER_VKEY.as_bytes();
    for i in 0..b.len() {
        assert!(
            NoteVerifier::from_vkey(&PETER_VKEY[..i]).is_err(),
            "prefix {i}"
        );
        assert!(
            NoteVerifier::from_vkey(&PETER_VKEY[i + 1..]).is_err(),
            "suffix {i}"
        );
        let mut changed = b.to_vec();
        changed[i] = changed[i].wrapping_add(1);
        if let Ok(text) = std::str::from_utf8(&changed) {
            assert!(NoteVerifier::from_vkey(text).is_err(), "changed byte {i}");
        }
    }
    for bad in [
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF",
        "PRIVATE+KEY+PeterNeumann+c74f20+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann",
        "PRIVATE+KEY++c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        PETER_VKEY,
    ] {
        assert!(NoteSigner::from_skey(bad).is_err(), "{bad}");
    }
    assert!(NoteVerifier::from_vkey(PETER_SKEY).is_err());
}

#[test]
fn checkpoint_body_roundtrip() {
    let c = checkpoint();
    let body = c.body();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "qunimbus.example/dvl");
    assert_eq!(lines[1], "12345");
    assert_eq!(lines[2], STANDARD.encode(c.root));
    assert_eq!(Checkpoint::parse_body(&body).unwrap(), c);
    let empty = Checkpoint {
        origin: "o".into(),
        size: 0,
        root: crate::merkle::empty_root(),
    };
    assert_eq!(
        empty.body(),
        "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    );
    assert_eq!(Checkpoint::parse_body(&empty.body()).unwrap(), empty);
}

#[test]
fn checkpoint_parse_rejects() {
    let root = STANDARD.encode([7u8; 32]);
    for bad in [
        String::new(),
        format!("o\n5\n{root}"),
        format!("o\n5\n{root}\nextension\n"),
        format!("o\n5\n{root}\n\n"),
        format!("\n5\n{root}\n"),
        format!("o\n05\n{root}\n"),
        format!("o\n+5\n{root}\n"),
        format!("o\n-5\n{root}\n"),
        format!("o\n\n{root}\n"),
        format!("o\n18446744073709551616\n{root}\n"),
        format!("o\n5\n{}\n", STANDARD.encode([7u8; 31])),
        format!("o\n5\n{}\n", STANDARD.encode([7u8; 33])),
        format!("o\n5\n{}\n", root.trim_end_matches('=')),
        "o\n5\nnot base64!\n".to_string(),
        format!("o\n5\n{root}\r\n"),
        format!("o\r\n5\n{root}\n"),
        format!("o\n5\n{}\n", hex::encode(&[7u8; 32])),
    ] {
        assert!(
            matches!(
                Checkpoint::parse_body(&bad),
                Err(LedgerError::InvalidCheckpoint(_))
            ),
            "{bad:?}"
        );
    }
    // Non-canonical base64 (non-zero trailing bits) is rejected.
    let mut chars: Vec<char> = root.chars().collect();
    let last = chars.len() - 2;
    chars[last] = 'x';
    let noncanon: String = chars.into_iter().collect();
    assert!(Checkpoint::parse_body(&format!("o\n5\n{noncanon}\n")).is_err());
    assert_eq!(
        Checkpoint::parse_body(&format!("o\n18446744073709551615\n{root}\n"))
            .unwrap()
            .size,
        u64::MAX
    );
}

/// Detached signature by PETER_SKEY over `"qunimbus-relay/v1" ‖ 0x00 ‖
/// {"type":"valuation"}`, made with OpenSSL (`openssl pkeyutl -sign -rawin`)
/// from the same seed, so the signed-bytes layout is checked independently.
const PETER_DETACHED_SIG: &str =
    "q4wBGKHMjDqesug2Gxg2CL+IMAfgl0dUt3/MkaC7lDMBhriBc1MVyNsQHNezcj1qv7LxoI4DlBN3ZtIiAuhiBg==";
const RELAY_CONTEXT: &str = "qunimbus-relay/v1";
const PAYLOAD: &[u8] = br#"{"type":"valuation"}"#;

#[test]
fn detached_signature_matches_openssl() {
    let s = NoteSigner::from_skey(PETER_SKEY).unwrap();
    let sig = s.sign_bytes(RELAY_CONTEXT, PAYLOAD).unwrap();
    assert_eq!(STANDARD.encode(sig), PETER_DETACHED_SIG);
    let v = NoteVerifier::from_vkey(PETER_VKEY).unwrap();
    v.verify_bytes(RELAY_CONTEXT, PAYLOAD, &sig).unwrap();
}

#[test]
fn detached_signature_roundtrip_is_deterministic() {
    let s = signer("qunimbus/node-a", 7);
    let payload = br#"{"type":"valuation","origin":"qunimbus/node-a","seq":1}"#;
    let sig = s.sign_bytes(RELAY_CONTEXT, payload).unwrap();
    assert_eq!(sig, s.sign_bytes(RELAY_CONTEXT, payload).unwrap());
    s.verifier()
        .verify_bytes(RELAY_CONTEXT, payload, &sig)
        .unwrap();
    // Empty messages are signable too.
    let empty = s.sign_bytes(RELAY_CONTEXT, b"").unwrap();
    s.verifier()
        .verify_bytes(RELAY_CONTEXT, b"", &empty)
        .unwrap();
}

#[test]
fn detached_signature_rejects_tampering_wrong_key_and_context() {
    let s = signer("qunimbus/node-a", 7);
    let v = s.verifier();
    let payload = br#"{"origin":"qunimbus/node-a","phi_qevf":812.5}"#.to_vec();
    let sig = s.sign_bytes(RELAY_CONTEXT, &payload).unwrap();
    let is_bad = |r: Result<(), LedgerError>| matches!(r, Err(LedgerError::BadSignature { .. }));

    // Tampered payload: a price changed, a byte appended, one removed.
    let mut changed = payload.clone();
    let at = payload.len() - 3;
    changed[at] = b'9';
    assert!(is_bad(v.verify_bytes(RELAY_CONTEXT, &changed, &sig)));
    let mut longer = payload.clone();
    longer.push(b' ');
    assert!(is_bad(v.verify_bytes(RELAY_CONTEXT, &longer, &sig)));
    assert!(is_bad(v.verify_bytes(
        RELAY_CONTEXT,
        &payload[..payload.len() - 1],
        &sig
    )));
    // Tampered signature: a flipped bit, truncated, extended, empty.
    let mut flipped = sig;
    flipped[10] ^= 0x01;
    assert!(is_bad(v.verify_bytes(RELAY_CONTEXT, &payload, &flipped)));
    assert!(is_bad(v.verify_bytes(RELAY_CONTEXT, &payload, &sig[..63])));
    let mut extended = sig.to_vec();
    extended.push(0);
    assert!(is_bad(v.verify_bytes(RELAY_CONTEXT, &payload, &extended)));
    assert!(is_bad(v.verify_bytes(RELAY_CONTEXT, &payload, &[])));
    // Wrong key.
    let other = signer("qunimbus/node-b", 8).verifier();
    assert!(matches!(
        other.verify_bytes(RELAY_CONTEXT, &payload, &sig),
        Err(LedgerError::BadSignature { name, .. }) if name == "qunimbus/node-b"
    ));
    // Another context.
    assert!(is_bad(v.verify_bytes("qunimbus-other/v1", &payload, &sig)));
    // Moving bytes between context and message changes the signed data.
    let shifted = s.sign_bytes("qunimbus-relay/v", b"1{}").unwrap();
    assert!(is_bad(v.verify_bytes(RELAY_CONTEXT, b"{}", &shifted)));
}

#[test]
fn detached_contexts_are_validated() {
    let s = signer("qunimbus/node-a", 7);
    let too_long = "c".repeat(MAX_CONTEXT_LEN + 1);
    for context in [
        "",
        "with space",
        "nul\0inside",
        "tab\t",
        "é",
        too_long.as_str(),
    ] {
        assert!(
            matches!(
                s.sign_bytes(context, b"x"),
                Err(LedgerError::InvalidContext(_))
            ),
            "{context:?}"
        );
        assert!(matches!(
            s.verifier().verify_bytes(context, b"x", &[0; 64]),
            Err(LedgerError::InvalidContext(_))
        ));
    }
    s.sign_bytes(&"c".repeat(MAX_CONTEXT_LEN), b"x").unwrap();
}

#[test]
fn detached_and_note_signatures_never_cross() {
    let s = signer("qunimbus/node-a", 7);
    let v = s.verifier();
    let body = checkpoint().body();
    // A detached signature over a checkpoint body, dressed as a note line,
    // is not a checkpoint signature.
    let sig = s.sign_bytes(RELAY_CONTEXT, body.as_bytes()).unwrap();
    let mut blob = s.key_id().to_vec();
    blob.extend_from_slice(&sig);
    let forged = format!("{body}\n\u{2014} {} {}\n", s.name(), STANDARD.encode(&blob));
    assert!(matches!(
        v.verify(&forged),
        Err(LedgerError::BadSignature { .. })
    ));
    // A checkpoint's signature is not a detached signature of its body.
    let note = s.sign(&body);
    let line = note[body.len() + 1..].trim_end();
    let encoded = line.rsplit(' ').next().unwrap();
    let note_sig = STANDARD.decode(encoded).unwrap();
    assert!(matches!(
        v.verify_bytes(RELAY_CONTEXT, body.as_bytes(), &note_sig[4..]),
        Err(LedgerError::BadSignature { .. })
    ));
}
