//! The database: one query code path over SQLite and PostgreSQL (Diesel's
//! `MultiConnection`), an r2d2 pool, migrations embedded in the binary, and the write
//! transaction every grant runs in.
//!
//! Lookups by a unique key use `get_result`, not `first`: `first` appends `LIMIT ?`, and
//! SQLite re-prepares (parses and plans again) a statement whose LIMIT is a bound parameter
//! every time it is bound, so a cached `first` costs as much as an uncached query. Hot-path
//! UPDATEs go through `statements`, since Diesel does not keep its UPDATEs prepared.

pub mod applications;
pub mod backup;
pub mod checkpoint;
pub mod device_grants;
pub mod grants;
pub mod models;
pub mod schema;
pub mod secrets;
pub mod signing_keys;
mod statements;
pub mod tokens;
pub mod users;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryResult};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// Migrations for each backend, compiled into the binary.
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// A connection to either backend; queries are written once against this type.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL: production, many replicas.
    Pg(PgConnection),
    /// SQLite: the embedded default.
    Sqlite(SqliteConnection),
}

/// The pool every request borrows from.
pub type DbPool = Pool<DbManager>;
/// A borrowed connection.
pub type PooledDb = PooledConnection<DbManager>;

/// A connection from `pool`, counted in `doorward_db_pool_waiting` while it is awaited.
pub fn checkout(pool: &DbPool) -> Result<PooledDb, r2d2::PoolError> {
    let waiting = &crate::metrics::METRICS.pool_waiting;
    waiting.inc();
    let conn = pool.get();
    waiting.dec();
    conn
}

/// Which database a `DATABASE_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A file path (created if missing).
    Sqlite(String),
    /// A libpq URL.
    Postgres(String),
}

/// A `DATABASE_URL` that names no database we know how to open.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseUrlError {
    /// Neither `sqlite://` nor `postgres://`.
    #[error(
        "DATABASE_URL must start with sqlite:// or postgres:// (got a URL starting with {0:?})"
    )]
    UnknownScheme(String),
    /// `sqlite://` with nothing after it.
    #[error("DATABASE_URL sqlite:// needs a file path, for example sqlite://./data/doorward.db")]
    EmptySqlitePath,
}

impl DatabaseTarget {
    /// Reads a `DATABASE_URL`. Diesel's own multi-connection parsing only says "Invalid
    /// connection url", so the scheme is checked here to give the operator a real error.
    pub fn parse(url: &str) -> Result<Self, DatabaseUrlError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(DatabaseUrlError::EmptySqlitePath);
            }
            return Ok(Self::Sqlite(path.to_owned()));
        }
        let scheme: String = url.chars().take_while(|c| *c != ':').take(16).collect();
        Err(DatabaseUrlError::UnknownScheme(scheme))
    }
}

/// Opens connections of the backend the URL names (r2d2's connection manager), each
/// counting its statements into the pool's `StatementCount`.
#[derive(Debug, Clone)]
pub struct DbManager {
    target: DatabaseTarget,
    statements: StatementCount,
}

impl ManageConnection for DbManager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        let mut conn = match &self.target {
            DatabaseTarget::Postgres(url) => {
                let mut pg = PgConnection::establish(url).map_err(r2d2::Error::ConnectionError)?;
                pg.set_instrumentation(StatementCounter(self.statements.clone()));
                DbConnection::Pg(pg)
            }
            DatabaseTarget::Sqlite(path) => {
                let mut sqlite =
                    SqliteConnection::establish(path).map_err(r2d2::Error::ConnectionError)?;
                sqlite.set_instrumentation(StatementCounter(self.statements.clone()));
                DbConnection::Sqlite(sqlite)
            }
        };
        if let DbConnection::Sqlite(sqlite) = &mut conn {
            // busy_timeout queues writers instead of failing them; NORMAL is durable across
            // process crashes in WAL mode (set once in `connect_and_migrate`). An 8 MiB page
            // cache per connection (SQLite's default is 2 MiB) rather than mmap: as fast for
            // the token path, and the memory stays bounded as the file grows. Temporary
            // files in memory: the writer's batches put each grant in a savepoint, whose
            // statement journal would otherwise be a file created and deleted per batch.
            // WAL checkpoints run mostly beside the writer, not in its commits (`checkpoint`).
            sqlite
                .batch_execute(&format!(
                    "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA cache_size = -8192; \
                     PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = {};",
                    checkpoint::INLINE_FRAMES
                ))
                .map_err(r2d2::Error::QueryError)?;
        }
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        <DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

/// Errors opening the database.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// Bad URL.
    #[error(transparent)]
    Url(#[from] DatabaseUrlError),
    /// Could not connect or build the pool.
    #[error("could not open the database: {0}")]
    Pool(#[from] r2d2::PoolError),
    /// PostgreSQL refused the connection.
    #[error("could not connect to PostgreSQL: {0}")]
    Connect(String),
    /// A migration failed.
    #[error("could not run the database migrations: {0}")]
    Migration(String),
    /// The SQLite file's folder could not be created.
    #[error("could not create the database folder: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens a pool on `url` and brings the schema up to date.
pub fn connect_and_migrate(
    url: &str,
    pool_size: u32,
    connection_timeout: Duration,
) -> Result<DbPool, DbSetupError> {
    connect_counted(
        url,
        pool_size,
        connection_timeout,
        StatementCount::default(),
    )
}

/// `connect_and_migrate`, counting the pool's statements into `statements`.
pub fn connect_counted(
    url: &str,
    pool_size: u32,
    connection_timeout: Duration,
    statements: StatementCount,
) -> Result<DbPool, DbSetupError> {
    let target = DatabaseTarget::parse(url)?;
    if let DatabaseTarget::Postgres(url) = &target {
        prepare_postgres(url)?;
    }
    if let DatabaseTarget::Sqlite(path) = &target {
        if let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        // WAL lets readers run beside the writer. The mode is stored in the file, so it is
        // set once here, before the pool opens several connections at once.
        let mut first = SqliteConnection::establish(path)
            .map_err(|e| DbSetupError::Migration(format!("could not open {path}: {e}")))?;
        first
            .batch_execute("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;")
            .map_err(|e| DbSetupError::Migration(e.to_string()))?;
    }
    let pool = Pool::builder()
        .max_size(pool_size)
        .min_idle(Some(1))
        // A PostgreSQL connection is checked (`SELECT 1`) before each use, so that a server
        // restart costs no failed requests; a SQLite file cannot go away under a
        // connection, so the hot path skips that statement there.
        .test_on_check_out(matches!(target, DatabaseTarget::Postgres(_)))
        .connection_timeout(connection_timeout)
        .build(DbManager { target, statements })?;
    let mut conn = pool.get()?;
    run_migrations(&mut conn)?;
    Ok(pool)
}

/// Connects once to give the operator libpq's own error (the pool would only time out), and
/// creates the database when the server is reachable but the database does not exist yet,
/// so that `DATABASE_URL=postgres://.../doorward` works on a fresh server as SQLite does.
fn prepare_postgres(url: &str) -> Result<(), DbSetupError> {
    let message = match PgConnection::establish(url) {
        Ok(_) => return Ok(()),
        Err(e) => e.to_string(),
    };
    // libpq's messages span lines; the operator gets one.
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let connect_error = || DbSetupError::Connect(message.clone());
    if !(message.contains("database") && message.contains("does not exist")) {
        return Err(connect_error());
    }
    let mut parsed = url::Url::parse(url).map_err(|_| connect_error())?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    let plain_name = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain_name {
        return Err(connect_error());
    }
    parsed.set_path("/postgres");
    let mut maintenance = PgConnection::establish(parsed.as_str()).map_err(|_| connect_error())?;
    maintenance
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .map_err(|e| DbSetupError::Connect(format!("could not create database {name}: {e}")))?;
    tracing::info!(database = %name, "created the PostgreSQL database");
    Ok(())
}

/// Applies every pending migration of the connection's backend.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, DbSetupError> {
    let applied = match conn {
        DbConnection::Pg(pg) => pg.run_pending_migrations(POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(sqlite) => sqlite.run_pending_migrations(SQLITE_MIGRATIONS),
    }
    .map_err(|e| DbSetupError::Migration(e.to_string()))?;
    Ok(applied.len())
}

/// Runs `f` in a write transaction and commits when it returns `Ok`.
///
/// On SQLite the transaction starts with `BEGIN IMMEDIATE`: a deferred transaction that
/// reads and then writes can fail with `SQLITE_BUSY` instead of waiting when another
/// writer got there first. Diesel's `immediate_transaction` is not available through the
/// multi-connection type, so this goes to the inner connection's transaction manager.
/// Called inside a transaction already (a batch of the `writer`), `f` runs in a savepoint.
pub fn write_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    if in_transaction(conn)? {
        return conn.transaction(f);
    }
    let _writer = begin_write(conn)?;
    match f(conn) {
        Ok(value) => {
            commit(conn)?;
            Ok(value)
        }
        Err(err) => {
            // The original error matters more than a failed rollback; a broken connection
            // is discarded by the pool (`has_broken`).
            let _ = rollback(conn);
            Err(err)
        }
    }
}

/// SQL statements run on one pool's connections since it opened (`GetStats`): every
/// connection of the pool counts into it, BEGIN, SAVEPOINT and COMMIT included, so the
/// harness reads statements per request on SQLite too, which keeps no counters of its own.
#[derive(Debug, Clone, Default)]
pub struct StatementCount(Arc<AtomicU64>);

impl StatementCount {
    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counts statements as a connection finishes them (Diesel's instrumentation).
struct StatementCounter(StatementCount);

impl diesel::connection::Instrumentation for StatementCounter {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        if let diesel::connection::InstrumentationEvent::FinishQuery { .. } = event {
            self.0.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts one service's changes that can end or alter a token before its `exp`: a
/// revocation, a blocked or unblocked user, a sign-in (shown on `/api/v4/user`), a deleted
/// application. Every query that makes such a change takes it, so none can forget to count.
/// The service's cache of checked tokens (`validation`) keeps an entry only while this
/// count is unchanged, so that such a change made here applies at once; changes made by
/// other processes reach it within `tokens.validation_cache_seconds`.
///
/// It moves before the change commits and is read before a token's row is, so a check that
/// overlaps the change can still cache the row as it was: for at most that same bound.
#[derive(Debug, Clone, Default)]
pub struct TokenChanges(Arc<AtomicU64>);

impl TokenChanges {
    /// The count so far.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Marks a change that can end or alter tokens.
    pub fn changed(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// Serialises this process's SQLite write transactions (see `begin_write`).
static SQLITE_WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Begins a write transaction; on SQLite, holds this process's writer lock until the
/// returned guard is dropped (after the commit or rollback).
///
/// SQLite has one writer at a time. Writers of this process queue on a mutex instead of
/// on SQLite's lock, whose busy handler waits by sleeping (1, 2, 5, 10 ... ms): under
/// concurrent token requests those sleeps, not the work, set the latency. Other processes
/// (the CLI) still meet `busy_timeout`.
fn begin_write(conn: &mut DbConnection) -> QueryResult<Option<std::sync::MutexGuard<'static, ()>>> {
    match conn {
        DbConnection::Sqlite(sqlite) => {
            let guard = SQLITE_WRITER
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
            Ok(Some(guard))
        }
        DbConnection::Pg(pg) => {
            AnsiTransactionManager::begin_transaction(pg)?;
            Ok(None)
        }
    }
}

fn in_transaction(conn: &mut DbConnection) -> QueryResult<bool> {
    let status = match conn {
        DbConnection::Sqlite(sqlite) => {
            AnsiTransactionManager::transaction_manager_status_mut(sqlite).transaction_depth()
        }
        DbConnection::Pg(pg) => {
            AnsiTransactionManager::transaction_manager_status_mut(pg).transaction_depth()
        }
    };
    Ok(status?.is_some())
}

/// Rolls back every open level (after a panic left savepoints open).
fn rollback_all(conn: &mut DbConnection) -> QueryResult<()> {
    while in_transaction(conn)? {
        rollback(conn)?;
    }
    Ok(())
}

fn commit(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(sqlite) => AnsiTransactionManager::commit_transaction(sqlite),
        DbConnection::Pg(pg) => AnsiTransactionManager::commit_transaction(pg),
    }
}

fn rollback(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(sqlite) => AnsiTransactionManager::rollback_transaction(sqlite),
        DbConnection::Pg(pg) => AnsiTransactionManager::rollback_transaction(pg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_name_their_backend() {
        assert_eq!(
            DatabaseTarget::parse("sqlite://./data/doorward.db").unwrap(),
            DatabaseTarget::Sqlite("./data/doorward.db".into())
        );
        assert!(matches!(
            DatabaseTarget::parse("postgres://u@h/db").unwrap(),
            DatabaseTarget::Postgres(_)
        ));
        assert!(DatabaseTarget::parse("mysql://x").is_err());
        assert!(DatabaseTarget::parse("sqlite://").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_statement_on_a_pooled_connection_is_counted() {
        let scratch = crate::testing::Scratch::new().await;
        let before = scratch.state.statements.get();
        let user = scratch.user.id;
        scratch
            .run(move |conn| {
                // BEGIN, a query, SAVEPOINT, a query, RELEASE, COMMIT: six statements.
                conn.transaction(|conn| {
                    users::find(conn, user)?;
                    conn.transaction(|conn| users::is_active(conn, user))
                })
            })
            .await;
        // The service's own checks may run beside it, so at least six.
        assert!(scratch.state.statements.get() - before >= 6);
    }
}
