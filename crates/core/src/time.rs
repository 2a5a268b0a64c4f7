//! Time conventions (SPEC §9): RFC 3339 UTC with microseconds in JSON.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// The current wall-clock time, truncated to whole microseconds so that a
/// stored and re-read timestamp compares equal to the original.
pub fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Formats a timestamp as RFC 3339 UTC with exactly six fractional digits,
/// e.g. `2026-11-21T16:53:11.123456Z`.
pub fn rfc3339_micros(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 time (any offset) into Unix microseconds.
pub fn parse_rfc3339_micros(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.timestamp_micros())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_with_six_fraction_digits_and_z() {
        let at = Utc.timestamp_opt(1_700_000_000, 1_000).single().unwrap();
        assert_eq!(rfc3339_micros(at), "2023-11-14T22:13:20.000001Z");
    }

    #[test]
    fn parses_any_offset_to_utc_micros() {
        assert_eq!(
            parse_rfc3339_micros("2023-11-14T23:13:20.000001+01:00"),
            Ok(1_700_000_000_000_001)
        );
        assert!(parse_rfc3339_micros("yesterday").is_err());
    }

    #[test]
    fn now_has_no_sub_microsecond_part() {
        assert_eq!(now_micros().timestamp_subsec_nanos() % 1_000, 0);
    }
}
