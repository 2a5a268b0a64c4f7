//! The Trust Kernel's domain (SPEC §6), pure: region health and MTBF,
//! trust scores, the rollout controller and compliance rules evaluated by
//! the Cedar policy engine. The node (crate `qunimbus-node`) persists the
//! state, records every change on the ledger and serves the HTTP API.

#![warn(missing_docs)]

pub mod cadence;
pub mod compliance;
pub mod health;
pub mod policy;
pub mod requests;
pub mod rollout;
