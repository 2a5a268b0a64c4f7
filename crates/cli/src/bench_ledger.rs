//! `qunimbus bench ledger`: append throughput, proof latency and offline
//! verification rate, on SQLite or PostgreSQL.

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use qunimbus_core::time::{now_micros, rfc3339_micros};
use qunimbus_core::{DataClass, RunId, RunMetrics, Telemetry};
use qunimbus_ledger::block::{AttestationStatus, BlockDraft, BlockKind, DEFAULT_FRAMEWORKS};
use qunimbus_ledger::merkle;
use qunimbus_node::ledger::{genesis_block, valuation_draft, verify_ledger};
use qunimbus_node::trust::InForce;
use qunimbus_storage::{DbTarget, RunRecord, Store, StoreOptions};
use qunimbus_trust::policy::{PolicyEngine, DEFAULT_POLICY};
use qunimbus_valuation::ValuationEngine;
use rand::Rng;
use sqlx::Connection;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A benchmark database that removes itself.
struct BenchDb {
    target: DbTarget,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl BenchDb {
    async fn create(database_url: Option<String>) -> Result<Self> {
        match database_url {
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("qunimbus-bench-")
                    .tempdir()?;
                Ok(Self {
                    target: DbTarget::Sqlite(dir.path().join("bench.db")),
                    cleanup: None,
                    _dir: Some(dir),
                })
            }
            Some(url) => {
                let schema = format!("bench_{}", std::process::id());
                let mut conn = sqlx::PgConnection::connect(&url)
                    .await
                    .context("connecting to PostgreSQL")?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut conn)
                    .await?;
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                let sep = if url.contains('?') { '&' } else { '?' };
                Ok(Self {
                    target: DbTarget::Postgres(format!(
                        "{url}{sep}options=-c%20search_path%3D{schema}"
                    )),
                    cleanup: Some((url, schema)),
                    _dir: None,
                })
            }
        }
    }

    async fn drop_schema(self) -> Result<()> {
        if let Some((url, schema)) = self.cleanup {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
        }
        Ok(())
    }
}

fn frameworks() -> Vec<String> {
    DEFAULT_FRAMEWORKS.iter().map(|s| s.to_string()).collect()
}

/// The default compliance policy, as a node accepts runs with it.
fn default_policy() -> Result<Arc<InForce>> {
    let regions: Vec<String> = qunimbus_core::DEFAULT_REGIONS
        .iter()
        .map(|r| r.to_string())
        .collect();
    let engine = PolicyEngine::load(DEFAULT_POLICY, &regions)?;
    Ok(Arc::new(InForce::new(
        engine,
        DEFAULT_POLICY,
        &frameworks(),
    )))
}

fn run_entry(i: u64, frameworks: &[String], policy: &InForce) -> Result<(RunRecord, BlockDraft)> {
    let metrics = RunMetrics {
        eta_ent: 0.9 + (i % 100) as f64 / 1000.0,
        coherence_variance: 0.01,
        runtime_hours: (1 + i % 120) as f64,
        eph_delivered: 1000.0,
    };
    let record = RunRecord {
        telemetry: Telemetry {
            run_id: RunId::parse(&format!("bench-{i}")).map_err(|e| anyhow!("{e}"))?,
            region: qunimbus_core::DEFAULT_REGIONS[(i % 6) as usize].to_string(),
            data_class: DataClass::Public,
            metrics,
        },
        valuation: ValuationEngine::default().value(&metrics),
        accepted_at: now_micros(),
        block_index: None,
        feed_seq: None,
        erasure_salt: None,
        policy_sha256: Some(policy.sha256.to_string()),
    };
    let draft = valuation_draft(&record, frameworks, policy);
    Ok((record, draft))
}

/// A valuation-shaped block with no run behind it, for growing a ledger fast.
pub(crate) fn filler_draft(i: u64) -> BlockDraft {
    BlockDraft {
        timestamp: rfc3339_micros(now_micros()),
        kind: BlockKind::Valuation,
        phi_qevf: Some(100.0 + (i % 1000) as f64 / 7.0),
        eta_ent: Some(0.95),
        compliance_attestations: DEFAULT_FRAMEWORKS
            .iter()
            .map(|f| (f.to_string(), AttestationStatus::Pending))
            .collect::<BTreeMap<_, _>>(),
        region: Some("EU".into()),
        run_id: Some(format!("fill-{i}")),
        payload: Some(serde_json::json!({ "eph_price": 0.125, "market_value": 1234.5 })),
    }
}

/// Runs the three ledger measurements and prints their numbers.
pub async fn run(
    blocks: u64,
    appends: u64,
    clients: u32,
    proofs: u64,
    verify_runs: u32,
    database_url: Option<String>,
) -> Result<()> {
    if clients == 0 || blocks < 2 || proofs == 0 || verify_runs == 0 {
        bail!("--clients, --proofs and --verify-runs must be at least 1, --blocks at least 2");
    }
    let db = BenchDb::create(database_url).await?;
    println!("ledger bench on {}", db.target.describe());
    let store = Arc::new(
        Store::open(
            &db.target,
            StoreOptions::default(),
            genesis_block(&frameworks())?,
        )
        .await?,
    );

    // 1. Durable appends: concurrent single-run jobs, group-committed.
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let policy = default_policy()?;
    for _ in 0..clients {
        let (store, next, policy) = (store.clone(), next.clone(), policy.clone());
        tasks.push(tokio::spawn(async move {
            let frameworks = frameworks();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= appends {
                    return Ok::<_, anyhow::Error>(());
                }
                store
                    .append_runs(vec![run_entry(i, &frameworks, &policy)?])
                    .await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let took = started.elapsed();
    println!(
        "appends: {:.0} durable runs+blocks/s ({appends} single-run appends from {clients} concurrent writers in {:.2} s)",
        appends as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );

    // 2. Grow the ledger to `blocks` with large batches, then time proofs.
    let mut filled = store.tree_head().size;
    let fill_started = Instant::now();
    while filled < blocks {
        let batch = (blocks - filled).min(4096);
        let drafts = (filled..filled + batch).map(filler_draft).collect();
        store.append_blocks(drafts).await?;
        filled += batch;
    }
    let size = store.tree_head().size;
    println!(
        "filled to {size} blocks in {:.1} s",
        fill_started.elapsed().as_secs_f64()
    );
    let reader = store.reader();
    let root = reader.root_at(size).await?;
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| anyhow!("{e}"))?;
    let mut rng = rand::rng();
    for _ in 0..proofs {
        let index = rng.random_range(0..size);
        let t = Instant::now();
        let (leaf, proof) = reader.inclusion_proof(index, size, size).await?;
        hist.record(t.elapsed().as_micros().max(1) as u64)?;
        merkle::verify_inclusion(index, size, &leaf, &proof, &root)
            .map_err(|e| anyhow!("proof {index} failed: {e}"))?;
    }
    println!(
        "inclusion proof at {size} blocks: p50 {} µs, p99 {} µs, max {} µs ({proofs} proofs, each verified)",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.max()
    );

    // 3. Offline verification of the whole ledger, `verify_runs` times (the
    // machine is shared: the best run is the least disturbed one).
    let mut best = f64::MAX;
    for run in 1..=verify_runs {
        let report = verify_ledger(reader, None, |_| {}).await?;
        if !report.ok {
            bail!("verification failed: {:?}", report.failure);
        }
        let seconds = report.duration_ms.max(1) as f64 / 1000.0;
        best = best.min(seconds);
        println!(
            "verify run {run}: {} blocks and {} stored nodes in {} ms = {:.0} blocks/s",
            report.blocks_checked,
            report.nodes_checked,
            report.duration_ms,
            report.blocks_checked as f64 / seconds
        );
    }
    println!(
        "verify: best of {verify_runs} = {:.0} blocks/s",
        size as f64 / best
    );
    store.close().await;
    db.drop_schema().await?;
    Ok(())
}
