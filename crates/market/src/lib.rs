//! The QMP market feed's domain (SPEC §5), free of I/O: the messages a node
//! sends to partners and parses from them, the latency and throughput it
//! measures, the targets those measurements are judged against, which
//! partners may receive which data classes, and the per-connection sequence
//! bookkeeping that keeps replay plus live delivery gap-free and
//! duplicate-free.
//!
//! Pure: no I/O, no HTTP, no SQL, no threads and no clock reads. Callers pass
//! every time in (RFC 3339 strings for the wire, a monotonic millisecond
//! clock for throughput, measured [`std::time::Duration`]s for latency).

#![warn(missing_docs)]

mod latency;
mod message;
mod partner;
mod policy;
mod seq;
mod targets;
mod throughput;

pub use latency::{LatencyRecorder, LatencyReport, Quantiles};
pub use message::{
    parse_client_message, ClientAck, ClientMessageError, FeedValuation, LatestPerRegion,
    ServerMessage, MAX_ORIGIN_LEN,
};
pub use partner::{PartnerRequest, PARTNER_NAME_MAX_CHARS};
pub use policy::DistributionPolicy;
pub use seq::{Offer, SeqCursor};
pub use targets::{
    latency_status, throughput_status, Measured, Targets, DEFAULT_EPH_PER_HOUR,
    DEFAULT_LATENCY_P99_MS,
};
pub use throughput::ThroughputWindow;

/// Prometheus name of the measured feed latency, labelled `partner` (SPEC §7).
pub const LATENCY_METRIC: &str = "qunimbus_market_latency_ms";
/// Prometheus name of the measured EPH throughput per hour, labelled `region` (SPEC §7).
pub const THROUGHPUT_METRIC: &str = "qunimbus_eph_throughput";
/// The `region` label value of the node-wide throughput series (SPEC §7).
pub const THROUGHPUT_GLOBAL_REGION: &str = "global";
