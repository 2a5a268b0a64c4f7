//! `qunimbus backup` and `qunimbus restore` through the binary: a backup of
//! a node taken under concurrent ingest restores every run acknowledged
//! before it started, the restored ledger verifies and the restored node's
//! next checkpoint is consistent with the backup's; a backup with one block
//! changed, a non-empty data dir and a wrong key are refused and write
//! nothing.

mod common;

use common::{credential, qunimbus, spawn_serve, terminate, text};
use qunimbus_ledger::merkle::{verify_consistency, Hash};
use serde_json::{json, Value};
use sqlx::Connection;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn run(id: &str, i: usize) -> String {
    let region = ["Americas", "EU", "APAC"][i % 3];
    json!({"run_id": id, "region": region, "eta_ent": 0.9 + (i % 10) as f64 / 100.0,
           "coherence_variance": 0.01, "runtime_hours": 1.0 + i as f64, "eph_delivered": 10.0})
    .to_string()
}

fn b64_hash(text: &str) -> Hash {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
        .try_into()
        .unwrap()
}

/// `(size, root)` of a signed note's body.
fn note_head(note: &str) -> (u64, Hash) {
    let mut lines = note.lines();
    let _origin = lines.next();
    let size = lines.next().unwrap().parse().unwrap();
    (size, b64_hash(lines.next().unwrap()))
}

/// `qunimbus backup --data-dir DATA --out OUT` plus `extra` flags.
fn run_backup(data: &Path, out: &Path, extra: &[&str]) -> Output {
    qunimbus()
        .args(["backup", "--data-dir"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// `qunimbus restore --from FROM --data-dir DIR [--expect-key KEY]`.
fn run_restore(from: &Path, dir: &Path, key: Option<&Path>) -> Output {
    let mut command = qunimbus();
    command
        .args(["restore", "--from"])
        .arg(from)
        .arg("--data-dir")
        .arg(dir);
    if let Some(key) = key {
        command.arg("--expect-key").arg(key);
    }
    command.output().unwrap()
}

/// The text at `url`.
async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// POSTs runs `prefix-0` .. `prefix-{n-1}` to the node at `url`, each 201.
async fn ingest_runs(http: &reqwest::Client, url: &str, token: &str, prefix: &str, n: usize) {
    for i in 0..n {
        let answer = http
            .post(format!("{url}/v1/telemetry"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(run(&format!("{prefix}-{i}"), i))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
    }
}

async fn checkpoint(http: &reqwest::Client, url: &str, at_least: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let note = http
            .get(format!("{url}/v1/ledger/checkpoint"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if note.lines().nth(1).and_then(|s| s.parse::<u64>().ok()) >= Some(at_least) {
            return note;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {at_least}: {note}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_ingest_restores_every_acknowledged_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let (child, url) = spawn_serve(&data, |_| {});
    let http = reqwest::Client::new();
    let ingest = credential(&data, "ingest_token");
    let vkey = get_text(&http, &format!("{url}/v1/ledger/public-key")).await;
    let vkey_file = dir.path().join("node.vkey");
    std::fs::write(&vkey_file, &vkey).unwrap();

    // Ingest runs, one at a time, until told to stop.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (acked, stop, http, url) = (acked.clone(), stop.clone(), http.clone(), url.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("bk-{i}");
                let answer = http
                    .post(format!("{url}/v1/telemetry"))
                    .bearer_auth(&ingest)
                    .header("content-type", "application/json")
                    .body(run(&id, i))
                    .send()
                    .await
                    .unwrap();
                if answer.status() == 201 {
                    acked.lock().unwrap().push(id);
                }
                i += 1;
            }
        })
    };
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before: Vec<String> = acked.lock().unwrap().clone();
    let out = dir.path().join("node.backup");
    let backup = {
        let (data, out) = (data.clone(), out.clone());
        tokio::task::spawn_blocking(move || run_backup(&data, &out, &["--include-keys"]))
            .await
            .unwrap()
    };
    let during = acked.lock().unwrap().len() - before.len();
    stop.store(true, Ordering::SeqCst);
    sender.await.unwrap();
    assert!(backup.status.success(), "{}", text(&backup));
    let stdout = String::from_utf8_lossy(&backup.stdout).to_string();
    assert!(
        stdout.contains("ledger verified against its signed checkpoint"),
        "{stdout}"
    );
    assert!(stdout.contains("ledger.key"), "keys carried: {stdout}");
    eprintln!("{} runs acknowledged while the backup ran", during);
    assert!(during > 0, "the node kept serving ingest during the backup");
    terminate(child);

    // The backup is a SQLite file `ledger verify` reads as it is.
    let verify = qunimbus()
        .args(["ledger", "verify", "--public-key"])
        .arg(&vkey_file)
        .arg("--database-url")
        .arg(format!("sqlite:{}", out.display()))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));

    // Restore into a fresh dir, against the published key.
    let restored = dir.path().join("restored");
    let restore = run_restore(&out, &restored, Some(&vkey_file));
    assert!(restore.status.success(), "{}", text(&restore));
    let stdout = String::from_utf8_lossy(&restore.stdout).to_string();
    assert!(stdout.contains("restore block:"), "{stdout}");
    let backup_note: String = stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("checkpoint:"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    let (backup_size, backup_root) = note_head(&backup_note);
    let backup_blocks: u64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("blocks:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(backup_blocks >= before.len() as u64 + 2, "{stdout}");
    let mode = |path: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&out), 0o600, "the backup (with keys) is private");
    assert_eq!(
        mode(&restored.join("ledger.key")),
        0o600,
        "the signing key stays private"
    );
    assert_eq!(mode(&restored), 0o700, "the restored data dir is private");

    // The restored node holds every run acknowledged before the backup
    // started, and its next checkpoint extends the backup's.
    let (child, url) = spawn_serve(&restored, |_| {});
    for id in &before {
        let status = http
            .get(format!("{url}/v1/valuations/{id}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(
            status, 200,
            "run {id} acknowledged before the backup is missing"
        );
    }
    let note = checkpoint(&http, &url, backup_size + 1).await;
    let (size, root) = note_head(&note);
    let proof: Value = http
        .get(format!(
            "{url}/v1/ledger/proof/consistency?first={backup_size}&second={size}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hashes: Vec<Hash> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| b64_hash(h.as_str().unwrap()))
        .collect();
    verify_consistency(backup_size, size, &backup_root, &root, &hashes)
        .expect("the restored log extends the backup's checkpoint");
    let blocks: Value = http
        .get(format!(
            "{url}/v1/ledger/blocks?from={backup_blocks}&limit=10"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let restore_block = blocks["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .next()
        .unwrap_or_else(|| panic!("no block after the backup's: {blocks}"))
        .clone();
    assert_eq!(
        restore_block["kind"], "restore",
        "the first block after the backup's {backup_blocks}: {restore_block}"
    );
    assert_eq!(restore_block["payload"]["backup_tree_size"], backup_size);
    assert_eq!(
        restore_block["payload"]["backup_checkpoint"],
        backup_note.as_str()
    );
    terminate(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_block_a_full_data_dir_or_a_wrong_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let (child, url) = spawn_serve(&data, |_| {});
    let http = reqwest::Client::new();
    let ingest = credential(&data, "ingest_token");
    ingest_runs(&http, &url, &ingest, "t", 20).await;
    checkpoint(&http, &url, 22).await;
    let out = dir.path().join("good.backup");
    let backup = run_backup(&data, &out, &[]);
    assert!(backup.status.success(), "{}", text(&backup));
    terminate(child);

    // One block's figure changed in a copy of the backup.
    let tampered = dir.path().join("tampered.backup");
    std::fs::copy(&out, &tampered).unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", tampered.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE blocks SET phi_qevf = phi_qevf + 0.001 WHERE idx = 7")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let target = dir.path().join("from-tampered");
    let refused = run_restore(&tampered, &target, None);
    assert!(!refused.status.success(), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("block 7"), "names the block: {stderr}");
    assert!(!target.exists(), "nothing was written");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restoring"))
        .collect();
    assert!(
        left.is_empty(),
        "a refused restore leaves nothing: {left:?}"
    );

    // A backup that carries a file no backup carries (here a journal that
    // opening the store would replay), listed in its manifest with the
    // right digest: refused, naming it, before anything is written.
    let smuggled = dir.path().join("smuggled.backup");
    std::fs::copy(&out, &smuggled).unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", smuggled.display()))
        .await
        .unwrap();
    let manifest: String = sqlx::query_scalar("SELECT manifest FROM backup_manifest")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let mut manifest: Value = serde_json::from_str(&manifest).unwrap();
    let content = b"not a journal".to_vec();
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(&content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    manifest["files"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"path": "qunimbus.db-wal", "mode": 0o600, "sha256": digest, "bytes": content.len()}
        ));
    sqlx::query("UPDATE backup_manifest SET manifest = ?1")
        .bind(manifest.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO backup_files (path, mode, content) VALUES ('qunimbus.db-wal', 384, ?1)",
    )
    .bind(content)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let target = dir.path().join("from-smuggled");
    let refused = run_restore(&smuggled, &target, None);
    assert!(!refused.status.success(), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("qunimbus.db-wal"),
        "names the file: {stderr}"
    );
    assert!(!target.exists(), "nothing was written");

    // Into a data dir that holds anything: refused, naming what is there.
    let full = dir.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("qunimbus.db"), b"precious").unwrap();
    let refused = run_restore(&out, &full, None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("is not empty") && stderr.contains("qunimbus.db"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(full.join("qunimbus.db")).unwrap(),
        b"precious"
    );

    // Signed by another key than the one expected.
    let other = dir.path().join("other");
    let (child, other_url) = spawn_serve(&other, |_| {});
    let other_key = get_text(&http, &format!("{other_url}/v1/ledger/public-key")).await;
    terminate(child);
    let other_key_file = dir.path().join("other.vkey");
    std::fs::write(&other_key_file, other_key).unwrap();
    let target = dir.path().join("wrong-key");
    let refused = run_restore(&out, &target, Some(&other_key_file));
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(!target.exists());

    // A backup never overwrites a file.
    let again = run_backup(&data, &out, &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

fn pg_url() -> String {
    std::env::var("PG_TEST_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `url` pointed at database `db` (and, optionally, schema `schema`).
fn pg_database(url: &str, db: &str, schema: Option<&str>) -> String {
    let (base, _) = url.split_once('?').unwrap_or((url, ""));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match schema {
        Some(s) => format!("{server}/{db}?options=-c%20search_path%3D{s}"),
        None => format!("{server}/{db}"),
    }
}

fn require_tool(name: &str) {
    let found = std::process::Command::new(name).arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "{name} (Debian's postgresql-client) is required for this test and is missing"
    );
}

/// The PostgreSQL procedure of the README: pg_dump of the node's schema,
/// pg_restore into another database, then `qunimbus ledger verify` on the
/// restored copy (and a changed block there fails, naming it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_dumped_and_restored_verifies() {
    require_tool("pg_dump");
    require_tool("pg_restore");
    let url = pg_url();
    let unique = format!(
        "bk_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {url} (PG_TEST_URL) is required for this test: {e}")
    });
    sqlx::query(&format!("CREATE SCHEMA {unique}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let test_db = url
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .unwrap()
        .to_string();
    let node_url = pg_database(&url, &test_db, Some(&unique));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let (child, base) = spawn_serve(&data, |c| {
        c.args(["--database-url", &node_url]);
        c.env("QUNIMBUS_LEDGER__CHECKPOINT_INTERVAL_MS", "50");
    });
    let http = reqwest::Client::new();
    let ingest = credential(&data, "ingest_token");
    ingest_runs(&http, &base, &ingest, "pg", 30).await;
    checkpoint(&http, &base, 32).await;
    let vkey = get_text(&http, &format!("{base}/v1/ledger/public-key")).await;
    terminate(child);
    let vkey_file = dir.path().join("node.vkey");
    std::fs::write(&vkey_file, vkey).unwrap();

    // `qunimbus backup` points a PostgreSQL store at pg_dump.
    let refused = run_backup(&data, &dir.path().join("x.backup"), &[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pg_dump"));

    let dump = dir.path().join("node.dump");
    let dumped = std::process::Command::new("pg_dump")
        .args(["--format=custom", "--schema", &unique, "--file"])
        .arg(&dump)
        .arg(pg_database(&url, &test_db, None))
        .output()
        .unwrap();
    assert!(dumped.status.success(), "{}", text(&dumped));
    sqlx::query(&format!("CREATE DATABASE {unique}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let restored = std::process::Command::new("pg_restore")
        .arg("--dbname")
        .arg(pg_database(&url, &unique, None))
        .arg(&dump)
        .output()
        .unwrap();
    assert!(restored.status.success(), "{}", text(&restored));
    let restored_url = pg_database(&url, &unique, Some(&unique));
    let verify = |expect_ok: bool| {
        let out = qunimbus()
            .args([
                "ledger",
                "verify",
                "--database-url",
                &restored_url,
                "--public-key",
            ])
            .arg(&vkey_file)
            .output()
            .unwrap();
        assert_eq!(out.status.success(), expect_ok, "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(verify(true).contains("ledger OK"));
    let mut copy = sqlx::PgConnection::connect(&pg_database(&url, &unique, None))
        .await
        .unwrap();
    sqlx::query(&format!(
        "UPDATE {unique}.blocks SET phi_qevf = phi_qevf + 1 WHERE idx = 5"
    ))
    .execute(&mut copy)
    .await
    .unwrap();
    copy.close().await.unwrap();
    assert!(verify(false).contains("block 5"), "names the changed block");

    sqlx::query(&format!("DROP DATABASE {unique}"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("DROP SCHEMA {unique} CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
}
