//! Which error belongs where.
//!
//! - [`PersistenceError`]: setting the store up — a URL of the wrong form, a database that
//!   cannot be reached or migrated at start. The binary reports these and stops.
//! - [`StoreError`] (the domain's): at run time, from every store operation. Conflicts are
//!   retried inside the store; what reaches the caller is `Contention`, `Unavailable` (the
//!   service answers 503) or `Corrupt`.
//!
//! Neither ever carries a database password: URLs are redacted and driver messages scrubbed.

use std::path::PathBuf;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use wxlink_domain::{DomainError, StoreError};

use crate::store::url::ACCEPTED_FORMS;

/// Why the store could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistenceError {
    /// The URL's scheme is none of the accepted ones.
    #[error("unsupported database url {url:?}: expected {ACCEPTED_FORMS}", ACCEPTED_FORMS = ACCEPTED_FORMS)]
    UnsupportedUrl {
        /// The URL, password redacted.
        url: String,
    },
    /// The URL has an accepted scheme but cannot be used.
    #[error("invalid database url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The directory for the SQLite file could not be created.
    #[error("cannot create directory {} for the sqlite database: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database did not accept a connection.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The driver's message, scrubbed of secrets.
        message: String,
    },
    /// The keyring cannot open what the database holds, or lacks the cluster's current key
    /// (see [`Store::check_keyring`](crate::Store::check_keyring)). Names key ids and
    /// fingerprints, never a key.
    #[error("the data keys do not match the database: {0}")]
    Keyring(String),
    /// Applying the migrations failed; the failed migration's changes were rolled back.
    #[error("migrating {url} failed: {message}")]
    Migration {
        /// The URL, password redacted.
        url: String,
        /// What failed.
        message: String,
    },
}

/// Errors a transaction treats as "run it again": a uniqueness violation, a serialization
/// failure or deadlock, or SQLite's busy answer for a writer.
pub(crate) trait Retryable {
    /// Whether this error asks for the transaction to be run again.
    fn is_conflict(&self) -> bool;
}

impl Retryable for StoreError {
    fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict)
    }
}

impl Retryable for DomainError {
    fn is_conflict(&self) -> bool {
        matches!(self, DomainError::Store(StoreError::Conflict))
    }
}

/// Why a transaction is run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// A uniqueness violation, serialization failure or deadlock, or the work said so.
    Clash,
    /// SQLite's write lock was taken (after `busy_timeout`, or at once for a stale snapshot).
    Busy,
}

/// What a diesel error means for a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Rerunning the transaction may succeed: uniqueness, serialization, deadlock.
    Conflict(String),
    /// SQLite's lock was not free within `busy_timeout`.
    Busy(String),
    /// The connection or the database is gone or not ready.
    Unavailable(String),
    /// The data or the statement broke a rule that only a bug or damage can break.
    Corrupt(String),
}

impl Failure {
    /// Classify a diesel error. Driver messages are scrubbed by the caller where they could
    /// carry a URL (only connection errors do).
    pub(crate) fn of(error: &DieselError) -> Failure {
        match error {
            DieselError::DatabaseError(kind, info) => {
                let message = info.message().to_owned();
                match kind {
                    DatabaseErrorKind::UniqueViolation
                    | DatabaseErrorKind::SerializationFailure => Failure::Conflict(message),
                    DatabaseErrorKind::ClosedConnection => Failure::Unavailable(message),
                    DatabaseErrorKind::ForeignKeyViolation
                    | DatabaseErrorKind::NotNullViolation
                    | DatabaseErrorKind::CheckViolation
                    | DatabaseErrorKind::RestrictViolation
                    | DatabaseErrorKind::ReadOnlyTransaction => Failure::Corrupt(message),
                    _ if is_sqlite_busy(&message) => Failure::Busy(message),
                    // PostgreSQL's 40P01: the other transaction went on, this one may retry.
                    _ if message.starts_with("deadlock detected") => Failure::Conflict(message),
                    _ => Failure::Unavailable(message),
                }
            }
            DieselError::DeserializationError(e) => {
                Failure::Corrupt(format!("cannot read a stored value: {e}"))
            }
            DieselError::SerializationError(e) => {
                Failure::Corrupt(format!("cannot write a value: {e}"))
            }
            other => Failure::Unavailable(other.to_string()),
        }
    }
}

/// SQLite reports `SQLITE_BUSY`/`SQLITE_LOCKED` only through its message in diesel's errors.
fn is_sqlite_busy(message: &str) -> bool {
    message.contains("database is locked")
        || message.contains("database table is locked")
        || message.contains("database schema is locked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_the_forms() {
        let err = PersistenceError::UnsupportedUrl {
            url: "mysql://x".into(),
        };
        let text = err.to_string();
        assert!(text.starts_with("unsupported database url \"mysql://x\": expected sqlite://"));
        assert!(!text.ends_with('.'));
    }

    #[test]
    fn diesel_errors_are_classified() {
        let db = |kind, msg: &str| DieselError::DatabaseError(kind, Box::new(msg.to_owned()));
        assert!(matches!(
            Failure::of(&db(DatabaseErrorKind::UniqueViolation, "dup")),
            Failure::Conflict(_)
        ));
        assert!(matches!(
            Failure::of(&db(DatabaseErrorKind::SerializationFailure, "40001")),
            Failure::Conflict(_)
        ));
        assert!(matches!(
            Failure::of(&db(DatabaseErrorKind::Unknown, "database is locked")),
            Failure::Busy(_)
        ));
        assert!(matches!(
            Failure::of(&db(DatabaseErrorKind::Unknown, "deadlock detected")),
            Failure::Conflict(_)
        ));
        assert!(matches!(
            Failure::of(&db(DatabaseErrorKind::ClosedConnection, "gone")),
            Failure::Unavailable(_)
        ));
        assert!(matches!(
            Failure::of(&db(DatabaseErrorKind::ForeignKeyViolation, "fk")),
            Failure::Corrupt(_)
        ));
        assert!(matches!(
            Failure::of(&DieselError::NotInTransaction),
            Failure::Unavailable(_)
        ));
    }
}
