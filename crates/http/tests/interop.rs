//! The ledger checked by independent implementations (SPEC §4: "anyone with
//! any RFC 8785 library can recompute it"; checkpoints are plain Ed25519):
//!
//! * block hashes and Merkle leaves recomputed by the Python `rfc8785`
//!   package from PyPI, including blocks with awkward floats;
//! * the signed checkpoint verified by `openssl pkeyutl` as an independent
//!   Ed25519 implementation, with the key ID rule checked by hand.
//!
//! Both run on SQLite and PostgreSQL. A missing python3, `rfc8785` package,
//! `openssl` or PostgreSQL fails the test with a message; nothing is skipped.

#[macro_use]
mod support;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use qunimbus_ledger::merkle::Hash;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use support::{
    hex, reference_run, require_openssl, require_python_rfc8785, rfc6962_root, sha256, Backend,
    TestNode, REFERENCE_PHI,
};

/// Reads `{"blocks": [...]}` (the body of `GET /v1/ledger/blocks`) on stdin
/// and prints, per block, the hash and RFC 6962 leaf hash recomputed with
/// the `rfc8785` package, and the JCS text of the full block.
const PYTHON_RECOMPUTE: &str = r#"
import hashlib, json, sys
import rfc8785

page = json.load(sys.stdin)
out = []
for block in page["blocks"]:
    content = {k: v for k, v in block.items() if k != "hash"}
    full = rfc8785.dumps(block)
    out.append({
        "index": block["index"],
        "hash": hashlib.sha256(rfc8785.dumps(content)).hexdigest(),
        "leaf_hash": hashlib.sha256(b"\x00" + full).hexdigest(),
        "jcs": full.decode("utf-8"),
    })
json.dump(out, sys.stdout)
"#;

fn python_recompute(blocks_page: &str) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args(["-c", PYTHON_RECOMPUTE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required for the RFC 8785 interop test");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(blocks_page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 rfc8785 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

/// Telemetry whose valuation blocks hold awkward floats.
fn awkward_runs() -> Vec<(Value, Option<f64>)> {
    vec![
        // SPEC §3 reference: phi 212.71929824561406.
        (reference_run("odd-reference"), Some(REFERENCE_PHI)),
        // eta = baseline, no penalty, runtime/120 = 1e-10: phi exactly 1e-7.
        (
            json!({"run_id": "odd-1e-7", "region": "EU", "eta_ent": 0.95, "coherence_variance": 0,
                   "runtime_hours": 1.1999999999999998e-8, "eph_delivered": 1e21}),
            Some(1e-7),
        ),
        // runtime 0 gives phi 0 (and eph_price, market_value 0).
        (
            json!({"run_id": "odd-zero-runtime", "region": "MENA", "eta_ent": 0.99, "coherence_variance": 0.001,
                   "runtime_hours": 0, "eph_delivered": 3}),
            Some(0.0),
        ),
        // Tiny eta (1e-7), capped runtime, tiny eph; price multiplier 0.
        (
            json!({"run_id": "odd-tiny-eta", "region": "APAC", "eta_ent": 1e-7, "coherence_variance": 0.0199,
                   "runtime_hours": 1000, "eph_delivered": 1e-7}),
            None,
        ),
        // Coherence just below the threshold: a penalty of a few ulps.
        (
            json!({"run_id": "odd-ulp-penalty", "region": "Polar", "eta_ent": 0.3333333333333333,
                   "coherence_variance": 0.019999999999999997, "runtime_hours": 7.25, "eph_delivered": 123456789.125}),
            None,
        ),
        // Above the threshold: penalty 0, phi 0.
        (
            json!({"run_id": "odd-over-threshold", "region": "Orbit", "eta_ent": 1, "coherence_variance": 0.5,
                   "runtime_hours": 5e-324, "eph_delivered": 1.7976931348623157e308}),
            Some(0.0),
        ),
        // Perfect run, runtime beyond the cap.
        (
            json!({"run_id": "odd-max", "region": "Americas", "eta_ent": 1.0, "coherence_variance": 0,
                   "runtime_hours": 1e6, "eph_delivered": 0.1}),
            None,
        ),
    ]
}

async fn jcs_hashes_match_python_rfc8785(backend: Backend) {
    require_python_rfc8785();
    let t = TestNode::start(backend).await;
    for (run, phi) in awkward_runs() {
        let body = t.ingest_new(&run).await;
        if let Some(phi) = phi {
            assert_eq!(body["phi_qevf"].as_f64(), Some(phi), "{run}");
        }
    }
    let (status, _) = t
        .post(
            "/v1/ledger/attestations",
            Some(t.admin_token()),
            r#"{"ITAR":"verified","GDPR":"waived","DO-178C":"failed"}"#,
        )
        .await;
    assert_eq!(status, 201);
    t.grow("plain", 5).await;
    let length = t.chain_length().await;
    let note = t.wait_for_checkpoint(length).await;

    let (status, page_text) = t.get_text("/v1/ledger/blocks?limit=1000").await;
    assert_eq!(status, 200);
    let page: Value = serde_json::from_str(&page_text).unwrap();
    let blocks = page["blocks"].as_array().unwrap();
    assert_eq!(blocks.len() as u64, length);
    let phis: Vec<Option<f64>> = blocks.iter().map(|b| b["phi_qevf"].as_f64()).collect();
    for want in [REFERENCE_PHI, 1e-7, 0.0] {
        assert!(
            phis.contains(&Some(want)),
            "a block has phi {want}: {phis:?}"
        );
    }

    let (status, tile) = t.get_bytes(&format!("/tlog/tile/0/000.p/{length}")).await;
    assert_eq!(status, 200);
    let tile: Vec<Hash> = tile.chunks(32).map(|c| c.try_into().unwrap()).collect();
    let (status, bundle) = t
        .get_bytes(&format!("/tlog/tile/entries/000.p/{length}"))
        .await;
    assert_eq!(status, 200);

    let recomputed = python_recompute(&page_text);
    assert_eq!(recomputed.len(), blocks.len());
    let mut rest = bundle.as_slice();
    for (i, (block, python)) in blocks.iter().zip(&recomputed).enumerate() {
        assert_eq!(python["index"], json!(i));
        assert_eq!(
            python["hash"], block["hash"],
            "block {i}: hex(sha256(rfc8785(block without hash))) differs from the stored hash; block {block}"
        );
        assert_eq!(
            python["leaf_hash"].as_str().unwrap(),
            hex(&tile[i]),
            "block {i}: rfc8785 leaf hash differs from the level-0 tile"
        );
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let entry = &rest[2..2 + len];
        rest = &rest[2 + len..];
        assert_eq!(
            python["jcs"].as_str().unwrap(),
            std::str::from_utf8(entry).unwrap(),
            "block {i}: entry bytes are not the rfc8785 serialization"
        );
    }
    assert!(rest.is_empty());
    assert_eq!(rfc6962_root(&tile), note.root);
    t.stop().await;
}
on_both_backends!(jcs_hashes_match_python_rfc8785);

// ---- Ed25519 checkpoint signature with openssl -------------------------------------

/// `openssl pkeyutl -verify` of `sig` over `body` with the raw Ed25519 key
/// `public` (as PEM SubjectPublicKeyInfo). Returns success and the output.
fn openssl_verify(
    dir: &std::path::Path,
    public: &[u8; 32],
    body: &[u8],
    sig: &[u8],
) -> (bool, String) {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(public);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        B64.encode(&der)
    );
    let (key, body_file, sig_file) = (
        dir.join("key.pem"),
        dir.join("body.txt"),
        dir.join("sig.bin"),
    );
    std::fs::write(&key, pem).unwrap();
    std::fs::write(&body_file, body).unwrap();
    std::fs::write(&sig_file, sig).unwrap();
    let out = Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(&key)
        .arg("-rawin")
        .arg("-in")
        .arg(&body_file)
        .arg("-sigfile")
        .arg(&sig_file)
        .output()
        .expect("the openssl command is required for the Ed25519 interop test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn checkpoint_signature_verified_by_openssl(backend: Backend) {
    require_openssl();
    let t = TestNode::start(backend).await;
    let note = t.grow("sig", 3).await;

    // vkey: name+hex(keyid)+base64(0x01 || pubkey)
    let (status, vkey) = t.get_text("/v1/ledger/public-key").await;
    assert_eq!(status, 200);
    let vkey = vkey.trim();
    // The base64 key may itself contain '+': split off name and key ID only.
    let parts: Vec<&str> = vkey.splitn(3, '+').collect();
    let [name, key_id_hex, typed_key] = parts.as_slice() else {
        panic!("vkey {vkey:?} is not name+keyid+key");
    };
    assert_eq!(*name, note.origin, "the key name is the log origin");
    let typed = B64.decode(typed_key).unwrap();
    assert_eq!(typed.len(), 33, "{vkey}");
    assert_eq!(typed[0], 0x01, "Ed25519 key type");
    let public: [u8; 32] = typed[1..].try_into().unwrap();

    // Key ID: first 4 bytes of SHA-256(name || 0x0A || 0x01 || pubkey).
    let mut id_input = name.as_bytes().to_vec();
    id_input.push(0x0a);
    id_input.push(0x01);
    id_input.extend_from_slice(&public);
    let key_id = &sha256(&id_input)[..4];
    assert_eq!(*key_id_hex, hex(key_id), "vkey key ID");

    // Signature line: "— name base64(keyid4 || sig64)".
    assert_eq!(note.signatures.len(), 1, "{}", note.text);
    let line = &note.signatures[0];
    let rest = line.strip_prefix("\u{2014} ").unwrap();
    let (signer, blob) = rest.split_once(' ').unwrap();
    assert_eq!(signer, *name);
    let blob = B64.decode(blob).unwrap();
    assert_eq!(blob.len(), 68, "key ID + Ed25519 signature");
    assert_eq!(&blob[..4], key_id, "signature line key ID");
    let signature = &blob[4..];
    assert!(note.text.starts_with(&note.body));
    assert!(note.body.ends_with('\n'));

    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = openssl_verify(dir.path(), &public, note.body.as_bytes(), signature);
    assert!(ok, "openssl rejects the checkpoint signature: {out}");
    assert!(out.contains("Signature Verified Successfully"), "{out}");

    // One byte changed anywhere in the body: the signature must fail.
    for position in [0, note.body.len() / 2, note.body.len() - 1] {
        let mut tampered = note.body.clone().into_bytes();
        tampered[position] ^= 0x01;
        let (ok, out) = openssl_verify(dir.path(), &public, &tampered, signature);
        assert!(
            !ok,
            "openssl accepted a body changed at byte {position}: {out}"
        );
    }
    // Without the trailing newline the signed text is different too.
    let (ok, _) = openssl_verify(
        dir.path(),
        &public,
        note.body.trim_end().as_bytes(),
        signature,
    );
    assert!(!ok, "the signature covers the body's trailing newline");
    let mut bad_sig = signature.to_vec();
    bad_sig[10] ^= 0x80;
    let (ok, _) = openssl_verify(dir.path(), &public, note.body.as_bytes(), &bad_sig);
    assert!(!ok, "openssl accepted a changed signature");

    // The tlog endpoint serves the same note.
    assert_eq!(t.get_text("/tlog/checkpoint").await.1, note.text);
    t.stop().await;
}
on_both_backends!(checkpoint_signature_verified_by_openssl);
