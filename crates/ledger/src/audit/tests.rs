//! Audit tests: a good ledger passes with every stored node compared; a
//! tampered block, a tampered or missing stored node, a checkpoint that does
//! not match or is not signed by the key, and a ledger without genesis are
//! each caught and named.

use super::*;
use crate::block::{BlockDraft, BlockKind, DEFAULT_FRAMEWORKS};
use crate::checkpoint::{Checkpoint, NoteSigner};
use crate::merkle::RightEdge;
use std::collections::HashMap;

fn chain(n: u64) -> Vec<Block> {
    let mut blocks =
        vec![Block::genesis("2025-03-01T12:00:00.000000Z", &DEFAULT_FRAMEWORKS).unwrap()];
    for i in 1..n {
        let draft = BlockDraft {
            timestamp: format!("2025-03-01T12:00:{:02}.000000Z", i % 60),
            kind: BlockKind::Valuation,
            phi_qevf: Some(i as f64 * 1.5),
            eta_ent: Some(0.9),
            compliance_attestations: Default::default(),
            region: Some("EU".into()),
            run_id: Some(format!("run-{i}")),
            payload: None,
        };
        let prev = blocks[i as usize - 1].hash.clone();
        blocks.push(Block::seal(draft, i, &prev).unwrap());
    }
    blocks
}

/// What the store would hold: every node the blocks complete.
fn stored_nodes(blocks: &[Block]) -> HashMap<NodeId, Hash> {
    let mut edge = RightEdge::new();
    let mut nodes = HashMap::new();
    for b in blocks {
        nodes.extend(edge.append(b.digests().unwrap().leaf_hash));
    }
    nodes
}

fn signed(blocks: &[Block], signer: &NoteSigner) -> SignedCheckpoint {
    let mut edge = RightEdge::new();
    for b in blocks {
        edge.append(b.digests().unwrap().leaf_hash);
    }
    let checkpoint = Checkpoint {
        origin: signer.name().to_string(),
        size: blocks.len() as u64,
        root: edge.root(),
    };
    SignedCheckpoint {
        size: checkpoint.size,
        root: checkpoint.root,
        note: signer.sign(&checkpoint.body()),
    }
}

fn audit(
    blocks: &[Block],
    nodes: Option<&HashMap<NodeId, Hash>>,
    checkpoint: Option<SignedCheckpoint>,
    verifier: Option<&NoteVerifier>,
) -> AuditOutcome {
    let mut audit = LedgerAudit::new(checkpoint, verifier);
    for chunk in blocks.chunks(7) {
        for b in chunk {
            audit.push(b, None);
        }
        match nodes {
            Some(nodes) => audit.compare_stored_nodes(|id| nodes.get(&id).copied()),
            None => audit.skip_nodes(),
        }
    }
    audit.finish()
}

fn signer() -> NoteSigner {
    NoteSigner::new("example.com/log", [7u8; 32]).unwrap()
}

#[test]
fn a_good_ledger_passes_with_every_node_compared() {
    let blocks = chain(40);
    let nodes = stored_nodes(&blocks);
    let s = signer();
    let outcome = audit(
        &blocks,
        Some(&nodes),
        Some(signed(&blocks, &s)),
        Some(&s.verifier()),
    );
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.blocks_checked, 40);
    assert_eq!(outcome.nodes_checked, nodes.len() as u64);
    assert_eq!(outcome.signature, Some(SignatureCheck::Verified));
    let unsigned = audit(&blocks, None, Some(signed(&blocks, &s)), None);
    assert!(unsigned.ok);
    assert_eq!(unsigned.signature, Some(SignatureCheck::NotChecked));
}

#[test]
fn a_tampered_interior_node_is_named() {
    let blocks = chain(40);
    let mut nodes = stored_nodes(&blocks);
    let id = NodeId::new(3, 2);
    nodes.insert(id, [0xAB; 32]);
    let outcome = audit(&blocks, Some(&nodes), None, None);
    let failure = outcome.failure.unwrap();
    assert_eq!(failure.index, 23, "the node covers blocks 16..=23");
    assert!(
        failure.reason.contains("level 3 index 2"),
        "{}",
        failure.reason
    );
    assert!(failure.reason.contains("differs"));
    nodes.remove(&id);
    let outcome = audit(&blocks, Some(&nodes), None, None);
    assert!(outcome.failure.unwrap().reason.contains("is missing"));
}

#[test]
fn a_tampered_block_fails_at_its_index() {
    let mut blocks = chain(20);
    blocks[11].phi_qevf = Some(1.0);
    let outcome = audit(&blocks, None, None, None);
    assert_eq!(outcome.failure.unwrap().index, 11);
    assert_eq!(outcome.blocks_checked, 11);
}

#[test]
fn checkpoints_must_match_and_be_signed_by_the_key() {
    let blocks = chain(20);
    let s = signer();
    let other = NoteSigner::new("example.com/log", [9u8; 32]).unwrap();
    let outcome = audit(
        &blocks,
        None,
        Some(signed(&blocks, &s)),
        Some(&other.verifier()),
    );
    assert!(outcome
        .failure
        .unwrap()
        .reason
        .contains("signature does not verify"));
    let mut wrong_root = signed(&blocks, &s);
    wrong_root.root = [1; 32];
    let outcome = audit(&blocks, None, Some(wrong_root), None);
    assert!(outcome.failure.unwrap().reason.contains("does not match"));
    let longer = signed(&chain(25), &s);
    let outcome = audit(&blocks, None, Some(longer), Some(&s.verifier()));
    assert!(outcome
        .failure
        .unwrap()
        .reason
        .contains("only 20 are stored"));
}

#[test]
fn an_empty_ledger_has_no_genesis() {
    let outcome = audit(&[], None, None, None);
    assert_eq!(
        outcome.failure.unwrap().reason,
        "the ledger has no genesis block"
    );
}
