//! Fixtures and shared checks for the QuNimbus fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, run by `scripts/fuzz`).
//!
//! Every fixture is fixed, so the committed seed corpus (signed notes, TSA
//! responses) keeps verifying from one run to the next: the note key comes
//! from a fixed seed, and the TSA (a root CA and a TSA certificate made once
//! by `qunimbus_timestamp::generate_authority`) is committed as PEM under
//! `fuzz/fixtures/tsa/`. These are test keys that protect nothing.
//!
//! `cargo test --manifest-path fuzz/Cargo.toml -- --ignored` rewrites the
//! generated seeds (and, with `QUNIMBUS_FUZZ_NEW_TSA=1`, a new TSA fixture).

use std::sync::OnceLock;

use qunimbus_core::{RegionSet, RunMetrics};
use qunimbus_ledger::{NoteSigner, NoteVerifier};
use qunimbus_timestamp::{Authority, TrustAnchors, VerifiedToken};

/// Name (log origin) of the fixed note key.
pub const NOTE_NAME: &str = "fuzz.example/log";

/// Seed of the fixed note key.
pub const NOTE_SEED: [u8; 32] = [0x42; 32];

/// `notBefore` of both fixture TSA certificates (2023-11-14T22:13:20Z).
pub const TSA_NOT_BEFORE: i64 = 1_700_000_000;

/// Validity of the fixture TSA certificates, in days.
pub const TSA_DAYS: u32 = 36_500;

/// The `genTime` the fixture TSA stamps, in µs since the epoch (60 s
/// after [`TSA_NOT_BEFORE`]).
pub const GEN_TIME_MICROS: i64 = (TSA_NOT_BEFORE + 60) * 1_000_000;

/// The SHA-256 imprint the seed responses are for and that `tsa_response`
/// expects.
pub const DIGEST: [u8; 32] = [0x5a; 32];

/// The nonce of the seed request, and the one `tsa_response` expects.
pub const NONCE: [u8; 8] = [0x31, 0x4c, 0xfc, 0xe4, 0xe0, 0x65, 0x18, 0x27];

/// Dotted OID of SHA-256.
pub const SHA256_OID: &str = "2.16.840.1.101.3.4.2.1";

const TSA_KEY_PEM: &str = include_str!("../fixtures/tsa/tsa_key.pem");
const TSA_CHAIN_PEM: &str = include_str!("../fixtures/tsa/chain.pem");
const TSA_ROOT_PEM: &str = include_str!("../fixtures/tsa/root.pem");

/// The node's default regions, built once.
pub fn regions() -> &'static RegionSet {
    static REGIONS: OnceLock<RegionSet> = OnceLock::new();
    REGIONS.get_or_init(RegionSet::default)
}

/// The fixed note signer.
pub fn note_signer() -> &'static NoteSigner {
    static SIGNER: OnceLock<NoteSigner> = OnceLock::new();
    SIGNER.get_or_init(|| NoteSigner::new(NOTE_NAME, NOTE_SEED).expect("fixture key name"))
}

/// The fixed note signer's verifier.
pub fn note_verifier() -> &'static NoteVerifier {
    static VERIFIER: OnceLock<NoteVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| note_signer().verifier())
}

/// The fixture TSA and the trust store that accepts its tokens.
pub struct Tsa {
    /// The built-in TSA loaded from the fixture key and chain.
    pub authority: Authority,
    /// The fixture root as the only trust anchor, plus the fixture chain as
    /// untrusted certificates (so tokens without embedded certificates
    /// verify too, as with `openssl ts -verify -untrusted`).
    pub anchors: TrustAnchors,
}

/// The fixture TSA, loaded once. Panics if the fixture no longer issues a
/// token that verifies (a fixture that fails would make every target shallow).
pub fn tsa() -> &'static Tsa {
    static TSA: OnceLock<Tsa> = OnceLock::new();
    TSA.get_or_init(|| {
        let authority =
            Authority::from_pem(TSA_KEY_PEM, TSA_CHAIN_PEM).expect("fixture TSA key and chain");
        let mut anchors = TrustAnchors::from_pem(TSA_ROOT_PEM).expect("fixture TSA root");
        anchors
            .add_untrusted_pem(TSA_CHAIN_PEM)
            .expect("fixture TSA chain");
        let token = authority
            .issue(&DIGEST, Some(&NONCE), GEN_TIME_MICROS, 1, true)
            .expect("fixture TSA issues a token");
        qunimbus_timestamp::verify_token(&token, &DIGEST, Some(&NONCE), &anchors)
            .expect("fixture TSA token verifies");
        Tsa { authority, anchors }
    })
}

/// A DER `TimeStampReq` (version 1, SHA-256 imprint with NULL parameters,
/// `nonce`, `certReq`), encoded by hand so the seed requests are fixed.
/// `nonce` must be at most 100 bytes and positive as encoded.
pub fn request_der(digest: &[u8; 32], nonce: &[u8], cert_req: bool) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x01]; // version INTEGER 1
    body.extend_from_slice(&[
        0x30, 0x31, // MessageImprint
        0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
        0x00, // AlgorithmIdentifier { sha256, NULL }
        0x04, 0x20, // OCTET STRING (32)
    ]);
    body.extend_from_slice(digest);
    body.push(0x02); // nonce INTEGER
    body.push(u8::try_from(nonce.len()).expect("short nonce"));
    body.extend_from_slice(nonce);
    if cert_req {
        body.extend_from_slice(&[0x01, 0x01, 0xff]); // certReq BOOLEAN TRUE
    }
    let mut der = vec![0x30, u8::try_from(body.len()).expect("short request")];
    der.extend_from_slice(&body);
    der
}

/// Asserts the SPEC §2 ranges on metrics that a parser accepted.
pub fn assert_metrics_in_range(m: &RunMetrics) {
    assert!(m.validate().is_ok(), "accepted metrics out of range: {m:?}");
    assert!(m.eta_ent.is_finite() && (0.0..=1.0).contains(&m.eta_ent));
    assert!(m.coherence_variance.is_finite() && m.coherence_variance >= 0.0);
    assert!(m.runtime_hours.is_finite() && m.runtime_hours >= 0.0);
    assert!(m.eph_delivered.is_finite() && m.eph_delivered > 0.0);
}

/// Asserts what every token verified against the fixture trust store must
/// satisfy: the expected imprint and nonce, a `genTime` inside the fixture
/// certificates' validity, and well-formed reported fields.
pub fn assert_verified_token(v: &VerifiedToken, nonce: Option<&[u8]>) {
    assert_eq!(v.digest, DIGEST, "verified token for another imprint");
    if let Some(expected) = nonce {
        let got = v.nonce.as_deref().expect("nonce was required");
        assert_eq!(magnitude(got), magnitude(expected), "nonce mismatch");
    }
    let not_after = TSA_NOT_BEFORE + i64::from(TSA_DAYS) * 86_400;
    assert!(
        (TSA_NOT_BEFORE..=not_after).contains(&v.gen_time_unix),
        "genTime {} outside the certificates' validity",
        v.gen_time_unix
    );
    assert!(v.gen_time_nanos < 1_000_000_000);
    let t = v.gen_time_rfc3339.as_bytes();
    assert!(
        t.len() == 27 && t[10] == b'T' && t[19] == b'.' && t[26] == b'Z',
        "genTime text {:?}",
        v.gen_time_rfc3339
    );
    assert!(
        !v.serial_hex.is_empty()
            && v.serial_hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "serial {:?}",
        v.serial_hex
    );
    assert!(
        !v.policy.is_empty() && v.policy.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
        "policy {:?}",
        v.policy
    );
}

/// The magnitude of big-endian `INTEGER` content bytes (leading zeros off).
pub fn magnitude(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use qunimbus_ledger::{Checkpoint, NoteSigner};
    use std::path::{Path, PathBuf};

    fn fuzz_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn fixtures_load_and_verify() {
        tsa();
        let note = note_signer().sign("x\n");
        assert_eq!(note_verifier().verify(&note).unwrap(), "x\n");
        let req = qunimbus_timestamp::parse_request(&request_der(&DIGEST, &NONCE, true)).unwrap();
        assert_eq!(req.hash_algorithm, SHA256_OID);
        assert_eq!(req.digest, DIGEST);
        assert_eq!(req.nonce.as_deref(), Some(&NONCE[..]));
        assert!(req.cert_req);
    }

    #[test]
    fn committed_tsa_seeds_verify() {
        let t = tsa();
        let dir = fuzz_dir().join("corpus/tsa_response");
        for name in ["granted", "granted_no_certs"] {
            let der = std::fs::read(dir.join(name)).unwrap();
            let v = qunimbus_timestamp::verify_response(&der, &DIGEST, Some(&NONCE), &t.anchors)
                .unwrap();
            assert_verified_token(&v, Some(&NONCE));
        }
        let token = std::fs::read(dir.join("token")).unwrap();
        qunimbus_timestamp::verify_token(&token, &DIGEST, None, &t.anchors).unwrap();
    }

    /// Writes a new TSA fixture (only with `QUNIMBUS_FUZZ_NEW_TSA=1`) and
    /// the generated seeds of `tsa_response`, `tsa_request` and
    /// `signed_note`.
    #[test]
    #[ignore = "rewrites committed files; run by hand"]
    fn write_generated_seeds() {
        let dir = fuzz_dir();
        if std::env::var_os("QUNIMBUS_FUZZ_NEW_TSA").is_some() {
            let g = qunimbus_timestamp::generate_authority(
                "QuNimbus Fuzz Root",
                "QuNimbus Fuzz TSA",
                TSA_NOT_BEFORE,
                TSA_DAYS,
            )
            .unwrap();
            write(
                &dir.join("fixtures/tsa/root.pem"),
                g.root_cert_pem.as_bytes(),
            );
            write(&dir.join("fixtures/tsa/chain.pem"), g.chain_pem.as_bytes());
            write(
                &dir.join("fixtures/tsa/tsa_key.pem"),
                g.tsa_key_pem.as_bytes(),
            );
            eprintln!("new TSA fixture written; rebuild and run again for the seeds");
            return;
        }
        let t = tsa();
        let request = request_der(&DIGEST, &NONCE, true);
        let request_no_certs = request_der(&DIGEST, &NONCE, false);
        let granted = t.authority.respond(&request, GEN_TIME_MICROS, 7);
        let granted_no_certs = t.authority.respond(&request_no_certs, GEN_TIME_MICROS, 8);
        let rejected = t.authority.respond(b"not a request", GEN_TIME_MICROS, 9);
        let token = qunimbus_timestamp::token_from_response(&granted).unwrap();
        let responses = dir.join("corpus/tsa_response");
        write(&responses.join("granted"), &granted);
        write(&responses.join("granted_no_certs"), &granted_no_certs);
        write(&responses.join("rejected"), &rejected);
        write(&responses.join("token"), &token);
        let requests = dir.join("corpus/tsa_request");
        write(&requests.join("request"), &request);
        write(&requests.join("request_no_certs"), &request_no_certs);
        write(
            &requests.join("request_truncated"),
            &request[..request.len() - 5],
        );

        let s = note_signer();
        let body = Checkpoint {
            origin: NOTE_NAME.into(),
            size: 12_345,
            root: [7; 32],
        }
        .body();
        let other = NoteSigner::new("other.example/log", [9; 32]).unwrap();
        let notes = dir.join("corpus/signed_note");
        write(&notes.join("checkpoint_body"), body.as_bytes());
        write(&notes.join("signed_checkpoint"), s.sign(&body).as_bytes());
        let cosigned = format!(
            "{}{}",
            s.sign(&body),
            other.sign(&body).rsplit_once("\n\n").unwrap().1
        );
        write(&notes.join("cosigned_checkpoint"), cosigned.as_bytes());
        write(
            &notes.join("foreign_signature"),
            other.sign(&body).as_bytes(),
        );
        write(&notes.join("vkey"), s.verifier().to_vkey().as_bytes());
        write(&notes.join("skey"), s.to_skey().as_bytes());
    }
}
