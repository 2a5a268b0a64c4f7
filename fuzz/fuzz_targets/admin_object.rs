//! Admin request bodies (partners, regions, health events, rollouts,
//! rollout commands, attestations): `RawObject::parse`, the allowed-field
//! check, and the field readers the handlers use (`string`,
//! `optional_string`, `number`, `get`, `contains`).
//!
//! Checks, for each handler's field list: a refusal is malformed JSON, a
//! duplicate or an unknown field (naming a field that is not allowed); an
//! accepted object's readers agree with each other (`string` is
//! `optional_string` made required, `null` is absent, `number` is finite)
//! and with serde_json's own reading of the same object; a JSON object
//! without duplicate keys is never refused as malformed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qunimbus_core::validation::RawObject;
use qunimbus_core::{FieldError, FieldErrorCode};
use qunimbus_fuzz::regions;
use qunimbus_ledger::attestation::parse_attestation_request;
use qunimbus_ledger::block::AttestationStatus;
use qunimbus_ledger::DEFAULT_FRAMEWORKS;
use qunimbus_market::{PartnerRequest, PARTNER_NAME_MAX_CHARS};
use serde_json::Value;

/// The field lists of the admin handlers in crates/http/src.
const SCHEMAS: [&[&str]; 6] = [
    &["name", "region"],                  // POST /v1/partners
    &["status", "trust_score", "reason"], // PUT /v1/regions/{r}
    &["kind", "at"],                      // POST /v1/regions/{r}/events
    &["version", "canary_region"],        // POST /v1/rollouts
    &["reason"],                          // POST /v1/rollouts/{id}/{command}
    &DEFAULT_FRAMEWORKS,                  // POST /v1/ledger/attestations
];

/// How the admin request parsers read a body.
fn parse_object<'a>(text: &'a str, allowed: &'a [&'a str]) -> Result<RawObject<'a>, FieldError> {
    RawObject::parse(text, allowed)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let value = serde_json::from_str::<Value>(text).ok();
    check_requests(text);
    for allowed in SCHEMAS {
        match parse_object(text, allowed) {
            Ok(object) => check_fields(&object, allowed, value.as_ref()),
            Err(err) => {
                assert!(!err.message.is_empty());
                match err.code {
                    FieldErrorCode::MalformedJson => {
                        assert_eq!(err.field, None);
                        assert!(
                            !value.as_ref().is_some_and(Value::is_object),
                            "a JSON object was refused as malformed: {err}"
                        );
                    }
                    FieldErrorCode::DuplicateField => assert!(err.field.is_some()),
                    FieldErrorCode::UnknownField => {
                        let field = err.field.as_deref().expect("unknown field is named");
                        assert!(!allowed.contains(&field), "allowed field {field} refused");
                    }
                    other => panic!("unexpected refusal {other:?}: {err}"),
                }
            }
        }
    }
});

/// The typed admin requests built on these readers: whatever they accept
/// respects every documented cap, and every refusal names a field or the
/// document with a code. (The Trust Kernel's requests are property-tested
/// in crates/trust/tests/request_props.rs; its crate pulls in the Cedar
/// engine, too heavy for an instrumented build.)
fn check_requests(text: &str) {
    match PartnerRequest::parse_json(text, regions()) {
        Ok(p) => {
            assert!(!p.name.is_empty() && p.name.chars().count() <= PARTNER_NAME_MAX_CHARS);
            assert!(regions().canonical(&p.region) == Some(p.region.as_str()));
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
    if let Ok(statuses) = parse_attestation_request(text, &DEFAULT_FRAMEWORKS) {
        assert!(!statuses.is_empty());
        assert!(statuses
            .keys()
            .all(|k| DEFAULT_FRAMEWORKS.contains(&k.as_str())));
        assert!(!statuses.values().any(|s| *s == AttestationStatus::Genesis));
    }
}

fn check_fields(object: &RawObject<'_>, allowed: &[&str], value: Option<&Value>) {
    // serde_json refuses some texts RawObject accepts (numbers beyond f64,
    // which `number` then reports as not finite); compare when it reads it.
    let value = value.map(|v| v.as_object().expect("an accepted body is an object"));
    if let Some(value) = value {
        for key in value.keys() {
            assert!(
                allowed.contains(&key.as_str()),
                "unknown field {key} accepted"
            );
        }
    }
    for &name in allowed {
        let expected = value.map(|v| v.get(name));
        let raw = object.get(name);
        if let Some(expected) = expected {
            assert_eq!(object.contains(name), expected.is_some(), "{name}");
            assert_eq!(
                raw.is_some(),
                expected.is_some_and(|v| !v.is_null()),
                "{name}"
            );
        }
        assert!(raw.is_none() || object.contains(name));
        let named = |e: &FieldError| assert_eq!(e.field.as_deref(), Some(name));

        match (object.optional_string(name), object.string(name)) {
            (Ok(Some(a)), Ok(b)) => {
                assert_eq!(a, b);
                if let Some(expected) = expected {
                    assert_eq!(expected.and_then(Value::as_str), Some(a.as_str()));
                }
            }
            (Ok(None), Err(e)) => {
                named(&e);
                assert_eq!(e.code, FieldErrorCode::MissingField);
                assert!(raw.is_none());
            }
            (Err(a), Err(b)) => {
                assert_eq!(a, b);
                named(&a);
                assert_eq!(a.code, FieldErrorCode::WrongType);
                assert!(raw.is_some());
                if let Some(expected) = expected {
                    assert!(!expected.is_some_and(Value::is_string));
                }
            }
            (a, b) => panic!("{name}: optional_string {a:?} but string {b:?}"),
        }

        match object.number(name) {
            Ok(n) => {
                assert!(n.is_finite());
                assert!(
                    object.string(name).is_err(),
                    "{name} is a number and a string"
                );
                if let Some(expected) = expected {
                    let v = expected.and_then(Value::as_f64).expect("serde_json number");
                    assert!(v == n, "{name}: serde_json reads {v}, RawObject {n}");
                }
            }
            Err(e) => {
                named(&e);
                match e.code {
                    FieldErrorCode::MissingField => assert!(raw.is_none()),
                    FieldErrorCode::WrongType => {
                        assert!(raw.is_some());
                        if let Some(expected) = expected {
                            assert!(!expected.is_some_and(Value::is_number));
                        }
                    }
                    // Only numbers serde_json cannot hold in an f64.
                    FieldErrorCode::NotFinite => assert!(expected.is_none()),
                    other => panic!("{name}: unexpected number error {other:?}"),
                }
            }
        }
    }
}
