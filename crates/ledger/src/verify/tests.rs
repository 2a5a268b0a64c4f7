//! Chain verification tests: a valid chain passes with the right Merkle
//! root, and any single-field change to any block is caught at that block.

use crate::merkle::leaf_hash;
use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::block::{AttestationStatus, BlockDraft, DEFAULT_FRAMEWORKS};
use crate::merkle::{empty_root, node_hash};

const N: usize = 50;

fn draft(i: usize) -> BlockDraft {
    let kinds = [
        BlockKind::Valuation,
        BlockKind::Attestation,
        BlockKind::Rollout,
        BlockKind::Override,
        BlockKind::Trade,
    ];
    let mut attestations = BTreeMap::new();
    attestations.insert("GDPR".to_string(), AttestationStatus::Verified);
    if i.is_multiple_of(3) {
        attestations.insert("ITAR".to_string(), AttestationStatus::Pending);
    }
    BlockDraft {
        timestamp: format!(
            "2025-03-01T12:00:{:02}.{:06}Z",
            i % 60,
            i * 7919 % 1_000_000
        ),
        kind: kinds[i % kinds.len()],
        phi_qevf: (!i.is_multiple_of(4)).then_some(i as f64 * 0.137),
        eta_ent: (!i.is_multiple_of(5)).then_some(1.0 / (i as f64 + 1.0)),
        compliance_attestations: attestations,
        region: (i.is_multiple_of(2)).then(|| format!("region-{}", i % 6)),
        run_id: (i % 3 != 1).then(|| format!("run-{i:04}")),
        payload: (i % 2 == 1).then(|| json!({"i": i, "tags": ["a", "b"], "ok": true})),
    }
}

fn chain(n: usize) -> Vec<Block> {
    let mut blocks =
        vec![Block::genesis("2025-03-01T12:00:00.000000Z", &DEFAULT_FRAMEWORKS).unwrap()];
    for i in 1..n {
        let prev = blocks[i - 1].hash.clone();
        blocks.push(Block::seal(draft(i), i as u64, &prev).unwrap());
    }
    blocks
}

fn naive_mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&naive_mth(&leaves[..k]), &naive_mth(&leaves[k..]))
        }
    }
}

#[test]
fn valid_chain_passes_with_naive_root() {
    let blocks = chain(N);
    let mut v = ChainVerifier::new();
    assert_eq!(v.root(), empty_root());
    let mut leaves = Vec::new();
    for b in &blocks {
        v.push(b).unwrap();
        leaves.push(leaf_hash(&b.leaf_bytes().unwrap()));
        assert_eq!(v.root(), naive_mth(&leaves));
        assert_eq!(v.last_hash(), Some(b.hash.as_str()));
    }
    assert_eq!(v.size(), N as u64);
    // The chain also survives a JSON round trip (the offline export path).
    let mut v2 = ChainVerifier::new();
    for b in &blocks {
        let text = serde_json::to_string(b).unwrap();
        v2.push(&serde_json::from_str(&text).unwrap()).unwrap();
    }
    assert_eq!(v2.root(), v.root());
}

type Mutation = (&'static str, fn(&mut Block));

fn mutations() -> Vec<Mutation> {
    vec![
        ("index+1", |b| b.index += 1),
        ("timestamp", |b| b.timestamp.push('0')),
        ("timestamp case", |b| {
            b.timestamp = b.timestamp.replace('Z', "z")
        }),
        ("kind", |b| {
            b.kind = if b.kind == BlockKind::Trade {
                BlockKind::Valuation
            } else {
                BlockKind::Trade
            }
        }),
        ("kind genesis", |b| {
            b.kind = if b.kind == BlockKind::Genesis {
                BlockKind::Attestation
            } else {
                BlockKind::Genesis
            }
        }),
        ("phi", |b| {
            b.phi_qevf = Some(b.phi_qevf.map_or(1.0, |p| p + 1e-9))
        }),
        ("phi none", |b| {
            b.phi_qevf = if b.phi_qevf.is_some() {
                None
            } else {
                Some(0.0)
            }
        }),
        ("phi nan", |b| b.phi_qevf = Some(f64::NAN)),
        ("eta", |b| {
            b.eta_ent = Some(b.eta_ent.map_or(0.5, |e| -e - 1.0))
        }),
        ("attestation status", |b| {
            let status = match b.compliance_attestations.values().next() {
                Some(AttestationStatus::Failed) => AttestationStatus::Waived,
                _ => AttestationStatus::Failed,
            };
            match b.compliance_attestations.values_mut().next() {
                Some(s) => *s = status,
                None => {
                    b.compliance_attestations.insert("GDPR".into(), status);
                }
            }
        }),
        ("attestation added", |b| {
            b.compliance_attestations
                .insert("SOC-2".into(), AttestationStatus::Verified);
        }),
        ("attestation removed", |b| {
            if b.compliance_attestations.pop_first().is_none() {
                b.compliance_attestations
                    .insert("GDPR".into(), AttestationStatus::Genesis);
            }
        }),
        ("region", |b| {
            b.region = match &b.region {
                Some(r) => Some(format!("{r}x")),
                None => Some("eu".into()),
            }
        }),
        ("run_id", |b| {
            b.run_id = if b.run_id.is_some() {
                None
            } else {
                Some("r".into())
            }
        }),
        ("payload", |b| {
            b.payload = match &b.payload {
                Some(p) => Some(json!({"was": p})),
                None => Some(json!(0)),
            }
        }),
        ("payload removed", |b| {
            b.payload = if b.payload.is_some() {
                None
            } else {
                Some(json!([]))
            }
        }),
        ("previous_hash", |b| {
            let mut h = b.previous_hash.clone().into_bytes();
            h[10] = if h[10] == b'a' { b'b' } else { b'a' };
            b.previous_hash = String::from_utf8(h).unwrap();
        }),
        ("hash", |b| {
            let mut h = b.hash.clone().into_bytes();
            h[63] = if h[63] == b'0' { b'1' } else { b'0' };
            b.hash = String::from_utf8(h).unwrap();
        }),
        ("hash uppercase", |b| b.hash = b.hash.to_uppercase()),
        ("hash empty", |b| b.hash.clear()),
    ]
}

#[test]
fn any_single_field_change_fails_at_that_block() {
    let blocks = chain(N);
    // prefixes[i] has verified blocks 0..i.
    let mut prefixes = vec![ChainVerifier::new()];
    for b in &blocks {
        let mut next = prefixes.last().unwrap().clone();
        next.push(b).unwrap();
        prefixes.push(next);
    }
    for (i, block) in blocks.iter().enumerate() {
        for (name, mutate) in mutations() {
            let mut bad = block.clone();
            mutate(&mut bad);
            if bad == *block {
                continue;
            }
            let mut v = prefixes[i].clone();
            let err = v
                .push(&bad)
                .expect_err(&format!("mutation {name} of block {i} was accepted"));
            assert_eq!(err.index, i as u64, "mutation {name}");
            assert!(!err.reason.is_empty());
            // Nothing changed: the genuine block is still accepted.
            v.push(block).unwrap();
            assert_eq!(v.root(), prefixes[i + 1].root());
        }
    }
}

#[test]
fn reasons_are_precise() {
    let blocks = chain(5);
    let mut v = ChainVerifier::new();

    let mut g = blocks[0].clone();
    g.previous_hash = blocks[1].hash.clone();
    let e = v.push(&g).unwrap_err();
    assert_eq!(
        e.to_string(),
        "block 0: genesis block must have previous_hash of 64 zeros"
    );

    let e = v.push(&blocks[1]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "block 0: index 1 out of sequence: expected 0"
    );

    let mut g = blocks[0].clone();
    g.kind = BlockKind::Valuation;
    let e = v.push(&g).unwrap_err();
    assert_eq!(e.reason, "block 0 must be of kind genesis, found valuation");

    let mut g = blocks[0].clone();
    g.timestamp = "2025-03-01T12:00:00.000001Z".into();
    let e = v.push(&g).unwrap_err();
    let computed = g.compute_hash().unwrap();
    assert_eq!(
        e.reason,
        format!("hash mismatch: stored {} computed {computed}", g.hash)
    );

    v.push(&blocks[0]).unwrap();
    v.push(&blocks[1]).unwrap();
    let mut b = blocks[2].clone();
    b.previous_hash = blocks[0].hash.clone();
    let e = v.push(&b).unwrap_err();
    assert_eq!(
        e.to_string(),
        "block 2: previous_hash does not match block 1's hash"
    );

    let mut b = blocks[2].clone();
    b.kind = BlockKind::Genesis;
    assert_eq!(
        v.push(&b).unwrap_err().reason,
        "only block 0 may be of kind genesis"
    );

    // Skipped, repeated and reordered blocks.
    assert_eq!(v.push(&blocks[3]).unwrap_err().index, 2);
    assert_eq!(v.push(&blocks[1]).unwrap_err().index, 2);

    let mut b = blocks[2].clone();
    b.eta_ent = Some(f64::INFINITY);
    assert!(v
        .push(&b)
        .unwrap_err()
        .reason
        .starts_with("cannot compute hash"));
}

#[test]
fn resume_continues_a_verified_prefix() {
    let blocks = chain(20);
    let mut full = ChainVerifier::new();
    for b in &blocks[..12] {
        full.push(b).unwrap();
    }
    let edge = RightEdge::from_peaks(12, full.edge().peak_hashes()).unwrap();
    let mut resumed = ChainVerifier::resume(edge, &blocks[11].hash);
    for b in &blocks[12..] {
        full.push(b).unwrap();
        resumed.push(b).unwrap();
    }
    assert_eq!(resumed.root(), full.root());
    assert_eq!(resumed.size(), 20);
    let mut fresh = ChainVerifier::resume(RightEdge::new(), "ignored");
    fresh.push(&blocks[0]).unwrap();
}

#[test]
fn digests_agree_with_the_two_step_computation() {
    for block in chain(30) {
        let d = block.digests().unwrap();
        assert_eq!(d.hash, block.compute_hash().unwrap());
        let leaf = block.leaf_bytes().unwrap();
        assert_eq!(d.leaf_len, leaf.len());
        assert_eq!(d.leaf_hash, leaf_hash(&leaf));
    }
}
