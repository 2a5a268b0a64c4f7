//! `qunimbus ledger verify|proof|export` through the real binary, on SQLite
//! and on a fresh PostgreSQL schema: a clean ledger verifies, one changed
//! field of one block is reported by index, and a node SIGKILLed under
//! append load keeps every acknowledged run's block and a verifiable chain.
//! A missing PostgreSQL fails these tests with a message; nothing is skipped.

// Shared by the process tests; this one uses part of it.
#[allow(dead_code)]
mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::{credential, qunimbus, spawn_serve, text};
use qunimbus_ledger::block::Block;
use qunimbus_ledger::merkle::{verify_inclusion, Hash, RightEdge};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::Connection;
use std::collections::HashSet;
use std::ffi::OsString;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(30);

// ---- databases ------------------------------------------------------------------

fn pg_url() -> String {
    std::env::var("PG_TEST_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A data dir and, for PostgreSQL, a fresh schema (dropped on drop).
struct TestDb {
    backend: Backend,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestDb {
    async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos();
                static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                let schema = format!("t_{}_{nanos}_{n}", std::process::id());
                let mut conn = sqlx::PgConnection::connect(&pg_url())
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL at {} (PG_TEST_URL) is required for this test and is not reachable: {e}",
                            pg_url()
                        )
                    });
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                let sep = if pg_url().contains('?') { '&' } else { '?' };
                let url = format!("{}{sep}options=-c%20search_path%3D{schema}", pg_url());
                Some((url, schema))
            }
        };
        Self { backend, dir, pg }
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--data-dir DIR [--database-url URL]`.
    fn source_args(&self) -> Vec<OsString> {
        let mut args = vec!["--data-dir".into(), self.data_dir().into()];
        if let Some((url, _)) = &self.pg {
            args.push("--database-url".into());
            args.push(url.into());
        }
        args
    }

    fn sqlite_url(&self) -> String {
        format!("sqlite:{}", self.data_dir().join("qunimbus.db").display())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((_, schema)) = self.pg.clone() else {
            return;
        };
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&pg_url()).await?;
                sqlx::query("SET lock_timeout = '5s'")
                    .execute(&mut conn)
                    .await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("warning: could not drop a test schema: {e}");
        }
    }
}

/// Runs one statement (with its binds) on the test database, directly.
macro_rules! on_db {
    ($db:expr, |$conn:ident| $body:expr) => {{
        match $db.backend {
            Backend::Sqlite => {
                let mut $conn = sqlx::SqliteConnection::connect(&$db.sqlite_url())
                    .await
                    .unwrap();
                let out = $body.unwrap();
                $conn.close().await.unwrap();
                out
            }
            Backend::Postgres => {
                let url = &$db.pg.as_ref().unwrap().0;
                let mut $conn = sqlx::PgConnection::connect(url).await.unwrap();
                let out = $body.unwrap();
                $conn.close().await.unwrap();
                out
            }
        }
    }};
}

/// The stored columns of one block that the tamper cases change.
#[derive(Debug, Clone, PartialEq)]
struct BlockRow {
    timestamp: String,
    phi_qevf: Option<f64>,
    payload: Option<String>,
    previous_hash: String,
    hash: String,
}

async fn read_row(db: &TestDb, index: u64) -> BlockRow {
    let sql = "SELECT timestamp, phi_qevf, payload, previous_hash, hash FROM blocks WHERE idx = $1";
    let idx = index as i64;
    type Row = (String, Option<f64>, Option<String>, String, String);
    let (timestamp, phi_qevf, payload, previous_hash, hash): Row =
        on_db!(db, |c| sqlx::query_as(sql)
            .bind(idx)
            .fetch_one(&mut c)
            .await);
    BlockRow {
        timestamp,
        phi_qevf,
        payload,
        previous_hash,
        hash,
    }
}

/// Writes the tampered columns of one block.
async fn write_row(db: &TestDb, index: u64, row: &BlockRow) {
    let sql = "UPDATE blocks SET timestamp = $1, phi_qevf = $2, payload = $3, \
               previous_hash = $4, hash = $5 WHERE idx = $6";
    let idx = index as i64;
    let rows_affected = on_db!(db, |c| sqlx::query(sql)
        .bind(&row.timestamp)
        .bind(row.phi_qevf)
        .bind(&row.payload)
        .bind(&row.previous_hash)
        .bind(&row.hash)
        .bind(idx)
        .execute(&mut c)
        .await
        .map(|r| r.rows_affected()));
    assert_eq!(rows_affected, 1);
    assert_eq!(read_row(db, index).await, *row, "the write took effect");
}

/// An auditor's check of what they were handed: `ledger export`'s file (and
/// the same blocks as JSON lines) against the served checkpoint note, with
/// no database; a changed block and a short export fail.
fn verify_exports(db: &TestDb, key: &Path, note: &str, size: u64) {
    let dir = db.data_dir();
    let export = dir.join("export.json");
    let out = ledger(db, "export", &["--output".into(), export.clone().into()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let note_file = dir.join("note.txt");
    std::fs::write(&note_file, note).unwrap();
    let verify = |file: &Path| {
        qunimbus()
            .args(["ledger", "verify", "--export"])
            .arg(file)
            .arg("--checkpoint")
            .arg(&note_file)
            .arg("--public-key")
            .arg(key)
            .stdin(Stdio::null())
            .output()
            .expect("run qunimbus ledger verify --export")
    };
    let out = verify(&export);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains(&format!("checked {size} blocks")),
        "{stdout}"
    );
    assert!(
        stdout.contains("signature verified") && stdout.contains("ledger OK"),
        "{stdout}"
    );
    let array = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<String> = array
        .lines()
        .map(|l| {
            l.trim_start_matches('[')
                .trim_end_matches(']')
                .trim_end_matches(',')
                .to_string()
        })
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len() as u64, size);
    let jsonl = dir.join("export.jsonl");
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    assert_eq!(
        verify(&jsonl).status.code(),
        Some(0),
        "{}",
        text(&verify(&jsonl))
    );
    let mut changed = lines.clone();
    let mut block: Value = serde_json::from_str(&changed[5]).unwrap();
    block["phi_qevf"] = json!(block["phi_qevf"].as_f64().unwrap() + 1.0);
    changed[5] = block.to_string();
    std::fs::write(&jsonl, changed.join("\n")).unwrap();
    let out = verify(&jsonl);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout.contains("FAILED at block 5: hash mismatch"),
        "{stdout}"
    );
    std::fs::write(&jsonl, lines[..10].join("\n")).unwrap();
    let out = verify(&jsonl);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout.contains(&format!("covers {size} blocks but only 10 are stored")),
        "{stdout}"
    );
}

/// Rewrites every stored Merkle node to what `chain` determines (an
/// attacker covering their tracks, or the repair after such a test).
async fn write_nodes(db: &TestDb, chain: &[Block]) {
    let mut edge = RightEdge::new();
    for block in chain {
        for (id, hash) in edge.append(block.digests().unwrap().leaf_hash) {
            let key = (i64::from(id.level) << 56) | id.index as i64;
            let updated = on_db!(db, |c| sqlx::query(
                "UPDATE merkle_nodes SET hash = $1 WHERE node = $2"
            )
            .bind(hash.to_vec())
            .bind(key)
            .execute(&mut c)
            .await
            .map(|r| r.rows_affected()));
            assert_eq!(updated, 1, "node {id:?} is stored");
        }
    }
}

// ---- the node as a process -----------------------------------------------------------

struct Served {
    child: Child,
    url: String,
    ingest: String,
}

/// Starts `qunimbus serve` on `db` with 50 ms checkpoints.
fn serve(db: &TestDb) -> Served {
    let (child, url) = spawn_serve(db.data_dir(), |command| {
        if let Some((url, _)) = &db.pg {
            command.args(["--database-url", url]);
        }
        command.env("QUNIMBUS_LEDGER__CHECKPOINT_INTERVAL_MS", "50");
    });
    Served {
        child,
        url,
        ingest: credential(db.data_dir(), "ingest_token"),
    }
}

impl Served {
    /// SIGTERM, then waits for a clean exit.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "node did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "exit status after SIGTERM: {status}");
    }

    /// SIGKILL, no chance to flush anything.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_text(http: &reqwest::Client, url: &str) -> (u16, String) {
    let response = http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A signed checkpoint: size and root parsed from the note by hand.
struct Note {
    size: u64,
    root: Hash,
}

/// Polls `GET /v1/ledger/checkpoint` until it covers `size` blocks.
async fn wait_for_checkpoint(http: &reqwest::Client, base: &str, size: u64) -> Note {
    let started = Instant::now();
    loop {
        let (status, text) = get_text(http, &format!("{base}/v1/ledger/checkpoint")).await;
        if status == 200 {
            let lines: Vec<&str> = text.lines().collect();
            let tree_size: u64 = lines[1].parse().unwrap();
            if tree_size >= size {
                let root = B64.decode(lines[2]).unwrap().try_into().unwrap();
                return Note {
                    size: tree_size,
                    root,
                };
            }
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no checkpoint covering {size} blocks (last: {status} {text})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn run_body(id: &str, i: usize) -> String {
    let regions = ["Americas", "EU", "MENA", "APAC", "Polar", "Orbit"];
    json!({
        "run_id": id,
        "region": regions[i % regions.len()],
        "eta_ent": 0.9 + (i % 10) as f64 / 100.0,
        "coherence_variance": 0.001 * (i % 19) as f64,
        "runtime_hours": 0.5 + i as f64 * 3.3,
        "eph_delivered": 7.0 + i as f64,
    })
    .to_string()
}

/// Runs `qunimbus ledger <command> <source> <extra>`.
fn ledger(db: &TestDb, command: &str, extra: &[OsString]) -> Output {
    qunimbus()
        .args(["ledger", command])
        .args(db.source_args())
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run qunimbus ledger")
}

/// `ledger verify --public-key FILE` must pass.
fn assert_verifies(db: &TestDb, key: &Path, blocks: u64) {
    let out = ledger(db, "verify", &["--public-key".into(), key.into()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout.contains("ledger OK"), "{}", text(&out));
    assert!(
        stdout.contains(&format!("checked {blocks} blocks")),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("signature verified"), "{}", text(&out));
}

/// `ledger verify` must exit 1 naming block `index` with a reason containing `reason`.
fn assert_fails_at(db: &TestDb, key: &Path, index: u64, reason: &str, what: &str) {
    let out = ledger(db, "verify", &["--public-key".into(), key.into()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
    assert!(!stdout.contains("ledger OK"), "{what}: {}", text(&out));
    let line = stdout
        .lines()
        .find(|l| l.contains("FAILED"))
        .unwrap_or_else(|| panic!("{what}: no failure line: {}", text(&out)));
    assert!(
        line.contains(&format!("FAILED at block {index}:")),
        "{what}: expected block {index}: {line}"
    );
    assert!(line.contains(reason), "{what}: expected {reason:?}: {line}");
}

fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

fn leaf_hash(block: &Value) -> Hash {
    let mut input = vec![0u8];
    input.extend(qunimbus_ledger::jcs::canonicalize(block).unwrap());
    sha256(&input)
}

// ---- verify, tamper, proof, export ----------------------------------------------------

const RUNS: usize = 20;

async fn verify_detects_tampering(backend: Backend) {
    let db = TestDb::new(backend).await;
    let node = serve(&db);
    let http = reqwest::Client::new();
    for i in 0..RUNS {
        let response = http
            .post(format!("{}/v1/telemetry", node.url))
            .bearer_auth(&node.ingest)
            .body(run_body(&format!("tamper-{i}"), i))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    // Genesis, the config block recording the compliance policy, the runs.
    let size = RUNS as u64 + 2;
    let note = wait_for_checkpoint(&http, &node.url, size).await;
    assert_eq!(note.size, size);
    let (_, vkey) = get_text(&http, &format!("{}/v1/ledger/public-key", node.url)).await;
    let key = db.data_dir().join("node.vkey");
    std::fs::write(&key, &vkey).unwrap();
    let (_, page) = get_json(&http, &format!("{}/v1/ledger/blocks?limit=1000", node.url)).await;
    let blocks = page["blocks"].as_array().unwrap().clone();
    assert_eq!(blocks.len() as u64, size);
    let (_, note_text) = get_text(&http, &format!("{}/v1/ledger/checkpoint", node.url)).await;
    node.terminate();
    verify_exports(&db, &key, &note_text, size);

    // Clean ledger: OK with the served key and with the key in the data dir.
    assert_verifies(&db, &key, size);
    let out = ledger(&db, "verify", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("signature verified"),
        "{}",
        text(&out)
    );

    // (i) a middle block's phi_qevf.
    let middle = 10;
    let original = read_row(&db, middle).await;
    let phi = original.phi_qevf.expect("a valuation block has phi");
    write_row(
        &db,
        middle,
        &BlockRow {
            phi_qevf: Some(phi + 0.5),
            ..original.clone()
        },
    )
    .await;
    assert_fails_at(&db, &key, middle, "hash mismatch", "changed phi_qevf");
    write_row(&db, middle, &original).await;
    assert_verifies(&db, &key, size);

    // (ii) the genesis block's timestamp (one microsecond later).
    let genesis = read_row(&db, 0).await;
    let mut ts = genesis.timestamp.clone().into_bytes();
    let digit = ts.len() - 2;
    ts[digit] = if ts[digit] == b'9' {
        b'8'
    } else {
        ts[digit] + 1
    };
    write_row(
        &db,
        0,
        &BlockRow {
            timestamp: String::from_utf8(ts).unwrap(),
            ..genesis.clone()
        },
    )
    .await;
    assert_fails_at(&db, &key, 0, "hash mismatch", "changed genesis timestamp");
    write_row(&db, 0, &genesis).await;
    assert_verifies(&db, &key, size);

    // (iii) a block's payload (one value inside the stored JSON).
    let target = 15;
    let original = read_row(&db, target).await;
    let mut payload: Value = serde_json::from_str(original.payload.as_deref().unwrap()).unwrap();
    let value = payload["market_value"].as_f64().unwrap();
    payload["market_value"] = json!(value * 2.0 + 1.0);
    write_row(
        &db,
        target,
        &BlockRow {
            payload: Some(payload.to_string()),
            ..original.clone()
        },
    )
    .await;
    assert_fails_at(&db, &key, target, "hash mismatch", "changed payload");
    write_row(&db, target, &original).await;
    assert_verifies(&db, &key, size);

    // (iv) a block changed and re-hashed correctly: its own hash checks out,
    // the next block's link does not.
    let target = 5;
    let original = read_row(&db, target).await;
    let mut forged = blocks[target as usize].clone();
    let new_phi = original.phi_qevf.unwrap() * 3.0;
    forged["phi_qevf"] = json!(new_phi);
    let forged_hash = Block::from_json(&forged).unwrap().compute_hash().unwrap();
    assert_ne!(forged_hash, original.hash);
    write_row(
        &db,
        target,
        &BlockRow {
            phi_qevf: Some(new_phi),
            hash: forged_hash,
            ..original.clone()
        },
    )
    .await;
    assert_fails_at(
        &db,
        &key,
        target + 1,
        "previous_hash does not match",
        "re-hashed block",
    );
    write_row(&db, target, &original).await;
    assert_verifies(&db, &key, size);

    // (v) a block changed and every later block re-hashed and re-linked: the
    // chain is consistent again; the stored Merkle leaf of the changed block
    // catches it, and with the stored nodes rewritten as well, only the
    // signed Merkle root does.
    let target = 12;
    let originals = {
        let mut rows = Vec::new();
        for index in target..size {
            rows.push(read_row(&db, index).await);
        }
        rows
    };
    let mut previous = blocks[target as usize - 1]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let mut forged_chain: Vec<Block> = blocks[..target as usize]
        .iter()
        .map(|b| Block::from_json(b).unwrap())
        .collect();
    for (offset, original) in originals.iter().enumerate() {
        let index = target as usize + offset;
        let mut forged = blocks[index].clone();
        if offset == 0 {
            forged["phi_qevf"] = json!(original.phi_qevf.unwrap() + 1.0);
        }
        forged["previous_hash"] = json!(previous);
        let hash = Block::from_json(&forged).unwrap().compute_hash().unwrap();
        forged["hash"] = json!(hash);
        forged_chain.push(Block::from_json(&forged).unwrap());
        write_row(
            &db,
            index as u64,
            &BlockRow {
                phi_qevf: forged["phi_qevf"].as_f64(),
                previous_hash: previous.clone(),
                hash: hash.clone(),
                ..original.clone()
            },
        )
        .await;
        previous = hash;
    }
    assert_fails_at(
        &db,
        &key,
        target,
        "stored Merkle node level 0 index 12",
        "re-chained suffix",
    );
    write_nodes(&db, &forged_chain).await;
    assert_fails_at(
        &db,
        &key,
        size - 1,
        "does not match the signed checkpoint",
        "re-chained suffix with rewritten Merkle nodes",
    );
    for (offset, original) in originals.iter().enumerate() {
        write_row(&db, target + offset as u64, original).await;
    }
    let original_chain: Vec<Block> = blocks
        .iter()
        .map(|b| Block::from_json(b).unwrap())
        .collect();
    write_nodes(&db, &original_chain).await;
    assert_verifies(&db, &key, size);

    // (v-b) one interior Merkle node changed (proofs through it would
    // lie): named with the blocks it covers.
    let node_key: i64 = (2i64 << 56) | 1; // level 2, index 1: blocks 4..=7
    on_db!(&db, |c| sqlx::query(
        "UPDATE merkle_nodes SET hash = $1 WHERE node = $2"
    )
    .bind(vec![0u8; 32])
    .bind(node_key)
    .execute(&mut c)
    .await
    .map(|_| ()));
    assert_fails_at(
        &db,
        &key,
        7,
        "stored Merkle node level 2 index 1 (blocks 4..=7) differs",
        "interior node",
    );
    write_nodes(&db, &original_chain).await;
    assert_verifies(&db, &key, size);

    // (vi) a payload that is no longer JSON: reported at its block too.
    let target = 3;
    let original = read_row(&db, target).await;
    write_row(
        &db,
        target,
        &BlockRow {
            payload: Some("{\"market_value\": ".into()),
            ..original.clone()
        },
    )
    .await;
    assert_fails_at(&db, &key, target, "payload", "payload not JSON");
    write_row(&db, target, &original).await;
    assert_verifies(&db, &key, size);

    // proof --index N, checked against the signed root.
    for index in [0u64, 7, size - 1] {
        let out = ledger(&db, "proof", &["--index".into(), index.to_string().into()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let proof: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("proof output is not JSON ({e}): {}", text(&out)));
        assert_eq!(proof["index"], json!(index));
        assert_eq!(proof["tree_size"], json!(size));
        assert_eq!(
            proof["root_matches_signed_checkpoint"],
            json!(true),
            "{proof}"
        );
        let decode =
            |v: &Value| -> Hash { B64.decode(v.as_str().unwrap()).unwrap().try_into().unwrap() };
        assert_eq!(decode(&proof["root_hash"]), note.root);
        let leaf = decode(&proof["leaf_hash"]);
        assert_eq!(leaf, leaf_hash(&blocks[index as usize]));
        let hashes: Vec<Hash> = proof["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(decode)
            .collect();
        verify_inclusion(index, size, &leaf, &hashes, &note.root).unwrap();
    }
    let out = ledger(&db, "proof", &["--index".into(), size.to_string().into()]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "index beyond the tree: {}",
        text(&out)
    );

    // export --format grafana --output F: one flat row per block.
    let file = db.data_dir().join("grafana.json");
    let out = ledger(
        &db,
        "export",
        &[
            "--format".into(),
            "grafana".into(),
            "--output".into(),
            file.clone().into(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let rows = rows.as_array().expect("a JSON array");
    assert_eq!(rows.len() as u64, size, "one row per block");
    for (i, (row, block)) in rows.iter().zip(&blocks).enumerate() {
        assert_eq!(row["index"], json!(i));
        assert_eq!(row["hash"], block["hash"]);
        assert!(
            row["time"].as_i64().is_some_and(|t| t > 1_600_000_000_000),
            "{row}"
        );
        assert!(row
            .as_object()
            .unwrap()
            .values()
            .all(|v| !v.is_object() && !v.is_array()));
    }

    // export (blocks) to stdout: the blocks the node served.
    let out = ledger(&db, "export", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(exported, Value::Array(blocks));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_detects_tampering_sqlite() {
    verify_detects_tampering(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_detects_tampering_postgres() {
    verify_detects_tampering(Backend::Postgres).await;
}

// ---- crash consistency -----------------------------------------------------------------

/// Acknowledged runs needed before the kill.
const ACKED_BEFORE_KILL: usize = 500;

async fn sigkill_under_load_keeps_every_acknowledged_block(backend: Backend) {
    let db = TestDb::new(backend).await;
    let node = serve(&db);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let unexpected = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..16 {
        let (http, url, token) = (http.clone(), node.url.clone(), node.ingest.clone());
        let (acked, unexpected, stop) = (acknowledged.clone(), unexpected.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("crash-{c}-{i}");
                let sent = http
                    .post(format!("{url}/v1/telemetry"))
                    .bearer_auth(&token)
                    .body(run_body(&id, i))
                    .send()
                    .await;
                i += 1;
                match sent {
                    Ok(r) if r.status() == 201 => acked.lock().unwrap().push(id),
                    // Backpressure is allowed; try again with a new run.
                    Ok(r) if r.status() == 503 || r.status() == 429 => {}
                    Ok(r) => {
                        unexpected
                            .lock()
                            .unwrap()
                            .push(format!("{id}: {}", r.status()));
                        break;
                    }
                    Err(_) => break, // the node is gone
                }
            }
        }));
    }
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < ACKED_BEFORE_KILL {
        assert!(
            started.elapsed() < DEADLINE,
            "only {} runs acknowledged in {DEADLINE:?}",
            acknowledged.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.kill();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let unexpected = unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "unexpected answers under load: {unexpected:?}"
    );
    let acked = acknowledged.lock().unwrap().clone();
    assert!(acked.len() >= ACKED_BEFORE_KILL);

    // Restart on the same data: every acknowledged run has its block.
    let node = serve(&db);
    let summary = get_json(&http, &format!("{}/v1/ledger", node.url)).await.1;
    let chain_length = summary["chain_length"].as_u64().unwrap();
    let stats = get_json(&http, &format!("{}/v1/valuations/stats", node.url))
        .await
        .1;
    let stored = stats["count"].as_u64().unwrap();
    assert_eq!(
        chain_length,
        stored + 2,
        "one block per stored run plus genesis and the policy's config block (runs and blocks commit together)"
    );
    assert!(stored >= acked.len() as u64);
    eprintln!(
        "{backend:?}: {} runs acknowledged before SIGKILL, {stored} stored after restart",
        acked.len()
    );

    let mut pages = Vec::new();
    while (pages.len() as u64) < chain_length {
        let (status, page) = get_json(
            &http,
            &format!(
                "{}/v1/ledger/blocks?from={}&limit=1000",
                node.url,
                pages.len()
            ),
        )
        .await;
        assert_eq!(status, 200);
        pages.extend(page["blocks"].as_array().unwrap().clone());
    }
    let mut seen = HashSet::new();
    for (n, id) in acked.iter().enumerate() {
        let (status, run) = get_json(&http, &format!("{}/v1/valuations/{id}", node.url)).await;
        assert_eq!(status, 200, "acknowledged run {id} was lost");
        let index = run["block_index"]
            .as_u64()
            .unwrap_or_else(|| panic!("run {id} has no block_index: {run}"));
        assert!(seen.insert(index), "block {index} is claimed by two runs");
        // Every 10th through the single-block endpoint, all through the pages.
        let block = if n % 10 == 0 {
            let (status, block) =
                get_json(&http, &format!("{}/v1/ledger/blocks/{index}", node.url)).await;
            assert_eq!(status, 200);
            assert_eq!(block, pages[index as usize]);
            block
        } else {
            pages[index as usize].clone()
        };
        assert_eq!(block["run_id"], json!(id), "block {index}");
        assert_eq!(block["kind"], json!("valuation"));
        assert_eq!(block["phi_qevf"].as_f64(), run["phi_qevf"].as_f64());
    }
    wait_for_checkpoint(&http, &node.url, chain_length).await;
    let (_, vkey) = get_text(&http, &format!("{}/v1/ledger/public-key", node.url)).await;
    let key: PathBuf = db.data_dir().join("node.vkey");
    std::fs::write(&key, vkey).unwrap();
    let online = get_json(&http, &format!("{}/v1/ledger/verify", node.url))
        .await
        .1;
    assert_eq!(online["ok"], json!(true), "{online}");
    node.terminate();

    assert_verifies(&db, &key, chain_length);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_keeps_every_acknowledged_block_sqlite() {
    sigkill_under_load_keeps_every_acknowledged_block(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_keeps_every_acknowledged_block_postgres() {
    sigkill_under_load_keeps_every_acknowledged_block(Backend::Postgres).await;
}

/// `ledger verify --tsa-roots` checks every checkpoint's RFC 3161 token and
/// fails, naming the checkpoint, when one no longer verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_checkpoint_timestamps() {
    let db = TestDb::new(Backend::Sqlite).await;
    let node = serve(&db);
    let http = reqwest::Client::new();
    for i in 0..5 {
        let response = http
            .post(format!("{}/v1/telemetry", node.url))
            .bearer_auth(&node.ingest)
            .body(run_body(&format!("stamp-{i}"), i))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let note = wait_for_checkpoint(&http, &node.url, 6).await;
    let started = Instant::now();
    loop {
        let url = format!(
            "{}/v1/ledger/checkpoint/timestamp?tree_size={}",
            node.url, note.size
        );
        let (status, _) = get_text(&http, &url).await;
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no token for checkpoint {}",
            note.size
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    node.terminate();

    let roots: OsString = db.data_dir().join("tsa/root.pem").into();
    let out = ledger(&db, "verify", &["--tsa-roots".into(), roots.clone()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout.contains("tokens verified"), "{}", text(&out));
    assert!(!stdout.contains(" 0 tokens verified"), "{}", text(&out));

    // One byte of a stored token changed: verification fails on that checkpoint.
    let mut conn = sqlx::SqliteConnection::connect(&db.sqlite_url())
        .await
        .unwrap();
    let token: Vec<u8> =
        sqlx::query_scalar("SELECT tsa_token FROM checkpoints WHERE tree_size = $1")
            .bind(note.size as i64)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let mut tampered = token.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    sqlx::query("UPDATE checkpoints SET tsa_token = $1 WHERE tree_size = $2")
        .bind(&tampered)
        .bind(note.size as i64)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let out = ledger(&db, "verify", &["--tsa-roots".into(), roots]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("timestamp of checkpoint {} FAILED", note.size)),
        "{}",
        text(&out)
    );
}

#[test]
fn tsa_init_creates_a_private_key_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let init = || {
        qunimbus()
            .args(["tsa", "init", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = init();
    assert!(out.status.success(), "{}", text(&out));
    let key = dir.path().join("tsa/tsa.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let chain = std::fs::read_to_string(dir.path().join("tsa/chain.pem")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "{chain}");
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "extendedKeyUsage", "-in"])
        .arg(dir.path().join("tsa/chain.pem"))
        .output()
        .expect("openssl is required for this test");
    let ext = String::from_utf8_lossy(&out.stdout);
    assert!(
        ext.contains("critical") && ext.contains("Time Stamping"),
        "{ext}"
    );
    let before = std::fs::read(&key).unwrap();
    let again = init();
    assert!(!again.status.success(), "a second init must refuse");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        text(&again)
    );
    assert_eq!(std::fs::read(&key).unwrap(), before, "the key is untouched");
}
