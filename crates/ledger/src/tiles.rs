//! The read side of C2SP `tlog-tiles`: tile paths, which stored nodes form a
//! hash tile, tile widths and entry bundles.
//!
//! A hash tile at level `L` and index `N` holds up to 256 consecutive stored
//! node hashes of tree level `8·L` (node indexes `N·256 …`), 32 bytes each,
//! with no padding; a partial tile of width `W < 256` is served at
//! `.p/W`. An entry bundle holds up to 256 consecutive leaf entries, each
//! prefixed by its big-endian 16-bit length.

use crate::checkpoint::parse_canonical_decimal;
use crate::error::LedgerError;
use crate::merkle::NodeId;

/// Number of hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 256;

/// Number of tree levels a tile spans.
pub const TILE_HEIGHT: u8 = 8;

/// Largest tile level a path may name (C2SP: 0 to 63).
pub const MAX_TILE_LEVEL: u8 = 63;

/// Encodes a tile index as a path: zero-padded 3-digit groups separated by
/// `/`, every group but the last prefixed with `x`
/// (`0` → `000`, `1234067` → `x001/x234/067`).
pub fn encode_index(n: u64) -> String {
    let mut out = format!("{:03}", n % 1000);
    let mut rest = n / 1000;
    while rest > 0 {
        out = format!("x{:03}/{out}", rest % 1000);
        rest /= 1000;
    }
    out
}

/// A parsed tile request (the part of a URL after `tile/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileRequest {
    /// A hash tile: `tile/{level}/{index}[.p/{width}]`.
    Hashes {
        /// Tile level (tree level `8·level`).
        level: u8,
        /// Tile index at that level.
        index: u64,
        /// `None` for a full tile of 256 hashes; `Some(w)` (1..=255) for a partial tile.
        width: Option<u64>,
    },
    /// An entry bundle: `tile/entries/{index}[.p/{width}]`.
    Entries {
        /// Bundle index (entries `index·256 …`).
        index: u64,
        /// `None` for a full bundle of 256 entries; `Some(w)` (1..=255) for a partial bundle.
        width: Option<u64>,
    },
}

impl TileRequest {
    /// The canonical path after `tile/` (inverse of [`parse_tile_path`]).
    pub fn to_path(&self) -> String {
        let (head, index, width) = match *self {
            TileRequest::Hashes {
                level,
                index,
                width,
            } => (level.to_string(), index, width),
            TileRequest::Entries { index, width } => ("entries".to_string(), index, width),
        };
        let mut path = format!("{head}/{}", encode_index(index));
        if let Some(w) = width {
            path.push_str(&format!(".p/{w}"));
        }
        path
    }
}

/// Parses the part of a tile URL after `tile/`, e.g. `0/x001/234`,
/// `1/000.p/7` or `entries/x002/001.p/255`.
///
/// Only canonical paths are accepted: levels 0..=63 without leading zeros,
/// index groups of exactly three digits with `x` on all but the last and no
/// redundant leading `x000/` group, and widths 1..=255 without leading zeros.
pub fn parse_tile_path(path: &str) -> Result<TileRequest, LedgerError> {
    let fail = |reason: &str| LedgerError::InvalidTilePath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let (head, rest) = path
        .split_once('/')
        .ok_or_else(|| fail("expected {level}/{index} or entries/{index}"))?;
    let (index_text, width) = match rest.split_once(".p/") {
        Some((index_text, width_text)) => {
            let w = parse_canonical_decimal(width_text)
                .filter(|w| (1..TILE_WIDTH).contains(w))
                .ok_or_else(|| fail("partial width must be 1 to 255 without leading zeros"))?;
            (index_text, Some(w))
        }
        None => (rest, None),
    };
    let index = parse_index(index_text).ok_or_else(|| fail("tile index is not canonical"))?;
    if head == "entries" {
        return Ok(TileRequest::Entries { index, width });
    }
    let level = parse_canonical_decimal(head)
        .filter(|l| *l <= u64::from(MAX_TILE_LEVEL))
        .ok_or_else(|| fail("level must be 0 to 63 without leading zeros, or \"entries\""))?;
    Ok(TileRequest::Hashes {
        level: level as u8,
        index,
        width,
    })
}

fn parse_index(text: &str) -> Option<u64> {
    let groups: Vec<&str> = text.split('/').collect();
    let (last, init) = groups.split_last()?;
    let mut n: u64 = 0;
    for group in init {
        let digits = group.strip_prefix('x')?;
        n = n.checked_mul(1000)?.checked_add(three_digits(digits)?)?;
    }
    n = n.checked_mul(1000)?.checked_add(three_digits(last)?)?;
    // Canonical form only (rejects a leading "x000/" group).
    (encode_index(n) == text).then_some(n)
}

fn three_digits(text: &str) -> Option<u64> {
    if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Tree level of the hashes in a tile of `level`, if such nodes can exist.
fn tree_level(level: u8) -> Option<u8> {
    let tl = u32::from(level) * u32::from(TILE_HEIGHT);
    (tl < 64).then_some(tl as u8)
}

/// The stored nodes whose hashes, concatenated (32 bytes each), form hash
/// tile (`level`, `index`) of width `width`: the nodes at tree level
/// `8·level` with indexes `index·256 .. index·256 + width`.
///
/// `width` is capped at 256; the result is empty for levels whose tree level
/// would exceed 63 (no such nodes exist in a tree of at most 2^64-1 leaves).
pub fn tile_hash_nodes(level: u8, index: u64, width: u64) -> Vec<NodeId> {
    let Some(tl) = tree_level(level) else {
        return Vec::new();
    };
    let Some(start) = index.checked_mul(TILE_WIDTH) else {
        return Vec::new();
    };
    (0..width.min(TILE_WIDTH))
        .map_while(|i| start.checked_add(i).map(|n| NodeId::new(tl, n)))
        .collect()
}

/// Width of hash tile (`level`, `index`) in a tree of `tree_size` leaves:
/// `None` if the tile has no nodes yet, `Some(256)` if it is full, else the
/// partial width. Level 0 also gives the width of entry bundle `index`.
pub fn tile_width_at(level: u8, index: u64, tree_size: u64) -> Option<u64> {
    let tl = tree_level(level)?;
    let nodes = tree_size >> tl;
    let start = index.checked_mul(TILE_WIDTH)?;
    if nodes <= start {
        return None;
    }
    Some((nodes - start).min(TILE_WIDTH))
}

/// Serialises an entry bundle: each entry as a big-endian u16 length
/// followed by its bytes. Errors if an entry exceeds 65535 bytes.
pub fn entry_bundle(entries: &[Vec<u8>]) -> Result<Vec<u8>, LedgerError> {
    let total = entries.iter().map(|e| e.len() + 2).sum();
    let mut out = Vec::with_capacity(total);
    for entry in entries {
        let len = u16::try_from(entry.len()).map_err(|_| LedgerError::EntryTooLarge {
            size: entry.len(),
            max: usize::from(u16::MAX),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn index_encoding() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(7), "007");
        assert_eq!(encode_index(999), "999");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(u64::MAX), "x018/x446/x744/x073/x709/x551/615");
    }

    #[test]
    fn parses_examples() {
        assert_eq!(
            parse_tile_path("0/x001/234").unwrap(),
            TileRequest::Hashes {
                level: 0,
                index: 1234,
                width: None
            }
        );
        assert_eq!(
            parse_tile_path("1/000.p/7").unwrap(),
            TileRequest::Hashes {
                level: 1,
                index: 0,
                width: Some(7)
            }
        );
        assert_eq!(
            parse_tile_path("entries/x002/001.p/255").unwrap(),
            TileRequest::Entries {
                index: 2001,
                width: Some(255)
            }
        );
        assert_eq!(
            parse_tile_path("63/x018/x446/x744/x073/x709/x551/615").unwrap(),
            TileRequest::Hashes {
                level: 63,
                index: u64::MAX,
                width: None
            }
        );
    }

    #[test]
    fn rejects_non_canonical_paths() {
        for bad in [
            "",
            "0",
            "0/",
            "0/1",
            "0/01",
            "0/0001",
            "0/x000/001",
            "0/001/002",
            "0/x001",
            "0/x001/x002",
            "0/y001/002",
            "0/x01/002",
            "0/00a",
            "00/000",
            "01/000",
            "64/000",
            "256/000",
            "-1/000",
            "+1/000",
            "entry/000",
            "entries/000.p/0",
            "entries/000.p/256",
            "entries/000.p/007",
            "entries/000.p/",
            "entries/000.p/1/",
            "0/000.p/7.p/7",
            "0/000.q/7",
            "0/000/",
            "0//000",
            "0/x018/x446/x744/x073/x709/x551/616",
            "0/x999/x999/x999/x999/x999/x999/x999/999",
        ] {
            assert!(parse_tile_path(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    proptest! {
        #[test]
        fn path_roundtrip(level in 0u8..=63, index in any::<u64>(), w in 0u64..256, entries in any::<bool>()) {
            let width = (w > 0).then_some(w);
            let req = if entries {
                TileRequest::Entries { index, width }
            } else {
                TileRequest::Hashes { level, index, width }
            };
            let path = req.to_path();
            prop_assert_eq!(parse_tile_path(&path).unwrap(), req);
        }

        #[test]
        fn small_index_roundtrip(index in 0u64..2_000_000) {
            prop_assert_eq!(parse_index(&encode_index(index)), Some(index));
        }
    }

    #[test]
    fn widths() {
        assert_eq!(tile_width_at(0, 0, 0), None);
        assert_eq!(tile_width_at(0, 0, 1), Some(1));
        assert_eq!(tile_width_at(0, 0, 255), Some(255));
        assert_eq!(tile_width_at(0, 0, 256), Some(256));
        assert_eq!(tile_width_at(0, 0, 100_000), Some(256));
        assert_eq!(tile_width_at(0, 1, 256), None);
        assert_eq!(tile_width_at(0, 1, 257), Some(1));
        assert_eq!(tile_width_at(1, 0, 255), None);
        assert_eq!(tile_width_at(1, 0, 256), Some(1));
        assert_eq!(tile_width_at(1, 0, 256 * 3 + 255), Some(3));
        assert_eq!(tile_width_at(1, 0, 65536), Some(256));
        assert_eq!(tile_width_at(1, 1, 65536 + 256), Some(1));
        assert_eq!(tile_width_at(2, 0, 65536), Some(1));
        assert_eq!(tile_width_at(7, 0, u64::MAX), Some(255));
        assert_eq!(tile_width_at(8, 0, u64::MAX), None);
        assert_eq!(tile_width_at(63, 0, u64::MAX), None);
        assert_eq!(tile_width_at(0, u64::MAX, u64::MAX), None);
    }

    #[test]
    fn hash_tile_nodes() {
        let nodes = tile_hash_nodes(1, 2, 3);
        assert_eq!(
            nodes,
            vec![
                NodeId::new(8, 512),
                NodeId::new(8, 513),
                NodeId::new(8, 514)
            ]
        );
        assert_eq!(tile_hash_nodes(0, 0, 256).len(), 256);
        assert_eq!(tile_hash_nodes(0, 0, 1000).len(), 256);
        assert!(tile_hash_nodes(8, 0, 256).is_empty());
        assert!(tile_hash_nodes(0, u64::MAX, 256).is_empty());
        // The nodes of a tile cover exactly the leaves its width says.
        let size = 70_000u64;
        for level in 0u8..=2 {
            let mut covered = 0;
            let mut index = 0;
            while let Some(w) = tile_width_at(level, index, size) {
                let nodes = tile_hash_nodes(level, index, w);
                assert_eq!(nodes.len() as u64, w);
                for n in &nodes {
                    let (_, end) = n.leaf_range().unwrap();
                    assert!(end <= size);
                    covered = covered.max(end);
                }
                index += 1;
            }
            let span = 1u64 << (8 * u32::from(level));
            assert_eq!(covered, size / span * span, "level {level}");
        }
    }

    #[test]
    fn bundles() {
        let bundle = entry_bundle(&[b"ab".to_vec(), Vec::new(), vec![7; 300]]).unwrap();
        assert_eq!(&bundle[..6], &[0, 2, b'a', b'b', 0, 0]);
        assert_eq!(&bundle[6..8], &[1, 44]);
        assert_eq!(bundle.len(), 4 + 2 + 302);
        assert!(entry_bundle(&[vec![0; 65535]]).is_ok());
        assert_eq!(
            entry_bundle(&[vec![0; 65536]]),
            Err(LedgerError::EntryTooLarge {
                size: 65536,
                max: 65535
            })
        );
        assert_eq!(entry_bundle(&[]).unwrap(), Vec::<u8>::new());
    }
}
