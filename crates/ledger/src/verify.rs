//! Streaming verification of a block chain, shared by online
//! (`GET /v1/ledger/verify`) and offline (`qunimbus ledger verify`)
//! verification.
//!
//! Blocks are pushed in index order; each is checked against the previous
//! one and folded into a [`RightEdge`], so memory stays O(log n) and the
//! resulting [`ChainVerifier::root`] can be compared with a signed
//! checkpoint.

use std::fmt;

use crate::block::{Block, BlockDigests, BlockKind, GENESIS_PREVIOUS_HASH, MAX_ENTRY_BYTES};
use crate::merkle::{Hash, NodeId, RightEdge};

/// The first bad block found: its expected index and a precise reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// Index of the bad block (the position it occupies in the chain).
    pub index: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "block {}: {}", self.index, self.reason)
    }
}

impl std::error::Error for VerifyFailure {}

/// Checks blocks one at a time, in order, and builds the Merkle tree of the
/// verified prefix.
#[derive(Debug, Clone, Default)]
pub struct ChainVerifier {
    last_hash: Option<String>,
    edge: RightEdge,
}

impl ChainVerifier {
    /// A verifier expecting the genesis block (index 0) next.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resumes verification after an already-verified prefix: `edge` is the
    /// right edge of the first `edge.size()` blocks and `last_hash` the hash
    /// of the last of them (ignored when `edge.size()` is 0).
    pub fn resume(edge: RightEdge, last_hash: &str) -> Self {
        let last_hash = (edge.size() > 0).then(|| last_hash.to_string());
        Self { last_hash, edge }
    }

    /// Checks the next block and, if it is good, adds it to the tree.
    ///
    /// Checks, in order: the index is the next expected one (starting at 0);
    /// block 0 is of kind `genesis` with a `previous_hash` of 64 zeros and no
    /// other block is `genesis`; `previous_hash` equals the previous block's
    /// hash; the recomputed hash equals `hash`; the leaf fits a tile entry.
    /// On failure nothing changes, so the verifier still expects this index.
    pub fn push(&mut self, block: &Block) -> Result<(), VerifyFailure> {
        self.check(block, None).map(drop)
    }

    /// Like [`ChainVerifier::push`] with `digests` already computed by
    /// [`Block::digests`] (e.g. in parallel for a batch of blocks).
    pub fn push_digested(
        &mut self,
        block: &Block,
        digests: &BlockDigests,
    ) -> Result<(), VerifyFailure> {
        self.check(block, Some(digests)).map(drop)
    }

    /// Like [`ChainVerifier::push`] (with optional precomputed `digests`),
    /// returning every Merkle node the block completes, as
    /// [`RightEdge::append`] does: the node's own leaf first, then each
    /// completed parent (for comparison with stored nodes).
    pub fn push_with_nodes(
        &mut self,
        block: &Block,
        digests: Option<&BlockDigests>,
    ) -> Result<Vec<(NodeId, Hash)>, VerifyFailure> {
        self.check(block, digests)
    }

    fn check(
        &mut self,
        block: &Block,
        precomputed: Option<&BlockDigests>,
    ) -> Result<Vec<(NodeId, Hash)>, VerifyFailure> {
        let expected = self.edge.size();
        let fail = |reason: String| VerifyFailure {
            index: expected,
            reason,
        };
        if block.index != expected {
            return Err(fail(format!(
                "index {} out of sequence: expected {expected}",
                block.index
            )));
        }
        match &self.last_hash {
            None => {
                if block.kind != BlockKind::Genesis {
                    return Err(fail(format!(
                        "block 0 must be of kind genesis, found {}",
                        block.kind
                    )));
                }
                if block.previous_hash != GENESIS_PREVIOUS_HASH {
                    return Err(fail(
                        "genesis block must have previous_hash of 64 zeros".to_string(),
                    ));
                }
            }
            Some(last_hash) => {
                if block.kind == BlockKind::Genesis {
                    return Err(fail("only block 0 may be of kind genesis".to_string()));
                }
                if block.previous_hash != *last_hash {
                    return Err(fail(format!(
                        "previous_hash does not match block {}'s hash",
                        expected - 1
                    )));
                }
            }
        }
        let digests = match precomputed {
            Some(d) => d.clone(),
            None => block
                .digests()
                .map_err(|e| fail(format!("cannot compute hash: {e}")))?,
        };
        if digests.hash != block.hash {
            return Err(fail(format!(
                "hash mismatch: stored {} computed {}",
                if block.hash.is_empty() {
                    "(empty)"
                } else {
                    &block.hash
                },
                digests.hash
            )));
        }
        if digests.leaf_len > MAX_ENTRY_BYTES {
            return Err(fail(format!(
                "leaf is {} bytes, more than the maximum of {MAX_ENTRY_BYTES}",
                digests.leaf_len
            )));
        }
        let completed = self.edge.append(digests.leaf_hash);
        self.last_hash = Some(digests.hash);
        Ok(completed)
    }

    /// Number of blocks verified so far.
    pub fn size(&self) -> u64 {
        self.edge.size()
    }

    /// RFC 6962 root of the verified blocks (compare with a checkpoint).
    pub fn root(&self) -> Hash {
        self.edge.root()
    }

    /// Hash of the last verified block, if any.
    pub fn last_hash(&self) -> Option<&str> {
        self.last_hash.as_deref()
    }

    /// The right edge of the verified blocks.
    pub fn edge(&self) -> &RightEdge {
        &self.edge
    }
}

#[cfg(test)]
mod tests;
