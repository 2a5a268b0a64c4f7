//! What partners send on the market feed (WebSocket text frames, SSE ack
//! bodies): `parse_client_message`.
//!
//! Checks: an accepted ack has seq ≥ 1 and an origin of 1..=256 bytes when
//! given, and its own JSON parses back to it; a refusal has a stable code
//! consistent with the field it names, a short message (offending values
//! are quoted truncated), and its `error` reply parses as one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qunimbus_market::{parse_client_message, ServerMessage, MAX_ORIGIN_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_client_message(text) {
        Ok(ack) => {
            assert!(ack.seq >= 1);
            if let Some(origin) = &ack.origin {
                assert!(!origin.is_empty() && origin.len() <= MAX_ORIGIN_LEN);
            }
            assert_eq!(parse_client_message(&ack.to_json()).as_ref(), Ok(&ack));
        }
        Err(err) => {
            let code = err.code();
            let expected_code = match err.field() {
                None => ["malformed_json", "invalid_message"].as_slice(),
                Some("type") => ["missing_field", "invalid_value", "unknown_type"].as_slice(),
                Some("seq") | Some("origin") => ["missing_field", "invalid_value"].as_slice(),
                Some(other) => panic!("unexpected field {other}"),
            };
            assert!(
                expected_code.contains(&code),
                "{code} for {:?}",
                err.field()
            );
            let message = err.to_string();
            assert!(
                !message.is_empty() && message.len() <= 400,
                "error message of {} bytes",
                message.len()
            );
            let reply = ServerMessage::client_error(&err);
            match ServerMessage::from_json(&reply.to_json()) {
                Ok(ServerMessage::Error {
                    code: c,
                    message: m,
                }) => {
                    assert_eq!(c, code);
                    assert_eq!(m, message);
                }
                other => panic!("error reply does not parse back: {other:?}"),
            }
        }
    }
});
