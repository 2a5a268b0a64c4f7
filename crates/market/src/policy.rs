//! Which partners may receive which data classes (SPEC §5, §6).

use qunimbus_core::DataClass;
use serde::{Deserialize, Serialize};

/// Where restricted classes may be distributed, by the partner's home region.
///
/// Defaults: ITAR-class records only to partners homed in Americas,
/// personal (GDPR) records only to partners homed in the EU. Public records
/// go to everyone. Region names match case-insensitively.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DistributionPolicy {
    /// Home regions allowed to receive `itar` records.
    pub itar_regions: Vec<String>,
    /// Home regions allowed to receive `personal` records.
    pub personal_regions: Vec<String>,
}

impl Default for DistributionPolicy {
    fn default() -> Self {
        Self {
            itar_regions: vec!["Americas".to_owned()],
            personal_regions: vec!["EU".to_owned()],
        }
    }
}

impl DistributionPolicy {
    /// Whether a record of `class` may be sent to a partner homed in
    /// `partner_region`.
    pub fn allows(&self, class: DataClass, partner_region: &str) -> bool {
        let allowed = match class {
            DataClass::Public => return true,
            DataClass::Itar => &self.itar_regions,
            DataClass::Personal => &self.personal_regions,
        };
        allowed
            .iter()
            .any(|region| region.eq_ignore_ascii_case(partner_region))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let p = DistributionPolicy::default();
        for region in qunimbus_core::DEFAULT_REGIONS {
            assert!(p.allows(DataClass::Public, region));
            assert_eq!(p.allows(DataClass::Itar, region), region == "Americas");
            assert_eq!(p.allows(DataClass::Personal, region), region == "EU");
        }
        assert!(p.allows(DataClass::Public, ""));
        assert!(p.allows(DataClass::Public, "Nowhere"));
        assert!(!p.allows(DataClass::Itar, ""));
        assert!(!p.allows(DataClass::Personal, "EUROPE"));
    }

    #[test]
    fn case_insensitive() {
        let p = DistributionPolicy::default();
        assert!(p.allows(DataClass::Itar, "americas"));
        assert!(p.allows(DataClass::Itar, "AMERICAS"));
        assert!(p.allows(DataClass::Personal, "eu"));
    }

    #[test]
    fn configured() {
        let p: DistributionPolicy =
            serde_json::from_str(r#"{"itar_regions":["Americas","Orbit"]}"#).unwrap();
        assert!(p.allows(DataClass::Itar, "orbit"));
        assert!(p.allows(DataClass::Personal, "EU"));
        let none = DistributionPolicy {
            itar_regions: vec![],
            personal_regions: vec![],
        };
        assert!(!none.allows(DataClass::Itar, "Americas"));
        assert!(!none.allows(DataClass::Personal, "EU"));
        assert!(none.allows(DataClass::Public, "EU"));
        assert!(serde_json::from_str::<DistributionPolicy>(r#"{"itar":[]}"#).is_err());
    }
}
