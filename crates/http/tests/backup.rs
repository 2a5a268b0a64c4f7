//! The node's own backups (issue 19): `POST /v1/admin/backup` writes a
//! verified backup into `[backup] dir` that restores; bad bodies change
//! nothing; the schedule keeps `backup.keep` backups and every attempt is a
//! metric, failures included; PostgreSQL points at pg_dump.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qunimbus_ledger::checkpoint::NoteVerifier;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{varied_run, Backend, TestNode};

/// The node's backups in `dir`, oldest first.
fn backups_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The value of the metric sample line starting with `series ` (`None`
/// when the node does not expose it).
async fn sample(t: &TestNode, series: &str) -> Option<f64> {
    let (status, text) = t.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

async fn verifier(t: &TestNode) -> NoteVerifier {
    let (_, key) = t.get_text("/v1/ledger/public-key").await;
    NoteVerifier::from_vkey(key.trim()).unwrap()
}

/// Restores `file` into a new dir and starts a node on it.
async fn restored_node(file: &Path, key: &NoteVerifier, into: &Path) -> TestNode {
    let report = qunimbus_node::backup::restore(file, into, Some(key))
        .await
        .unwrap_or_else(|e| panic!("restore of {}: {e}", file.display()));
    assert!(report.restore_block.is_some());
    let into = into.to_path_buf();
    TestNode::start_with(Backend::Sqlite, move |c| c.data_dir = into).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_backup_is_verified_kept_private_and_restores() {
    let t = TestNode::start(Backend::Sqlite).await;
    let runs: Vec<Value> = (0..40).map(|i| varied_run(&format!("bk-{i}"), i)).collect();
    t.ingest_batch(&runs).await;
    let signed = t.wait_for_checkpoint(t.chain_length().await).await;

    let (status, taken) = t.post("/v1/admin/backup", Some(t.admin_token()), "").await;
    assert_eq!(status, StatusCode::CREATED, "{taken}");
    let dir = t.data_dir().join("backups");
    let file = dir.join(taken["file"].as_str().unwrap());
    assert_eq!(taken["path"], json!(file.display().to_string()));
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(taken["bytes"].as_u64(), Some(meta.len()));
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let manifest = &taken["manifest"];
    assert!(manifest["tree_size"].as_u64().unwrap() >= signed.size);
    assert!(manifest["blocks"].as_u64().unwrap() >= manifest["tree_size"].as_u64().unwrap());
    let carried: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(carried.contains(&"policy.cedar"), "{carried:?}");
    assert!(!carried
        .iter()
        .any(|p| p.contains("key") || p.contains("credentials")));

    // Measured figures, no defaults.
    assert_eq!(
        sample(&t, "qunimbus_backups_total{outcome=\"ok\"}").await,
        Some(1.0)
    );
    assert_eq!(
        sample(&t, "qunimbus_backup_last_bytes{}").await,
        Some(meta.len() as f64)
    );
    assert!(
        sample(&t, "qunimbus_backup_last_success_timestamp_seconds{}")
            .await
            .is_some()
    );
    assert_eq!(
        sample(&t, "qunimbus_backup_last_failure_timestamp_seconds{}").await,
        None
    );

    // Keys only when asked for.
    let (status, with_keys) = t
        .post(
            "/v1/admin/backup",
            Some(t.admin_token()),
            r#"{"include_keys": true}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{with_keys}");
    assert!(with_keys["manifest"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == json!("ledger.key") && f["mode"] == json!(0o600)));

    let key = verifier(&t).await;
    let into = tempfile::tempdir().unwrap();
    let restored = restored_node(&file, &key, &into.path().join("data")).await;
    for run in &runs {
        let id = run["run_id"].as_str().unwrap();
        restored.get_ok(&format!("/v1/valuations/{id}")).await;
    }
    let verified = restored.get_ok("/v1/ledger/verify").await;
    assert_eq!(verified["ok"], json!(true), "{verified}");
    restored.stop().await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_backup_request_is_refused_and_writes_nothing() {
    let t = TestNode::start(Backend::Sqlite).await;
    t.ingest_new(&varied_run("bad-1", 1)).await;
    for (body, status, field) in [
        (
            r#"{"include_keys": "yes"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("include_keys"),
        ),
        (
            r#"{"out": "/etc/passwd"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("out"),
        ),
        ("{not json", StatusCode::BAD_REQUEST, None),
    ] {
        let (got, answer) = t
            .post("/v1/admin/backup", Some(t.admin_token()), body)
            .await;
        assert_eq!(got, status, "{body} -> {answer}");
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], json!(field), "{answer}");
        }
    }
    let (status, _) = t.post("/v1/admin/backup", Some(t.ingest_token()), "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(backups_in(&t.data_dir().join("backups")).is_empty());
    assert_eq!(
        sample(&t, "qunimbus_backups_total{outcome=\"ok\"}").await,
        None
    );
    t.stop().await;
}

/// Polls the metrics until `series` reaches `at_least`.
async fn wait_for_sample(t: &TestNode, series: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = sample(t, series).await.unwrap_or(0.0);
        if value >= at_least {
            return value;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_rotate_to_keep_and_the_newest_restores() {
    let outside = tempfile::tempdir().unwrap();
    let dir: PathBuf = outside.path().join("node-backups");
    let backup_dir = dir.clone();
    let t = TestNode::start_with(Backend::Sqlite, move |c| {
        c.backup.interval_secs = 1;
        c.backup.keep = 2;
        c.backup.dir = Some(backup_dir);
    })
    .await;
    assert_eq!(
        sample(&t, "qunimbus_backup_interval_seconds").await,
        Some(1.0)
    );
    t.ingest_new(&varied_run("sched-1", 1)).await;
    wait_for_sample(&t, "qunimbus_backups_total{outcome=\"ok\"}", 4.0).await;
    let kept = backups_in(&dir);
    assert!(
        (2..=3).contains(&kept.len()),
        "keep = 2 (a third may be being written): {kept:?}"
    );
    let key = verifier(&t).await;
    t.stop().await;
    let kept = backups_in(&dir);
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept
        .iter()
        .all(|n| n.starts_with("qunimbus-backup-") && n.ends_with(".db")));

    let into = tempfile::tempdir().unwrap();
    let newest = dir.join(kept.last().unwrap());
    let restored = restored_node(&newest, &key, &into.path().join("data")).await;
    restored.get_ok("/v1/valuations/sched-1").await;
    restored.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backup_is_counted_and_answered_500() {
    let outside = tempfile::tempdir().unwrap();
    // A file where the backup dir should be: every attempt fails.
    let blocker = outside.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let backup_dir = blocker.clone();
    let t = TestNode::start_with(Backend::Sqlite, move |c| {
        c.backup.interval_secs = 3600;
        c.backup.dir = Some(backup_dir);
    })
    .await;
    wait_for_sample(&t, "qunimbus_backups_total{outcome=\"failed\"}", 1.0).await;
    assert!(
        sample(&t, "qunimbus_backup_last_failure_timestamp_seconds{}")
            .await
            .is_some()
    );
    assert_eq!(
        sample(&t, "qunimbus_backup_last_success_timestamp_seconds{}").await,
        None
    );

    let (status, answer) = t.post("/v1/admin/backup", Some(t.admin_token()), "").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert_eq!(answer["error"]["code"], json!("backup_failed"), "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not-a-dir"),
        "{answer}"
    );
    assert_eq!(
        sample(&t, "qunimbus_backups_total{outcome=\"failed\"}").await,
        Some(2.0)
    );
    assert_eq!(std::fs::read_to_string(&blocker).unwrap(), "x");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_node_points_at_pg_dump() {
    let t = TestNode::start(Backend::Postgres).await;
    let (status, answer) = t.post("/v1/admin/backup", Some(t.admin_token()), "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], json!("not_sqlite"));
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("pg_dump"));
    t.stop().await;
}
