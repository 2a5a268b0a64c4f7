//! `POST /v1/telemetry` and `POST /v1/valuation/quote` bodies:
//! `Telemetry::parse_json` and `QuoteRequest::parse_json` on the same text.
//!
//! Checks: an accepted run has a valid run id, a configured region in its
//! canonical spelling and finite metrics in their SPEC §2 ranges; every
//! accepted run is also an accepted quote with the same figures; an accepted
//! run serialized to JSON parses back to itself; a JSON object is never
//! reported as malformed JSON, and anything else always is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qunimbus_core::{FieldErrorCode, QuoteRequest, RunId, Telemetry};
use qunimbus_fuzz::{assert_metrics_in_range, regions};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let regions = regions();
    let run = Telemetry::parse_json(text, regions);
    let quote = QuoteRequest::parse_json(text, regions);

    if let Ok(t) = &run {
        assert_metrics_in_range(&t.metrics);
        assert_eq!(RunId::parse(t.run_id.as_str()).as_ref(), Ok(&t.run_id));
        assert_eq!(regions.canonical(&t.region), Some(t.region.as_str()));
        let q = quote.as_ref().expect("a valid run is a valid quote");
        assert_eq!(q.metrics, t.metrics);
        assert_eq!(q.region.as_deref(), Some(t.region.as_str()));
        let json = serde_json::to_string(t).expect("a run serializes");
        assert_eq!(Telemetry::parse_json(&json, regions).as_ref(), Ok(t));
    }
    if let Ok(q) = &quote {
        assert_metrics_in_range(&q.metrics);
        if let Some(region) = &q.region {
            assert_eq!(regions.canonical(region), Some(region.as_str()));
        }
    }

    // Whether the text is a JSON object decides malformed vs. field errors
    // (serde_json's Value keeps the last of duplicate keys, the parsers
    // report them, so only this direction is an invariant).
    let is_object = match serde_json::from_str::<Value>(text) {
        Ok(value) => Some(value.is_object()),
        Err(_) => None,
    };
    for err in [run.err(), quote.err()].into_iter().flatten() {
        assert!(!err.message.is_empty());
        match is_object {
            Some(true) => assert_ne!(err.code, FieldErrorCode::MalformedJson, "{err}"),
            Some(false) => assert_eq!(err.code, FieldErrorCode::MalformedJson, "{err}"),
            None => {}
        }
        if err.code == FieldErrorCode::MalformedJson {
            assert_eq!(err.field, None);
        } else {
            assert!(err.field.is_some(), "{err:?} names no field");
        }
    }
});
