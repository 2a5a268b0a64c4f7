//! Field-level validation errors and a strict JSON object reader that keeps
//! the raw text of every field so each one can be checked and named.

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
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
    /// A text longer than its documented limit.
    TooLong,
    /// An array with more elements than allowed.
    TooManyItems,
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
            Self::TooLong => "too_long",
            Self::TooManyItems => "too_many_items",
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

/// A JSON object whose field names come from a fixed list, read in one
/// linear pass with each value kept as raw JSON text.
///
/// Parsing stops at the first field that is not in the list or that appears
/// a second time, before its value is read, so no object can cost more than
/// one scan of its text however many keys it carries: the number of fields
/// kept is at most the length of the list, and duplicates are found with one
/// slot per allowed name.
pub struct RawObject<'a> {
    allowed: &'a [&'a str],
    /// One slot per allowed name, in the list's order.
    values: Vec<Option<&'a RawValue>>,
}

impl<'a> RawObject<'a> {
    /// Parses `text` as one JSON object that may hold only the `allowed`
    /// fields, each at most once.
    pub fn parse(text: &'a str, allowed: &'a [&'a str]) -> Result<Self, FieldError> {
        let mut refusal = None;
        let mut de = serde_json::Deserializer::from_str(text);
        let values = de
            .deserialize_map(FieldsVisitor {
                allowed,
                refusal: &mut refusal,
            })
            .and_then(|values| de.end().map(|()| values));
        match (values, refusal) {
            (_, Some(refused)) => Err(refused),
            (Ok(values), None) => Ok(Self { allowed, values }),
            (Err(e), None) => Err(malformed(&e)),
        }
    }

    /// Parses an already-split raw value (an element of a batch array).
    pub fn from_raw(raw: &'a RawValue, allowed: &'a [&'a str]) -> Result<Self, FieldError> {
        Self::parse(raw.get(), allowed)
    }

    fn slot(&self, name: &str) -> Option<&'a RawValue> {
        let index = self.allowed.iter().position(|n| *n == name)?;
        self.values.get(index).copied().flatten()
    }

    /// Whether `name` is present at all (even as `null`).
    pub fn contains(&self, name: &str) -> bool {
        self.slot(name).is_some()
    }

    /// The raw value of `name`, treating JSON `null` as absent.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.slot(name).filter(|v| v.get() != "null")
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

    /// A required string of at most `max_chars` characters (admin text such
    /// as names and reasons); longer is `too_long`, naming the field.
    pub fn bounded_string(&self, name: &str, max_chars: usize) -> Result<String, FieldError> {
        let text = self.string(name)?;
        check_length(name, &text, max_chars)?;
        Ok(text)
    }
}

/// Refuses `text` when it has more than `max_chars` characters.
pub fn check_length(name: &str, text: &str, max_chars: usize) -> Result<(), FieldError> {
    if text.chars().nth(max_chars).is_some() {
        return Err(FieldError::field(
            name,
            FieldErrorCode::TooLong,
            format!("{name} must be at most {max_chars} characters"),
        ));
    }
    Ok(())
}

/// Splits a JSON array into its raw elements, refusing (with
/// [`FieldErrorCode::TooManyItems`]) an array of more than `max_items`
/// elements as soon as element `max_items + 1` is seen.
pub fn parse_raw_array(text: &str, max_items: usize) -> Result<Vec<&RawValue>, FieldError> {
    let mut refusal = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let items = de
        .deserialize_seq(ItemsVisitor {
            max_items,
            refusal: &mut refusal,
        })
        .and_then(|items| de.end().map(|()| items));
    match (items, refusal) {
        (_, Some(refused)) => Err(refused),
        (Ok(items), None) => Ok(items),
        (Err(e), None) => Err(malformed(&e)),
    }
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

/// An object key, borrowed from the text unless it holds escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Reads an object's fields into one slot per allowed name; an unknown or
/// repeated name ends the parse at once, its error kept in `refusal`.
struct FieldsVisitor<'s, 'a> {
    allowed: &'a [&'a str],
    refusal: &'s mut Option<FieldError>,
}

impl<'de, 's, 'a> Visitor<'de> for FieldsVisitor<'s, 'a> {
    type Value = Vec<Option<&'de RawValue>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values = vec![None; self.allowed.len()];
        while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
            let Some(index) = self.allowed.iter().position(|n| *n == name) else {
                let refused = FieldError::field(
                    &truncate(&name),
                    FieldErrorCode::UnknownField,
                    format!(
                        "unknown field {}; expected one of {}",
                        quoted(&name),
                        self.allowed.join(", ")
                    ),
                );
                return Err(refuse(self.refusal, refused));
            };
            if values[index].is_some() {
                let refused = FieldError::field(
                    &truncate(&name),
                    FieldErrorCode::DuplicateField,
                    format!("field {} appears more than once", quoted(&name)),
                );
                return Err(refuse(self.refusal, refused));
            }
            values[index] = Some(map.next_value::<&'de RawValue>()?);
        }
        Ok(values)
    }
}

/// Collects an array's raw elements, refusing element `max_items + 1`.
struct ItemsVisitor<'s> {
    max_items: usize,
    refusal: &'s mut Option<FieldError>,
}

impl<'de, 's> Visitor<'de> for ItemsVisitor<'s> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if items.len() == self.max_items {
                let refused = FieldError::document(
                    FieldErrorCode::TooManyItems,
                    format!("the array holds more than {} items", self.max_items),
                );
                return Err(refuse(self.refusal, refused));
            }
            items.push(item);
        }
        Ok(items)
    }
}

/// Keeps `refused` for the caller and stops the parser with a placeholder
/// error (serde errors cannot carry our own type).
fn refuse<E: serde::de::Error>(slot: &mut Option<FieldError>, refused: FieldError) -> E {
    let message = refused.message.clone();
    *slot = Some(refused);
    E::custom(message)
}

/// A field name for a message, quoted and cut short when long.
fn quoted(name: &str) -> String {
    format!("{:?}", truncate(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AB: [&str; 2] = ["a", "b"];

    #[test]
    fn reports_duplicate_keys() {
        let err = RawObject::parse(r#"{"a":1,"a":2}"#, &AB).err().unwrap();
        assert_eq!(err.code, FieldErrorCode::DuplicateField);
        assert_eq!(err.field.as_deref(), Some("a"));
    }

    #[test]
    fn escaped_names_are_the_names_they_spell() {
        let err = RawObject::parse(r#"{"a":1,"\u0061":2}"#, &AB)
            .err()
            .unwrap();
        assert_eq!(err.code, FieldErrorCode::DuplicateField);
        let obj = RawObject::parse(r#"{"\u0062":2}"#, &AB).unwrap();
        assert_eq!(obj.number("b").unwrap(), 2.0);
    }

    #[test]
    fn unknown_field_stops_before_its_value() {
        // The value after the unknown key is not even valid JSON: the parse
        // ended at the key.
        let err = RawObject::parse(r#"{"a":1,"zz":!!!"#, &AB).err().unwrap();
        assert_eq!(err.code, FieldErrorCode::UnknownField);
        assert_eq!(err.field.as_deref(), Some("zz"));
    }

    #[test]
    fn long_unknown_names_are_cut_short_in_the_error() {
        let text = format!("{{\"{}\":1}}", "k".repeat(100_000));
        let err = RawObject::parse(&text, &AB).err().unwrap();
        assert_eq!(err.code, FieldErrorCode::UnknownField);
        assert!(err.field.unwrap().len() < 100);
        assert!(err.message.len() < 200);
    }

    #[test]
    fn sixty_thousand_keys_end_at_the_first() {
        let mut text = String::from("{");
        for i in 0..60_000 {
            text.push_str(&format!("\"k{i}\":{i},"));
        }
        text.push_str("\"a\":1}");
        let err = RawObject::parse(&text, &AB).err().unwrap();
        assert_eq!(err.code, FieldErrorCode::UnknownField);
        assert_eq!(err.field.as_deref(), Some("k0"));
    }

    #[test]
    fn null_counts_as_present_but_absent_for_values() {
        let obj = RawObject::parse(r#"{"a":null}"#, &AB).unwrap();
        assert!(obj.contains("a"));
        assert!(obj.get("a").is_none());
        assert!(!obj.contains("b"));
        assert_eq!(
            obj.number("a").unwrap_err().code,
            FieldErrorCode::MissingField
        );
    }

    #[test]
    fn overflowing_number_is_not_finite_and_named() {
        let obj = RawObject::parse(r#"{"a":1e400}"#, &AB).unwrap();
        let err = obj.number("a").unwrap_err();
        assert_eq!(err.code, FieldErrorCode::NotFinite);
        assert_eq!(err.field.as_deref(), Some("a"));
    }

    #[test]
    fn strings_are_not_numbers() {
        let obj = RawObject::parse(r#"{"a":"NaN"}"#, &AB).unwrap();
        assert_eq!(obj.number("a").unwrap_err().code, FieldErrorCode::WrongType);
    }

    #[test]
    fn bounded_strings_name_the_field_past_the_cap() {
        let obj = RawObject::parse(r#"{"a":"ééé","b":"abcd"}"#, &AB).unwrap();
        assert_eq!(obj.bounded_string("a", 3).unwrap(), "ééé");
        let err = obj.bounded_string("b", 3).unwrap_err();
        assert_eq!(err.code, FieldErrorCode::TooLong);
        assert_eq!(err.field.as_deref(), Some("b"));
    }

    #[test]
    fn non_objects_and_trailing_garbage_are_malformed() {
        for text in ["[1]", "{\"a\":1} x", "{", "", "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]}"] {
            let err = RawObject::parse(text, &AB).err().unwrap();
            assert_eq!(err.code, FieldErrorCode::MalformedJson, "{text}");
        }
    }

    #[test]
    fn arrays_stop_at_one_past_the_cap() {
        assert_eq!(parse_raw_array("[1,2,3]", 3).unwrap().len(), 3);
        let err = parse_raw_array("[1,2,3,4", 3).unwrap_err();
        assert_eq!(err.code, FieldErrorCode::TooManyItems);
        // Malformed text after the cap is never read.
        let err = parse_raw_array("[1,2,3,4,!!!", 3).unwrap_err();
        assert_eq!(err.code, FieldErrorCode::TooManyItems);
        assert_eq!(
            parse_raw_array("{}", 3).unwrap_err().code,
            FieldErrorCode::MalformedJson
        );
    }
}
