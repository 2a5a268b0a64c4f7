//! Merkle tests: RFC 6962 reference vectors (certificate-transparency
//! `merkle_tree_test`), a naive full-tree implementation as an oracle, and
//! property tests.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::hex;

fn h(text: &str) -> Hash {
    hex::decode_hash(text).unwrap()
}

/// The eight leaf inputs of the certificate-transparency reference tests.
fn ct_leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|x| hex::decode(x).unwrap())
    .collect()
}

const CT_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf index, tree size, audit path) from the reference implementation.
fn ct_inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (0, 1, vec![]),
        (
            0,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            5,
            8,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            3,
            vec![h(
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            )],
        ),
        (
            1,
            5,
            vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

/// (first size, second size, proof) from the reference implementation.
fn ct_consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    vec![
        (1, 1, vec![]),
        (
            1,
            8,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ],
        ),
        (
            6,
            8,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ],
        ),
        (
            2,
            5,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ],
        ),
    ]
}

// ---------------------------------------------------------------------------
// Naive oracle, straight from the RFC 6962 §2.1 recursive definitions.

fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// A naive full tree with memoised MTH over ranges.
struct Naive {
    leaves: Vec<Hash>,
    memo: std::cell::RefCell<HashMap<(usize, usize), Hash>>,
}

impl Naive {
    fn new(leaves: Vec<Hash>) -> Self {
        Self {
            leaves,
            memo: Default::default(),
        }
    }

    fn from_count(n: usize) -> Self {
        Self::new(
            (0..n)
                .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
                .collect(),
        )
    }

    /// MTH(D[lo:hi]).
    fn mth(&self, lo: usize, hi: usize) -> Hash {
        if let Some(v) = self.memo.borrow().get(&(lo, hi)) {
            return *v;
        }
        let v = match hi - lo {
            0 => empty_root(),
            1 => self.leaves[lo],
            n => {
                let k = k_of(n);
                node_hash(&self.mth(lo, lo + k), &self.mth(lo + k, hi))
            }
        };
        self.memo.borrow_mut().insert((lo, hi), v);
        v
    }

    /// PATH(m, D[lo:hi]).
    fn path(&self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
        let n = hi - lo;
        if n <= 1 {
            return vec![];
        }
        let k = k_of(n);
        if m < k {
            let mut p = self.path(m, lo, lo + k);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.path(m - k, lo + k, hi);
            p.push(self.mth(lo, lo + k));
            p
        }
    }

    /// SUBPROOF(m, D[lo:hi], b).
    fn subproof(&self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<Hash> {
        let n = hi - lo;
        if m == n {
            return if b { vec![] } else { vec![self.mth(lo, hi)] };
        }
        let k = k_of(n);
        if m <= k {
            let mut p = self.subproof(m, lo, lo + k, b);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.subproof(m - k, lo + k, hi, false);
            p.push(self.mth(lo, lo + k));
            p
        }
    }

    /// Every stored node (perfect subtree) of the whole tree.
    fn stored(&self) -> HashMap<NodeId, Hash> {
        let mut out = HashMap::new();
        let n = self.leaves.len();
        let mut level = 0u8;
        while (1usize << level) <= n {
            let width = 1usize << level;
            for i in 0..n / width {
                out.insert(
                    NodeId::new(level, i as u64),
                    self.mth(i * width, (i + 1) * width),
                );
            }
            level += 1;
        }
        out
    }
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut out = *hash;
    out[bit / 8 % 32] ^= 1 << (bit % 8);
    out
}

// ---------------------------------------------------------------------------
// Reference vectors.

#[test]
fn empty_and_reference_roots() {
    assert_eq!(
        hex::encode(&empty_root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(RightEdge::new().root(), empty_root());
    let mut edge = RightEdge::new();
    for (i, leaf) in ct_leaves().iter().enumerate() {
        edge.append(leaf_hash(leaf));
        assert_eq!(hex::encode(&edge.root()), CT_ROOTS[i], "size {}", i + 1);
    }
}

fn ct_store() -> (Naive, HashMap<NodeId, Hash>) {
    let naive = Naive::new(ct_leaves().iter().map(|l| leaf_hash(l)).collect());
    let stored = naive.stored();
    (naive, stored)
}

#[test]
fn reference_inclusion_proofs() {
    let (_, stored) = ct_store();
    let leaves = ct_leaves();
    for (index, size, want) in ct_inclusion_vectors() {
        let plan = inclusion_plan(index, size).unwrap();
        let got = assemble(&plan, |id| stored.get(&id).copied()).unwrap();
        assert_eq!(got, want, "inclusion ({index}, {size})");
        let root = h(CT_ROOTS[size as usize - 1]);
        let leaf = leaf_hash(&leaves[index as usize]);
        verify_inclusion(index, size, &leaf, &want, &root).unwrap();
        // Wrong index with the same proof fails.
        if size > 1 {
            let other = (index + 1) % size;
            assert!(verify_inclusion(other, size, &leaf, &want, &root).is_err());
        }
    }
}

#[test]
fn reference_consistency_proofs() {
    let (_, stored) = ct_store();
    for (first, second, want) in ct_consistency_vectors() {
        let plan = consistency_plan(first, second).unwrap();
        let got = assemble(&plan, |id| stored.get(&id).copied()).unwrap();
        assert_eq!(got, want, "consistency ({first}, {second})");
        let r1 = h(CT_ROOTS[first as usize - 1]);
        let r2 = h(CT_ROOTS[second as usize - 1]);
        verify_consistency(first, second, &r1, &r2, &want).unwrap();
        if first != second {
            let wrong = h(CT_ROOTS[(first as usize) % 8]);
            assert!(verify_consistency(first, second, &wrong, &r2, &want).is_err());
        }
    }
}

// ---------------------------------------------------------------------------
// Plans, decompositions and errors.

#[test]
fn decompositions() {
    assert!(peaks_for_size(0).is_empty());
    assert_eq!(
        peaks_for_size(13),
        vec![NodeId::new(3, 0), NodeId::new(2, 2), NodeId::new(0, 12)]
    );
    assert_eq!(root_plan(8), vec![NodeId::new(3, 0)]);
    assert_eq!(
        peaks_for_size(u64::MAX).len(),
        64,
        "every bit of u64::MAX is a peak"
    );
    assert_eq!(
        range_nodes(4, 7),
        vec![NodeId::new(1, 2), NodeId::new(0, 6)]
    );
    assert_eq!(range_nodes(8, 16), vec![NodeId::new(3, 1)]);
    assert!(range_nodes(5, 5).is_empty());
    assert_eq!(NodeId::new(2, 3).leaf_range(), Some((12, 16)));
    assert_eq!(NodeId::new(63, 2).leaf_range(), None);
    assert_eq!(fold(&[]), None);
    let a = leaf_hash(b"a");
    assert_eq!(fold(&[a]), Some(a));
}

#[test]
fn plan_errors() {
    assert!(matches!(
        inclusion_plan(0, 0),
        Err(LedgerError::IndexOutOfRange { index: 0, size: 0 })
    ));
    assert!(matches!(
        inclusion_plan(5, 5),
        Err(LedgerError::IndexOutOfRange { .. })
    ));
    assert!(inclusion_plan(0, 1).unwrap().is_empty());
    assert!(matches!(
        consistency_plan(0, 5),
        Err(LedgerError::InvalidTreeSize(_))
    ));
    assert!(matches!(
        consistency_plan(6, 5),
        Err(LedgerError::InvalidTreeSize(_))
    ));
    assert!(consistency_plan(7, 7).unwrap().is_empty());
    let missing = assemble(&inclusion_plan(3, 8).unwrap(), |_| None);
    assert_eq!(missing, Err(LedgerError::MissingNode(NodeId::new(0, 2))));
    // Large trees plan without overflow.
    let plan = inclusion_plan(u64::MAX - 1, u64::MAX).unwrap();
    assert_eq!(
        plan.len(),
        63,
        "the last leaf's path is the 63 peaks to its left"
    );
    assert!(consistency_plan(u64::MAX - 1, u64::MAX).is_ok());
}

#[test]
fn verify_errors() {
    let leaf = leaf_hash(b"x");
    assert_eq!(
        verify_inclusion(3, 3, &leaf, &[], &leaf),
        Err(ProofError::IndexOutOfRange { index: 3, size: 3 })
    );
    assert_eq!(
        verify_inclusion(0, 2, &leaf, &[], &leaf),
        Err(ProofError::WrongLength {
            expected: 1,
            got: 0
        })
    );
    assert_eq!(
        verify_inclusion(0, 1, &leaf, &[leaf], &leaf),
        Err(ProofError::WrongLength {
            expected: 0,
            got: 1
        })
    );
    verify_inclusion(0, 1, &leaf, &[], &leaf).unwrap();
    assert_eq!(
        verify_inclusion(0, 1, &leaf, &[], &empty_root()),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(0, 3, &leaf, &leaf, &[]),
        Err(ProofError::InvalidSizes {
            first: 0,
            second: 3
        })
    );
    assert_eq!(
        verify_consistency(4, 3, &leaf, &leaf, &[]),
        Err(ProofError::InvalidSizes {
            first: 4,
            second: 3
        })
    );
    verify_consistency(3, 3, &leaf, &leaf, &[]).unwrap();
    assert_eq!(
        verify_consistency(3, 3, &leaf, &empty_root(), &[]),
        Err(ProofError::RootMismatch)
    );
    assert!(matches!(
        verify_consistency(3, 3, &leaf, &leaf, &[leaf]),
        Err(ProofError::WrongLength { .. })
    ));
    assert!(matches!(
        verify_consistency(2, 3, &leaf, &leaf, &[]),
        Err(ProofError::WrongLength { .. })
    ));
}

// ---------------------------------------------------------------------------
// Oracle-backed exhaustive and property checks.

/// Checks every inclusion proof and every consistency proof ending at
/// `size`, plus consistency proofs for the given extra pairs, against the
/// naive oracle; optionally tampers with each.
fn check_tree(naive: &Naive, size: usize, extra_pairs: &[(usize, usize)], tamper: bool) {
    let stored = naive.stored();
    let lookup = |id: NodeId| stored.get(&id).copied();
    let root = naive.mth(0, size);
    assert_eq!(
        fold(&assemble(&[root_plan(size as u64)], lookup).unwrap()).unwrap_or_else(empty_root),
        root
    );

    for m in 0..size {
        let plan = inclusion_plan(m as u64, size as u64).unwrap();
        let proof = assemble(&plan, lookup).unwrap();
        assert_eq!(proof, naive.path(m, 0, size), "inclusion ({m}, {size})");
        let leaf = naive.leaves[m];
        verify_inclusion(m as u64, size as u64, &leaf, &proof, &root).unwrap();
        if tamper {
            assert!(
                verify_inclusion(m as u64, size as u64, &flip(&leaf, m), &proof, &root).is_err()
            );
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i], i + m);
                assert!(verify_inclusion(m as u64, size as u64, &leaf, &bad, &root).is_err());
            }
            let mut longer = proof.clone();
            longer.push(root);
            assert!(verify_inclusion(m as u64, size as u64, &leaf, &longer, &root).is_err());
            assert!(
                verify_inclusion(m as u64, size as u64, &leaf, &proof, &flip(&root, 3)).is_err()
            );
        }
    }

    let pairs = (1..=size)
        .map(|m| (m, size))
        .chain(extra_pairs.iter().copied());
    for (m, n) in pairs {
        let plan = consistency_plan(m as u64, n as u64).unwrap();
        let proof = assemble(&plan, lookup).unwrap();
        assert_eq!(
            proof,
            naive.subproof(m, 0, n, true),
            "consistency ({m}, {n})"
        );
        let (r1, r2) = (naive.mth(0, m), naive.mth(0, n));
        verify_consistency(m as u64, n as u64, &r1, &r2, &proof).unwrap();
        if tamper && m != n {
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i], i + n);
                assert!(
                    verify_consistency(m as u64, n as u64, &r1, &r2, &bad).is_err(),
                    "tampered element {i} of consistency ({m}, {n}) verified"
                );
            }
            assert!(verify_consistency(m as u64, n as u64, &flip(&r1, 1), &r2, &proof).is_err());
            assert!(verify_consistency(m as u64, n as u64, &r1, &flip(&r2, 2), &proof).is_err());
            assert!(verify_consistency(m as u64, n as u64, &r1, &r2, &proof[1..]).is_err());
        }
    }
}

#[test]
fn all_pairs_small_trees() {
    let naive = Naive::from_count(48);
    for size in 1..=48 {
        // check_tree covers every pair (m, size), so over all sizes every
        // pair m <= n <= 48 is checked.
        check_tree(&naive, size, &[], size <= 24);
    }
}

#[test]
fn right_edge_matches_naive_tree() {
    let n = 300usize;
    let naive = Naive::from_count(n);
    let stored = naive.stored();
    let mut edge = RightEdge::new();
    let mut seen: HashMap<NodeId, Hash> = HashMap::new();
    assert_eq!(edge.root(), empty_root());
    for size in 1..=n {
        let completed = edge.append(naive.leaves[size - 1]);
        assert_eq!(
            completed[0],
            (NodeId::new(0, size as u64 - 1), naive.leaves[size - 1])
        );
        // Exactly the perfect subtrees ending at this leaf, bottom-up.
        let mut want = Vec::new();
        let mut level = 0u8;
        while size % (1usize << level) == 0 {
            let id = NodeId::new(level, (size >> level) as u64 - 1);
            want.push((id, stored[&id]));
            level += 1;
        }
        assert_eq!(completed, want, "size {size}");
        for (id, hash) in completed {
            assert!(seen.insert(id, hash).is_none(), "{id:?} completed twice");
        }
        assert_eq!(edge.size(), size as u64);
        assert_eq!(edge.root(), naive.mth(0, size), "root at size {size}");
        let peaks = edge.peaks();
        let ids: Vec<NodeId> = peaks.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, peaks_for_size(size as u64));
        let rebuilt = RightEdge::from_peaks(size as u64, edge.peak_hashes()).unwrap();
        assert_eq!(rebuilt, edge);
    }
    assert_eq!(seen, stored, "every stored node reported exactly once");
    assert!(RightEdge::from_peaks(3, vec![empty_root()]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_verify_and_reject_tampering(size in 1usize..=300, seed in any::<u64>()) {
        let naive = Naive::from_count(size);
        // All inclusion proofs and all first sizes into `size`, plus a spread
        // of pairs with smaller second sizes.
        let mut pairs = Vec::new();
        let mut x = seed | 1;
        for _ in 0..64 {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            let n = (x % size as u64) as usize + 1;
            let m = ((x >> 20) % n as u64) as usize + 1;
            pairs.push((m, n));
        }
        check_tree(&naive, size, &pairs, true);
    }
}
