//! Store behaviour on SQLite and PostgreSQL: durability across reopen,
//! idempotency, group commits, statistics, ledger blocks, proofs and checkpoints.

mod support;

use qunimbus_core::{time::now_micros, DataClass, RunId, RunMetrics, Telemetry};
use qunimbus_ledger::block::{AttestationStatus, BlockDraft, BlockKind};
use qunimbus_ledger::merkle;
use qunimbus_ledger::verify::ChainVerifier;
use qunimbus_storage::{
    RunEntry, RunRecord, StateChange, StorageError, Store, StoreOptions, Stored,
};
use qunimbus_valuation::{PhiStats, ValuationEngine};
use std::collections::BTreeMap;
use std::sync::Arc;
use support::{genesis, TestDb};

fn entry(id: &str, region: &str, eta: f64, hours: f64) -> RunEntry {
    let metrics = RunMetrics {
        eta_ent: eta,
        coherence_variance: 0.01,
        runtime_hours: hours,
        eph_delivered: 100.0,
    };
    let record = RunRecord {
        telemetry: Telemetry {
            run_id: RunId::parse(id).unwrap(),
            region: region.to_string(),
            data_class: DataClass::Public,
            metrics,
        },
        valuation: ValuationEngine::default().value(&metrics),
        accepted_at: now_micros(),
        block_index: None,
        feed_seq: None,
        erasure_salt: None,
        policy_sha256: Some("ab".repeat(32)),
    };
    let draft = BlockDraft {
        timestamp: qunimbus_core::time::rfc3339_micros(record.accepted_at),
        kind: BlockKind::Valuation,
        phi_qevf: Some(record.valuation.phi_qevf),
        eta_ent: Some(eta),
        compliance_attestations: BTreeMap::from([(
            "ISO-27001".to_string(),
            AttestationStatus::Pending,
        )]),
        region: Some(region.to_string()),
        run_id: Some(id.to_string()),
        payload: Some(serde_json::json!({ "eph_price": record.valuation.eph_price })),
    };
    (record, draft)
}

async fn open(db: &TestDb) -> Store {
    Store::open(&db.target, StoreOptions::default(), genesis())
        .await
        .unwrap()
}

async fn read_chain(store: &Store) -> ChainVerifier {
    let mut chain = ChainVerifier::new();
    for block in store.reader().blocks(0, 100_000).await.unwrap() {
        chain.push(&block.unwrap()).unwrap();
    }
    chain
}

#[tokio::test]
async fn records_and_blocks_survive_reopen_bit_for_bit() {
    for db in TestDb::both().await {
        let (record, draft) = entry("r1", "EU", 0.97, 100.0);
        {
            let store = open(&db).await;
            let out = store
                .append_runs(vec![(record.clone(), draft)])
                .await
                .unwrap();
            let stored = out[0].record().clone();
            assert!(out[0].is_created(), "{}", db.name);
            assert_eq!(
                stored.block_index,
                Some(1),
                "{}: genesis is block 0",
                db.name
            );
            store.close().await;
        }
        let store = open(&db).await;
        let fetched = store.reader().get_run("r1").await.unwrap().unwrap();
        assert_eq!(
            fetched,
            RunRecord {
                block_index: Some(1),
                feed_seq: Some(1),
                erasure_salt: None,
                ..record
            },
            "{}",
            db.name
        );
        let block = store.reader().block(1).await.unwrap().unwrap();
        assert_eq!(block.phi_qevf, Some(fetched.valuation.phi_qevf));
        assert_eq!(block.run_id.as_deref(), Some("r1"));
        assert_eq!(store.tree_head().size, 2);
        let chain = read_chain(&store).await;
        assert_eq!(chain.root(), store.tree_head().root, "{}", db.name);
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn duplicates_return_the_original_and_get_no_second_block() {
    for db in TestDb::both().await {
        let store = open(&db).await;
        let first = entry("dup", "EU", 0.9, 10.0);
        let second = entry("dup", "APAC", 0.5, 20.0);
        let out = store
            .append_runs(vec![
                first.clone(),
                second.clone(),
                entry("other", "EU", 0.9, 1.0),
            ])
            .await
            .unwrap();
        assert!(out[0].is_created());
        assert_eq!(
            out[1],
            Stored::Existing(out[0].record().clone()),
            "{}",
            db.name
        );
        assert!(out[2].is_created());
        let again = store.append_runs(vec![second]).await.unwrap();
        assert_eq!(again, vec![Stored::Existing(out[0].record().clone())]);
        assert_eq!(store.reader().phi_stats().await.unwrap().count, 2);
        assert_eq!(
            store.tree_head().size,
            3,
            "{}: genesis + 2 valuation blocks",
            db.name
        );
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn concurrent_appends_are_group_committed_and_chain_verifies() {
    for db in TestDb::both().await {
        let commits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = commits.clone();
        let options = StoreOptions {
            on_commit: Some(Arc::new(move |_, _| {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })),
            ..Default::default()
        };
        let store = Arc::new(Store::open(&db.target, options, genesis()).await.unwrap());
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .append_runs(vec![entry(&format!("c{i}"), "MENA", 0.95, 50.0)])
                        .await
                })
            })
            .collect();
        let mut indexes = Vec::new();
        for t in tasks {
            let out = t.await.unwrap().unwrap();
            indexes.push(out[0].record().block_index.unwrap());
        }
        indexes.sort();
        assert_eq!(indexes, (1..=300).collect::<Vec<u64>>(), "{}", db.name);
        let n = commits.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            (1..300).contains(&n),
            "{}: {n} commits for 300 runs",
            db.name
        );
        let chain = read_chain(&store).await;
        assert_eq!(chain.size(), 301);
        assert_eq!(chain.root(), store.tree_head().root);
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn stats_match_the_in_memory_definition_and_lists_are_newest_first() {
    for db in TestDb::both().await {
        let store = open(&db).await;
        let entries: Vec<RunEntry> = (0..37)
            .map(|i| {
                entry(
                    &format!("s{i}"),
                    if i % 2 == 0 { "EU" } else { "Orbit" },
                    0.5 + f64::from(i) / 100.0,
                    f64::from(i * 3),
                )
            })
            .collect();
        let phis: Vec<f64> = entries.iter().map(|(r, _)| r.valuation.phi_qevf).collect();
        store.append_runs(entries).await.unwrap();
        let expected = PhiStats::of(phis.iter().copied());
        let got = store.reader().phi_stats().await.unwrap();
        assert_eq!(
            (got.count, got.min, got.max, got.p50, got.p95),
            (
                expected.count,
                expected.min,
                expected.max,
                expected.p50,
                expected.p95
            ),
            "{}",
            db.name
        );
        assert!((got.mean.unwrap() - expected.mean.unwrap()).abs() < 1e-9);
        let eu = store.reader().list_runs(Some("EU"), 5).await.unwrap();
        let ids: Vec<&str> = eu.iter().map(|r| r.telemetry.run_id.as_str()).collect();
        assert_eq!(ids, ["s36", "s34", "s32", "s30", "s28"], "{}", db.name);
        assert_eq!(
            store.reader().recent_phi(2).await.unwrap(),
            vec![phis[35], phis[36]]
        );
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn proofs_from_stored_nodes_verify_at_every_size() {
    for db in TestDb::both().await {
        let store = open(&db).await;
        let mut sizes = vec![1u64];
        for i in 0..40 {
            store
                .append_runs(vec![entry(&format!("p{i}"), "EU", 0.9, 1.0)])
                .await
                .unwrap();
            sizes.push(store.tree_head().size);
        }
        let reader = store.reader();
        let stored = store.tree_head().size;
        // The store answers from its in-memory node cache; a plain reader
        // reads the database. Both must give the same proofs.
        let db_reader = qunimbus_storage::Reader::open(&db.target, 1).await.unwrap();
        for &size in &sizes {
            let index = size / 2;
            assert_eq!(
                reader.inclusion_proof(index, size, stored).await.unwrap(),
                db_reader
                    .inclusion_proof(index, size, stored)
                    .await
                    .unwrap(),
                "{}: cache and database disagree at {index}/{size}",
                db.name
            );
            assert_eq!(
                reader.root_at(size).await.unwrap(),
                db_reader.root_at(size).await.unwrap()
            );
        }
        db_reader.close().await;
        for &size in &sizes {
            let root = reader.root_at(size).await.unwrap();
            for index in 0..size {
                let (leaf, proof) = reader.inclusion_proof(index, size, stored).await.unwrap();
                merkle::verify_inclusion(index, size, &leaf, &proof, &root)
                    .unwrap_or_else(|e| panic!("{}: {index}/{size}: {e}", db.name));
            }
            for &first in sizes.iter().filter(|&&f| f <= size) {
                let proof = reader.consistency_proof(first, size, stored).await.unwrap();
                let first_root = reader.root_at(first).await.unwrap();
                merkle::verify_consistency(first, size, &first_root, &root, &proof).unwrap();
            }
        }
        assert!(matches!(
            reader.inclusion_proof(0, stored + 1, stored).await,
            Err(StorageError::OutOfRange(_))
        ));
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn checkpoints_must_extend_the_stored_tree_consistently() {
    for db in TestDb::both().await {
        let store = open(&db).await;
        store
            .append_runs(vec![entry("k1", "EU", 0.9, 1.0)])
            .await
            .unwrap();
        let head = store.tree_head();
        store
            .sign_checkpoint(head.size, head.root, |_, _| {
                ("note-2".to_string(), "t".to_string())
            })
            .await
            .unwrap();
        assert_eq!(store.tree_head().checkpoint_size, Some(2));
        store
            .append_runs(vec![entry("k2", "EU", 0.9, 1.0)])
            .await
            .unwrap();
        let head = store.tree_head();
        let wrong_root = [7u8; 32];
        let signed_anyway = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = signed_anyway.clone();
        let refused = store
            .sign_checkpoint(head.size, wrong_root, move |_, _| {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                ("bad".to_string(), "t".to_string())
            })
            .await;
        assert!(
            !signed_anyway.load(std::sync::atomic::Ordering::SeqCst),
            "an inconsistent checkpoint must not be signed"
        );
        assert!(
            matches!(refused, Err(StorageError::Inconsistent(_))),
            "{}: {refused:?}",
            db.name
        );
        let refused = store
            .sign_checkpoint(1, store.reader().root_at(1).await.unwrap(), |_, _| {
                ("old".to_string(), "t".to_string())
            })
            .await;
        assert!(
            matches!(refused, Err(StorageError::Inconsistent(_))),
            "{}: {refused:?}",
            db.name
        );
        store
            .sign_checkpoint(head.size, head.root, |_, _| {
                ("note-3".to_string(), "t".to_string())
            })
            .await
            .unwrap();
        assert_eq!(
            store
                .reader()
                .latest_checkpoint()
                .await
                .unwrap()
                .unwrap()
                .note,
            "note-3"
        );
        store.close().await;

        // A stored subtree hash (level 1, index 0: key 1 << 56; blocks 0..2) that no longer matches the
        // signed checkpoint of size 3: the store refuses to open.
        let tampered = match &db.target {
            qunimbus_storage::DbTarget::Sqlite(_) => "UPDATE merkle_nodes SET hash = zeroblob(32) WHERE node = 72057594037927936",
            qunimbus_storage::DbTarget::Postgres(_) => {
                "UPDATE merkle_nodes SET hash = decode(repeat('00', 32), 'hex') WHERE node = 72057594037927936"
            }
        };
        db.execute(tampered).await;
        let err = Store::open(&db.target, StoreOptions::default(), genesis())
            .await
            .err()
            .expect("must refuse");
        assert!(
            err.to_string()
                .contains("does not match the last signed checkpoint"),
            "{}: {err}",
            db.name
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn attestation_blocks_append_between_runs() {
    for db in TestDb::both().await {
        let store = open(&db).await;
        let draft = BlockDraft {
            timestamp: "2026-11-21T00:00:01.000000Z".into(),
            kind: BlockKind::Attestation,
            phi_qevf: None,
            eta_ent: None,
            compliance_attestations: BTreeMap::from([(
                "ITAR".to_string(),
                AttestationStatus::Verified,
            )]),
            region: None,
            run_id: None,
            payload: None,
        };
        let blocks = store.append_blocks(vec![draft]).await.unwrap();
        assert_eq!(blocks[0].index, 1);
        store
            .append_runs(vec![entry("a1", "EU", 0.9, 1.0)])
            .await
            .unwrap();
        let latest = store
            .reader()
            .latest_blocks_of_kind("attestation", 10)
            .await
            .unwrap();
        assert_eq!(latest.len(), 1);
        assert_eq!(
            latest[0].compliance_attestations["ITAR"],
            AttestationStatus::Verified
        );
        assert_eq!(read_chain(&store).await.size(), 3, "{}", db.name);
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn closed_store_refuses_writes() {
    let db = TestDb::sqlite().await;
    let store = open(&db).await;
    store.close().await;
    assert!(store
        .append_runs(vec![entry("late", "EU", 0.9, 1.0)])
        .await
        .is_err());
    assert!(store.ready().await.is_err());
}

/// One writer per database: a second store on the same database is refused
/// (two writers would fork the chain), and the lock goes with the first.
#[tokio::test]
async fn a_second_writer_on_the_same_database_is_refused() {
    for db in TestDb::both().await {
        let first = open(&db).await;
        let refused = Store::open(&db.target, StoreOptions::default(), genesis()).await;
        match refused {
            Err(StorageError::InUse(message)) => {
                assert!(message.contains("another QuNimbus node"), "{message}")
            }
            Err(other) => panic!("{}: expected InUse, got {other}", db.name),
            Ok(_) => panic!("{}: a second writer was allowed", db.name),
        }
        first.close().await;
        let again = open(&db).await;
        again.close().await;
    }
}

/// A group commit that fails part-way stores nothing of it: not its blocks,
/// not its Merkle nodes, not its statements; the tree does not move and the
/// next append continues the chain from the last committed block.
#[tokio::test]
async fn a_failing_group_rolls_back_and_the_chain_goes_on() {
    for db in TestDb::both().await {
        let store = open(&db).await;
        store
            .append_runs(vec![entry("before", "EU", 0.9, 1.0)])
            .await
            .unwrap();
        let size = store.tree_head().size;
        let draft = BlockDraft {
            timestamp: "2026-11-21T00:00:01.000000Z".into(),
            kind: BlockKind::Attestation,
            phi_qevf: None,
            eta_ent: None,
            compliance_attestations: BTreeMap::new(),
            region: None,
            run_id: None,
            payload: None,
        };
        let insert = || StateChange::TrackRegion {
            name: "rollback-probe".into(),
            status: "active".into(),
            tracked_since: 0,
            at: "2026-11-21T00:00:01.000000Z".into(),
        };
        // The second insert repeats the primary key: the whole job fails,
        // and (committing alone) it is told why.
        let failed = store
            .append_blocks_with(vec![draft.clone()], vec![insert(), insert()])
            .await;
        assert!(
            matches!(&failed, Err(StorageError::Conflict(m)) if m.contains("UNIQUE") || m.contains("duplicate")),
            "{}: {failed:?}",
            db.name
        );
        assert_eq!(store.tree_head().size, size, "{}", db.name);
        assert!(
            store
                .reader()
                .regions()
                .await
                .unwrap()
                .iter()
                .all(|r| r.name != "rollback-probe"),
            "{}",
            db.name
        );
        assert_eq!(read_chain(&store).await.size(), size, "{}", db.name);

        let after = store
            .append_runs(vec![entry("after", "EU", 0.9, 1.0)])
            .await
            .unwrap();
        let Stored::Created(after) = &after[0] else {
            panic!("{}: not created: {after:?}", db.name)
        };
        assert_eq!(after.block_index, Some(size), "{}", db.name);
        let blocks = store.append_blocks_with(vec![draft], vec![insert()]).await;
        assert_eq!(blocks.unwrap()[0].index, size + 1, "{}", db.name);
        assert!(
            store
                .reader()
                .regions()
                .await
                .unwrap()
                .iter()
                .any(|r| r.name == "rollback-probe"),
            "{}",
            db.name
        );
        assert_eq!(read_chain(&store).await.size(), size + 2, "{}", db.name);
        store.close().await;
        // The stored tree still matches what the writer had in memory.
        let reopened = open(&db).await;
        assert_eq!(reopened.tree_head(), store.tree_head(), "{}", db.name);
        reopened.close().await;
        db.cleanup().await;
    }
}

/// A block that cannot be sealed (here: a NaN figure, which JSON cannot
/// carry) fails only its own job; runs submitted at the same moment are
/// committed, and the chain verifies.
#[tokio::test]
async fn an_unsealable_block_fails_alone() {
    for db in TestDb::both().await {
        let store = Arc::new(open(&db).await);
        let bad = BlockDraft {
            timestamp: "2026-11-21T00:00:01.000000Z".into(),
            kind: BlockKind::Attestation,
            phi_qevf: Some(f64::NAN),
            eta_ent: None,
            compliance_attestations: BTreeMap::new(),
            region: None,
            run_id: None,
            payload: None,
        };
        let mut runs = Vec::new();
        for i in 0..20 {
            let beside = store.clone();
            runs.push(tokio::spawn(async move {
                beside
                    .append_runs(vec![entry(&format!("beside-{i}"), "EU", 0.9, 1.0)])
                    .await
            }));
            if i == 10 {
                let refused = store.append_blocks(vec![bad.clone()]).await;
                assert!(
                    matches!(refused, Err(StorageError::InvalidBlock(_))),
                    "{refused:?}"
                );
            }
        }
        for run in runs {
            let stored = run.await.unwrap().unwrap();
            assert!(stored[0].is_created());
        }
        assert_eq!(
            store.tree_head().size,
            21,
            "genesis + 20 runs, no bad block"
        );
        let chain = read_chain(&store).await;
        assert_eq!(chain.size(), 21);
        store.close().await;
    }
}
