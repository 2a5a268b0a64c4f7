//! The configured set of regions a node accepts runs from.

use thiserror::Error;

/// The six regions of the default deployment, in canonical spelling.
pub const DEFAULT_REGIONS: [&str; 6] = ["Americas", "EU", "MENA", "APAC", "Polar", "Orbit"];

/// Why a region list is unusable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RegionSetError {
    /// No regions were configured.
    #[error("at least one region must be configured")]
    Empty,
    /// A region name is empty or has characters outside `[A-Za-z0-9_-]`.
    #[error("region name {0:?} must be 1-64 characters of [A-Za-z0-9_-]")]
    InvalidName(String),
    /// Two names differ only in letter case.
    #[error("region {0:?} is listed twice (names are case-insensitive)")]
    Duplicate(String),
}

/// An ordered set of region names, matched case-insensitively and reported in
/// their canonical (configured) spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionSet {
    names: Vec<String>,
}

impl RegionSet {
    /// Builds a set from configured names, rejecting empty, malformed or duplicate names.
    pub fn new<I, S>(names: I) -> Result<Self, RegionSetError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut out: Vec<String> = Vec::new();
        for name in names {
            let name = name.into();
            let well_formed = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !well_formed {
                return Err(RegionSetError::InvalidName(name));
            }
            if out.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
                return Err(RegionSetError::Duplicate(name));
            }
            out.push(name);
        }
        if out.is_empty() {
            return Err(RegionSetError::Empty);
        }
        Ok(Self { names: out })
    }

    /// Returns the canonical spelling of `name` if it is configured.
    pub fn canonical(&self, name: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }

    /// The configured names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Default for RegionSet {
    fn default() -> Self {
        Self {
            names: DEFAULT_REGIONS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The Prometheus label value for a region: its name in lower case (SPEC §7).
pub fn metric_label(region: &str) -> String {
    region.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_case_insensitively_and_returns_canonical_spelling() {
        let set = RegionSet::default();
        assert_eq!(set.canonical("americas"), Some("Americas"));
        assert_eq!(set.canonical("APAC"), Some("APAC"));
        assert_eq!(set.canonical("Atlantis"), None);
    }

    #[test]
    fn rejects_bad_sets() {
        assert_eq!(
            RegionSet::new(Vec::<String>::new()),
            Err(RegionSetError::Empty)
        );
        assert_eq!(
            RegionSet::new(["EU", "eu"]),
            Err(RegionSetError::Duplicate("eu".into()))
        );
        assert_eq!(
            RegionSet::new(["E U"]),
            Err(RegionSetError::InvalidName("E U".into()))
        );
    }
}
