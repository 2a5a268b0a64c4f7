//! The crate-wide error type.

use crate::merkle::NodeId;

/// Everything that can go wrong in the ledger's pure domain logic.
///
/// Proof *verification* failures have their own type,
/// [`ProofError`](crate::merkle::ProofError), and chain verification reports a
/// [`VerifyFailure`](crate::verify::VerifyFailure); this type covers building,
/// parsing, planning and signing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// RFC 8785 canonicalization failed.
    #[error("JSON canonicalization failed: {0}")]
    Canonicalization(String),
    /// A floating-point block field was NaN or infinite.
    #[error("field {field} must be a finite number")]
    NonFiniteNumber {
        /// The offending field.
        field: &'static str,
    },
    /// A block index exceeds 2^53 - 1, the largest integer I-JSON/JCS represents exactly.
    #[error("block index {0} exceeds 2^53 - 1")]
    IndexTooLarge(u64),
    /// A block (or draft) is structurally invalid.
    #[error("invalid block: {0}")]
    InvalidBlock(String),
    /// A block's leaf bytes (or a bundle entry) exceed the tlog-tiles entry limit.
    #[error("entry is {size} bytes, more than the maximum of {max}")]
    EntryTooLarge {
        /// Actual size in bytes.
        size: usize,
        /// Maximum allowed size in bytes.
        max: usize,
    },
    /// A leaf index is not below the tree size.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A tree size or pair of tree sizes is not acceptable for the request.
    #[error("invalid tree size(s): {0}")]
    InvalidTreeSize(String),
    /// A stored node needed by a proof plan was not supplied.
    #[error("missing stored node (level {}, index {})", .0.level, .0.index)]
    MissingNode(NodeId),
    /// A right edge could not be built from the given peaks.
    #[error("invalid right edge: {0}")]
    InvalidPeaks(String),
    /// A checkpoint body is malformed.
    #[error("invalid checkpoint: {0}")]
    InvalidCheckpoint(String),
    /// A key name, signer key (skey) or verifier key (vkey) is malformed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A detached-signature context label is empty, too long or not
    /// printable ASCII.
    #[error("invalid signature context: {0}")]
    InvalidContext(String),
    /// A signed note is malformed.
    #[error("malformed note: {0}")]
    MalformedNote(String),
    /// A signed note carries no signature by the verifier's key.
    #[error("note has no signature by key {name}+{key_id}")]
    NoSignature {
        /// The verifier's key name.
        name: String,
        /// The verifier's key ID, 8 hex digits.
        key_id: String,
    },
    /// A signature by the verifier's key (for a note: a line whose name and
    /// key ID match) does not verify, or a detached signature is not 64
    /// bytes or does not verify.
    #[error("invalid signature by key {name}+{key_id}")]
    BadSignature {
        /// The verifier's key name.
        name: String,
        /// The verifier's key ID, 8 hex digits.
        key_id: String,
    },
    /// A tile path is malformed or not canonical.
    #[error("invalid tile path {path:?}: {reason}")]
    InvalidTilePath {
        /// The rejected path.
        path: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A hexadecimal string could not be decoded.
    #[error("invalid hex: {0}")]
    InvalidHex(String),
}
