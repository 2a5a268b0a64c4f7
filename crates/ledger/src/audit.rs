//! A full audit of a ledger, as an auditor runs it with nothing but the
//! blocks (from a database or an export file), optionally the stored Merkle
//! nodes, and the newest signed checkpoint: every block's hash and link and
//! the genesis block ([`ChainVerifier`]), every stored Merkle node that the
//! blocks determine, and the root against the checkpoint, whose signature is
//! checked with the log's public key. Pure: the caller reads the blocks and
//! nodes, in index order, from wherever they are.

use crate::block::{Block, BlockDigests};
use crate::checkpoint::NoteVerifier;
use crate::merkle::{Hash, NodeId};
use crate::verify::ChainVerifier;
use serde::Serialize;

/// The newest signed checkpoint as stored beside (or handed over with) the
/// blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// Tree size it covers.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
    /// The signed note.
    pub note: String,
}

/// How a checkpoint's signature was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SignatureCheck {
    /// Verified with the given public key.
    Verified,
    /// No public key was available.
    NotChecked,
}

/// The first problem an audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditFailure {
    /// Index of the first bad block (for a bad stored node: the last block
    /// of the subtree it covers).
    pub index: u64,
    /// Why it is bad.
    pub reason: String,
}

/// What an audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditOutcome {
    /// True when nothing is wrong.
    pub ok: bool,
    /// Blocks read and checked.
    pub blocks_checked: u64,
    /// Stored Merkle nodes recomputed from the blocks and compared.
    pub nodes_checked: u64,
    /// Size of the newest signed checkpoint, if any.
    pub checkpoint_size: Option<u64>,
    /// Whether the checkpoint's signature was verified.
    pub signature: Option<SignatureCheck>,
    /// The first failure, when not ok.
    pub failure: Option<AuditFailure>,
}

/// An audit in progress: blocks are pushed in index order, and (when the
/// caller has them) the stored nodes the pushed blocks completed.
#[derive(Debug)]
pub struct LedgerAudit {
    chain: ChainVerifier,
    checkpoint: Option<SignedCheckpoint>,
    signature: Option<SignatureCheck>,
    root_at_checkpoint: Option<Hash>,
    failure: Option<AuditFailure>,
    /// Nodes the pushed blocks completed, not yet compared.
    computed: Vec<(NodeId, Hash)>,
    nodes_checked: u64,
}

impl LedgerAudit {
    /// Starts an audit against `checkpoint`, verifying its signature with
    /// `verifier` when one is given.
    pub fn new(checkpoint: Option<SignedCheckpoint>, verifier: Option<&NoteVerifier>) -> Self {
        let mut audit = Self {
            chain: ChainVerifier::new(),
            checkpoint: None,
            signature: None,
            root_at_checkpoint: None,
            failure: None,
            computed: Vec::new(),
            nodes_checked: 0,
        };
        if let Some(cp) = &checkpoint {
            audit.signature = Some(SignatureCheck::NotChecked);
            if let Some(verifier) = verifier {
                let last = cp.size.saturating_sub(1);
                match verifier.verify_checkpoint(&cp.note) {
                    Ok(signed) if signed.size == cp.size && signed.root == cp.root => {
                        audit.signature = Some(SignatureCheck::Verified)
                    }
                    Ok(_) => audit.fail(
                        last,
                        "the stored checkpoint's size or root differs from its signed note".into(),
                    ),
                    Err(e) => {
                        audit.fail(last, format!("checkpoint signature does not verify: {e}"))
                    }
                }
            }
        }
        audit.checkpoint = checkpoint;
        audit
    }

    /// Whether a failure was found (pushing more changes nothing).
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Blocks checked so far.
    pub fn size(&self) -> u64 {
        self.chain.size()
    }

    /// Records a failure found by the caller (e.g. a stored block that does
    /// not decode); the first failure is the one reported.
    pub fn fail(&mut self, index: u64, reason: String) {
        if self.failure.is_none() {
            self.failure = Some(AuditFailure { index, reason });
        }
    }

    /// Checks the next block (`digests` may be precomputed, e.g. in
    /// parallel); returns false once the audit has failed.
    pub fn push(&mut self, block: &Block, digests: Option<&BlockDigests>) -> bool {
        if self.failed() {
            return false;
        }
        match self.chain.push_with_nodes(block, digests) {
            Ok(completed) => {
                self.computed.extend(completed);
                if self.checkpoint.as_ref().map(|c| c.size) == Some(self.chain.size()) {
                    self.root_at_checkpoint = Some(self.chain.root());
                }
                true
            }
            Err(f) => {
                self.fail(f.index, f.reason);
                false
            }
        }
    }

    /// The nodes completed by the blocks pushed since the last comparison,
    /// in completion order.
    pub fn pending_nodes(&self) -> &[(NodeId, Hash)] {
        &self.computed
    }

    /// Compares every pending node with the stored one (`stored` looks a
    /// node up); a stored node that differs, or is missing, is a failure
    /// naming the node and the blocks it covers.
    pub fn compare_stored_nodes(&mut self, stored: impl Fn(NodeId) -> Option<Hash>) {
        for (id, computed) in std::mem::take(&mut self.computed) {
            if self.failed() {
                return;
            }
            let first = id.index << id.level;
            let last = first + (1u64 << id.level) - 1;
            match stored(id) {
                Some(hash) if hash == computed => self.nodes_checked += 1,
                found => self.fail(
                    last,
                    format!(
                        "stored Merkle node level {} index {} (blocks {first}..={last}) {}",
                        id.level,
                        id.index,
                        if found.is_some() {
                            "differs from the hash of its blocks"
                        } else {
                            "is missing"
                        }
                    ),
                ),
            }
        }
    }

    /// Forgets pending nodes without comparing them (no stored nodes to
    /// compare with, e.g. when auditing an export file).
    pub fn skip_nodes(&mut self) {
        self.computed.clear();
    }

    /// Ends the audit: a ledger must have its genesis block, and the root of
    /// its first `checkpoint.size` blocks must equal the checkpoint's.
    pub fn finish(mut self) -> AuditOutcome {
        if !self.failed() {
            if self.chain.size() == 0 {
                self.fail(0, "the ledger has no genesis block".into());
            } else if let Some(cp) = &self.checkpoint {
                let (size, root) = (cp.size, cp.root);
                match self.root_at_checkpoint {
                    None => {
                        let stored = self.chain.size();
                        self.fail(
                            stored,
                            format!(
                                "the signed checkpoint covers {size} blocks but only {stored} are stored"
                            ),
                        )
                    }
                    Some(computed) if computed != root => self.fail(
                        size - 1,
                        format!(
                            "the Merkle root of blocks 0..{size} does not match the signed checkpoint"
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        AuditOutcome {
            ok: self.failure.is_none(),
            blocks_checked: self.chain.size(),
            nodes_checked: self.nodes_checked,
            checkpoint_size: self.checkpoint.as_ref().map(|c| c.size),
            signature: self.signature,
            failure: self.failure,
        }
    }
}

#[cfg(test)]
mod tests;
