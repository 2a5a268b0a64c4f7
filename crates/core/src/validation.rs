//! Field-level validation errors and a strict JSON object reader that keeps
//! the raw text of every field so each one can be checked and named.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// What kind of problem an input field has; also the machine-readable `code`
/// of the API error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorCode {
    /// The body is not JSON of the expected shape.
    MalformedJson,
    /// A required field is absent.
    MissingField,
    /// A field the schema does not define.
    UnknownField,
    /// A field appears more than once in the same object.
    DuplicateField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A number that is not finite (overflowing literals such as `1e400`).
    NotFinite,
    /// A number outside its documented range.
    OutOfRange,
    /// A region that is not configured on this node.
    UnknownRegion,
    /// A `run_id` that is empty, too long, or has forbidden characters.
    InvalidRunId,
    /// A value that is not one of the allowed choices.
    InvalidChoice,
}

impl FieldErrorCode {
    /// The snake_case code used in JSON error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::MissingField => "missing_field",
            Self::UnknownField => "unknown_field",
            Self::DuplicateField => "duplicate_field",
            Self::WrongType => "wrong_type",
            Self::NotFinite => "not_finite",
            Self::OutOfRange => "out_of_range",
            Self::UnknownRegion => "unknown_region",
            Self::InvalidRunId => "invalid_run_id",
            Self::InvalidChoice => "invalid_choice",
        }
    }
}

/// A validation failure naming the offending field (when there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name, or `None` when the whole document is at fault.
    pub field: Option<String>,
    /// What kind of problem it is.
    pub code: FieldErrorCode,
    /// A sentence for humans.
    pub message: String,
}

impl FieldError {
    /// An error about the named field.
    pub fn field(field: &str, code: FieldErrorCode, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_string()),
            code,
            message: message.into(),
        }
    }

    /// An error about the document as a whole.
    pub fn document(code: FieldErrorCode, message: impl Into<String>) -> Self {
        Self {
            field: None,
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for FieldError {}

/// A JSON object read field by field, in document order, with each value kept
/// as raw JSON text. Duplicate keys are reported, not silently merged.
pub struct RawObject<'a> {
    fields: Vec<(String, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    /// Parses `text` as one JSON object.
    pub fn parse(text: &'a str) -> Result<Self, FieldError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let fields = de
            .deserialize_map(EntriesVisitor)
            .and_then(|fields| de.end().map(|()| fields))
            .map_err(|e| malformed(&e))?;
        let object = Self { fields };
        object.reject_duplicates()?;
        Ok(object)
    }

    /// Wraps an already-split raw value (an element of a batch array).
    pub fn from_raw(raw: &'a RawValue) -> Result<Self, FieldError> {
        Self::parse(raw.get())
    }

    fn reject_duplicates(&self) -> Result<(), FieldError> {
        for (i, (name, _)) in self.fields.iter().enumerate() {
            if self.fields[..i].iter().any(|(n, _)| n == name) {
                return Err(FieldError::field(
                    name,
                    FieldErrorCode::DuplicateField,
                    format!("field {name:?} appears more than once"),
                ));
            }
        }
        Ok(())
    }

    /// Rejects any field whose name is not in `allowed`.
    pub fn deny_unknown(&self, allowed: &[&str]) -> Result<(), FieldError> {
        match self
            .fields
            .iter()
            .find(|(name, _)| !allowed.contains(&name.as_str()))
        {
            Some((name, _)) => Err(FieldError::field(
                name,
                FieldErrorCode::UnknownField,
                format!(
                    "unknown field {name:?}; expected one of {}",
                    allowed.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }

    /// Whether `name` is present at all (even as `null`).
    pub fn contains(&self, name: &str) -> bool {
        self.fields.iter().any(|(n, _)| n == name)
    }

    /// The raw value of `name`, treating JSON `null` as absent.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .filter(|v| v.get() != "null")
    }

    /// A required finite number.
    pub fn number(&self, name: &str) -> Result<f64, FieldError> {
        match self.get(name) {
            Some(raw) => parse_number(name, raw),
            None => Err(missing(name)),
        }
    }

    /// A required string.
    pub fn string(&self, name: &str) -> Result<String, FieldError> {
        self.optional_string(name)?.ok_or_else(|| missing(name))
    }

    /// An optional string (absent or `null` gives `None`).
    pub fn optional_string(&self, name: &str) -> Result<Option<String>, FieldError> {
        self.get(name)
            .map(|raw| {
                serde_json::from_str::<String>(raw.get()).map_err(|_| {
                    FieldError::field(
                        name,
                        FieldErrorCode::WrongType,
                        format!("{name} must be a string"),
                    )
                })
            })
            .transpose()
    }
}

/// Splits a JSON array into its raw elements.
pub fn parse_raw_array(text: &str) -> Result<Vec<&RawValue>, FieldError> {
    serde_json::from_str::<Vec<&RawValue>>(text).map_err(|e| malformed(&e))
}

fn parse_number(name: &str, raw: &RawValue) -> Result<f64, FieldError> {
    let text = raw.get();
    let looks_numeric = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
    if !looks_numeric {
        return Err(FieldError::field(
            name,
            FieldErrorCode::WrongType,
            format!("{name} must be a JSON number, got {}", truncate(text)),
        ));
    }
    match serde_json::from_str::<f64>(text) {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(FieldError::field(
            name,
            FieldErrorCode::NotFinite,
            format!("{name} must be a finite number, got {}", truncate(text)),
        )),
    }
}

fn truncate(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn missing(name: &str) -> FieldError {
    FieldError::field(
        name,
        FieldErrorCode::MissingField,
        format!("{name} is required"),
    )
}

fn malformed(e: &serde_json::Error) -> FieldError {
    FieldError::document(
        FieldErrorCode::MalformedJson,
        format!("request body is not valid JSON of the expected shape: {e}"),
    )
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
            out.push((k, v));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_duplicate_keys() {
        let err = RawObject::parse(r#"{"a":1,"a":2}"#).err().unwrap();
        assert_eq!(err.code, FieldErrorCode::DuplicateField);
        assert_eq!(err.field.as_deref(), Some("a"));
    }

    #[test]
    fn overflowing_number_is_not_finite_and_named() {
        let obj = RawObject::parse(r#"{"x":1e400}"#).unwrap();
        let err = obj.number("x").unwrap_err();
        assert_eq!(err.code, FieldErrorCode::NotFinite);
        assert_eq!(err.field.as_deref(), Some("x"));
    }

    #[test]
    fn strings_are_not_numbers() {
        let obj = RawObject::parse(r#"{"x":"NaN"}"#).unwrap();
        assert_eq!(obj.number("x").unwrap_err().code, FieldErrorCode::WrongType);
    }

    #[test]
    fn non_objects_and_trailing_garbage_are_malformed() {
        for text in ["[1]", "{\"a\":1} x", "{", ""] {
            let err = RawObject::parse(text).err().unwrap();
            assert_eq!(err.code, FieldErrorCode::MalformedJson, "{text}");
        }
    }
}
