//! Arbitrary and mutated input never panics: the TSA answers every byte
//! string with a `TimeStampResp`, and the verifier returns an error value.

use std::sync::LazyLock;

use proptest::prelude::*;
use qunimbus_timestamp::{
    build_request, generate_authority, parse_request, token_from_response, verify_response,
    verify_token, Authority, TrustAnchors, VerifyError,
};

const T0: i64 = 1_700_000_000;

struct Fixture {
    tsa: Authority,
    anchors: TrustAnchors,
    request: Vec<u8>,
    response: Vec<u8>,
    token: Vec<u8>,
    digest: [u8; 32],
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let g = generate_authority("Fuzz Root", "Fuzz TSA", T0, 10).unwrap();
    let tsa = Authority::from_pem(&g.tsa_key_pem, &g.chain_pem).unwrap();
    let anchors = TrustAnchors::from_pem(&g.root_cert_pem).unwrap();
    let digest = [0x5a; 32];
    let request = build_request(&digest).unwrap().der;
    let response = tsa.respond(&request, (T0 + 60) * 1_000_000, 1);
    let token = token_from_response(&response).unwrap();
    Fixture {
        tsa,
        anchors,
        request,
        response,
        token,
        digest,
    }
});

fn mutate(base: &[u8], at: usize, xor: u8, cut: Option<usize>) -> Vec<u8> {
    let mut v = base.to_vec();
    let i = at % v.len();
    v[i] ^= xor.max(1);
    if let Some(c) = cut {
        v.truncate(c % (v.len() + 1));
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn respond_answers_garbage_with_a_rejection(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let f = &*FIXTURE;
        let resp = f.tsa.respond(&bytes, T0 * 1_000_000, 1);
        match token_from_response(&resp) {
            Err(VerifyError::NotGranted { status: 2, text: Some(_) }) => {}
            other => prop_assert!(false, "unexpected {:?}", other),
        }
        let _ = parse_request(&bytes);
        let _ = verify_token(&bytes, &f.digest, None, &f.anchors);
        let _ = verify_response(&bytes, &f.digest, None, &f.anchors);
    }

    #[test]
    fn respond_never_panics_on_garbage_time(t in any::<i64>(), serial in any::<u128>()) {
        let f = &*FIXTURE;
        let resp = f.tsa.respond(&f.request, t, serial);
        prop_assert!(!resp.is_empty());
        let _ = f.tsa.issue(&f.digest, Some(&[1, 2, 3]), t, serial, true);
    }

    #[test]
    fn pem_loaders_never_panic(text in "(-----BEGIN CERTIFICATE-----|-----END CERTIFICATE-----|-----BEGIN PRIVATE KEY-----|-----END PRIVATE KEY-----|[A-Za-z0-9+/=\n ]{0,40}){0,6}") {
        let _ = TrustAnchors::from_pem(&text);
        let _ = Authority::from_pem(&text, &text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn mutated_requests_never_panic(at in any::<usize>(), xor in any::<u8>(), cut in proptest::option::of(any::<usize>())) {
        let f = &*FIXTURE;
        let req = mutate(&f.request, at, xor, cut);
        let resp = f.tsa.respond(&req, (T0 + 60) * 1_000_000, 2);
        match token_from_response(&resp) {
            Ok(_) | Err(VerifyError::NotGranted { status: 2, .. }) => {}
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn mutated_tokens_never_panic(at in any::<usize>(), xor in any::<u8>(), cut in proptest::option::of(any::<usize>())) {
        let f = &*FIXTURE;
        let token = mutate(&f.token, at, xor, cut);
        let _ = verify_token(&token, &f.digest, None, &f.anchors);
        let resp = mutate(&f.response, at, xor, cut);
        let _ = verify_response(&resp, &f.digest, None, &f.anchors);
    }
}

#[test]
fn fixture_is_valid() {
    let f = &*FIXTURE;
    assert!(verify_response(&f.response, &f.digest, None, &f.anchors).is_ok());
    assert!(verify_token(&f.token, &f.digest, None, &f.anchors).is_ok());
}

/// DER TLV with a definite length.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// A token (ContentInfo, signedData) whose SignedData starts with a
/// `digestAlgorithms` SET OF `n` distinct AlgorithmIdentifiers in
/// descending order, the rest missing (as fuzz/regressions/tsa_response/
/// descending-set-of-9000 does with n = 9000).
fn descending_set_token(n: u32) -> Vec<u8> {
    let algs: Vec<u8> = (128..128 + n)
        .rev()
        .flat_map(|v| {
            let oid = [0x2a, 0x80 | (v >> 7) as u8, (v & 0x7f) as u8]; // 1.2.v
            tlv(0x30, &tlv(0x06, &oid))
        })
        .collect();
    let signed_data = tlv(0x30, &[tlv(0x02, &[3]), tlv(0x31, &algs)].concat());
    let oid_signed_data = tlv(
        0x06,
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02],
    );
    tlv(0x30, &[oid_signed_data, tlv(0xa0, &signed_data)].concat())
}

/// Found by the tsa_response fuzz target: `der` insertion-sorts a SET OF
/// while decoding it, so a 63 KB token with one descending SET of 9,000
/// elements took ~10 s of CPU (a 1 MiB answer from a hostile or intercepted
/// `tsa.url`: hours). Such input is now refused before decoding.
#[test]
fn huge_descending_set_is_refused_quickly() {
    let f = &*FIXTURE;
    let token = descending_set_token(9_000);
    assert!(token.len() > 60_000);
    let started = std::time::Instant::now();
    let err = verify_token(&token, &f.digest, None, &f.anchors).unwrap_err();
    let response = tlv(0x30, &[tlv(0x30, &tlv(0x02, &[0])), token].concat());
    let resp_err = verify_response(&response, &f.digest, None, &f.anchors).unwrap_err();
    let elapsed = started.elapsed();
    for e in [&err, &resp_err] {
        assert!(
            matches!(e, VerifyError::Malformed(m) if m.contains("SET of more than")),
            "{e:?}"
        );
    }
    assert!(elapsed.as_millis() < 500, "took {elapsed:?}");
    // Sets of a realistic size still reach the decoder (and fail there).
    let small = descending_set_token(8);
    assert!(matches!(
        verify_token(&small, &f.digest, None, &f.anchors),
        Err(VerifyError::Malformed(m)) if m.starts_with("SignedData")
    ));
}
