//! How ledger values are kept in database columns (64-bit integers, 32-byte
//! hashes, Merkle node keys) and the reads of stored Merkle nodes shared by
//! the writer and the readers.

use crate::StorageError;
use qunimbus_ledger::merkle::{self, Hash, NodeId};
use std::collections::{HashMap, HashSet};

pub(crate) fn to_i64(n: u64) -> Result<i64, StorageError> {
    i64::try_from(n).map_err(|_| StorageError::Corrupt(format!("{n} does not fit the database")))
}

pub(crate) fn to_hash(bytes: &[u8]) -> Result<Hash, StorageError> {
    bytes.try_into().map_err(|_| {
        StorageError::Corrupt(format!("stored hash has {} bytes, not 32", bytes.len()))
    })
}

/// The database key of a stored node: `(level << 56) | index`.
pub(crate) fn node_key(id: NodeId) -> Result<i64, StorageError> {
    if id.level >= 64 || id.index >= 1 << 56 {
        return Err(StorageError::OutOfRange(format!(
            "Merkle node {id:?} is outside the stored tree"
        )));
    }
    Ok((i64::from(id.level) << 56) | id.index as i64)
}

pub(crate) fn node_id(key: i64) -> Result<NodeId, StorageError> {
    let key = u64::try_from(key)
        .map_err(|_| StorageError::Corrupt(format!("negative node key {key}")))?;
    Ok(NodeId {
        level: (key >> 56) as u8,
        index: key & ((1 << 56) - 1),
    })
}

/// The SQL and bind values that read the given stored Merkle nodes.
pub(crate) fn nodes_query(ids: &[NodeId]) -> Result<(String, Vec<i64>), StorageError> {
    let unique: Vec<i64> = ids
        .iter()
        .map(|id| node_key(*id))
        .collect::<Result<HashSet<_>, _>>()?
        .into_iter()
        .collect();
    // Pad the list to a power of two (at least 32) with an impossible key so
    // that a handful of statement shapes cover every proof and each is
    // prepared once and then served from the statement cache.
    let slots = unique.len().max(32).next_power_of_two();
    let mut sql = String::from("SELECT node, hash FROM merkle_nodes WHERE node IN (");
    for i in 0..slots {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", i + 1));
    }
    sql.push(')');
    let mut binds = unique;
    binds.resize(slots, -1);
    Ok((sql, binds))
}

/// Decodes rows of `nodes_query`.
pub(crate) fn nodes_from_rows(
    rows: Vec<(i64, Vec<u8>)>,
) -> Result<HashMap<NodeId, Hash>, StorageError> {
    rows.into_iter()
        .map(|(key, hash)| Ok((node_id(key)?, to_hash(&hash)?)))
        .collect()
}

/// Reads stored Merkle nodes through any executor: `fetch_nodes!(executor, &ids)`.
/// (A macro rather than a generic function: generic sqlx executors inside
/// spawned futures trip rustc's higher-ranked lifetime inference.)
macro_rules! fetch_nodes {
    ($executor:expr, $ids:expr) => {
        async {
            let (sql, binds) = $crate::codec::nodes_query($ids)?;
            let mut query = sqlx::query_as::<_, (i64, Vec<u8>)>(&sql);
            for value in binds {
                query = query.bind(value);
            }
            let rows = query.fetch_all($executor).await?;
            $crate::codec::nodes_from_rows(rows)
        }
    };
}
pub(crate) use fetch_nodes;

/// The RFC 6962 root of the first `size` leaves from stored nodes:
/// `root_from_nodes!(executor, size)`.
macro_rules! root_from_nodes {
    ($executor:expr, $size:expr) => {
        async {
            let plan = qunimbus_ledger::merkle::root_plan($size);
            let nodes = $crate::codec::fetch_nodes!($executor, &plan).await?;
            $crate::codec::fold_plan(&plan, &nodes)
        }
    };
}
pub(crate) use root_from_nodes;

/// Folds the stored hashes of a root plan into the root.
pub(crate) fn fold_plan(
    plan: &[NodeId],
    nodes: &HashMap<NodeId, Hash>,
) -> Result<Hash, StorageError> {
    let hashes = plan
        .iter()
        .map(|id| {
            nodes.get(id).copied().ok_or_else(|| {
                StorageError::Inconsistent(format!("stored Merkle node {id:?} is missing"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(merkle::fold(&hashes).unwrap_or_else(merkle::empty_root))
}
