//! Tests of the built-in time-stamping authority.

use super::*;
use crate::{
    build_request, parse_request, token_from_response, verify_response, verify_token, TrustAnchors,
    VerifyError,
};

const T0: i64 = 1_700_000_000;

fn authority() -> (Authority, TrustAnchors) {
    let g = generate_authority("QuNimbus Test Root", "QuNimbus Test TSA", T0, 30).unwrap();
    let a = Authority::from_pem(&g.tsa_key_pem, &g.chain_pem).unwrap();
    assert_eq!(a.root_pem(), g.root_cert_pem);
    assert_eq!(a.chain_pem(), g.chain_pem);
    (a, TrustAnchors::from_pem(&g.root_cert_pem).unwrap())
}

#[test]
fn issue_and_verify_round_trip() {
    let (a, anchors) = authority();
    let digest = asn1::sha256(b"checkpoint body");
    let t = (T0 + 3600) * 1_000_000 + 123_456;
    let token = a.issue(&digest, Some(&[0, 0x99, 1]), t, 42, true).unwrap();
    let v = verify_token(&token, &digest, Some(&[0x99, 1]), &anchors).unwrap();
    assert_eq!(v.gen_time_unix, T0 + 3600);
    assert_eq!(v.gen_time_nanos, 123_456_000);
    assert_eq!(v.gen_time_rfc3339, "2023-11-14T23:13:20.123456Z");
    assert_eq!(v.serial_hex, "2a");
    assert_eq!(v.policy, DEFAULT_POLICY_OID);
    assert_eq!(v.tsa_subject, "CN=QuNimbus Test TSA");
    assert_eq!(v.nonce.as_deref(), Some(&[0, 0x99, 1][..]));
    assert_eq!(
        verify_token(&token, &digest, Some(&[0x98, 1]), &anchors),
        Err(VerifyError::NonceMismatch)
    );
    // Without embedded certificates the signer must come from elsewhere.
    let bare = a.issue(&digest, None, t, 43, false).unwrap();
    assert_eq!(
        verify_token(&bare, &digest, None, &anchors),
        Err(VerifyError::SignerCertificateNotFound)
    );
    let mut with_tsa = anchors.clone();
    assert_eq!(
        with_tsa
            .add_untrusted_pem(&a.tsa_certificate_pem())
            .unwrap(),
        1
    );
    assert!(verify_token(&bare, &digest, None, &with_tsa).is_ok());
}

#[test]
fn respond_round_trip_and_rejections() {
    let (a, anchors) = authority();
    let digest = asn1::sha256(b"x");
    let req = build_request(&digest).unwrap();
    let t = (T0 + 10) * 1_000_000;
    let resp = a.respond(&req.der, t, u128::MAX);
    let v = verify_response(&resp, &digest, Some(&req.nonce), &anchors).unwrap();
    assert_eq!(v.serial_hex, "ff".repeat(16));
    assert_eq!(v.gen_time_nanos, 0);
    assert!(token_from_response(&resp).is_ok());

    let rejected = a.respond(b"garbage", t, 1);
    match token_from_response(&rejected) {
        Err(VerifyError::NotGranted {
            status: 2,
            text: Some(_),
        }) => {}
        other => panic!("{other:?}"),
    }
    // A time before 1970 cannot be stamped.
    let resp = a.respond(&req.der, -1, 1);
    assert!(matches!(
        token_from_response(&resp),
        Err(VerifyError::NotGranted { status: 2, .. })
    ));
    let p = parse_request(&req.der).unwrap();
    assert_eq!(p.digest, digest);
}

#[test]
fn policy_and_accuracy_options() {
    let (a, anchors) = authority();
    let a = a
        .with_policy("1.2.3.4.5")
        .unwrap()
        .with_accuracy(Some(1), Some(500), None)
        .unwrap()
        .with_tsa_name(false);
    assert_eq!(a.policy(), "1.2.3.4.5");
    assert!(a.clone().with_policy("not an oid").is_err());
    assert!(a.clone().with_accuracy(None, Some(0), None).is_err());
    let digest = [1u8; 32];
    let token = a.issue(&digest, None, T0 * 1_000_000, 1, true).unwrap();
    let v = verify_token(&token, &digest, None, &anchors).unwrap();
    assert_eq!(v.policy, "1.2.3.4.5");
}

#[test]
fn shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Authority>();
    assert_send_sync::<TrustAnchors>();
    assert_send_sync::<VerifyError>();
    assert_send_sync::<TimestampError>();
}

#[test]
fn generate_rejects_bad_input() {
    assert!(generate_authority("", "tsa", T0, 1).is_err());
    assert!(generate_authority("root", &"x".repeat(65), T0, 1).is_err());
    assert!(generate_authority("root", "tsa", -5, 1).is_err());
    assert!(generate_authority("root", "tsa", T0, 0).is_err());
}

#[test]
fn from_pem_checks_key_and_chain() {
    let g1 = generate_authority("Root", "TSA", T0, 30).unwrap();
    let g2 = generate_authority("Root", "TSA", T0, 30).unwrap();
    assert_eq!(
        Authority::from_pem(&g2.tsa_key_pem, &g1.chain_pem).unwrap_err(),
        TimestampError::KeyMismatch
    );
    // TSA cert of g1 followed by the root of g2: signature does not chain.
    let tsa1 = g1.chain_pem.replace(&g1.root_cert_pem, "");
    let mixed = format!("{tsa1}{}", g2.root_cert_pem);
    assert!(matches!(
        Authority::from_pem(&g1.tsa_key_pem, &mixed),
        Err(TimestampError::InvalidChain(_))
    ));
    assert!(Authority::from_pem("nonsense", &g1.chain_pem).is_err());
    assert!(Authority::from_pem(&g1.tsa_key_pem, "").is_err());
}
