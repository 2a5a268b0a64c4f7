//! Domain types shared by every QuNimbus crate: telemetry runs, regions, data
//! classes, input validation with field-level errors, and time formatting.
//!
//! Nothing here performs I/O; the HTTP and SQL layers build on these types.

#![warn(missing_docs)]

pub mod region;
pub mod telemetry;
pub mod time;
pub mod validation;

pub use region::{RegionSet, DEFAULT_REGIONS};
pub use telemetry::{DataClass, QuoteRequest, RunId, RunMetrics, Telemetry};
pub use validation::{FieldError, FieldErrorCode};
