//! Telemetry reported by a quantum runtime for one completed run (SPEC §2).

use crate::region::RegionSet;
use crate::validation::{parse_raw_array, FieldError, FieldErrorCode, RawObject};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The fields a telemetry object may carry.
pub const TELEMETRY_FIELDS: [&str; 7] = [
    "run_id",
    "region",
    "data_class",
    "eta_ent",
    "coherence_variance",
    "runtime_hours",
    "eph_delivered",
];

/// Regulatory class of a run's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DataClass {
    /// No restrictions (the default).
    #[default]
    Public,
    /// Personal data under GDPR.
    Personal,
    /// Export-controlled under ITAR.
    Itar,
}

impl DataClass {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Personal => "personal",
            Self::Itar => "itar",
        }
    }

    /// Parses the lowercase wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "public" => Some(Self::Public),
            "personal" => Some(Self::Personal),
            "itar" => Some(Self::Itar),
            _ => None,
        }
    }
}

/// A caller-chosen run identifier, the idempotency key: 1–128 characters of
/// `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// The longest accepted identifier, in characters.
    pub const MAX_LEN: usize = 128;

    /// Validates and wraps an identifier.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let ok_chars = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
        if text.is_empty() || text.len() > Self::MAX_LEN || !ok_chars {
            return Err(FieldError::field(
                "run_id",
                FieldErrorCode::InvalidRunId,
                "run_id must be 1-128 characters of [A-Za-z0-9._:-]",
            ));
        }
        Ok(Self(text.to_string()))
    }

    /// The identifier text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The measured quantities of a run that the valuation engine prices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RunMetrics {
    /// Entanglement efficiency, 0.0–1.0.
    pub eta_ent: f64,
    /// Variance of coherence across the run as a fraction (0.015 = 1.5 %), ≥ 0.
    pub coherence_variance: f64,
    /// Wall time of the run in hours, ≥ 0.
    pub runtime_hours: f64,
    /// Entanglement pair-hours delivered, > 0.
    pub eph_delivered: f64,
}

impl RunMetrics {
    /// Checks every range in SPEC §2, naming the first field that is out of range.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_range("eta_ent", self.eta_ent)?;
        check_range("coherence_variance", self.coherence_variance)?;
        check_range("runtime_hours", self.runtime_hours)?;
        check_range("eph_delivered", self.eph_delivered)?;
        Ok(())
    }

    /// Reads and range-checks the four fields in order, so the first
    /// problem in field order is the one reported.
    fn from_object(obj: &RawObject<'_>) -> Result<Self, FieldError> {
        let field = |name: &str| obj.number(name).and_then(|v| check_range(name, v));
        Ok(Self {
            eta_ent: field("eta_ent")?,
            coherence_variance: field("coherence_variance")?,
            runtime_hours: field("runtime_hours")?,
            eph_delivered: field("eph_delivered")?,
        })
    }
}

/// Checks one metric against its SPEC §2 range, returning it when valid.
fn check_range(name: &str, value: f64) -> Result<f64, FieldError> {
    let (ok, range) = match name {
        "eta_ent" => ((0.0..=1.0).contains(&value), "between 0.0 and 1.0"),
        "eph_delivered" => (value > 0.0, "greater than 0"),
        _ => (value >= 0.0, "at least 0"),
    };
    if !value.is_finite() {
        return Err(FieldError::field(
            name,
            FieldErrorCode::NotFinite,
            format!("{name} must be a finite number"),
        ));
    }
    if !ok {
        return Err(FieldError::field(
            name,
            FieldErrorCode::OutOfRange,
            format!("{name} must be {range}, got {value}"),
        ));
    }
    Ok(value)
}

/// One validated telemetry report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Telemetry {
    /// Idempotency key.
    pub run_id: RunId,
    /// Canonical region name.
    pub region: String,
    /// Regulatory data class.
    pub data_class: DataClass,
    /// The measured quantities.
    #[serde(flatten)]
    pub metrics: RunMetrics,
}

impl Telemetry {
    /// Parses and validates one telemetry JSON object.
    pub fn parse_json(text: &str, regions: &RegionSet) -> Result<Self, FieldError> {
        Self::from_object(&RawObject::parse(text, &TELEMETRY_FIELDS)?, regions)
    }

    fn from_object(obj: &RawObject<'_>, regions: &RegionSet) -> Result<Self, FieldError> {
        let run_id = RunId::parse(&obj.string("run_id")?)?;
        let region = parse_region(&obj.string("region")?, regions)?;
        let data_class = parse_data_class(obj)?;
        let metrics = RunMetrics::from_object(obj)?;
        Ok(Self {
            run_id,
            region,
            data_class,
            metrics,
        })
    }

    /// Parses a JSON array of at most `max_runs` telemetry objects. A
    /// document that is not an array, or holds more than `max_runs` elements
    /// ([`FieldErrorCode::TooManyItems`], found while parsing), is an `Err`;
    /// otherwise every element is validated and the result holds, per
    /// element, the run or the error naming its field.
    pub fn parse_json_batch(
        text: &str,
        regions: &RegionSet,
        max_runs: usize,
    ) -> Result<Vec<Result<Self, FieldError>>, FieldError> {
        let items = parse_raw_array(text, max_runs)?;
        Ok(items
            .into_iter()
            .map(|raw| {
                RawObject::from_raw(raw, &TELEMETRY_FIELDS)
                    .and_then(|obj| Self::from_object(&obj, regions))
            })
            .collect())
    }
}

/// A request for a price without recording a run: the metrics are required,
/// `run_id`, `region` and `data_class` are optional but validated when given.
#[derive(Debug, Clone, PartialEq)]
pub struct QuoteRequest {
    /// Canonical region name, if given.
    pub region: Option<String>,
    /// The measured quantities.
    pub metrics: RunMetrics,
}

impl QuoteRequest {
    /// Parses and validates one quote JSON object.
    pub fn parse_json(text: &str, regions: &RegionSet) -> Result<Self, FieldError> {
        let obj = RawObject::parse(text, &TELEMETRY_FIELDS)?;
        if let Some(run_id) = obj.optional_string("run_id")? {
            RunId::parse(&run_id)?;
        }
        let region = obj
            .optional_string("region")?
            .map(|r| parse_region(&r, regions))
            .transpose()?;
        parse_data_class(&obj)?;
        let metrics = RunMetrics::from_object(&obj)?;
        Ok(Self { region, metrics })
    }
}

/// Resolves a region name against the configured set.
pub fn parse_region(name: &str, regions: &RegionSet) -> Result<String, FieldError> {
    regions.canonical(name).map(str::to_string).ok_or_else(|| {
        FieldError::field(
            "region",
            FieldErrorCode::UnknownRegion,
            format!(
                "unknown region {name:?}; configured regions are {}",
                regions.names().join(", ")
            ),
        )
    })
}

fn parse_data_class(obj: &RawObject<'_>) -> Result<DataClass, FieldError> {
    match obj.optional_string("data_class")? {
        None => Ok(DataClass::default()),
        Some(text) => DataClass::parse(&text).ok_or_else(|| {
            FieldError::field(
                "data_class",
                FieldErrorCode::InvalidChoice,
                format!("data_class must be one of public, personal, itar; got {text:?}"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"run_id":"r1","region":"Americas","eta_ent":0.97,"coherence_variance":0.015,"runtime_hours":100,"eph_delivered":1000}"#;

    fn parse(text: &str) -> Result<Telemetry, FieldError> {
        Telemetry::parse_json(text, &RegionSet::default())
    }

    fn err_of(text: &str) -> (Option<String>, FieldErrorCode) {
        let e = parse(text).unwrap_err();
        (e.field, e.code)
    }

    #[test]
    fn parses_the_reference_run() {
        let t = parse(GOOD).unwrap();
        assert_eq!(t.run_id.as_str(), "r1");
        assert_eq!(t.region, "Americas");
        assert_eq!(t.data_class, DataClass::Public);
        assert_eq!(t.metrics.eta_ent, 0.97);
        assert_eq!(t.metrics.runtime_hours, 100.0);
    }

    #[test]
    fn names_each_bad_field() {
        let cases = [
            (
                GOOD.replace("0.97", "1.01"),
                "eta_ent",
                FieldErrorCode::OutOfRange,
            ),
            (
                GOOD.replace("0.97", "-0.1"),
                "eta_ent",
                FieldErrorCode::OutOfRange,
            ),
            (
                GOOD.replace("0.97", "1e999"),
                "eta_ent",
                FieldErrorCode::NotFinite,
            ),
            (
                GOOD.replace("0.97", "\"NaN\""),
                "eta_ent",
                FieldErrorCode::WrongType,
            ),
            (
                GOOD.replace("0.015", "-0.001"),
                "coherence_variance",
                FieldErrorCode::OutOfRange,
            ),
            (
                GOOD.replace(":100,", ":-1,"),
                "runtime_hours",
                FieldErrorCode::OutOfRange,
            ),
            (
                GOOD.replace("1000}", "0}"),
                "eph_delivered",
                FieldErrorCode::OutOfRange,
            ),
            (
                GOOD.replace("Americas", "Atlantis"),
                "region",
                FieldErrorCode::UnknownRegion,
            ),
            (
                GOOD.replace("\"r1\"", "\"bad id\""),
                "run_id",
                FieldErrorCode::InvalidRunId,
            ),
            (
                GOOD.replace("\"r1\"", "\"\""),
                "run_id",
                FieldErrorCode::InvalidRunId,
            ),
            (
                GOOD.replace("}", ",\"extra\":1}"),
                "extra",
                FieldErrorCode::UnknownField,
            ),
            (
                GOOD.replace("}", ",\"data_class\":\"secret\"}"),
                "data_class",
                FieldErrorCode::InvalidChoice,
            ),
            (
                GOOD.replace("\"eph_delivered\":1000", "\"eph_delivered\":null"),
                "eph_delivered",
                FieldErrorCode::MissingField,
            ),
        ];
        for (text, field, code) in cases {
            assert_eq!(err_of(&text), (Some(field.to_string()), code), "{text}");
        }
    }

    #[test]
    fn run_id_limits() {
        assert!(RunId::parse(&"a".repeat(128)).is_ok());
        assert!(RunId::parse(&"a".repeat(129)).is_err());
        assert!(RunId::parse("node-1:run_2.3").is_ok());
        assert!(RunId::parse("é").is_err());
    }

    #[test]
    fn zero_runtime_is_allowed() {
        assert!(parse(&GOOD.replace(":100,", ":0,")).is_ok());
    }

    #[test]
    fn batch_reports_per_item() {
        let text = format!("[{GOOD},{}]", GOOD.replace("0.97", "2"));
        let items = Telemetry::parse_json_batch(&text, &RegionSet::default(), 2).unwrap();
        assert!(items[0].is_ok());
        assert_eq!(
            items[1].as_ref().unwrap_err().field.as_deref(),
            Some("eta_ent")
        );
        assert!(Telemetry::parse_json_batch("{}", &RegionSet::default(), 2).is_err());
        let three = format!("[{GOOD},{GOOD},{GOOD}]");
        let err = Telemetry::parse_json_batch(&three, &RegionSet::default(), 2).unwrap_err();
        assert_eq!(err.code, FieldErrorCode::TooManyItems);
    }

    #[test]
    fn quote_needs_only_metrics() {
        let q = QuoteRequest::parse_json(
            r#"{"eta_ent":0.97,"coherence_variance":0.015,"runtime_hours":100,"eph_delivered":1000}"#,
            &RegionSet::default(),
        )
        .unwrap();
        assert_eq!(q.region, None);
    }
}
