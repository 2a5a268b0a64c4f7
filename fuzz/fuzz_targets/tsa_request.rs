//! RFC 3161 requests to the built-in TSA (`POST /tsa`, open to anyone):
//! `parse_request` and `Authority::respond` on the same bytes.
//!
//! Checks: every input is answered with a `TimeStampResp` that is either
//! granted or a rejection (status 2 with a text), never unreadable; a
//! request `parse_request` refuses is rejected; a granted SHA-256 request's
//! token verifies against the fixture trust store for the request's imprint
//! and nonce, with the TSA's policy and the stamped `genTime`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qunimbus_fuzz::{magnitude, tsa, GEN_TIME_MICROS, SHA256_OID};
use qunimbus_timestamp::{parse_request, token_from_response, verify_token, VerifyError};

fuzz_target!(|data: &[u8]| {
    let tsa = tsa();
    let parsed = parse_request(data);
    let response = tsa.authority.respond(data, GEN_TIME_MICROS, 0x1234);
    match token_from_response(&response) {
        Ok(token) => {
            let request = parsed.expect("granted a request parse_request refuses");
            if let Some(policy) = &request.policy {
                assert_eq!(*policy, tsa.authority.policy());
            }
            if request.hash_algorithm != SHA256_OID {
                return;
            }
            let digest: [u8; 32] = request
                .digest
                .as_slice()
                .try_into()
                .expect("granted a SHA-256 imprint of the wrong length");
            let v = verify_token(&token, &digest, request.nonce.as_deref(), &tsa.anchors)
                .expect("the built-in TSA's token does not verify");
            assert_eq!(v.gen_time_unix, GEN_TIME_MICROS / 1_000_000);
            assert_eq!(v.policy, tsa.authority.policy());
            assert_eq!(
                v.nonce.as_deref().map(magnitude),
                request.nonce.as_deref().map(magnitude)
            );
        }
        Err(VerifyError::NotGranted {
            status: 2,
            text: Some(text),
        }) => assert!(!text.is_empty()),
        Err(other) => panic!("unusable TSA answer: {other:?}"),
    }
});
