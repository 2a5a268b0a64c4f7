//! RFC 6962 / RFC 9162 Merkle tree hashing, stored-node addressing, proof
//! planning and proof verification.
//!
//! # Stored nodes
//!
//! Like Go's `golang.org/x/mod/sumdb/tlog`, the tree is described by its
//! *stored* nodes: every perfect (complete) subtree, addressed by a
//! [`NodeId`] `{ level, index }` covering leaves
//! `[index << level, (index + 1) << level)`. Level 0 nodes are leaf hashes.
//! A stored node never changes once its last leaf is appended, so a storage
//! layer can write it once, and every RFC 6962 hash the log ever needs (tree
//! roots, audit paths, consistency proofs) is the right fold ([`fold`]) of a
//! few stored nodes.
//!
//! # Proof plans
//!
//! [`inclusion_plan`], [`consistency_plan`] and [`root_plan`] say *which*
//! stored nodes a proof needs, so the caller can fetch them in one query and
//! then [`assemble`] the proof. Verification ([`verify_inclusion`],
//! [`verify_consistency`]) is written independently, straight from RFC 9162
//! §2.1.3.2 and §2.1.4.2.

use sha2::{Digest, Sha256};

use crate::error::LedgerError;

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// RFC 6962 leaf hash: SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// Address of a stored node: the perfect subtree of height `level` covering
/// leaves `[index << level, (index + 1) << level)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height of the subtree: 0 for a leaf, 1 for a pair of leaves, …
    pub level: u8,
    /// Position of the subtree among the subtrees of the same level, from the left.
    pub index: u64,
}

impl NodeId {
    /// Creates a node address.
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// The half-open leaf range `[start, end)` this node covers, or `None` if
    /// it does not fit in `u64` (such a node can never exist).
    pub fn leaf_range(&self) -> Option<(u64, u64)> {
        let width = 1u64.checked_shl(u32::from(self.level))?;
        let start = self.index.checked_mul(width)?;
        let end = start.checked_add(width)?;
        Some((start, end))
    }
}

/// The largest power of two strictly less than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Decomposition of `[0, size)` into perfect subtrees, largest (leftmost)
/// first: one node per set bit of `size`. Empty for size 0.
pub fn peaks_for_size(size: u64) -> Vec<NodeId> {
    let mut out = Vec::with_capacity(size.count_ones() as usize);
    let mut start = 0u64;
    for level in (0..64u8).rev() {
        let width = 1u64 << level;
        if size & width != 0 {
            out.push(NodeId::new(level, start >> level));
            start += width;
        }
    }
    out
}

/// Decomposition of `[start, end)` into maximal aligned perfect subtrees,
/// left to right (empty if `start >= end`).
///
/// The decomposition is valid for any range, but [`fold`] of it equals the
/// RFC 6962 hash `MTH(D[start:end])` only for ranges where `start` is a
/// multiple of the smallest power of two `>= end - start`. Those are exactly
/// the ranges that occur in RFC 6962 trees: the whole tree `[0, size)`, every
/// subtree in the recursive definition of MTH, and hence every element of an
/// audit path or consistency proof.
pub fn range_nodes(start: u64, end: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        let remaining = end - pos;
        let align = if pos == 0 { 63 } else { pos.trailing_zeros() };
        let fit = 63 - remaining.leading_zeros();
        let level = align.min(fit);
        out.push(NodeId::new(level as u8, pos >> level));
        pos += 1u64 << level;
    }
    out
}

/// Right fold `H(h1, H(h2, … H(hk-1, hk)))` of subtree hashes listed left to
/// right: the RFC 6962 hash of a range from its [`range_nodes`] (or
/// [`peaks_for_size`]) decomposition. `None` for an empty slice.
pub fn fold(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)))
}

/// The stored nodes needed for the root of a tree of `size` leaves (same as
/// [`peaks_for_size`]); [`fold`] their hashes to get the root. For size 0
/// the plan is empty and the root is [`empty_root`].
pub fn root_plan(size: u64) -> Vec<NodeId> {
    peaks_for_size(size)
}

/// Plan of an RFC 6962 §2.1.1 audit path for leaf `index` in a tree of
/// `size` leaves.
///
/// One entry per proof element, bottom-up (the order RFC 9162 §2.1.3.2
/// verification consumes them); each entry lists the stored nodes whose
/// [`fold`] is that element's hash. Errors if `index >= size` (so also for
/// size 0).
pub fn inclusion_plan(index: u64, size: u64) -> Result<Vec<Vec<NodeId>>, LedgerError> {
    if index >= size {
        return Err(LedgerError::IndexOutOfRange { index, size });
    }
    let mut elements = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            elements.push(range_nodes(lo + k, hi));
            hi = lo + k;
        } else {
            elements.push(range_nodes(lo, lo + k));
            lo += k;
        }
    }
    elements.reverse();
    Ok(elements)
}

/// Plan of an RFC 6962 §2.1.2 consistency proof from tree size `first` to
/// tree size `second`, in the order RFC 9162 §2.1.4.2 verification consumes
/// the elements; each entry lists the stored nodes whose [`fold`] is that
/// element's hash.
///
/// Requires `0 < first <= second`; `first == second` gives an empty proof.
pub fn consistency_plan(first: u64, second: u64) -> Result<Vec<Vec<NodeId>>, LedgerError> {
    if first == 0 {
        return Err(LedgerError::InvalidTreeSize(
            "consistency proof from size 0 is not defined".to_string(),
        ));
    }
    if first > second {
        return Err(LedgerError::InvalidTreeSize(format!(
            "first size {first} is larger than second size {second}"
        )));
    }
    let mut elements = Vec::new();
    let (mut lo, mut hi, mut m) = (0u64, second, first);
    let mut complete_subtree = true;
    loop {
        let n = hi - lo;
        if m == n {
            if !complete_subtree {
                elements.push(range_nodes(lo, hi));
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            elements.push(range_nodes(lo + k, hi));
            hi = lo + k;
        } else {
            elements.push(range_nodes(lo, lo + k));
            lo += k;
            m -= k;
            complete_subtree = false;
        }
    }
    elements.reverse();
    Ok(elements)
}

/// Turns a proof plan into proof hashes: looks up every stored node with
/// `lookup` and [`fold`]s each element. Errors naming the first node
/// `lookup` cannot supply.
pub fn assemble(
    plan: &[Vec<NodeId>],
    lookup: impl Fn(NodeId) -> Option<Hash>,
) -> Result<Vec<Hash>, LedgerError> {
    plan.iter()
        .map(|element| {
            let hashes = element
                .iter()
                .map(|&id| lookup(id).ok_or(LedgerError::MissingNode(id)))
                .collect::<Result<Vec<_>, _>>()?;
            fold(&hashes)
                .ok_or_else(|| LedgerError::InvalidTreeSize("empty proof plan element".to_string()))
        })
        .collect()
}

/// The compact range `[0, size)`: the hashes of the perfect subtrees
/// ("peaks") of the current tree, largest first.
///
/// Appending a leaf costs O(log n) and reports every stored node it
/// completes, so a log never needs to re-read old leaves to extend the tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RightEdge {
    size: u64,
    peaks: Vec<(NodeId, Hash)>,
}

impl RightEdge {
    /// The right edge of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a right edge from stored peak hashes; `peaks` must be the
    /// hashes of [`peaks_for_size`]`(size)`, in that order.
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Result<Self, LedgerError> {
        let ids = peaks_for_size(size);
        if ids.len() != peaks.len() {
            return Err(LedgerError::InvalidPeaks(format!(
                "tree size {size} has {} peaks, got {}",
                ids.len(),
                peaks.len()
            )));
        }
        Ok(Self {
            size,
            peaks: ids.into_iter().zip(peaks).collect(),
        })
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash (already [`leaf_hash`]ed) and returns every stored
    /// node this completes: the level-0 leaf node first, then each completed
    /// parent, bottom-up.
    ///
    /// A tree of `u64::MAX` leaves cannot grow; appending to it returns an
    /// empty vector and changes nothing.
    pub fn append(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        if self.size == u64::MAX {
            return Vec::new();
        }
        let leaf_id = NodeId::new(0, self.size);
        let mut completed = Vec::with_capacity(1 + self.size.trailing_ones() as usize);
        completed.push((leaf_id, leaf));
        self.peaks.push((leaf_id, leaf));
        while let [.., (left_id, left), (right_id, right)] = self.peaks.as_slice() {
            if left_id.level != right_id.level {
                break;
            }
            let id = NodeId::new(left_id.level + 1, left_id.index >> 1);
            let hash = node_hash(left, right);
            self.peaks.truncate(self.peaks.len() - 2);
            self.peaks.push((id, hash));
            completed.push((id, hash));
        }
        self.size += 1;
        completed
    }

    /// The RFC 6962 root of the current tree ([`empty_root`] for size 0).
    pub fn root(&self) -> Hash {
        let hashes: Vec<Hash> = self.peaks.iter().map(|(_, h)| *h).collect();
        fold(&hashes).unwrap_or_else(empty_root)
    }

    /// The peaks, largest (leftmost) first, with their addresses.
    pub fn peaks(&self) -> Vec<(NodeId, Hash)> {
        self.peaks.clone()
    }

    /// The peak hashes alone, largest first (the input of [`Self::from_peaks`]).
    pub fn peak_hashes(&self) -> Vec<Hash> {
        self.peaks.iter().map(|(_, h)| *h).collect()
    }
}

/// Why a Merkle proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The pair of tree sizes admits no consistency proof (first is 0 or
    /// larger than second).
    #[error("no consistency proof exists from size {first} to size {second}")]
    InvalidSizes {
        /// The older tree size.
        first: u64,
        /// The newer tree size.
        second: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongLength {
        /// The number of hashes such a proof has.
        expected: usize,
        /// The number of hashes supplied.
        got: usize,
    },
    /// The root computed from an inclusion proof (or the second root for
    /// equal sizes) differs from the expected root.
    #[error("computed root does not match the expected root")]
    RootMismatch,
    /// The first (older) root computed from a consistency proof differs.
    #[error("computed first root does not match the first tree's root")]
    FirstRootMismatch,
    /// The second (newer) root computed from a consistency proof differs.
    #[error("computed second root does not match the second tree's root")]
    SecondRootMismatch,
}

/// Number of hashes in an inclusion proof (`index < size`).
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Number of hashes in a consistency proof (`0 < first < second`).
fn consistency_proof_len(first: u64, second: u64) -> usize {
    let index = first - 1;
    let inner = 64 - (index ^ (second - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    let shift = first.trailing_zeros();
    let start = usize::from(!first.is_power_of_two());
    start + (inner.saturating_sub(shift) + border) as usize
}

/// Verifies an RFC 6962 inclusion proof of `leaf` (a [`leaf_hash`]) at
/// `index` in the tree of `size` leaves with root `root`, following
/// RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    let wrong_length = ProofError::WrongLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies an RFC 6962 consistency proof between the tree of `first` leaves
/// (root `first_root`) and the tree of `second` leaves (root
/// `second_root`), following RFC 9162 §2.1.4.2.
///
/// Equal sizes need an empty proof and equal roots; `first` must be > 0.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first == 0 || first > second {
        return Err(ProofError::InvalidSizes { first, second });
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if first_root != second_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    let expected = consistency_proof_len(first, second);
    let wrong_length = ProofError::WrongLength {
        expected,
        got: proof.len(),
    };
    if proof.is_empty() || proof.len() != expected {
        return Err(wrong_length);
    }
    // Step 1: if first is an exact power of two, prepend first_root.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((seed, rest)) = path.split_first() else {
        return Err(wrong_length);
    };
    let mut fnode = first - 1;
    let mut snode = second - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = *seed;
    let mut sr = *seed;
    for c in rest {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(wrong_length);
    }
    if fr != *first_root {
        return Err(ProofError::FirstRootMismatch);
    }
    if sr != *second_root {
        return Err(ProofError::SecondRootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
