//! The Grafana export's row of a block (SPEC §4): a flat object that an
//! Infinity data source reads, with the time in epoch milliseconds. The
//! node's export endpoint, `qunimbus ledger export` and the Python package
//! all render blocks with it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::block::Block;

/// One block as a flat object: epoch-millisecond time, attestations as
/// `attestation_<framework>` fields, payload fields as `payload_<name>`.
pub fn grafana_row(block: &Block) -> serde_json::Value {
    serde_json::to_value(GrafanaRow::of(block)).unwrap_or(serde_json::Value::Null)
}

/// One block as a flat row of the Grafana export.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrafanaRow {
    /// The block's timestamp in epoch milliseconds.
    pub time: Option<i64>,
    /// The block's index.
    pub index: u64,
    /// The block's kind.
    pub kind: &'static str,
    /// Its `phi_qevf`, if any.
    pub phi_qevf: Option<f64>,
    /// Its `eta_ent`, if any.
    pub eta_ent: Option<f64>,
    /// Its region, if any.
    pub region: Option<String>,
    /// Its run id, if any.
    pub run_id: Option<String>,
    /// Its hash.
    pub hash: String,
    /// The previous block's hash.
    pub previous_hash: String,
    /// `attestation_<framework>`: each framework's status; `payload_<key>`:
    /// each scalar member of the payload.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, serde_json::Value>))]
    pub columns: BTreeMap<String, serde_json::Value>,
}

impl GrafanaRow {
    /// The row of `block`.
    pub fn of(block: &Block) -> Self {
        let mut columns = BTreeMap::new();
        for (framework, status) in &block.compliance_attestations {
            columns.insert(
                format!("attestation_{framework}"),
                serde_json::Value::from(status.as_str()),
            );
        }
        if let Some(serde_json::Value::Object(payload)) = &block.payload {
            for (key, value) in payload {
                if !value.is_object() && !value.is_array() {
                    columns.insert(format!("payload_{key}"), value.clone());
                }
            }
        }
        Self {
            time: qunimbus_core::time::parse_rfc3339_micros(&block.timestamp)
                .map(|us| us.div_euclid(1000))
                .ok(),
            index: block.index,
            kind: block.kind.as_str(),
            phi_qevf: block.phi_qevf,
            eta_ent: block.eta_ent,
            region: block.region.clone(),
            run_id: block.run_id.clone(),
            hash: block.hash.clone(),
            previous_hash: block.previous_hash.clone(),
            columns,
        }
    }
}
