//! C2SP tlog-tiles paths (`GET /tlog/tile/{path}`): `parse_tile_path`, then
//! `tile_width_at` and `tile_hash_nodes` as the tile route uses them.
//!
//! Checks: a path that parses is canonical (`to_path` gives it back), its
//! level is at most 63 and a partial width is 1..=255; for a range of tree
//! sizes, an available tile's width is 1..=256 and at least the requested
//! partial width only when served, its first node index does not overflow,
//! and its hash-node list has exactly that width at tree level 8·L.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qunimbus_ledger::tiles::MAX_TILE_LEVEL;
use qunimbus_ledger::{parse_tile_path, tile_hash_nodes, tile_width_at, TileRequest, TILE_WIDTH};

const TREE_SIZES: [u64; 8] = [0, 1, 255, 256, 65_537, 1 << 40, u64::MAX - 1, u64::MAX];

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(request) = parse_tile_path(path) else {
        return;
    };
    assert_eq!(request.to_path(), path, "tile path is not canonical");
    assert_eq!(parse_tile_path(&request.to_path()), Ok(request));
    let (level, index, width) = match request {
        TileRequest::Hashes {
            level,
            index,
            width,
        } => {
            assert!(level <= MAX_TILE_LEVEL);
            (level, index, width)
        }
        TileRequest::Entries { index, width } => (0, index, width),
    };
    if let Some(w) = width {
        assert!((1..TILE_WIDTH).contains(&w));
    }
    for size in TREE_SIZES {
        let Some(available) = tile_width_at(level, index, size) else {
            continue;
        };
        assert!((1..=TILE_WIDTH).contains(&available));
        let start = index
            .checked_mul(TILE_WIDTH)
            .expect("an available tile's start fits");
        let nodes = tile_hash_nodes(level, index, available);
        assert_eq!(nodes.len() as u64, available);
        for (i, node) in nodes.iter().enumerate() {
            assert_eq!(u32::from(node.level), u32::from(level) * 8);
            assert_eq!(node.index, start + i as u64);
        }
    }
});
