//! The operator's manual attestation request: a status per framework.

use crate::block::AttestationStatus;
use qunimbus_core::validation::RawObject;
use qunimbus_core::{FieldError, FieldErrorCode};
use std::collections::BTreeMap;

/// Parses `{"<framework>": "verified"|"failed"|"pending"|"waived", …}` where
/// every key is one of `frameworks` and at least one is given.
pub fn parse_attestation_request(
    text: &str,
    frameworks: &[&str],
) -> Result<BTreeMap<String, AttestationStatus>, FieldError> {
    let object = RawObject::parse(text, frameworks)?;
    let mut statuses = BTreeMap::new();
    for name in frameworks {
        let refused = |got: &str| {
            FieldError::field(
                name,
                FieldErrorCode::InvalidChoice,
                format!("{name} must be verified, failed, pending or waived; got {got}"),
            )
        };
        if object.contains(name) && object.get(name).is_none() {
            return Err(refused("null"));
        }
        let Some(value) = object.optional_string(name)? else {
            continue;
        };
        let status = AttestationStatus::parse(&value)
            .filter(|s| *s != AttestationStatus::Genesis)
            .ok_or_else(|| refused(&format!("{:?}", value.chars().take(40).collect::<String>())))?;
        statuses.insert(name.to_string(), status);
    }
    match frameworks.first() {
        Some(first) if statuses.is_empty() => Err(FieldError::document(
            FieldErrorCode::MissingField,
            format!("give at least one framework status, e.g. {{\"{first}\": \"verified\"}}"),
        )),
        _ => Ok(statuses),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: [&str; 2] = ["ISO-27001", "ITAR"];

    #[test]
    fn reads_each_status() {
        let s =
            parse_attestation_request(r#"{"ITAR":"failed","ISO-27001":"verified"}"#, &F).unwrap();
        assert_eq!(s["ITAR"], AttestationStatus::Failed);
        assert_eq!(s["ISO-27001"], AttestationStatus::Verified);
    }

    #[test]
    fn refuses_names_genesis_null_and_empty() {
        let cases = [
            (
                r#"{"GDPR":"verified"}"#,
                Some("GDPR"),
                FieldErrorCode::UnknownField,
            ),
            (
                r#"{"ITAR":"genesis"}"#,
                Some("ITAR"),
                FieldErrorCode::InvalidChoice,
            ),
            (
                r#"{"ITAR":null}"#,
                Some("ITAR"),
                FieldErrorCode::InvalidChoice,
            ),
            (r#"{"ITAR":1}"#, Some("ITAR"), FieldErrorCode::WrongType),
            ("{}", None, FieldErrorCode::MissingField),
        ];
        for (text, field, code) in cases {
            let e = parse_attestation_request(text, &F).unwrap_err();
            assert_eq!((e.field.as_deref(), e.code), (field, code), "{text}");
        }
    }
}
