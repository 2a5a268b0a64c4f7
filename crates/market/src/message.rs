//! The QMP wire messages (SPEC §5): what the node sends to partners and what
//! partners send back.

use qunimbus_core::DataClass;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use thiserror::Error;

/// One valuation as pushed to partners, and the form replayed from the ledger.
///
/// Inside [`ServerMessage::Valuation`] it is sent as
/// `{"type":"valuation", ...fields}`. Deserializing ignores unknown keys, so
/// the tagged form parses directly into this struct as well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedValuation {
    /// The node / log that accepted the run; `seq` is counted per origin.
    pub origin: String,
    /// Gap-free sequence number within `origin`, starting at 1.
    pub seq: u64,
    /// When this message was sent (RFC 3339 UTC, µs), set by the sender.
    pub server_time: String,
    /// When the run was accepted (RFC 3339 UTC, µs).
    pub accepted_at: String,
    /// Region the run ran in (canonical spelling).
    pub region: String,
    /// Regulatory class of the run's data.
    pub data_class: DataClass,
    /// The caller's id of the run; absent for personal-class runs, which
    /// are known on the feed only by `run_ref` (SPEC §11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The salted reference of a personal-class run (as on its ledger block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_ref: Option<String>,
    /// Entanglement efficiency, 0..=1.
    pub eta_ent: f64,
    /// Coherence variance as a fraction.
    pub coherence_variance: f64,
    /// Wall time of the run in hours.
    pub runtime_hours: f64,
    /// Entanglement pair-hours delivered.
    pub eph_delivered: f64,
    /// The run's Phi valuation (USD).
    pub phi_qevf: f64,
    /// Price multiplier from the valuation engine.
    pub price_multiplier: f64,
    /// Market value (USD).
    pub market_value: f64,
    /// Price per EPH (USD).
    pub eph_price: f64,
    /// Index of the run's ledger block.
    pub block_index: u64,
}

/// Everything the node sends on a feed connection, tagged by `"type"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// `"valuation"`: one valuation (live or replayed).
    Valuation(FeedValuation),
    /// `"snapshot"`: sent first on connect.
    Snapshot {
        /// The node / log whose sequence space this connection follows.
        origin: String,
        /// When this message was sent (RFC 3339 UTC, µs).
        server_time: String,
        /// Whether publishing is switched on.
        active: bool,
        /// The seq the next new valuation will carry.
        next_seq: u64,
        /// The newest valuation per region.
        latest: Vec<FeedValuation>,
    },
    /// `"replayed"`: the requested replay is complete; live messages follow
    /// from `to_seq + 1` on.
    Replayed {
        /// The node / log the replay came from.
        origin: String,
        /// First seq replayed.
        from_seq: u64,
        /// Last seq replayed.
        to_seq: u64,
    },
    /// `"withheld"`: the valuation with this seq exists but the distribution
    /// policy keeps it from this partner (keeps the seq sequence gap-free).
    Withheld {
        /// The node / log of the seq space.
        origin: String,
        /// The withheld message's seq.
        seq: u64,
        /// Which rule withheld it.
        reason: String,
    },
    /// `"disconnect"`: sent before the node closes a slow or removed
    /// connection; the partner may reconnect with `?from_seq=resume_from_seq`.
    Disconnect {
        /// Why the connection is closed.
        reason: String,
        /// The first seq the partner has not been sent.
        resume_from_seq: u64,
    },
    /// `"error"`: a client message was rejected; the connection stays open.
    Error {
        /// Stable machine-readable code.
        code: String,
        /// Human-readable explanation.
        message: String,
    },
}

/// Returned by [`ServerMessage::to_json`] in the (unreachable in practice)
/// case that serialization fails.
const SERIALIZE_FAILED: &str =
    r#"{"type":"error","code":"internal","message":"message could not be serialized"}"#;

impl ServerMessage {
    /// The message as one JSON text (one WebSocket text frame / SSE `data:`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| SERIALIZE_FAILED.to_owned())
    }

    /// The message's `"type"` tag (the SSE event name).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Valuation(_) => "valuation",
            Self::Snapshot { .. } => "snapshot",
            Self::Replayed { .. } => "replayed",
            Self::Withheld { .. } => "withheld",
            Self::Disconnect { .. } => "disconnect",
            Self::Error { .. } => "error",
        }
    }

    /// Parses a message as a partner would.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The `"error"` reply to a rejected client message.
    pub fn client_error(err: &ClientMessageError) -> Self {
        Self::Error {
            code: err.code().to_owned(),
            message: err.to_string(),
        }
    }
}

/// What partners send: an acknowledgement, `{"type":"ack","seq":N}` with
/// an optional `"origin"` (absent means the node's own origin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "ack")]
pub struct ClientAck {
    /// The acknowledged seq (≥ 1).
    pub seq: u64,
    /// The origin the seq belongs to; `None` means the receiving node's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl ClientAck {
    /// The origin this ack refers to, defaulting to `own_origin`.
    pub fn origin_or<'a>(&'a self, own_origin: &'a str) -> &'a str {
        self.origin.as_deref().unwrap_or(own_origin)
    }

    /// The ack as a partner sends it (one WebSocket text frame).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| format!(r#"{{"type":"ack","seq":{}}}"#, self.seq))
    }
}

/// The longest accepted `origin` in a client message.
pub const MAX_ORIGIN_LEN: usize = 256;

/// How much of an offending value an error message quotes.
const QUOTE_LIMIT: usize = 64;

/// Why a client message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientMessageError {
    /// The text is not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The JSON is not an object.
    #[error("message must be a JSON object; got {0}")]
    NotAnObject(&'static str),
    /// No `"type"` key.
    #[error("message has no \"type\"")]
    MissingType,
    /// `"type"` is not a string.
    #[error("\"type\" must be a string; got {0}")]
    InvalidType(String),
    /// `"type"` names no known message.
    #[error("unknown message type {0}; expected \"ack\"")]
    UnknownType(String),
    /// An ack without `"seq"`.
    #[error("ack has no \"seq\"")]
    MissingSeq,
    /// `"seq"` is not an integer in 1..=2^64-1.
    #[error("\"seq\" must be an integer from 1 to 18446744073709551615; got {0}")]
    InvalidSeq(String),
    /// `"origin"` is not a non-empty string of at most [`MAX_ORIGIN_LEN`] bytes.
    #[error("\"origin\" must be a non-empty string of at most 256 bytes; got {0}")]
    InvalidOrigin(String),
}

impl ClientMessageError {
    /// Stable machine-readable code for [`ServerMessage::Error`].
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::NotAnObject(_) => "invalid_message",
            Self::MissingType | Self::MissingSeq => "missing_field",
            Self::UnknownType(_) => "unknown_type",
            Self::InvalidType(_) | Self::InvalidSeq(_) | Self::InvalidOrigin(_) => "invalid_value",
        }
    }

    /// The offending field, when one is to blame.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::MalformedJson(_) | Self::NotAnObject(_) => None,
            Self::MissingType | Self::InvalidType(_) | Self::UnknownType(_) => Some("type"),
            Self::MissingSeq | Self::InvalidSeq(_) => Some("seq"),
            Self::InvalidOrigin(_) => Some("origin"),
        }
    }
}

/// Parses what a partner sent. Accepts `{"type":"ack","seq":N}` with an
/// optional string `"origin"` (`null` counts as absent); other keys are
/// ignored so partners can add fields without breaking older nodes.
pub fn parse_client_message(text: &str) -> Result<ClientAck, ClientMessageError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ClientMessageError::MalformedJson(e.to_string()))?;
    let obj = match &value {
        Value::Object(obj) => obj,
        other => return Err(ClientMessageError::NotAnObject(kind(other))),
    };
    match obj.get("type") {
        None => return Err(ClientMessageError::MissingType),
        Some(Value::String(t)) if t == "ack" => {}
        Some(Value::String(t)) => return Err(ClientMessageError::UnknownType(quote_str(t))),
        Some(other) => return Err(ClientMessageError::InvalidType(quote(other))),
    }
    let seq = match obj.get("seq") {
        None => return Err(ClientMessageError::MissingSeq),
        Some(v) => match v.as_u64() {
            Some(seq) if seq >= 1 => seq,
            _ => return Err(ClientMessageError::InvalidSeq(quote(v))),
        },
    };
    let origin = match obj.get("origin") {
        None | Some(Value::Null) => None,
        Some(Value::String(o)) if !o.is_empty() && o.len() <= MAX_ORIGIN_LEN => Some(o.clone()),
        Some(other) => return Err(ClientMessageError::InvalidOrigin(quote(other))),
    };
    Ok(ClientAck { seq, origin })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short rendering of an offending JSON value for an error message.
fn quote(value: &Value) -> String {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => truncate(value.to_string()),
        Value::String(s) => quote_str(s),
        Value::Array(_) | Value::Object(_) => kind(value).to_owned(),
    }
}

fn quote_str(s: &str) -> String {
    truncate(format!("{s:?}"))
}

fn truncate(mut s: String) -> String {
    if s.len() > QUOTE_LIMIT {
        let mut cut = QUOTE_LIMIT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The newest valuation per region, for the connect-time snapshot.
///
/// Within one origin "newest" means the highest seq; across origins the
/// later `accepted_at` (RFC 3339 UTC with a fixed number of digits sorts
/// chronologically), then the higher seq.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatestPerRegion {
    by_region: BTreeMap<String, FeedValuation>,
}

impl LatestPerRegion {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `valuation` if it is newer than the one held for its region;
    /// returns whether it was kept.
    pub fn update(&mut self, valuation: FeedValuation) -> bool {
        match self.by_region.get(&valuation.region) {
            Some(held) if !is_newer(&valuation, held) => false,
            _ => {
                self.by_region.insert(valuation.region.clone(), valuation);
                true
            }
        }
    }

    /// The held valuations, ordered by region name.
    pub fn latest(&self) -> Vec<FeedValuation> {
        self.by_region.values().cloned().collect()
    }

    /// The newest valuation of one region.
    pub fn get(&self, region: &str) -> Option<&FeedValuation> {
        self.by_region.get(region)
    }

    /// Number of regions held.
    pub fn len(&self) -> usize {
        self.by_region.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.by_region.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.by_region.clear();
    }
}

fn is_newer(candidate: &FeedValuation, held: &FeedValuation) -> bool {
    if candidate.origin == held.origin {
        candidate.seq > held.seq
    } else {
        (candidate.accepted_at.as_str(), candidate.seq) > (held.accepted_at.as_str(), held.seq)
    }
}

#[cfg(test)]
mod tests;
