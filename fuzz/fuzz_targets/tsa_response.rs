//! RFC 3161 answers from a TSA (what the node's timestamper receives from
//! `tsa.url`, and the tokens `qunimbus ledger verify --tsa-roots` reads):
//! `token_from_response`, `verify_response` and `verify_token` against the
//! fixture trust store, and `parse_request` on the same bytes.
//!
//! Checks: `verify_response` fails exactly when extracting the token fails
//! (with the same error) or the token does not verify; the extracted token
//! is the response's own bytes; a verified token is for the expected imprint
//! and nonce, its `genTime` lies inside the fixture certificates' validity,
//! and its reported fields are well formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qunimbus_fuzz::{assert_verified_token, tsa, DIGEST, NONCE};
use qunimbus_timestamp::{parse_request, token_from_response, verify_response, verify_token};

fuzz_target!(|data: &[u8]| {
    let anchors = &tsa().anchors;
    let token = token_from_response(data);
    let response = verify_response(data, &DIGEST, Some(&NONCE), anchors);
    match (&token, &response) {
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Err(e), Ok(_)) => panic!("verified a response whose token is unreadable: {e}"),
        (Ok(token), _) => {
            assert!(
                data.windows(token.len()).any(|w| w == token.as_slice()),
                "the token is not byte for byte inside the response"
            );
            if let Ok(v) = &response {
                assert_verified_token(v, Some(&NONCE));
                let bare = verify_token(token, &DIGEST, Some(&NONCE), anchors);
                assert_eq!(bare.as_ref(), Ok(v));
            }
        }
    }
    if let Ok(v) = verify_token(data, &DIGEST, None, anchors) {
        assert_verified_token(&v, None);
    }
    let _ = parse_request(data);
});
