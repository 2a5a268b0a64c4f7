//! Operator requests to the Trust Kernel, parsed from JSON bodies with every
//! field checked and named on refusal (pure: the caller supplies the time).

use crate::health::HealthEventKind;
use qunimbus_core::time::parse_rfc3339_micros;
use qunimbus_core::validation::{check_length, RawObject};
use qunimbus_core::{FieldError, FieldErrorCode};

/// Region statuses an operator may set.
pub const STATUSES: [&str; 4] = ["active", "degraded", "down", "draining"];

/// Longest operator reason, in characters (it goes on the ledger).
pub const REASON_MAX_CHARS: usize = 1000;

/// Longest rollout version, in characters.
pub const VERSION_MAX_CHARS: usize = 64;

/// Longest region name accepted in a request, in characters.
const REGION_MAX_CHARS: usize = 64;

/// `PUT /v1/regions/{region}`: a status, optionally a trust override.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionUpdate {
    /// One of [`STATUSES`].
    pub status: String,
    /// `None`: trust untouched; `Some(None)`: override cleared (`null`);
    /// `Some(Some(x))`: override to `x` (clamped by the kernel).
    pub trust: Option<Option<f64>>,
    /// The operator's reason, trimmed; required with an override.
    pub reason: Option<String>,
}

impl RegionUpdate {
    const FIELDS: [&'static str; 3] = ["status", "trust_score", "reason"];

    /// Parses and checks the body.
    pub fn parse_json(text: &str) -> Result<Self, FieldError> {
        let object = RawObject::parse(text, &Self::FIELDS)?;
        let status = object.string("status")?;
        if !STATUSES.contains(&status.as_str()) {
            return Err(FieldError::field(
                "status",
                FieldErrorCode::InvalidChoice,
                format!(
                    "status must be one of {}; got {:?}",
                    STATUSES.join(", "),
                    short(&status)
                ),
            ));
        }
        let reason = optional_reason(&object)?;
        let trust = match (object.contains("trust_score"), object.get("trust_score")) {
            (false, _) => None,
            (true, None) => Some(None),
            (true, Some(_)) => {
                let score = object.number("trust_score")?;
                if reason.is_none() {
                    return Err(FieldError::field(
                        "reason",
                        FieldErrorCode::MissingField,
                        "a trust override needs a non-empty reason",
                    ));
                }
                Some(Some(score))
            }
        };
        Ok(Self {
            status,
            trust,
            reason,
        })
    }
}

/// `POST /v1/regions/{region}/events`: a failure or recovery, now or
/// back-dated inside the trust window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthEventRequest {
    /// Failure or recovery.
    pub kind: HealthEventKind,
    /// When it happened, Unix µs.
    pub at_micros: i64,
}

impl HealthEventRequest {
    const FIELDS: [&'static str; 2] = ["kind", "at"];

    /// Parses and checks the body: `at` (default `now_micros`) may not be in
    /// the future nor before the window of `window_micros`.
    pub fn parse_json(text: &str, now_micros: i64, window_micros: i64) -> Result<Self, FieldError> {
        let object = RawObject::parse(text, &Self::FIELDS)?;
        let kind_text = object.string("kind")?;
        let kind = HealthEventKind::parse(&kind_text).ok_or_else(|| {
            FieldError::field(
                "kind",
                FieldErrorCode::InvalidChoice,
                format!(
                    "kind must be failure or recovery; got {:?}",
                    short(&kind_text)
                ),
            )
        })?;
        let at_micros = match object.optional_string("at")? {
            None => now_micros,
            Some(text) => parse_rfc3339_micros(&text).map_err(|e| {
                FieldError::field(
                    "at",
                    FieldErrorCode::WrongType,
                    format!("at must be an RFC 3339 time: {e}"),
                )
            })?,
        };
        if at_micros > now_micros {
            return Err(FieldError::field(
                "at",
                FieldErrorCode::OutOfRange,
                "at is in the future; events are recorded when they happened",
            ));
        }
        if at_micros < now_micros.saturating_sub(window_micros) {
            return Err(FieldError::field(
                "at",
                FieldErrorCode::OutOfRange,
                format!(
                    "at is before the trust window ({} h); it would not count",
                    window_micros as f64 / crate::health::MICROS_PER_HOUR
                ),
            ));
        }
        Ok(Self { kind, at_micros })
    }
}

/// `POST /v1/rollouts`: a version to roll out, optionally a canary region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRequest {
    /// 1–64 characters of `[A-Za-z0-9._+-]`.
    pub version: String,
    /// The canary region as given (resolved by the kernel).
    pub canary_region: Option<String>,
}

impl RolloutRequest {
    const FIELDS: [&'static str; 2] = ["version", "canary_region"];

    /// Parses and checks the body.
    pub fn parse_json(text: &str) -> Result<Self, FieldError> {
        let object = RawObject::parse(text, &Self::FIELDS)?;
        let version = object.bounded_string("version", VERSION_MAX_CHARS)?;
        let well_formed = !version.is_empty()
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
        if !well_formed {
            return Err(FieldError::field(
                "version",
                FieldErrorCode::OutOfRange,
                "version must be 1-64 characters of [A-Za-z0-9._+-]",
            ));
        }
        let canary_region = object.optional_string("canary_region")?;
        if let Some(region) = &canary_region {
            check_length("canary_region", region, REGION_MAX_CHARS)?;
        }
        Ok(Self {
            version,
            canary_region,
        })
    }
}

/// The optional `{"reason": "…"}` body of a rollout command; an empty body
/// is no reason. Returns the trimmed reason (possibly empty).
pub fn parse_command_reason(text: &str) -> Result<String, FieldError> {
    if text.trim().is_empty() {
        return Ok(String::new());
    }
    let object = RawObject::parse(text, &["reason"])?;
    Ok(optional_reason(&object)?.unwrap_or_default())
}

/// The optional `reason` field: trimmed, empty as absent, at most
/// [`REASON_MAX_CHARS`] characters.
fn optional_reason(object: &RawObject<'_>) -> Result<Option<String>, FieldError> {
    let Some(reason) = object.optional_string("reason")? else {
        return Ok(None);
    };
    check_length("reason", &reason, REASON_MAX_CHARS)?;
    let trimmed = reason.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

/// An operator's text cut to a length fit for an error message.
fn short(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn code(e: FieldError) -> (Option<String>, FieldErrorCode) {
        (e.field, e.code)
    }

    #[test]
    fn region_update_forms() {
        let plain = RegionUpdate::parse_json(r#"{"status":"degraded"}"#).unwrap();
        assert_eq!((plain.status.as_str(), plain.trust), ("degraded", None));
        let cleared =
            RegionUpdate::parse_json(r#"{"status":"active","trust_score":null}"#).unwrap();
        assert_eq!(cleared.trust, Some(None));
        let set = RegionUpdate::parse_json(
            r#"{"status":"active","trust_score":0.5,"reason":"  audit  "}"#,
        )
        .unwrap();
        assert_eq!(
            (set.trust, set.reason.as_deref()),
            (Some(Some(0.5)), Some("audit"))
        );
    }

    #[test]
    fn region_update_refusals_name_the_field() {
        let cases = [
            (
                r#"{"status":"gone"}"#,
                "status",
                FieldErrorCode::InvalidChoice,
            ),
            (
                r#"{"status":"active","trust_score":0.5}"#,
                "reason",
                FieldErrorCode::MissingField,
            ),
            (
                r#"{"status":"active","trust_score":"x","reason":"r"}"#,
                "trust_score",
                FieldErrorCode::WrongType,
            ),
            (
                r#"{"status":"active","colour":1}"#,
                "colour",
                FieldErrorCode::UnknownField,
            ),
        ];
        for (text, field, c) in cases {
            assert_eq!(
                code(RegionUpdate::parse_json(text).unwrap_err()),
                (Some(field.into()), c),
                "{text}"
            );
        }
        let long = format!(
            r#"{{"status":"active","reason":"{}"}}"#,
            "r".repeat(REASON_MAX_CHARS + 1)
        );
        assert_eq!(
            code(RegionUpdate::parse_json(&long).unwrap_err()),
            (Some("reason".into()), FieldErrorCode::TooLong)
        );
    }

    #[test]
    fn health_event_time_bounds() {
        let now = 1_700_000_000_000_000;
        let e = HealthEventRequest::parse_json(r#"{"kind":"failure"}"#, now, HOUR).unwrap();
        assert_eq!((e.kind, e.at_micros), (HealthEventKind::Failure, now));
        let future = r#"{"kind":"recovery","at":"2099-01-01T00:00:00Z"}"#;
        assert_eq!(
            code(HealthEventRequest::parse_json(future, now, HOUR).unwrap_err()),
            (Some("at".into()), FieldErrorCode::OutOfRange)
        );
        let old = r#"{"kind":"recovery","at":"2000-01-01T00:00:00Z"}"#;
        assert_eq!(
            code(HealthEventRequest::parse_json(old, now, HOUR).unwrap_err()),
            (Some("at".into()), FieldErrorCode::OutOfRange)
        );
        let bad = r#"{"kind":"recovery","at":"soon"}"#;
        assert_eq!(
            code(HealthEventRequest::parse_json(bad, now, HOUR).unwrap_err()),
            (Some("at".into()), FieldErrorCode::WrongType)
        );
    }

    #[test]
    fn rollout_and_reason_caps() {
        let r = RolloutRequest::parse_json(r#"{"version":"v1.2+b3"}"#).unwrap();
        assert_eq!((r.version.as_str(), r.canary_region), ("v1.2+b3", None));
        let long = format!(r#"{{"version":"{}"}}"#, "v".repeat(65));
        assert_eq!(
            code(RolloutRequest::parse_json(&long).unwrap_err()),
            (Some("version".into()), FieldErrorCode::TooLong)
        );
        assert_eq!(
            code(RolloutRequest::parse_json(r#"{"version":"v 1"}"#).unwrap_err()),
            (Some("version".into()), FieldErrorCode::OutOfRange)
        );
        assert_eq!(parse_command_reason("").unwrap(), "");
        assert_eq!(
            parse_command_reason(r#"{"reason":" why "}"#).unwrap(),
            "why"
        );
        let long = format!(r#"{{"reason":"{}"}}"#, "r".repeat(REASON_MAX_CHARS + 1));
        assert_eq!(
            code(parse_command_reason(&long).unwrap_err()),
            (Some("reason".into()), FieldErrorCode::TooLong)
        );
    }
}
