//! The QuNimbus verification ledger (DVL, SPEC §4) as a pure domain crate:
//! no I/O, no SQL, no HTTP, no clock and no threads. Storage and serving
//! layers build on it.
//!
//! # Model
//!
//! * **Blocks** ([`block`]): each event is a [`Block`] with an index (0 is
//!   the genesis block), an RFC 3339 timestamp, a kind, optional
//!   `phi_qevf`/`eta_ent`, compliance attestations and kind-specific fields.
//! * **Hash chain**: a block's `hash` is
//!   `hex(SHA-256(JCS(block without "hash")))`, JCS being RFC 8785
//!   ([`jcs`]); each block's `previous_hash` is its predecessor's `hash`
//!   (64 zeros for genesis). Anyone with an RFC 8785 library can recompute
//!   every hash.
//! * **Merkle tree** ([`merkle`]): the blocks in index order are the leaves
//!   of an RFC 6962 / RFC 9162 tree; a leaf's input is the JCS bytes of the
//!   full block (with `hash`). The tree is kept as *stored hashes*: every
//!   perfect subtree ([`NodeId`]) is written once, when its last leaf
//!   arrives ([`RightEdge::append`], O(log n)). Roots, inclusion proofs and
//!   consistency proofs are planned as lists of stored nodes
//!   ([`inclusion_plan`], [`consistency_plan`], [`root_plan`]), fetched by
//!   the caller and [`assemble`]d; [`verify_inclusion`] and
//!   [`verify_consistency`] check them per RFC 9162.
//! * **Checkpoints** ([`checkpoint`]): a C2SP `tlog-checkpoint` body (origin,
//!   size, root) signed with Ed25519 as a C2SP `signed-note`
//!   ([`NoteSigner`], [`NoteVerifier`]).
//! * **Tiles** ([`tiles`]): the C2SP `tlog-tiles` read API — hash tiles are
//!   256 stored hashes of one tree level, entry bundles are length-prefixed
//!   leaf inputs, partial tiles are addressed as `.p/W`.
//! * **Verification** ([`verify`]): [`ChainVerifier`] streams blocks,
//!   checking every link and hash, reports the first bad block by index and
//!   reason, and yields the Merkle root to compare with the latest signed
//!   checkpoint.

#![warn(missing_docs)]

pub mod attestation;
pub mod audit;
pub mod block;
pub mod checkpoint;
pub mod error;
pub mod grafana;
pub mod hex;
pub mod jcs;
pub mod merkle;
pub mod personal;
pub mod tiles;
pub mod verify;

pub use block::{
    AttestationStatus, Block, BlockDraft, BlockKind, DEFAULT_FRAMEWORKS, GENESIS_PREVIOUS_HASH,
    MAX_ENTRY_BYTES,
};
pub use checkpoint::{key_id, Checkpoint, NoteSigner, NoteVerifier};
pub use error::LedgerError;
pub use merkle::{
    assemble, consistency_plan, empty_root, fold, inclusion_plan, leaf_hash, node_hash,
    peaks_for_size, range_nodes, root_plan, verify_consistency, verify_inclusion, Hash, NodeId,
    ProofError, RightEdge,
};
pub use tiles::{
    encode_index, entry_bundle, parse_tile_path, tile_hash_nodes, tile_width_at, TileRequest,
    TILE_HEIGHT, TILE_WIDTH,
};
pub use verify::{ChainVerifier, VerifyFailure};
