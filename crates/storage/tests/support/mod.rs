//! Test databases: a temporary SQLite file and a fresh PostgreSQL schema.
//! PostgreSQL comes from `PG_TEST_URL` (default the local server's `test`
//! database); a test that cannot reach it fails, it never skips.

#![allow(dead_code)]

use qunimbus_ledger::block::{Block, DEFAULT_FRAMEWORKS};
use qunimbus_storage::DbTarget;
use sqlx::Connection;

/// The PostgreSQL server used by tests.
pub fn pg_url() -> String {
    std::env::var("PG_TEST_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database for one test; drop the value to forget it (call `cleanup` to drop a PG schema).
pub struct TestDb {
    pub name: &'static str,
    pub target: DbTarget,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            name: "sqlite",
            target: DbTarget::Sqlite(dir.path().join("q.db")),
            schema: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> Self {
        let schema = format!("t_{}_{}", std::process::id(), rand_suffix());
        let mut conn = sqlx::PgConnection::connect(&pg_url())
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {} is required for this test: {e}", pg_url())
            });
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let sep = if pg_url().contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}options=-c%20search_path%3D{schema}", pg_url());
        Self {
            name: "postgres",
            target: DbTarget::Postgres(url),
            schema: Some(schema),
            _dir: None,
        }
    }

    /// Both backends.
    pub async fn both() -> Vec<Self> {
        vec![Self::sqlite().await, Self::postgres().await]
    }

    /// Runs raw SQL against the database (for tampering tests).
    pub async fn execute(&self, sql: &str) {
        match &self.target {
            DbTarget::Sqlite(path) => {
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
                        .await
                        .unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            DbTarget::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }

    /// Drops the PostgreSQL schema.
    pub async fn cleanup(self) {
        if let Some(schema) = &self.schema {
            let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{nanos}_{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A genesis block with the default frameworks.
pub fn genesis() -> Block {
    Block::genesis("2026-11-21T00:00:00.000000Z", &DEFAULT_FRAMEWORKS).unwrap()
}
