//! wxlink's store: the diesel implementation of the domain's [`IdentityStore`] port, on an
//! embedded SQLite file (the default, one node) or on PostgreSQL (several wxlink nodes sharing
//! one database).
//!
//! Users, their (appid, openid) identities, sessions and the event log live in four tables;
//! one set of diesel queries serves both backends through a `#[derive(diesel::MultiConnection)]`
//! enum, and the schema's migrations are embedded per backend under identical names. WeChat
//! session keys are sealed at rest with a [`wxlink_crypto::Keyring`]; bearer tokens are stored
//! only as their SHA-256.
//!
//! # Example
//! ```no_run
//! use wxlink_crypto::{DataKey, Keyring};
//! use wxlink_domain::{IdentityStore, TxMode, UnionId};
//! use wxlink_persistence::{DatabaseTarget, Store, StoreConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let keyring = Keyring::new(DataKey::generate());
//! let database = DatabaseTarget::parse("sqlite://wxlink.db")?;
//! let store = Store::connect(StoreConfig::new(database, keyring)).await?;
//! store.ping().await?;
//!
//! // The domain's use cases run their rules in transactions like this one.
//! let unionid: UnionId = "ocMvos6NjeKLIBqg5Mr9QjxrP1FA".parse()?;
//! let owner = store
//!     .transact(TxMode::Read, move |tx| Ok(tx.user_by_unionid(&unionid)?))
//!     .await?;
//! println!("owner: {owner:?}");
//! # Ok(())
//! # }
//! ```
//!
//! # Databases and URLs
//! - `sqlite://PATH` (relative to the working directory) or `sqlite:///ABSOLUTE/PATH`: one
//!   file; its directory is created if missing. Every connection runs with WAL,
//!   `synchronous = NORMAL`, `foreign_keys = ON` and a 5 s `busy_timeout`.
//! - `postgres://…` or `postgresql://…`: a libpq URI. The password never appears in `Debug`
//!   output, errors or logs.
//!
//! [`Store::check_keyring`] checks the keyring against the data keys the database records (by
//! id and fingerprint, never the key) and records this node's; a service runs it at start and
//! refuses to serve when it fails.
//!
//! [`Store::connect`] applies pending migrations unless told not to; [`migrate`] (async) and
//! [`migrate_blocking`] apply them on their own (for `wxlink migrate`) and report what they
//! applied.
//!
//! # Durability
//! On PostgreSQL a transaction the store reports as committed is as durable as the server's
//! settings make it (with the defaults: fsynced). On SQLite, WAL with `synchronous = NORMAL`
//! means: **an acknowledged commit survives the wxlink process being killed, but not a power
//! cut or an operating-system crash**, which may lose the last commits (never corrupt the
//! file). That trade buys an fsync per checkpoint instead of one per login.
//!
//! # Transactions, isolation and retries
//! diesel is synchronous. [`IdentityStore::transact`] waits (at most `connect_timeout`) for
//! one of `max_connections` permits, so blocking work is bounded and excess requests queue on
//! the async side; then, on a blocking thread, it takes a pooled connection and runs the work in
//! one transaction:
//!
//! - SQLite: `BEGIN IMMEDIATE` for writes — the writer takes the file's single write lock up
//!   front; writes run one at a time — and a deferred `BEGIN` for reads, which read a WAL snapshot
//!   beside the writer.
//! - PostgreSQL: `READ COMMITTED` for [`TxMode::WriteGuarded`] work (logins), whose races end
//!   in a unique violation or a guarded update that changes nothing, both rerun; otherwise
//!   `SERIALIZABLE` (`READ ONLY` for reads), so concurrent linking on several nodes
//!   behaves as if run one after the other; the database aborts whichever would not.
//!
//! When the work returns [`StoreError::Conflict`], or any statement or the `COMMIT` meets a
//! uniqueness violation, a serialization failure, a deadlock, or SQLite's busy answer to a
//! writer, the store rolls back and runs the work again — even if the work swallowed the
//! error, since the transaction is doomed — up to [`MAX_ATTEMPTS`] times with a short jittered
//! backoff, then answers [`StoreError::Contention`]. Any other error rolls back everything the
//! work wrote and is returned as it is. The work must therefore be a pure function of what it
//! reads through the transaction.
//!
//! [`StoreError::Unavailable`] is the answer, in seconds and without a panic, when the database
//! cannot be reached, when no connection or permit frees up within `connect_timeout`, when a
//! reader meets SQLite's lock, and when SQLite's write lock stays taken (by another process)
//! for longer than one 5 s `busy_timeout`. Writes attempted in a [`TxMode::Read`] transaction
//! are refused on both backends with [`StoreError::Corrupt`] (a bug in the caller).
//!
//! A login on PostgreSQL is one round trip ([`IdentityStore::login_at_once`]): the function
//! `wxlink_login`, installed by a migration, runs the login's rules and writes its session,
//! called as one prepared statement outside an explicit transaction (so one implicit
//! `READ COMMITTED` transaction). It decides the same races the same way: a unique violation
//! aborts it, a guarded update that matches a row no more raises a serialization failure, and
//! the store runs it again as it reruns a transaction. What it does not decide (a merge, a
//! unionid conflict, damage), and any other failure of the statement (a connection the server
//! closed, a schema without the function), goes to the rules' transaction.
//!
//! Broken connections (a failed rollback, a transaction left open by a panic) are closed
//! rather than returned to the pool, and one that PostgreSQL closed (a restart) fails at
//! `BEGIN` and is replaced there, so after a PostgreSQL restart the store recovers by itself
//! without a ping on every checkout.
//!
//! On SQLite, writes go to one writer thread that commits them in groups: each in a savepoint
//! inside one `BEGIN IMMEDIATE` … `COMMIT` (a refused one rolls back to its savepoint alone, a
//! conflicting one reruns there), every answer sent after the `COMMIT`; the group is whatever
//! is queued when the writer is free (at most 64), so no write waits for a group to fill. A
//! background thread checkpoints the WAL (`PASSIVE`, every 100 ms) instead of the commit that
//! crosses SQLite's automatic threshold. Reads stay on the pool. The store needs a Tokio runtime with its timer enabled (as
//! `#[tokio::main]` sets up).
//!
//! [`StoreError::Conflict`]: wxlink_domain::StoreError::Conflict
//! [`StoreError::Contention`]: wxlink_domain::StoreError::Contention
//! [`StoreError::Unavailable`]: wxlink_domain::StoreError::Unavailable
//! [`IdentityStore`]: wxlink_domain::IdentityStore
//! [`IdentityStore::transact`]: wxlink_domain::IdentityStore::transact
//! [`IdentityStore::login_at_once`]: wxlink_domain::IdentityStore::login_at_once
//! [`TxMode::Read`]: wxlink_domain::TxMode::Read
//! [`TxMode::WriteGuarded`]: wxlink_domain::TxMode::WriteGuarded
//! [`StoreError::Corrupt`]: wxlink_domain::StoreError::Corrupt

#![deny(missing_docs)]

mod cluster;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use cluster::access_tokens::SharedAccessToken;
pub use cluster::admin::{SESSION_PURGE_GRACE_SECS, UserRecord};
pub use cluster::console::ConsoleUser;
pub use cluster::feed::MAX_EVENTS_PAGE;
pub use cluster::operators::{NewOperator, Operator, SignInFailures};
pub use cluster::rate_limits::WindowHits;
pub use cluster::signing_keys::SigningKeyRecord;
pub use store::Store;
pub use store::config::StoreConfig;
pub use store::error::PersistenceError;
pub use store::migrations::{migrate, migrate_blocking};
pub use store::retry::MAX_ATTEMPTS;
pub use store::url::{Backend, DatabaseTarget, redact_url};
