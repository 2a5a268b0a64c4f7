//! RFC 6962 / RFC 9162 proof verification (`verify_inclusion`,
//! `verify_consistency`): what an auditor runs on the proofs a node serves
//! (`/v1/ledger/proof/*`) and what the writer runs before storing a
//! checkpoint.
//!
//! The input chooses a tree of 1..=64 leaves, a leaf, an older tree size
//! and a tampering of the proofs. Checks: the honest proofs (planned with
//! `inclusion_plan` / `consistency_plan` over the stored nodes of a
//! `RightEdge`) verify; a proof with any hash changed, removed or added, or
//! checked against another root, does not; arbitrary sizes, indexes and
//! proofs give an error, never a panic.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use qunimbus_ledger::{
    assemble, consistency_plan, inclusion_plan, leaf_hash, verify_consistency, verify_inclusion,
    Hash, NodeId, RightEdge,
};

fuzz_target!(|data: &[u8]| {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let size = u64::from(byte(0) % 64) + 1;
    let index = u64::from(byte(1)) % size;
    let first = u64::from(byte(2)) % size + 1;
    let tamper = data.get(3..).unwrap_or_default();

    // The tree, its stored nodes, and its roots at sizes `first` and `size`.
    let mut edge = RightEdge::new();
    let mut nodes: HashMap<NodeId, Hash> = HashMap::new();
    let mut leaves = Vec::new();
    let mut first_root = edge.root();
    for i in 0..size {
        let leaf = leaf_hash(&i.to_be_bytes());
        leaves.push(leaf);
        nodes.extend(edge.append(leaf));
        if i + 1 == first {
            first_root = edge.root();
        }
    }
    let root = edge.root();
    let lookup = |id: NodeId| nodes.get(&id).copied();

    let path = assemble(&inclusion_plan(index, size).expect("plan"), lookup).expect("nodes");
    let leaf = leaves[index as usize];
    assert_eq!(verify_inclusion(index, size, &leaf, &path, &root), Ok(()));
    let changed = tampered(&path, tamper);
    if changed != path {
        assert!(verify_inclusion(index, size, &leaf, &changed, &root).is_err());
    }
    assert!(verify_inclusion(index, size, &leaf, &path, &first_root).is_err() || first == size);

    let proof = assemble(&consistency_plan(first, size).expect("plan"), lookup).expect("nodes");
    assert_eq!(
        verify_consistency(first, size, &first_root, &root, &proof),
        Ok(())
    );
    let changed = tampered(&proof, tamper);
    if changed != proof {
        assert!(verify_consistency(first, size, &first_root, &root, &changed).is_err());
    }
    if first != size {
        assert!(verify_consistency(first, size, &root, &first_root, &proof).is_err());
    }

    // Arbitrary numbers and hashes from the input: errors, never panics.
    let word = |at: usize| {
        let mut b = [0u8; 8];
        for (i, v) in b.iter_mut().enumerate() {
            *v = byte(at + i);
        }
        u64::from_be_bytes(b)
    };
    let (a, b) = (word(3), word(11));
    let garbage: Vec<Hash> = data
        .get(19..)
        .unwrap_or_default()
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect();
    let _ = verify_inclusion(a, b, &leaf, &garbage, &root);
    let _ = verify_consistency(a, b, &first_root, &root, &garbage);
    let _ = inclusion_plan(a, b);
    let _ = consistency_plan(a, b);
});

/// `proof` changed as the bytes say: (op, position, value) triples that flip
/// a byte of a hash, drop a hash, or append one.
fn tampered(proof: &[Hash], ops: &[u8]) -> Vec<Hash> {
    let mut out = proof.to_vec();
    for op in ops.chunks_exact(3).take(4) {
        let (kind, pos, value) = (op[0] % 3, usize::from(op[1]), op[2]);
        match kind {
            0 if !out.is_empty() => {
                let n = out.len();
                out[pos % n][usize::from(value) % 32] ^= value | 1;
            }
            1 if !out.is_empty() => {
                let n = out.len();
                out.remove(pos % n);
            }
            _ => out.push([value; 32]),
        }
    }
    out
}
