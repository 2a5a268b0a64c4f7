//! Which partners may receive which records (SPEC §5, §6).

use qunimbus_core::DataClass;

/// Decides, per record and partner, whether a valuation may be sent. The
/// node implements it with the Trust Kernel's compliance policy; partners
/// that may not receive a record get a `withheld` message in its place.
pub trait DistributionPolicy: Send + Sync {
    /// Whether a record of `class` from `region` may be sent to a partner
    /// homed in `partner_region`.
    fn allows(&self, class: DataClass, region: &str, partner_region: &str) -> bool;
}
