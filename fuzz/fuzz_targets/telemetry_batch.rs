//! `POST /v1/telemetry/batch` bodies: `Telemetry::parse_json_batch`.
//!
//! Checks: a document that is not a JSON array, or an array of more than
//! `MAX_RUNS` elements, are the only whole-batch errors (malformed JSON /
//! too many items, no field); otherwise there is one result per array
//! element, each equal to what `Telemetry::parse_json` gives for that
//! element alone, and every accepted run's metrics are finite and in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qunimbus_core::validation::parse_raw_array;
use qunimbus_core::{FieldErrorCode, Telemetry};
use qunimbus_fuzz::{assert_metrics_in_range, regions};
use serde_json::Value;

/// A small cap, so that fuzzing reaches it.
const MAX_RUNS: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let regions = regions();
    match Telemetry::parse_json_batch(text, regions, MAX_RUNS) {
        Ok(items) => {
            let raw = parse_raw_array(text, MAX_RUNS).expect("a parsed batch is an array");
            assert!(items.len() <= MAX_RUNS);
            assert_eq!(raw.len(), items.len());
            for (raw, item) in raw.iter().zip(&items) {
                assert_eq!(&Telemetry::parse_json(raw.get(), regions), item);
                if let Ok(t) = item {
                    assert_metrics_in_range(&t.metrics);
                }
            }
        }
        Err(err) if err.code == FieldErrorCode::TooManyItems => {
            assert_eq!(err.field, None);
        }
        Err(err) => {
            assert_eq!(err.code, FieldErrorCode::MalformedJson, "{err}");
            assert_eq!(err.field, None);
            assert!(
                !matches!(serde_json::from_str::<Value>(text), Ok(Value::Array(a)) if a.len() <= MAX_RUNS),
                "a JSON array was refused as a batch: {err}"
            );
        }
    }
});
