//! Store behaviour: durability across reopen, idempotency, group commits, statistics.

use qunimbus_core::{time::now_micros, DataClass, RunId, RunMetrics, Telemetry};
use qunimbus_storage::{RunRecord, Store, StoreOptions, Stored};
use qunimbus_valuation::{PhiStats, ValuationEngine};
use std::sync::Arc;

fn record(id: &str, region: &str, eta: f64, hours: f64) -> RunRecord {
    let metrics = RunMetrics {
        eta_ent: eta,
        coherence_variance: 0.01,
        runtime_hours: hours,
        eph_delivered: 100.0,
    };
    RunRecord {
        telemetry: Telemetry {
            run_id: RunId::parse(id).unwrap(),
            region: region.to_string(),
            data_class: DataClass::Public,
            metrics,
        },
        valuation: ValuationEngine::default().value(&metrics),
        accepted_at: now_micros(),
    }
}

#[tokio::test]
async fn records_survive_reopen_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let original = record("r1", "EU", 0.97, 100.0);
    {
        let store = Store::open_sqlite(&path, StoreOptions::default())
            .await
            .unwrap();
        let out = store.append(vec![original.clone()]).await.unwrap();
        assert_eq!(out, vec![Stored::Created(original.clone())]);
        store.close().await;
    }
    let store = Store::open_sqlite(&path, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.get("r1").await.unwrap(), Some(original));
    store.close().await;
}

#[tokio::test]
async fn duplicates_return_the_original_within_and_across_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("q.db"), StoreOptions::default())
        .await
        .unwrap();
    let first = record("dup", "EU", 0.9, 10.0);
    let second = record("dup", "APAC", 0.5, 20.0);
    let out = store
        .append(vec![
            first.clone(),
            second.clone(),
            record("other", "EU", 0.9, 1.0),
        ])
        .await
        .unwrap();
    assert_eq!(out[0], Stored::Created(first.clone()));
    assert_eq!(out[1], Stored::Existing(first.clone()));
    assert!(out[2].is_created());
    let again = store.append(vec![second]).await.unwrap();
    assert_eq!(again, vec![Stored::Existing(first)]);
    assert_eq!(store.phi_stats().await.unwrap().count, 2);
    store.close().await;
}

#[tokio::test]
async fn concurrent_appends_are_group_committed_and_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let commits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = commits.clone();
    let options = StoreOptions {
        on_commit: Some(Arc::new(move |_, _| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })),
        ..Default::default()
    };
    let store = Arc::new(
        Store::open_sqlite(&dir.path().join("q.db"), options)
            .await
            .unwrap(),
    );
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(vec![record(&format!("c{i}"), "MENA", 0.95, 50.0)])
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap()[0].is_created());
    }
    assert_eq!(store.phi_stats().await.unwrap().count, 400);
    let n = commits.load(std::sync::atomic::Ordering::Relaxed);
    assert!((1..=400).contains(&n), "commits: {n}");
    store.close().await;
}

#[tokio::test]
async fn stats_match_the_in_memory_definition_and_lists_are_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("q.db"), StoreOptions::default())
        .await
        .unwrap();
    let records: Vec<RunRecord> = (0..37)
        .map(|i| {
            record(
                &format!("s{i}"),
                if i % 2 == 0 { "EU" } else { "Orbit" },
                0.5 + f64::from(i) / 100.0,
                f64::from(i * 3),
            )
        })
        .collect();
    store.append(records.clone()).await.unwrap();
    let expected = PhiStats::of(records.iter().map(|r| r.valuation.phi_qevf));
    let got = store.phi_stats().await.unwrap();
    assert_eq!(
        (got.count, got.min, got.max, got.p50, got.p95),
        (
            expected.count,
            expected.min,
            expected.max,
            expected.p50,
            expected.p95
        )
    );
    let mean_diff = (got.mean.unwrap() - expected.mean.unwrap()).abs();
    assert!(mean_diff < 1e-9, "{mean_diff}");

    let eu = store.list(Some("EU"), 5).await.unwrap();
    let ids: Vec<&str> = eu.iter().map(|r| r.telemetry.run_id.as_str()).collect();
    assert_eq!(ids, ["s36", "s34", "s32", "s30", "s28"]);
    assert_eq!(
        store.recent_phi(2).await.unwrap(),
        vec![
            records[35].valuation.phi_qevf,
            records[36].valuation.phi_qevf
        ]
    );
    store.close().await;
}

#[tokio::test]
async fn closed_store_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("q.db"), StoreOptions::default())
        .await
        .unwrap();
    store.close().await;
    assert!(store
        .append(vec![record("late", "EU", 0.9, 1.0)])
        .await
        .is_err());
    assert!(store.ready().await.is_err());
}
