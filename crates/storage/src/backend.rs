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
#[derive(Clone)]
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

/// The writer's options: WAL (set once, persistent in the file) on top of
/// the readers'.
fn sqlite_writer_options(path: &std::path::Path) -> SqliteConnectOptions {
    sqlite_options(path).journal_mode(SqliteJournalMode::Wal)
}

/// Options every connection shares. Readers leave the journal mode as the
/// file has it (a read-only connection cannot change it; a backup copy is
/// in rollback mode).
fn sqlite_options(path: &std::path::Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
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

/// How long opening waits for another writer's lock to go (a node that was
/// just killed releases it when the OS or PostgreSQL notices).
const WRITER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Proof that this process is the database's only writer: for SQLite an
/// exclusive lock on `<file>.writer-lock`, for PostgreSQL a session advisory
/// lock held by the writer connection itself.
pub(crate) struct WriterLock {
    _file: Option<std::fs::File>,
}

/// The writer's connection with its single-writer lock.
pub(crate) struct LockedWriter {
    /// The connection.
    pub conn: WriteConn,
    /// Released when dropped (PostgreSQL: when the connection closes).
    pub lock: WriterLock,
}

fn in_use(what: &str) -> StorageError {
    StorageError::InUse(format!(
        "another QuNimbus node is writing to {what}; every node needs its own database \
         (its ledger, tree edge and signing key are its own)"
    ))
}

/// Takes the exclusive lock file beside a SQLite database.
async fn lock_sqlite(path: &std::path::Path) -> Result<WriterLock, StorageError> {
    let lock_path = std::path::PathBuf::from(format!("{}.writer-lock", path.display()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StorageError::InUse(format!("cannot open {}: {e}", lock_path.display())))?;
    let deadline = tokio::time::Instant::now() + WRITER_LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(WriterLock { _file: Some(file) }),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(in_use(&path.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StorageError::InUse(format!(
                    "cannot lock {}: {e}",
                    lock_path.display()
                )))
            }
        }
    }
}

/// Takes the advisory lock of the connection's schema.
async fn lock_postgres(conn: &mut PgConnection) -> Result<WriterLock, StorageError> {
    let deadline = tokio::time::Instant::now() + WRITER_LOCK_WAIT;
    loop {
        let (locked, schema): (bool, String) = sqlx::query_as(
            "SELECT pg_try_advisory_lock(hashtext('qunimbus-writer:' || current_schema())::bigint), current_schema()::text",
        )
        .fetch_one(&mut *conn)
        .await?;
        if locked {
            return Ok(WriterLock { _file: None });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(in_use(&format!("PostgreSQL schema {schema:?}")));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Creates the SQLite file readable by its owner only (0600), or narrows an
/// existing file to that: it holds the erasure salts of personal-class runs.
/// SQLite gives its `-wal` and `-shm` files the database file's mode.
fn make_private(path: &std::path::Path) -> Result<(), StorageError> {
    let failed = |source| StorageError::File {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path).map_err(failed)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(failed)?;
    }
    #[cfg(not(unix))]
    options.open(path).map_err(failed)?;
    Ok(())
}

/// Opens the writer connection (creating the database if needed), takes the
/// single-writer lock, and applies migrations.
pub(crate) async fn open_writer(target: &DbTarget) -> Result<LockedWriter, StorageError> {
    let (conn, lock) = match target {
        DbTarget::Sqlite(path) => {
            let lock = lock_sqlite(path).await?;
            make_private(path)?;
            let mut conn = sqlite_writer_options(path)
                .create_if_missing(true)
                .connect()
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;
            (Either::Sqlite(conn), lock)
        }
        DbTarget::Postgres(url) => {
            let mut conn = pg_options(url)?.connect().await?;
            let lock = lock_postgres(&mut conn).await?;
            sqlx::migrate!("./migrations/postgres")
                .run(&mut conn)
                .await?;
            (Either::Postgres(conn), lock)
        }
    };
    Ok(LockedWriter { conn, lock })
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
