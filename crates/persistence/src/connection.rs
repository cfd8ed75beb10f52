//! Connections: the database URL, the one connection type over both backends, the few
//! functions where the backends really differ (per-connection settings, how a transaction
//! begins), and the r2d2 manager that builds pooled connections.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, PgConnection, SqliteConnection};
use wxlink_domain::TxMode;

use crate::error::PersistenceError;

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

/// Which database a [`Store`](crate::Store) talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An SQLite file (`sqlite://PATH`).
    Sqlite,
    /// A PostgreSQL server (`postgres://…` or `postgresql://…`).
    Postgres,
}

impl Backend {
    /// The backend a database URL names by its scheme, if it is one the store accepts.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite://") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// A parsed database URL: which backend, and where.
#[derive(Clone)]
pub(crate) enum Target {
    /// An absolute path to the SQLite file.
    Sqlite { path: PathBuf },
    /// A libpq connection URI, the URL as given with its password redacted, and what to
    /// scrub from messages that could echo it.
    Postgres {
        url: String,
        display: String,
        redactor: Redactor,
    },
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_url())
    }
}

/// A database URL that passed the store's own checks, so configuration refuses a bad one at
/// start by the same rules [`Store::connect`](crate::Store::connect) applies.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseTarget {
    url: String,
    backend: Backend,
}

impl DatabaseTarget {
    /// Parse `url` as the store does.
    ///
    /// # Errors
    ///
    /// [`PersistenceError::UnsupportedUrl`] for another scheme, [`PersistenceError::InvalidUrl`]
    /// for an unusable SQLite path.
    pub fn parse(url: &str) -> Result<Self, PersistenceError> {
        let target = Target::parse(url, crate::StoreConfig::DEFAULT_CONNECT_TIMEOUT)?;
        Ok(Self {
            url: url.to_owned(),
            backend: target.backend(),
        })
    }

    /// Which backend it names.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL as given, password included: for [`StoreConfig::new`](crate::StoreConfig::new)
    /// only, never for a log line (use [`redact_url`]).
    pub fn expose_url(&self) -> &str {
        &self.url
    }
}

impl fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.url))
    }
}

/// The accepted forms, for error messages.
pub(crate) const ACCEPTED_FORMS: &str = "sqlite://PATH (relative to the working directory), \
     sqlite:///ABSOLUTE/PATH, postgres://USER:PASSWORD@HOST:PORT/DB or postgresql://…";

impl Target {
    /// Parse a database URL by its scheme. SQLite paths are made absolute here, against the
    /// working directory, so every pooled connection opens the same file.
    pub(crate) fn parse(url: &str, connect_timeout: Duration) -> Result<Self, PersistenceError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(PersistenceError::InvalidUrl {
                    url: redact_url(url),
                    reason: format!("the SQLite path is empty; expected {ACCEPTED_FORMS}"),
                });
            }
            if path == ":memory:" || path.starts_with("file:") {
                return Err(PersistenceError::InvalidUrl {
                    url: redact_url(url),
                    reason: "in-memory and URI-style SQLite databases are not supported; \
                             use a file path"
                        .to_owned(),
                });
            }
            let path =
                std::path::absolute(Path::new(path)).map_err(|e| PersistenceError::InvalidUrl {
                    url: redact_url(url),
                    reason: format!("cannot make the SQLite path absolute: {e}"),
                })?;
            if path.to_str().is_none() {
                return Err(PersistenceError::InvalidUrl {
                    url: redact_url(url),
                    reason: "the SQLite path is not valid UTF-8".to_owned(),
                });
            }
            Ok(Target::Sqlite { path })
        } else if Backend::of_url(url) == Some(Backend::Postgres) {
            Ok(Target::Postgres {
                url: with_connect_timeout(url, connect_timeout),
                display: redact_url(url),
                redactor: Redactor::for_url(url),
            })
        } else {
            Err(PersistenceError::UnsupportedUrl {
                url: redact_url(url),
            })
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Target::Sqlite { .. } => Backend::Sqlite,
            Target::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The URL as it may appear in logs and errors: without a password.
    pub(crate) fn display_url(&self) -> String {
        match self {
            Target::Sqlite { path } => format!("sqlite://{}", path.display()),
            Target::Postgres { display, .. } => display.clone(),
        }
    }

    /// Remove anything secret from a message that may quote the URL (a driver error).
    pub(crate) fn scrub(&self, message: String) -> String {
        match self {
            Target::Sqlite { .. } => message,
            Target::Postgres { redactor, .. } => redactor.scrub(message),
        }
    }

    /// Create the SQLite file's directory if it is missing; nothing to do for PostgreSQL.
    pub(crate) fn create_parent_dir(&self) -> Result<(), PersistenceError> {
        match self {
            Target::Sqlite { path } => match path.parent() {
                Some(parent) => {
                    std::fs::create_dir_all(parent).map_err(|source| PersistenceError::CreateDir {
                        path: parent.to_path_buf(),
                        source,
                    })
                }
                None => Ok(()),
            },
            Target::Postgres { .. } => Ok(()),
        }
    }

    /// Open a connection and apply the per-connection settings.
    pub(crate) fn establish(&self) -> Result<DbConnection, String> {
        match self {
            Target::Sqlite { path } => {
                // `parse` refused paths that are not UTF-8.
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path).map_err(|e| e.to_string())?;
                conn.batch_execute(&sqlite_settings())
                    .map_err(|e| format!("cannot apply connection settings: {e}"))?;
                Ok(DbConnection::Sqlite(conn))
            }
            Target::Postgres { url, redactor, .. } => {
                let mut conn =
                    PgConnection::establish(url).map_err(|e| redactor.scrub(e.to_string()))?;
                conn.batch_execute(&format!(
                    "SET statement_timeout = {PG_STATEMENT_TIMEOUT_MS}"
                ))
                .map_err(|e| redactor.scrub(format!("cannot apply connection settings: {e}")))?;
                Ok(DbConnection::Pg(conn))
            }
        }
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

/// Add libpq's `connect_timeout` (whole seconds, at least 2) unless the URL sets one, so an
/// unreachable server is reported in seconds rather than after the operating system's TCP
/// timeout.
fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let secs = timeout.as_secs().max(2);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={secs}")
}

/// What a PostgreSQL URL holds that must never be logged: the password, as written and
/// percent-decoded.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<secrecy::SecretString>,
}

impl Redactor {
    fn for_url(url: &str) -> Self {
        use secrecy::SecretString;
        let mut secrets = Vec::new();
        let mut push = |raw: &str| {
            if !raw.is_empty() {
                let decoded = percent_decode(raw);
                if decoded != raw {
                    secrets.push(SecretString::from(decoded));
                }
                secrets.push(SecretString::from(raw.to_owned()));
            }
        };
        if let Some((_, password)) = userinfo(url).and_then(|u| u.split_once(':')) {
            push(password);
        }
        for value in query_passwords(url) {
            push(value);
        }
        Self { secrets }
    }

    /// Remove the secrets from a driver message, and fold libpq's multi-line messages onto
    /// one line for logs.
    pub(crate) fn scrub(&self, message: String) -> String {
        use secrecy::ExposeSecret;
        let mut message = message;
        for secret in &self.secrets {
            let secret = secret.expose_secret();
            if message.contains(secret) {
                message = message.replace(secret, "[redacted]");
            }
        }
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// The `user:password` part of `scheme://user:password@host/…`, if any. The last `@` is the
/// separator (a password may contain an unencoded `@`); an `@` later in the query makes this
/// hide more than needed, never less.
fn userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let at = rest.rfind('@')?;
    Some(&rest[..at])
}

/// Values of `password=` query parameters (libpq accepts the password there too).
fn query_passwords(url: &str) -> impl Iterator<Item = &str> {
    url.split_once('?')
        .map(|(_, query)| query)
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.strip_prefix("password="))
}

/// A database URL with any password replaced by `[redacted]`, for logs, errors and `Debug`:
/// the userinfo password (which may hold unencoded `/` or `@`), `?password=` and libpq's
/// keyword form `password=…`. The one redaction of database URLs in wxlink.
pub fn redact_url(url: &str) -> String {
    let mut out = match (url.split_once("://"), userinfo(url)) {
        (Some((scheme, rest)), Some(info)) => match info.split_once(':') {
            Some((user, _)) => {
                let host_and_rest = &rest[info.len() + 1..];
                format!("{scheme}://{user}:[redacted]@{host_and_rest}")
            }
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    };
    // Also libpq's keyword form (`password=…`) and `?password=…` in a URI.
    let mut search_from = 0;
    while let Some(found) = out[search_from..].find("password=") {
        let value_start = search_from + found + "password=".len();
        let value_end = out[value_start..]
            .find(['&', ' '])
            .map_or(out.len(), |i| value_start + i);
        out.replace_range(value_start..value_end, "[redacted]");
        search_from = value_start + "[redacted]".len();
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (Some(&b), _, _) => {
                out.push(b);
                i += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(3);

    #[test]
    fn sqlite_relative_and_absolute_paths() {
        let Target::Sqlite { path } = Target::parse("sqlite://data/wxlink.db", T).unwrap() else {
            panic!("not sqlite");
        };
        assert!(path.is_absolute());
        assert!(path.ends_with("data/wxlink.db"));
        assert_eq!(
            std::env::current_dir().unwrap().join("data/wxlink.db"),
            path
        );

        let Target::Sqlite { path } = Target::parse("sqlite:///var/lib/wxlink/w.db", T).unwrap()
        else {
            panic!("not sqlite");
        };
        assert_eq!(path, PathBuf::from("/var/lib/wxlink/w.db"));
    }

    #[test]
    fn postgres_schemes_are_accepted_and_get_a_connect_timeout() {
        for url in ["postgres://u@h/db", "postgresql://u@h/db"] {
            let target = Target::parse(url, T).unwrap();
            assert_eq!(target.backend(), Backend::Postgres);
            let Target::Postgres { url: full, .. } = target else {
                panic!("not postgres")
            };
            assert!(full.ends_with("?connect_timeout=3"), "{full}");
        }
        let Target::Postgres { url, .. } =
            Target::parse("postgres://h/db?sslmode=disable&connect_timeout=9", T).unwrap()
        else {
            panic!("not postgres")
        };
        assert_eq!(url, "postgres://h/db?sslmode=disable&connect_timeout=9");
    }

    #[test]
    fn other_forms_are_refused_with_the_accepted_ones_named() {
        for url in [
            "mysql://root:hunter2@db/x",
            "wxlink.db",
            "sqlite:wxlink.db",
            "",
            "SQLITE://x",
        ] {
            let err = Target::parse(url, T).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("sqlite://PATH"), "{text}");
            assert!(text.contains("postgres://"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        for url in ["sqlite://", "sqlite://:memory:"] {
            assert!(matches!(
                Target::parse(url, T),
                Err(PersistenceError::InvalidUrl { .. })
            ));
        }
    }

    #[test]
    fn passwords_are_redacted_everywhere() {
        assert_eq!(
            redact_url("postgres://wx:s3cr%40t@db:5432/wxlink?sslmode=require"),
            "postgres://wx:[redacted]@db:5432/wxlink?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://wx:p@ss@db/wxlink"),
            "postgres://wx:[redacted]@db/wxlink"
        );
        assert_eq!(
            redact_url("postgres://db/wxlink?user=wx&password=hunter2&sslmode=require"),
            "postgres://db/wxlink?user=wx&password=[redacted]&sslmode=require"
        );
        assert_eq!(
            redact_url("host=db password=hunter2 user=wx"),
            "host=db password=[redacted] user=wx"
        );
        assert_eq!(redact_url("postgres://wx@db/x"), "postgres://wx@db/x");

        let target = Target::parse("postgres://wx:s3cr%40t@db/x?password=other", T).unwrap();
        let debug = format!("{target:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
        assert!(!debug.contains("other"), "{debug}");
        assert_eq!(
            target.display_url(),
            "postgres://wx:[redacted]@db/x?password=[redacted]"
        );
        let scrubbed = target.scrub("auth failed for s3cr@t and\n\ts3cr%40t and other".to_owned());
        assert_eq!(
            scrubbed,
            "auth failed for [redacted] and [redacted] and [redacted]"
        );
    }
}
