//! The operator's request to register a liquidity partner (SPEC §9).

use qunimbus_core::telemetry::parse_region;
use qunimbus_core::validation::{check_length, RawObject};
use qunimbus_core::{FieldError, FieldErrorCode, RegionSet};

/// Longest partner name, in characters.
pub const PARTNER_NAME_MAX_CHARS: usize = 64;

/// `POST /v1/partners {"name", "region"}`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerRequest {
    /// 1–64 characters of `[A-Za-z0-9._-]`.
    pub name: String,
    /// The partner's home region, canonical spelling.
    pub region: String,
}

impl PartnerRequest {
    const FIELDS: [&'static str; 2] = ["name", "region"];

    /// Parses and checks the body; the region must be one of `regions`.
    pub fn parse_json(text: &str, regions: &RegionSet) -> Result<Self, FieldError> {
        let object = RawObject::parse(text, &Self::FIELDS)?;
        let name = object.bounded_string("name", PARTNER_NAME_MAX_CHARS)?;
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid_name {
            return Err(FieldError::field(
                "name",
                FieldErrorCode::OutOfRange,
                "name must be 1-64 characters of [A-Za-z0-9._-]",
            ));
        }
        let region = object.string("region")?;
        check_length("region", &region, PARTNER_NAME_MAX_CHARS)?;
        let region = parse_region(&region, regions)?;
        Ok(Self { name, region })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> (Option<String>, FieldErrorCode) {
        let e = PartnerRequest::parse_json(text, &RegionSet::default()).unwrap_err();
        (e.field, e.code)
    }

    #[test]
    fn accepts_and_canonicalises_the_region() {
        let p =
            PartnerRequest::parse_json(r#"{"name":"p-1","region":"eu"}"#, &RegionSet::default())
                .unwrap();
        assert_eq!((p.name.as_str(), p.region.as_str()), ("p-1", "EU"));
    }

    #[test]
    fn names_each_refused_field() {
        let long = format!(r#"{{"name":"{}","region":"EU"}}"#, "n".repeat(65));
        let cases = [
            (long.as_str(), "name", FieldErrorCode::TooLong),
            (
                r#"{"name":"a b","region":"EU"}"#,
                "name",
                FieldErrorCode::OutOfRange,
            ),
            (
                r#"{"name":"","region":"EU"}"#,
                "name",
                FieldErrorCode::OutOfRange,
            ),
            (
                r#"{"name":"a","region":"Mars"}"#,
                "region",
                FieldErrorCode::UnknownRegion,
            ),
            (r#"{"name":"a"}"#, "region", FieldErrorCode::MissingField),
            (
                r#"{"name":"a","region":"EU","key":"x"}"#,
                "key",
                FieldErrorCode::UnknownField,
            ),
        ];
        for (text, field, code) in cases {
            assert_eq!(refusal(text), (Some(field.to_string()), code), "{text}");
        }
    }
}
