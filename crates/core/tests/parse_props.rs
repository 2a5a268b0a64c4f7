//! Property tests of the bounded JSON readers: they agree with a simple model
//! of what must be refused (the first unknown or repeated field, in document
//! order), accept every valid telemetry object whatever its field order, and
//! stop a batch at one element past its cap.

use proptest::prelude::*;
use qunimbus_core::validation::{parse_raw_array, RawObject};
use qunimbus_core::{FieldErrorCode, RegionSet, Telemetry};

const ALLOWED: [&str; 3] = ["a", "b", "c"];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(ALLOWED.to_vec()).prop_map(str::to_string),
        1 => "[d-z]{1,3}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_string()),
        any::<i32>().prop_map(|n| n.to_string()),
        "[a-z ]{0,8}".prop_map(|s| format!("{s:?}")),
        Just("[1,{\"x\":[]}]".to_string()),
        Just("{\"a\":1,\"a\":2}".to_string()),
    ]
}

/// What the reader must answer for these fields, in order.
fn model(fields: &[(String, String)]) -> Result<(), (String, FieldErrorCode)> {
    let mut seen: Vec<&str> = Vec::new();
    for (k, _) in fields {
        if !ALLOWED.contains(&k.as_str()) {
            return Err((k.clone(), FieldErrorCode::UnknownField));
        }
        if seen.contains(&k.as_str()) {
            return Err((k.clone(), FieldErrorCode::DuplicateField));
        }
        seen.push(k);
    }
    Ok(())
}

fn object_text(fields: &[(String, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
    format!("{{{}}}", body.join(","))
}

proptest! {
    #[test]
    fn object_reader_matches_the_model(fields in prop::collection::vec((key(), value()), 0..8)) {
        let text = object_text(&fields);
        match (RawObject::parse(&text, &ALLOWED), model(&fields)) {
            (Ok(object), Ok(())) => {
                for (k, v) in &fields {
                    prop_assert!(object.contains(k));
                    let expected = (v != "null").then_some(v.as_str());
                    prop_assert_eq!(object.get(k).map(|raw| raw.get()), expected);
                }
            }
            (Err(e), Err((field, code))) => {
                prop_assert_eq!(e.field, Some(field));
                prop_assert_eq!(e.code, code);
            }
            (got, want) => prop_assert!(false, "{}: got {:?}, model {:?}", text, got.err(), want),
        }
    }

    #[test]
    fn readers_never_panic_on_any_text(text in ".{0,64}") {
        let _ = RawObject::parse(&text, &ALLOWED);
        let _ = parse_raw_array(&text, 3);
        let _ = Telemetry::parse_json(&text, &RegionSet::default());
        let _ = Telemetry::parse_json_batch(&text, &RegionSet::default(), 3);
    }

    #[test]
    fn valid_telemetry_parses_in_any_field_order(
        eta in 0.0f64..=1.0,
        variance in 0.0f64..1.0,
        hours in 0.0f64..500.0,
        eph in 1e-3f64..1e6,
        region in prop::sample::select(qunimbus_core::DEFAULT_REGIONS.to_vec()),
        class in prop::sample::select(vec!["public", "personal", "itar"]),
        order in Just((0..7).collect::<Vec<usize>>()).prop_shuffle(),
    ) {
        let fields = [
            "\"run_id\":\"r-1\"".to_string(),
            format!("\"region\":{region:?}"),
            format!("\"data_class\":{class:?}"),
            format!("\"eta_ent\":{eta:?}"),
            format!("\"coherence_variance\":{variance:?}"),
            format!("\"runtime_hours\":{hours:?}"),
            format!("\"eph_delivered\":{eph:?}"),
        ];
        let body: Vec<&str> = order.iter().map(|i| fields[*i].as_str()).collect();
        let text = format!("{{{}}}", body.join(","));
        let t = Telemetry::parse_json(&text, &RegionSet::default()).unwrap();
        prop_assert_eq!(t.metrics.eta_ent, eta);
        prop_assert_eq!(t.metrics.coherence_variance, variance);
        prop_assert_eq!(t.metrics.runtime_hours, hours);
        prop_assert_eq!(t.metrics.eph_delivered, eph);
        prop_assert_eq!(t.region.as_str(), region);
        prop_assert_eq!(t.data_class.as_str(), class);
    }

    #[test]
    fn batches_stop_one_past_the_cap(len in 0usize..40, cap in 0usize..20) {
        let text = format!("[{}]", vec!["0"; len].join(","));
        let parsed = Telemetry::parse_json_batch(&text, &RegionSet::default(), cap);
        if len <= cap {
            let items = parsed.unwrap();
            prop_assert_eq!(items.len(), len);
            for item in &items {
                prop_assert_eq!(item.as_ref().unwrap_err().code, FieldErrorCode::MalformedJson);
            }
        } else {
            prop_assert_eq!(parsed.unwrap_err().code, FieldErrorCode::TooManyItems);
        }
    }
}
