//! The two database backends behind one interface. SQL is written once with
//! `$N` placeholders (understood by both SQLite and PostgreSQL) and the
//! `dispatch!` macro type-checks the same code against each driver.

use crate::StorageError;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbTarget {
    /// An SQLite file (the embedded default).
    Sqlite(PathBuf),
    /// A PostgreSQL URL, `postgres://…`.
    Postgres(String),
}

impl DbTarget {
    /// A short description without credentials, for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite:{}", path.display()),
            Self::Postgres(url) => match PgConnectOptions::from_str(url) {
                Ok(o) => format!(
                    "postgres://{}:{}/{}",
                    o.get_host(),
                    o.get_port(),
                    o.get_database().unwrap_or("")
                ),
                Err(_) => "postgres (unparsable URL)".into(),
            },
        }
    }
}

/// Runs `$body` with `$conn` bound to the backend-specific value.
macro_rules! dispatch {
    ($value:expr, $conn:ident => $body:expr) => {
        match $value {
            $crate::backend::Either::Sqlite($conn) => $body,
            $crate::backend::Either::Postgres($conn) => $body,
        }
    };
}
pub(crate) use dispatch;

/// One value per backend.
pub(crate) enum Either<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// The read pool.
pub(crate) type ReadPool = Either<SqlitePool, PgPool>;
/// The writer's dedicated connection.
pub(crate) type WriteConn = Either<SqliteConnection, PgConnection>;

impl ReadPool {
    pub(crate) async fn close(&self) {
        dispatch!(self, pool => pool.close().await)
    }
}

fn sqlite_options(path: &std::path::Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        // Statement journals of multi-row inserts stay in memory, not in temp files.
        .pragma("temp_store", "memory")
        // 64 MiB page cache per connection.
        .pragma("cache_size", "-65536")
        // Checkpoint the WAL every ~40 MiB instead of every 4 MiB: fewer
        // copy-and-fsync pauses inside group commits.
        .pragma("wal_autocheckpoint", "10000")
        .log_statements(tracing::log::LevelFilter::Trace)
}

fn pg_options(url: &str) -> Result<PgConnectOptions, StorageError> {
    Ok(PgConnectOptions::from_str(url)?.log_statements(tracing::log::LevelFilter::Trace))
}

/// Opens the writer connection (creating the database if needed) and applies migrations.
pub(crate) async fn open_writer(target: &DbTarget) -> Result<WriteConn, StorageError> {
    Ok(match target {
        DbTarget::Sqlite(path) => {
            let mut conn = sqlite_options(path)
                .create_if_missing(true)
                .connect()
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;
            Either::Sqlite(conn)
        }
        DbTarget::Postgres(url) => {
            let mut conn = pg_options(url)?.connect().await?;
            sqlx::migrate!("./migrations/postgres")
                .run(&mut conn)
                .await?;
            Either::Postgres(conn)
        }
    })
}

/// Opens a read pool. `read_only` SQLite pools refuse writes.
pub(crate) async fn open_readers(
    target: &DbTarget,
    connections: u32,
) -> Result<ReadPool, StorageError> {
    Ok(match target {
        DbTarget::Sqlite(path) => {
            if !path.exists() {
                return Err(StorageError::Missing(path.display().to_string()));
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(connections.max(1))
                .connect_with(sqlite_options(path).read_only(true))
                .await?;
            Either::Sqlite(pool)
        }
        DbTarget::Postgres(url) => {
            let pool = PgPoolOptions::new()
                .max_connections(connections.max(1))
                .connect_with(pg_options(url)?)
                .await?;
            Either::Postgres(pool)
        }
    })
}

impl WriteConn {
    pub(crate) async fn close(self) -> Result<(), StorageError> {
        dispatch!(self, conn => conn.close().await)?;
        Ok(())
    }
}

/// Starts the writer's transaction: `BEGIN IMMEDIATE` on SQLite (take the
/// write lock up front), plain `BEGIN` on PostgreSQL.
pub(crate) trait BeginWrite: Connection {
    fn begin_write(
        &mut self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'_, Self::Database>, sqlx::Error>>
           + Send
           + '_;
}

impl BeginWrite for SqliteConnection {
    fn begin_write(
        &mut self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'_, Self::Database>, sqlx::Error>>
           + Send
           + '_ {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgConnection {
    fn begin_write(
        &mut self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'_, Self::Database>, sqlx::Error>>
           + Send
           + '_ {
        self.begin()
    }
}
