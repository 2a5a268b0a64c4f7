//! Feed messages from other nodes (the NATS relay reads every node's
//! valuations with `ServerMessage::from_json`) and as partners parse them.
//!
//! Checks: a message that parses serializes to JSON that parses back to the
//! same message, whose `"type"` is its `kind()`; a parsed `valuation` also
//! parses directly as the `FeedValuation` it holds (the replay form).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qunimbus_market::{FeedValuation, ServerMessage};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // As the relay reads NATS payloads.
    let text = String::from_utf8_lossy(data);
    let Ok(message) = ServerMessage::from_json(&text) else {
        return;
    };
    let json = message.to_json();
    assert_eq!(
        ServerMessage::from_json(&json).as_ref().ok(),
        Some(&message),
        "{json}"
    );
    let value: Value = serde_json::from_str(&json).expect("to_json is JSON");
    assert_eq!(value["type"], message.kind());
    if let ServerMessage::Valuation(v) = &message {
        let direct: FeedValuation =
            serde_json::from_str(&text).expect("a valuation message is a FeedValuation");
        assert_eq!(&direct, v);
    }
});
