//! What the ledger endpoints answer, as typed JSON (their OpenAPI schemas
//! are derived from these types).

use qunimbus_ledger::block::Block;
use qunimbus_node::ledger::VerifyReport;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The newest signed checkpoint, in short.
#[derive(Serialize, ToSchema)]
pub(crate) struct CheckpointSummary {
    /// Its tree size.
    pub tree_size: u64,
    /// Its root hash (base64).
    pub root_hash: String,
    /// When it was signed (RFC 3339 UTC, µs).
    pub signed_at: String,
}

/// `GET /v1/ledger`.
#[derive(Serialize, ToSchema)]
pub(crate) struct LedgerSummary<'a> {
    /// The log origin (the signing key's name).
    pub origin: &'a str,
    /// Blocks in the ledger.
    pub chain_length: u64,
    /// Merkle root of the whole ledger now (base64).
    pub root_hash: String,
    /// Hash of block 0.
    pub genesis_hash: Option<String>,
    /// Hash of the newest block.
    pub latest_hash: Option<String>,
    /// `phi_qevf` of the newest valuation block.
    pub latest_phi_qevf: Option<f64>,
    /// `eta_ent` of the newest valuation block.
    pub latest_eta_ent: Option<f64>,
    /// Timestamp of the newest valuation block.
    pub latest_valuation_timestamp: Option<String>,
    /// Frameworks every block attests.
    pub compliance_frameworks: &'a [String],
    /// The newest signed checkpoint.
    pub checkpoint: Option<CheckpointSummary>,
    /// The checkpoint verifier key (`name+keyid+base64`).
    pub public_key: String,
    /// The newest chain verification, if one ran since the node started.
    pub last_verification: Option<VerifyReport>,
}

/// A ledger block, exactly as hashed: `hash = hex(SHA-256(JCS(block
/// without "hash")))`, and its JCS (with `hash`) is its Merkle leaf.
/// Members in the order of `Block::to_json`.
#[derive(Serialize, ToSchema)]
#[schema(as = Block)]
pub(crate) struct BlockView<'a> {
    /// Position in the chain; 0 is the genesis block.
    #[schema(minimum = 0)]
    index: u64,
    /// RFC 3339 UTC with microseconds.
    timestamp: &'a str,
    /// `genesis`, `valuation`, `attestation`, `rollout`, `override`,
    /// `trade`, `health`, `config` or `erasure`.
    #[schema(example = "valuation")]
    kind: &'static str,
    /// The Phi-valuation, if any.
    phi_qevf: Option<f64>,
    /// The entanglement efficiency, if any.
    eta_ent: Option<f64>,
    /// Framework → `verified` | `failed` | `pending` | `waived` | `genesis`.
    compliance_attestations: BTreeMap<&'a str, &'static str>,
    /// `hash` of the previous block (64 zeros for block 0).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    previous_hash: &'a str,
    /// Region the event concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = String)]
    region: Option<&'a str>,
    /// Run the event concerns (a personal-class run's block carries a
    /// `run_ref` in its payload instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = String)]
    run_id: Option<&'a str>,
    /// Kind-specific data.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = Object)]
    payload: Option<&'a Value>,
    /// 64 lowercase hex digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    hash: &'a str,
}

impl<'a> BlockView<'a> {
    /// The JSON form of `block` (the same members as `Block::to_json`).
    pub fn of(block: &'a Block) -> Self {
        Self {
            compliance_attestations: block
                .compliance_attestations
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            eta_ent: block.eta_ent,
            hash: &block.hash,
            index: block.index,
            kind: block.kind.as_str(),
            payload: block.payload.as_ref(),
            phi_qevf: block.phi_qevf,
            previous_hash: &block.previous_hash,
            region: block.region.as_deref(),
            run_id: block.run_id.as_deref(),
            timestamp: &block.timestamp,
        }
    }
}

/// `GET /v1/ledger/blocks`.
#[derive(Serialize, ToSchema)]
pub(crate) struct BlockPage<'a> {
    /// The first index asked for.
    pub from: u64,
    /// Blocks returned.
    pub count: usize,
    /// The blocks, in index order.
    pub blocks: Vec<BlockView<'a>>,
}

/// `GET /v1/ledger/proof/inclusion`.
#[derive(Serialize, ToSchema)]
pub(crate) struct InclusionProof {
    /// The block's index.
    pub index: u64,
    /// The tree the proof is against.
    pub tree_size: u64,
    /// RFC 6962 leaf hash of the block (base64).
    pub leaf_hash: String,
    /// Root of the tree of `tree_size` (base64).
    pub root_hash: String,
    /// The audit path, leaf to root (base64).
    pub hashes: Vec<String>,
}

/// `GET /v1/ledger/proof/consistency`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConsistencyProof {
    /// The older tree size.
    pub first: u64,
    /// The newer tree size.
    pub second: u64,
    /// Root of the older tree (base64).
    pub first_root: String,
    /// Root of the newer tree (base64).
    pub second_root: String,
    /// The proof (base64).
    pub hashes: Vec<String>,
}

/// One attestation of a framework.
#[derive(Serialize, ToSchema)]
pub(crate) struct AttestationEntry<'a> {
    /// The attestation block.
    pub index: u64,
    /// Its timestamp.
    pub timestamp: &'a str,
    /// The framework's status in it.
    pub status: &'static str,
    /// Its hash.
    pub hash: &'a str,
}

/// `GET /v1/ledger/attestations/{framework}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct AttestationHistory<'a> {
    /// The framework.
    pub framework: &'a str,
    /// Entries returned.
    pub count: usize,
    /// Whether older attestation blocks were left out.
    pub truncated: bool,
    /// Newest first.
    pub history: Vec<AttestationEntry<'a>>,
}
