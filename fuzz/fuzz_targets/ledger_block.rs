//! Ledger blocks as JSON (`GET /v1/ledger/blocks`, what an auditor reads
//! back): `Block` deserialization (`Block::from_json`), hashing and the
//! streaming chain verifier.
//!
//! Checks: a block that parses serializes to JSON that parses back to the
//! same block; its hash and leaf bytes are computable exactly when its
//! numbers are; `ChainVerifier` accepts it as the first block only when it
//! is a genesis block whose hash is its recomputed hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qunimbus_ledger::{Block, BlockKind, ChainVerifier, GENESIS_PREVIOUS_HASH};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(block) = serde_json::from_str::<Block>(text) else {
        return;
    };
    assert_eq!(Block::from_json(&block.to_json()).as_ref(), Ok(&block));
    if let Ok(json) = serde_json::to_string(&block) {
        let again: Block = serde_json::from_str(&json).expect("serialized block parses");
        assert_eq!(again, block);
    }
    let hash = block.compute_hash();
    let leaf = block.leaf_bytes();
    assert_eq!(hash.is_ok(), leaf.is_ok(), "{hash:?} / {leaf:?}");
    let accepted = ChainVerifier::new().push(&block).is_ok();
    if accepted {
        assert_eq!(block.index, 0);
        assert_eq!(block.kind, BlockKind::Genesis);
        assert_eq!(block.previous_hash, GENESIS_PREVIOUS_HASH);
        assert_eq!(hash.as_ref(), Ok(&block.hash));
    }
});
