//! Ledger blocks: the JSON model, RFC 8785 hashing and the hash chain.
//!
//! A block's `hash` is `hex(SHA-256(JCS(block without "hash")))`; its Merkle
//! leaf input is `JCS(block)` including `hash`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::LedgerError;
use crate::hex;
use crate::jcs::canonicalize;
use crate::merkle::sha256;

/// What [`Block::digests`] computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDigests {
    /// Recomputed block hash (lowercase hex).
    pub hash: String,
    /// Length of the Merkle leaf input (JCS of the full block).
    pub leaf_len: usize,
    /// RFC 6962 leaf hash of the full block as stored (with its stored `hash`).
    pub leaf_hash: crate::merkle::Hash,
}

/// `previous_hash` of the genesis block: 64 zeros.
pub const GENESIS_PREVIOUS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Compliance frameworks attested by default (in the genesis block).
pub const DEFAULT_FRAMEWORKS: [&str; 6] = [
    "DO-178C",
    "NIST-800-53",
    "CMMC-2.0",
    "ISO-27001",
    "ITAR",
    "GDPR",
];

/// Largest leaf (entry) size in bytes: a C2SP tlog-tiles entry carries a
/// 16-bit length prefix.
pub const MAX_ENTRY_BYTES: usize = 65535;

/// Largest integer I-JSON (and so RFC 8785) represents exactly: 2^53 - 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The kind of event a block records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    /// The first block (index 0) of every ledger.
    Genesis,
    /// A Phi-valuation of a run.
    Valuation,
    /// A compliance attestation.
    Attestation,
    /// A rollout decision.
    Rollout,
    /// A manual override.
    Override,
    /// A trade.
    Trade,
    /// A region health event (failure or recovery).
    Health,
    /// A configuration change (e.g. a compliance policy loaded).
    Config,
    /// A personal-class run's link to its data subject was erased off-ledger.
    Erasure,
    /// A trading risk decision: an emergency-level, trading-state or
    /// confidence change, or an operator's control of the agent.
    Risk,
    /// The store was restored from a backup: names the backup's checkpoint,
    /// so an auditor sees the gap between the backup and the restore.
    Restore,
}

impl BlockKind {
    /// Every kind, in declaration order.
    pub const ALL: [BlockKind; 11] = [
        BlockKind::Genesis,
        BlockKind::Valuation,
        BlockKind::Attestation,
        BlockKind::Rollout,
        BlockKind::Override,
        BlockKind::Trade,
        BlockKind::Health,
        BlockKind::Config,
        BlockKind::Erasure,
        BlockKind::Risk,
        BlockKind::Restore,
    ];

    /// The JSON (lowercase) name.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Genesis => "genesis",
            BlockKind::Valuation => "valuation",
            BlockKind::Attestation => "attestation",
            BlockKind::Rollout => "rollout",
            BlockKind::Override => "override",
            BlockKind::Trade => "trade",
            BlockKind::Health => "health",
            BlockKind::Config => "config",
            BlockKind::Erasure => "erasure",
            BlockKind::Risk => "risk",
            BlockKind::Restore => "restore",
        }
    }

    /// Parses the JSON (lowercase) name; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of one compliance framework in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttestationStatus {
    /// The framework's controls were verified.
    Verified,
    /// Verification failed.
    Failed,
    /// Verification has not completed.
    Pending,
    /// The framework was waived for this event.
    Waived,
    /// The framework was registered by the genesis block.
    Genesis,
}

impl AttestationStatus {
    /// Every status, in declaration order.
    pub const ALL: [AttestationStatus; 5] = [
        AttestationStatus::Verified,
        AttestationStatus::Failed,
        AttestationStatus::Pending,
        AttestationStatus::Waived,
        AttestationStatus::Genesis,
    ];

    /// The JSON (lowercase) name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttestationStatus::Verified => "verified",
            AttestationStatus::Failed => "failed",
            AttestationStatus::Pending => "pending",
            AttestationStatus::Waived => "waived",
            AttestationStatus::Genesis => "genesis",
        }
    }

    /// Parses the JSON (lowercase) name; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for AttestationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller-supplied content of a block, before it is placed in the chain
/// (given an index and previous hash) and hashed by [`Block::seal`].
#[derive(Debug, Clone, PartialEq)]
pub struct BlockDraft {
    /// RFC 3339 UTC timestamp with microseconds, made by the caller (this
    /// crate has no clock and does not reformat it).
    pub timestamp: String,
    /// What the block records.
    pub kind: BlockKind,
    /// The Phi-valuation, if any; must be finite.
    pub phi_qevf: Option<f64>,
    /// The entanglement efficiency, if any; must be finite.
    pub eta_ent: Option<f64>,
    /// Framework → status.
    pub compliance_attestations: BTreeMap<String, AttestationStatus>,
    /// Region the event concerns, if any.
    pub region: Option<String>,
    /// Run the event concerns, if any.
    pub run_id: Option<String>,
    /// Kind-specific data, if any. `Some(Value::Null)` is stored as `None`.
    pub payload: Option<Value>,
}

/// A sealed ledger block.
///
/// Its JSON form ([`Block::to_json`], also used by `Serialize`) always has
/// the keys `index`, `timestamp`, `kind`, `phi_qevf` (number or null),
/// `eta_ent` (number or null), `compliance_attestations`, `previous_hash`
/// and `hash`, and has `region`, `run_id` and `payload` only when they are
/// `Some`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Position in the chain; 0 is the genesis block.
    pub index: u64,
    /// RFC 3339 UTC timestamp with microseconds.
    pub timestamp: String,
    /// What the block records.
    pub kind: BlockKind,
    /// The Phi-valuation, if any.
    pub phi_qevf: Option<f64>,
    /// The entanglement efficiency, if any.
    pub eta_ent: Option<f64>,
    /// Framework → status.
    pub compliance_attestations: BTreeMap<String, AttestationStatus>,
    /// Region the event concerns, if any.
    pub region: Option<String>,
    /// Run the event concerns, if any.
    pub run_id: Option<String>,
    /// Kind-specific data, if any.
    pub payload: Option<Value>,
    /// `hash` of the previous block ([`GENESIS_PREVIOUS_HASH`] for block 0).
    pub previous_hash: String,
    /// `hex(SHA-256(JCS(content_json)))`, 64 lowercase hex digits.
    pub hash: String,
}

const REQUIRED_KEYS: [&str; 8] = [
    "index",
    "timestamp",
    "kind",
    "phi_qevf",
    "eta_ent",
    "compliance_attestations",
    "previous_hash",
    "hash",
];
const OPTIONAL_KEYS: [&str; 3] = ["region", "run_id", "payload"];

fn float_json(value: Option<f64>) -> Value {
    value
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn invalid(msg: impl Into<String>) -> LedgerError {
    LedgerError::InvalidBlock(msg.into())
}

impl Block {
    /// Places `draft` in the chain at `index` after a block whose hash is
    /// `previous_hash`, and computes its hash.
    ///
    /// Errors if a float is not finite, `index` exceeds
    /// [`MAX_SAFE_INTEGER`], `previous_hash` is not 64 lowercase hex digits,
    /// the genesis rules are broken (index 0 must be kind `genesis` with
    /// [`GENESIS_PREVIOUS_HASH`]; no other index may be `genesis`), or the
    /// leaf bytes exceed [`MAX_ENTRY_BYTES`]. A sealed block therefore always
    /// passes the structural checks of [`ChainVerifier`](crate::verify::ChainVerifier).
    pub fn seal(draft: BlockDraft, index: u64, previous_hash: &str) -> Result<Block, LedgerError> {
        Self::seal_digested(draft, index, previous_hash).map(|(block, _)| block)
    }

    /// [`Block::seal`], also returning the block's digests (its Merkle leaf
    /// hash), computed from the same single canonicalization.
    pub fn seal_digested(
        draft: BlockDraft,
        index: u64,
        previous_hash: &str,
    ) -> Result<(Block, BlockDigests), LedgerError> {
        if !hex::is_lower_hash(previous_hash) {
            return Err(invalid("previous_hash must be 64 lowercase hex characters"));
        }
        if index == 0 {
            if draft.kind != BlockKind::Genesis {
                return Err(invalid(format!(
                    "block 0 must be of kind genesis, not {}",
                    draft.kind
                )));
            }
            if previous_hash != GENESIS_PREVIOUS_HASH {
                return Err(invalid("genesis block must have previous_hash of 64 zeros"));
            }
        } else if draft.kind == BlockKind::Genesis {
            return Err(invalid(format!(
                "only block 0 may be of kind genesis (index {index})"
            )));
        }
        let mut block = Block {
            index,
            timestamp: draft.timestamp,
            kind: draft.kind,
            phi_qevf: draft.phi_qevf,
            eta_ent: draft.eta_ent,
            compliance_attestations: draft.compliance_attestations,
            region: draft.region,
            run_id: draft.run_id,
            payload: draft.payload.filter(|p| !p.is_null()),
            previous_hash: previous_hash.to_string(),
            hash: String::new(),
        };
        let digests = block.digests_with(None)?;
        block.hash = digests.hash.clone();
        if digests.leaf_len > MAX_ENTRY_BYTES {
            return Err(LedgerError::EntryTooLarge {
                size: digests.leaf_len,
                max: MAX_ENTRY_BYTES,
            });
        }
        Ok((block, digests))
    }

    /// The genesis block: index 0, kind `genesis`, previous hash of 64
    /// zeros, no phi/eta, and every framework in `frameworks` with status
    /// `genesis` (see [`DEFAULT_FRAMEWORKS`]).
    pub fn genesis(timestamp: &str, frameworks: &[&str]) -> Result<Block, LedgerError> {
        let draft = BlockDraft {
            timestamp: timestamp.to_string(),
            kind: BlockKind::Genesis,
            phi_qevf: None,
            eta_ent: None,
            compliance_attestations: frameworks
                .iter()
                .map(|f| (f.to_string(), AttestationStatus::Genesis))
                .collect(),
            region: None,
            run_id: None,
            payload: None,
        };
        Block::seal(draft, 0, GENESIS_PREVIOUS_HASH)
    }

    fn content_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("index".into(), Value::from(self.index));
        map.insert("timestamp".into(), Value::String(self.timestamp.clone()));
        map.insert("kind".into(), Value::String(self.kind.as_str().into()));
        map.insert("phi_qevf".into(), float_json(self.phi_qevf));
        map.insert("eta_ent".into(), float_json(self.eta_ent));
        let attestations = self
            .compliance_attestations
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.as_str().into())))
            .collect();
        map.insert(
            "compliance_attestations".into(),
            Value::Object(attestations),
        );
        map.insert(
            "previous_hash".into(),
            Value::String(self.previous_hash.clone()),
        );
        if let Some(region) = &self.region {
            map.insert("region".into(), Value::String(region.clone()));
        }
        if let Some(run_id) = &self.run_id {
            map.insert("run_id".into(), Value::String(run_id.clone()));
        }
        if let Some(payload) = &self.payload {
            map.insert("payload".into(), payload.clone());
        }
        map
    }

    /// The full JSON form, with `hash`.
    ///
    /// A non-finite `phi_qevf`/`eta_ent` (impossible in a sealed block)
    /// would appear as `null` here; the fallible methods reject it instead.
    pub fn to_json(&self) -> Value {
        let mut map = self.content_map();
        map.insert("hash".into(), Value::String(self.hash.clone()));
        Value::Object(map)
    }

    /// The JSON form without `hash`: the input of the block hash.
    pub fn content_json(&self) -> Value {
        Value::Object(self.content_map())
    }

    fn check_numbers(&self) -> Result<(), LedgerError> {
        if self.phi_qevf.is_some_and(|v| !v.is_finite()) {
            return Err(LedgerError::NonFiniteNumber { field: "phi_qevf" });
        }
        if self.eta_ent.is_some_and(|v| !v.is_finite()) {
            return Err(LedgerError::NonFiniteNumber { field: "eta_ent" });
        }
        if self.index > MAX_SAFE_INTEGER {
            return Err(LedgerError::IndexTooLarge(self.index));
        }
        Ok(())
    }

    /// The block hash and the Merkle leaf hash from one canonicalization of
    /// each member: JCS of an object is its members' canonical forms joined
    /// in key order, so the content form (without `hash`) and the full form
    /// (the leaf input) share every member but one. Equal to
    /// ([`Block::compute_hash`], `leaf_hash(`[`Block::leaf_bytes`]`)`).
    pub fn digests(&self) -> Result<BlockDigests, LedgerError> {
        self.digests_with(Some(&self.hash))
    }

    /// Digests with the leaf built over `stored_hash`, or over the freshly
    /// computed hash when `None` (sealing).
    fn digests_with(&self, stored_hash: Option<&str>) -> Result<BlockDigests, LedgerError> {
        self.check_numbers()?;
        let mut members: Vec<(String, Vec<u8>)> = self
            .content_map()
            .into_iter()
            .map(|(key, value)| Ok((key, canonicalize(&value)?)))
            .collect::<Result<_, LedgerError>>()?;
        // Every top-level key is ASCII, so byte order is JCS's UTF-16 order.
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let assemble = |members: &[(String, Vec<u8>)]| {
            let mut out = Vec::with_capacity(
                members
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 4)
                    .sum::<usize>()
                    + 2,
            );
            out.push(b'{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\":");
                out.extend_from_slice(value);
            }
            out.push(b'}');
            out
        };
        let content = assemble(&members);
        let hash = hex::encode(&sha256(&content));
        let stored_hash = canonicalize(&Value::String(stored_hash.unwrap_or(&hash).to_string()))?;
        let at = members.partition_point(|(key, _)| key.as_str() < "hash");
        members.insert(at, ("hash".to_string(), stored_hash));
        let leaf = assemble(&members);
        Ok(BlockDigests {
            hash,
            leaf_len: leaf.len(),
            leaf_hash: crate::merkle::leaf_hash(&leaf),
        })
    }

    /// Recomputes the block hash: lowercase `hex(SHA-256(JCS(content_json)))`.
    pub fn compute_hash(&self) -> Result<String, LedgerError> {
        self.check_numbers()?;
        let bytes = canonicalize(&self.content_json())?;
        Ok(hex::encode(&sha256(&bytes)))
    }

    /// The Merkle leaf input: `JCS(to_json())`, including `hash`.
    pub fn leaf_bytes(&self) -> Result<Vec<u8>, LedgerError> {
        self.check_numbers()?;
        canonicalize(&self.to_json())
    }

    /// Parses the JSON form strictly: every always-present key is required,
    /// unknown keys are rejected, and `region`/`run_id`/`payload` must be
    /// omitted rather than `null`. Hashes are not checked here (see
    /// [`ChainVerifier`](crate::verify::ChainVerifier)).
    pub fn from_json(value: &Value) -> Result<Block, LedgerError> {
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("block must be a JSON object"))?;
        if let Some(unknown) = obj
            .keys()
            .find(|k| !REQUIRED_KEYS.contains(&k.as_str()) && !OPTIONAL_KEYS.contains(&k.as_str()))
        {
            return Err(invalid(format!("unknown field {unknown:?}")));
        }
        let get = |key: &str| {
            obj.get(key)
                .ok_or_else(|| invalid(format!("missing field {key:?}")))
        };
        let string = |key: &str| -> Result<String, LedgerError> {
            get(key)?
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(format!("field {key:?} must be a string")))
        };
        let float = |key: &str| -> Result<Option<f64>, LedgerError> {
            match get(key)? {
                Value::Null => Ok(None),
                Value::Number(n) => n
                    .as_f64()
                    .filter(|v| v.is_finite())
                    .map(Some)
                    .ok_or_else(|| invalid(format!("field {key:?} must be a finite number"))),
                _ => Err(invalid(format!("field {key:?} must be a number or null"))),
            }
        };
        let optional_string = |key: &str| -> Result<Option<String>, LedgerError> {
            match obj.get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Null) => Err(invalid(format!(
                    "field {key:?} must be omitted rather than null"
                ))),
                Some(_) => Err(invalid(format!("field {key:?} must be a string"))),
            }
        };

        let index = get("index")?
            .as_u64()
            .ok_or_else(|| invalid("field \"index\" must be a non-negative integer"))?;
        let kind_text = string("kind")?;
        let kind = BlockKind::parse(&kind_text)
            .ok_or_else(|| invalid(format!("unknown kind {kind_text:?}")))?;
        let attestations_obj = get("compliance_attestations")?
            .as_object()
            .ok_or_else(|| invalid("field \"compliance_attestations\" must be an object"))?;
        let mut compliance_attestations = BTreeMap::new();
        for (framework, status) in attestations_obj {
            let status = status
                .as_str()
                .and_then(AttestationStatus::parse)
                .ok_or_else(|| {
                    invalid(format!(
                        "compliance_attestations[{framework:?}] must be one of verified, failed, pending, waived, genesis"
                    ))
                })?;
            compliance_attestations.insert(framework.clone(), status);
        }
        let payload = match obj.get("payload") {
            None => None,
            Some(Value::Null) => {
                return Err(invalid(
                    "field \"payload\" must be omitted rather than null",
                ))
            }
            Some(v) => Some(v.clone()),
        };
        Ok(Block {
            index,
            timestamp: string("timestamp")?,
            kind,
            phi_qevf: float("phi_qevf")?,
            eta_ent: float("eta_ent")?,
            compliance_attestations,
            region: optional_string("region")?,
            run_id: optional_string("run_id")?,
            payload,
            previous_hash: string("previous_hash")?,
            hash: string("hash")?,
        })
    }
}

impl Serialize for Block {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Err(e) = self.check_numbers() {
            if matches!(e, LedgerError::NonFiniteNumber { .. }) {
                return Err(serde::ser::Error::custom(e));
            }
        }
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Block {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Block::from_json(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
