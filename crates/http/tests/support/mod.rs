//! Shared helpers of the ledger tests: a node on SQLite or on a fresh
//! PostgreSQL schema, HTTP helpers, checkpoint polling, and checks that the
//! external tools the interop tests need are installed. A missing service or
//! tool fails the test with a message; nothing is skipped.

#![allow(dead_code, unused_macros)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use qunimbus_http::RunningNode;
use qunimbus_ledger::merkle::Hash;
use qunimbus_node::config::Config;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::Connection;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long any poll in these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The reference run of SPEC §3: phi_qevf 212.71929824561406.
pub const REFERENCE_PHI: f64 = 212.71929824561406;

/// The PostgreSQL server used by tests (`PG_TEST_URL`).
pub fn pg_url() -> String {
    std::env::var("PG_TEST_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh PostgreSQL schema, dropped (with everything in it) on drop.
pub struct PgSchema {
    /// A URL whose connections use the schema as `search_path`.
    pub url: String,
    schema: String,
}

impl PgSchema {
    /// Creates schema `t_<pid>_<nanos>_<n>`; panics with a clear message when
    /// PostgreSQL cannot be reached.
    pub async fn create() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!(
            "t_{}_{nanos}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
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
            .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
        conn.close().await.unwrap();
        let sep = if pg_url().contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}options=-c%20search_path%3D{schema}", pg_url());
        Self { url, schema }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        // Own thread and runtime: drop may run inside (or outside) a tokio runtime.
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
            eprintln!("warning: could not drop test schema {}: {e}", self.schema);
        }
    }
}

/// Where a test node keeps its ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The SQLite file in the data dir.
    Sqlite,
    /// A fresh schema on the PostgreSQL test server.
    Postgres,
}

/// An in-process node with a checkpoint interval of 50 ms.
pub struct TestNode {
    node: Option<RunningNode>,
    pub http: reqwest::Client,
    pub backend: Backend,
    base: String,
    admin: String,
    ingest: String,
    dir: tempfile::TempDir,
    config: Config,
    // Dropped after the node is shut down (field order).
    pg: Option<PgSchema>,
}

impl TestNode {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Like `start`, with `adjust` applied to the configuration last.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgSchema::create().await),
        };
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            database_url: pg.as_ref().map(|p| p.url.clone()),
            ..Config::default()
        };
        config.ledger.checkpoint_interval_ms = 50;
        adjust(&mut config);
        let node = RunningNode::start(&config)
            .await
            .unwrap_or_else(|e| panic!("node on {backend:?} did not start: {e}"));
        Self {
            config,
            base: node.url(),
            admin: node.credentials().admin_token().to_string(),
            ingest: node.credentials().ingest_token().to_string(),
            node: Some(node),
            http: reqwest::Client::new(),
            backend,
            dir,
            pg,
        }
    }

    /// Graceful stop, then the PostgreSQL schema (if any) is dropped.
    pub async fn stop(mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await.unwrap();
        }
    }

    /// Graceful stop of the node only: the data dir and database stay
    /// (until `self` is dropped), for tests that edit them offline.
    pub async fn stop_only(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await.unwrap();
        }
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Graceful stop, then a start on the same data dir and database with
    /// `adjust` applied to the configuration.
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut Config)) {
        adjust(&mut self.config);
        self.restart().await;
    }

    /// Graceful stop, then a start on the same data dir and database.
    pub async fn restart(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await.unwrap();
        }
        let node = RunningNode::start(&self.config)
            .await
            .unwrap_or_else(|e| panic!("node did not restart: {e}"));
        self.base = node.url();
        self.node = Some(node);
    }

    /// Sends `body` with `method`; returns the status and the JSON answer.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path} ({status}) is not JSON ({e}): {text}"));
        (status, value)
    }

    /// The stored `runs.erasure_salt` of the run stored as `run_id`, read
    /// from the database directly (`None` if the run or salt is absent).
    pub async fn stored_salt(&self, run_id: &str) -> Option<String> {
        const SQL: &str = "SELECT erasure_salt FROM runs WHERE run_id = $1";
        match &self.pg {
            Some(pg) => {
                let mut conn = sqlx::PgConnection::connect(&pg.url).await.unwrap();
                sqlx::query_scalar::<_, Option<String>>(SQL)
                    .bind(run_id)
                    .fetch_optional(&mut conn)
                    .await
                    .unwrap()
                    .flatten()
            }
            None => {
                let url = format!("sqlite:{}", self.dir.path().join("qunimbus.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query_scalar::<_, Option<String>>(SQL)
                    .bind(run_id)
                    .fetch_optional(&mut conn)
                    .await
                    .unwrap()
                    .flatten()
            }
        }
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn admin_token(&self) -> &str {
        &self.admin
    }

    pub fn ingest_token(&self) -> &str {
        &self.ingest
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path} ({status}) is not JSON ({e}): {text}"));
        (status, value)
    }

    /// GET that must answer 200 with JSON.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub async fn get_bytes(&self, path: &str) -> (StatusCode, Vec<u8>) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        (status, response.bytes().await.unwrap().to_vec())
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, token, body).await
    }

    /// Posts one run; returns the status and the valuation.
    pub async fn ingest(&self, run: &Value) -> (StatusCode, Value) {
        self.post("/v1/telemetry", Some(&self.ingest), &run.to_string())
            .await
    }

    /// Posts one new run and expects 201.
    pub async fn ingest_new(&self, run: &Value) -> Value {
        let (status, body) = self.ingest(run).await;
        assert_eq!(status, StatusCode::CREATED, "{run} -> {body}");
        body
    }

    /// Posts a batch of new runs and expects 201.
    pub async fn ingest_batch(&self, runs: &[Value]) -> Value {
        let (status, body) = self
            .post(
                "/v1/telemetry/batch",
                Some(&self.ingest),
                &Value::Array(runs.to_vec()).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["accepted"].as_u64(), Some(runs.len() as u64));
        body
    }

    pub async fn chain_length(&self) -> u64 {
        self.get_ok("/v1/ledger").await["chain_length"]
            .as_u64()
            .unwrap()
    }

    /// Every block, in index order, through `GET /v1/ledger/blocks` pages.
    pub async fn all_blocks(&self) -> Vec<Value> {
        let mut blocks = Vec::new();
        loop {
            let page = self
                .get_ok(&format!(
                    "/v1/ledger/blocks?from={}&limit=1000",
                    blocks.len()
                ))
                .await;
            let items = page["blocks"].as_array().unwrap().clone();
            if items.is_empty() {
                return blocks;
            }
            blocks.extend(items);
        }
    }

    /// Polls `GET /v1/ledger/checkpoint` until a signed checkpoint covers at
    /// least `size` blocks.
    pub async fn wait_for_checkpoint(&self, size: u64) -> Note {
        let started = Instant::now();
        loop {
            let (status, text) = self.get_text("/v1/ledger/checkpoint").await;
            if status == StatusCode::OK {
                let note = Note::parse(&text);
                if note.size >= size {
                    return note;
                }
            } else {
                assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no checkpoint covering {size} blocks within {DEADLINE:?} (last: {status} {text})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Appends `count` valuation blocks (one batch) and waits for a
    /// checkpoint covering the whole ledger; returns that checkpoint.
    pub async fn grow(&self, prefix: &str, count: usize) -> Note {
        let runs: Vec<Value> = (0..count)
            .map(|i| varied_run(&format!("{prefix}-{i}"), i))
            .collect();
        self.ingest_batch(&runs).await;
        let length = self.chain_length().await;
        let note = self.wait_for_checkpoint(length).await;
        assert_eq!(note.size, length, "nothing else appends in this test");
        note
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if self.node.is_some() && !std::thread::panicking() {
            eprintln!(
                "warning: test node in {} dropped without stop()",
                self.dir.path().display()
            );
        }
    }
}

/// A signed checkpoint note, split into its parts.
#[derive(Debug, Clone)]
pub struct Note {
    /// The whole note as served.
    pub text: String,
    /// The signed body: origin, size and root lines, each ending in "\n".
    pub body: String,
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Signature lines (without the trailing newline).
    pub signatures: Vec<String>,
}

impl Note {
    /// Parses a C2SP signed note holding a tlog checkpoint, by hand (not with
    /// the product's checkpoint module).
    pub fn parse(text: &str) -> Self {
        let (body, sigs) = text
            .split_once("\n\n")
            .unwrap_or_else(|| panic!("no blank line in the note {text:?}"));
        let body = format!("{body}\n");
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 3, "checkpoint body has 3 lines: {body:?}");
        let root: Hash = B64
            .decode(lines[2])
            .unwrap()
            .try_into()
            .unwrap_or_else(|_| panic!("root is not 32 bytes: {body:?}"));
        assert!(sigs.ends_with('\n'), "{text:?}");
        let signatures: Vec<String> = sigs.lines().map(str::to_string).collect();
        assert!(!signatures.is_empty(), "{text:?}");
        for s in &signatures {
            assert!(s.starts_with("\u{2014} "), "signature line {s:?}");
        }
        Self {
            text: text.to_string(),
            origin: lines[0].to_string(),
            size: lines[1].parse().unwrap(),
            root,
            body,
            signatures,
        }
    }
}

/// SHA-256 with the `sha2` crate.
pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// RFC 6962 leaf hash: SHA-256(0x00 ‖ entry).
pub fn rfc6962_leaf(entry: &[u8]) -> Hash {
    let mut input = Vec::with_capacity(entry.len() + 1);
    input.push(0u8);
    input.extend_from_slice(entry);
    sha256(&input)
}

/// RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn rfc6962_node(left: &Hash, right: &Hash) -> Hash {
    let mut input = Vec::with_capacity(65);
    input.push(1u8);
    input.extend_from_slice(left);
    input.extend_from_slice(right);
    sha256(&input)
}

/// RFC 6962 Merkle tree hash of `leaves` (leaf hashes), recursively.
pub fn rfc6962_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => sha256(b""),
        1 => leaves[0],
        n => {
            // The largest power of two smaller than n.
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            rfc6962_node(&rfc6962_root(&leaves[..k]), &rfc6962_root(&leaves[k..]))
        }
    }
}

pub fn b64_hash(text: &Value) -> Hash {
    B64.decode(
        text.as_str()
            .unwrap_or_else(|| panic!("{text} is not a string")),
    )
    .unwrap()
    .try_into()
    .unwrap()
}

pub fn b64_hashes(list: &Value) -> Vec<Hash> {
    list.as_array().unwrap().iter().map(b64_hash).collect()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A valid run; `i` varies its numbers so blocks differ.
pub fn varied_run(id: &str, i: usize) -> Value {
    let regions = ["Americas", "EU", "MENA", "APAC", "Polar", "Orbit"];
    json!({
        "run_id": id,
        "region": regions[i % regions.len()],
        "eta_ent": 0.9 + (i % 10) as f64 / 100.0,
        "coherence_variance": 0.001 * (i % 19) as f64,
        "runtime_hours": 1.5 + i as f64,
        "eph_delivered": 10.0 + (i % 7) as f64,
    })
}

/// The reference run of SPEC §3 under `id`.
pub fn reference_run(id: &str) -> Value {
    json!({"run_id": id, "region": "Americas", "eta_ent": 0.97, "coherence_variance": 0.015, "runtime_hours": 100, "eph_delivered": 1000})
}

/// Fails the test unless `python3` with the `rfc8785` package is installed.
pub fn require_python_rfc8785() {
    let out = Command::new("python3")
        .args(["-c", "import rfc8785"])
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is required for the RFC 8785 interop test and could not be run: {e}")
        });
    assert!(
        out.status.success(),
        "the Python package `rfc8785` is required for the RFC 8785 interop test \
         (install it with `python3 -m pip install rfc8785`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fails the test unless the `openssl` command is installed.
pub fn require_openssl() {
    let out = Command::new("openssl")
        .arg("version")
        .output()
        .unwrap_or_else(|e| {
            panic!("the `openssl` command is required for the Ed25519 interop test and could not be run: {e}")
        });
    assert!(
        out.status.success(),
        "`openssl version` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Declares one `#[tokio::test]` per backend for an `async fn(Backend)`.
macro_rules! on_both_backends {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(crate::support::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(crate::support::Backend::Postgres).await;
            }
        }
    };
}
