//! Connections: the one connection type over both backends, the few functions where the
//! backends really differ (per-connection settings, how a transaction begins), and the r2d2
//! manager that builds pooled connections.

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, PgConnection, SqliteConnection};
use wxlink_domain::TxMode;

use crate::store::url::{Target, connection_uri};

/// How long a SQLite statement waits for another connection's write lock before it gives up
/// with `SQLITE_BUSY`.
pub(crate) const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// A PostgreSQL statement running longer than this is cancelled; wxlink's statements are all
/// point lookups and small writes, so this only fires when something is badly wrong.
const PG_STATEMENT_TIMEOUT_MS: u32 = 30_000;

/// The connection every query runs on: one enum, one set of diesel queries for both backends.
#[derive(diesel::MultiConnection)]
pub(crate) enum DbConnection {
    /// Several wxlink nodes sharing one database.
    Pg(PgConnection),
    /// The embedded default: one file, one writer at a time.
    Sqlite(SqliteConnection),
}

impl Target {
    /// Open a connection and apply the per-connection settings.
    pub(crate) fn establish(&self) -> Result<DbConnection, String> {
        match self {
            Target::Sqlite { path } => {
                create_owner_only(path)?;
                // `parse` refused paths that are not UTF-8.
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path).map_err(|e| e.to_string())?;
                conn.batch_execute(&sqlite_settings())
                    .map_err(|e| format!("cannot apply connection settings: {e}"))?;
                Ok(DbConnection::Sqlite(conn))
            }
            Target::Postgres {
                url,
                connect_timeout,
                redactor,
                ..
            } => {
                let mut conn = PgConnection::establish(&connection_uri(url, *connect_timeout))
                    .map_err(|e| redactor.scrub(e.to_string()))?;
                conn.batch_execute(&format!(
                    "SET statement_timeout = {PG_STATEMENT_TIMEOUT_MS}"
                ))
                .map_err(|e| redactor.scrub(format!("cannot apply connection settings: {e}")))?;
                Ok(DbConnection::Pg(conn))
            }
        }
    }
}

/// Create the SQLite file readable and writable by its owner only (0600), as the data key file
/// is, unless it exists: it holds every identity, and SQLite makes its `-wal` and `-shm` files
/// with the database file's permissions. An existing file keeps what the operator gave it.
fn create_owner_only(path: &std::path::Path) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// SQLite's per-connection settings.
///
/// - `busy_timeout` first, so the other settings already wait for a concurrent writer.
/// - WAL lets readers run beside the one writer. With `synchronous = NORMAL` a commit is
///   written to the WAL before it is acknowledged but the WAL is fsynced only at checkpoints:
///   an acknowledged commit survives the process being killed, not a power cut or OS crash.
/// - SQLite does not enforce foreign keys unless asked, per connection.
/// - No automatic checkpoints: one would run inside whichever commit crosses 1,000 WAL pages,
///   with its fsync; the store's background thread checkpoints instead.
/// - Savepoint and statement journals in memory: a group commit's savepoints journal every
///   page its members change, and on disk (past 64 KiB) that was a temporary file per group
///   and two `pwrite`s per page.
fn sqlite_settings() -> String {
    format!(
        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA temp_store = MEMORY;"
    )
}

/// Begin a transaction the way each backend needs.
///
/// SQLite: a writer takes the write lock at `BEGIN IMMEDIATE`, so two writers never both read
/// and then fail to upgrade (which would be a deadlock SQLite can only answer with `BUSY`);
/// readers use a deferred `BEGIN` and read a WAL snapshot beside the writer.
/// PostgreSQL: `SERIALIZABLE`, so concurrent linking on several nodes behaves as if serial and
/// anything else fails with a serialization error, which the store retries; `READ COMMITTED`
/// for `WriteGuarded` work, whose races the constraints and guarded updates decide.
pub(crate) fn begin(conn: &mut DbConnection, mode: TxMode) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            let sql = match mode {
                TxMode::Write | TxMode::WriteGuarded => "BEGIN IMMEDIATE",
                TxMode::Read => "BEGIN DEFERRED",
            };
            AnsiTransactionManager::begin_transaction_sql(c, sql)
        }
        DbConnection::Pg(c) => {
            let sql = match mode {
                TxMode::Write => "BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE",
                // The work's races all end in a unique violation or a guarded update that
                // changes nothing, which the store reruns (see `TxMode::WriteGuarded`).
                TxMode::WriteGuarded => "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE",
                TxMode::Read => "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY",
            };
            AnsiTransactionManager::begin_transaction_sql(c, sql)
        }
    }
}

/// Commit the transaction [`begin`] opened. On failure diesel has already tried to roll back.
pub(crate) fn commit(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    <DbConnection as Connection>::TransactionManager::commit_transaction(conn)
}

/// Roll back the transaction [`begin`] opened.
pub(crate) fn rollback(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)
}

/// Mark this connection as one the pool must close instead of handing it out again.
pub(crate) fn discard(conn: &mut DbConnection) {
    <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
        .set_in_error();
}

/// Whether this connection must not be used again (a failed rollback, a closed socket).
pub(crate) fn is_broken(conn: &mut DbConnection) -> bool {
    R2D2Connection::is_broken(conn)
}

/// Builds pooled connections from a [`Target`] (diesel's `ConnectionManager` would call
/// `DbConnection::establish`, which tries each backend in turn and lets SQLite take any
/// string as a file name).
#[derive(Debug)]
pub(crate) struct Manager {
    pub(crate) target: Target,
}

/// Why a pooled connection could not be made or checked; the message is already scrubbed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConnectError(pub(crate) String);

impl diesel::r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConnection, ConnectError> {
        self.target.establish().map_err(ConnectError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        conn.ping()
            .map_err(|e| ConnectError(self.target.scrub(e.to_string())))
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        // A thread that panicked mid-transaction must not hand its connection on.
        std::thread::panicking() || is_broken(conn)
    }
}

/// Logs r2d2's background connection failures through `tracing`, without secrets.
#[derive(Debug)]
pub(crate) struct LogErrors {
    pub(crate) url: String,
}

impl diesel::r2d2::HandleError<ConnectError> for LogErrors {
    fn handle_error(&self, error: ConnectError) {
        tracing::warn!(database = %self.url, error = %error.0, "database connection failed");
    }
}
