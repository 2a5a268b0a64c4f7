//! An in-memory copy of the stored Merkle nodes, so proofs, roots and tiles
//! are served without a database round trip. Bounded: it holds the nodes of
//! at most `max_leaves` leaves (64 bytes per leaf) and switches itself off
//! for good when the tree outgrows that, after which every read goes to the
//! database as before.

use qunimbus_ledger::merkle::{Hash, NodeId};
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

pub(crate) struct NodeCache {
    max_leaves: u64,
    /// `levels[l][i]` = hash of node (l, i); `None` once disabled.
    levels: RwLock<Option<Vec<Vec<Hash>>>>,
}

impl NodeCache {
    /// A cache that is off from the start.
    pub fn disabled() -> Self {
        Self {
            max_leaves: 0,
            levels: RwLock::new(None),
        }
    }

    /// An empty, enabled cache for trees of up to `max_leaves` leaves.
    pub fn new(max_leaves: u64) -> Self {
        Self {
            max_leaves,
            levels: RwLock::new((max_leaves > 0).then(Vec::new)),
        }
    }

    /// Adds nodes in the order the tree completes them (each the next index
    /// of its level). Anything out of order, or a tree larger than the
    /// bound, disables the cache.
    pub fn extend(&self, nodes: &[(NodeId, Hash)]) {
        let mut guard = self.levels.write().unwrap_or_else(PoisonError::into_inner);
        let Some(levels) = guard.as_mut() else { return };
        for (id, hash) in nodes {
            let level = usize::from(id.level);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            let row = &mut levels[level];
            if row.len() as u64 != id.index || (level == 0 && id.index >= self.max_leaves) {
                if level == 0 && id.index >= self.max_leaves {
                    tracing::info!(
                        max_leaves = self.max_leaves,
                        "Merkle node cache full; serving proofs from the database"
                    );
                }
                *guard = None;
                return;
            }
            row.push(*hash);
        }
    }

    /// The requested nodes, if the cache is on and holds every one of them.
    pub fn get(&self, ids: &[NodeId]) -> Option<HashMap<NodeId, Hash>> {
        let guard = self.levels.read().unwrap_or_else(PoisonError::into_inner);
        let levels = guard.as_ref()?;
        ids.iter()
            .map(|id| {
                let hash = levels
                    .get(usize::from(id.level))?
                    .get(usize::try_from(id.index).ok()?)?;
                Some((*id, *hash))
            })
            .collect()
    }

    /// Whether the cache is on.
    pub fn enabled(&self) -> bool {
        self.levels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qunimbus_ledger::merkle::RightEdge;

    #[test]
    fn holds_what_the_tree_appends_and_turns_off_past_its_bound() {
        let cache = NodeCache::new(8);
        let mut edge = RightEdge::new();
        for i in 0..8u8 {
            cache.extend(&edge.append([i; 32]));
        }
        let got = cache
            .get(&[NodeId { level: 0, index: 7 }, NodeId { level: 3, index: 0 }])
            .unwrap();
        assert_eq!(got[&NodeId { level: 0, index: 7 }], [7; 32]);
        assert_eq!(got[&NodeId { level: 3, index: 0 }], edge.root());
        assert!(cache.get(&[NodeId { level: 0, index: 8 }]).is_none());
        cache.extend(&edge.append([8; 32]));
        assert!(!cache.enabled());
    }

    #[test]
    fn out_of_order_nodes_disable_it() {
        let cache = NodeCache::new(100);
        cache.extend(&[(NodeId { level: 0, index: 1 }, [0; 32])]);
        assert!(!cache.enabled());
    }
}
