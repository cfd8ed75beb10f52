//! The store's core: a connection pool, a bound on blocking work, and transactions that retry
//! (here); how a transaction's statements run (`tx`), SQLite's write groups (`group`),
//! connections (`connection`), errors (`error`), migrations and the schema, the settings and
//! URLs, and the one-statement login (`login`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::r2d2::{Pool, PooledConnection};
use rand::Rng as _;
use tokio::sync::Semaphore;
use wxlink_crypto::Keyring;
use wxlink_domain::{
    DomainError, IdentityStore, LoginRecord, LoginRequest, StoreError, StoreTx, TxMode,
};

use self::config::StoreConfig;
use self::connection::{LogErrors, Manager, SQLITE_BUSY_TIMEOUT_MS};
use self::error::{Failure, PersistenceError, Retry, Retryable};
use self::group::Writer;
use self::tx::Tx;
use self::url::{Backend, Target};

pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod error;
mod group;
mod login;
pub(crate) mod migrations;
pub(crate) mod schema;
pub(crate) mod tx;
pub(crate) mod url;

/// How many times a transaction runs before the store answers `Contention`.
pub const MAX_ATTEMPTS: u32 = 12;

/// Backoff before attempt n+1 is drawn from [cap/2, cap] with cap = 2 ms · 2ⁿ⁻¹, at most
/// 100 ms: enough to let the winner of a race commit, short enough for a login.
const BACKOFF_BASE: Duration = Duration::from_millis(2);
const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// How long a writer keeps retrying SQLite's busy answers: one `busy_timeout`, which SQLite
/// itself already waited before the first one.
pub(crate) const SQLITE_BUSY_BUDGET: Duration =
    Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS as u64);

/// The diesel store for SQLite and PostgreSQL. Cheap to clone: clones share one pool.
///
/// Implements the domain's [`IdentityStore`]; see the [crate docs](crate) for how transactions
/// are isolated and retried.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pool: Pool<Manager>,
    /// One permit per pooled connection: at most that many transactions occupy blocking
    /// threads, the rest wait here, on the async side.
    permits: Arc<Semaphore>,
    /// SQLite has one write lock: its writes go to one writer thread, which commits them in
    /// groups (see [`group`]). `None` on PostgreSQL, whose writers run concurrently.
    writer: Option<Writer>,
    pub(crate) keyring: Arc<Keyring>,
    connect_timeout: Duration,
    backend: Backend,
    pub(crate) url: String,
    /// For scrubbing driver messages.
    target: Target,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .field("url", &self.inner.url)
            .field("max_connections", &self.inner.pool.max_size())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connect: check the settings, create the SQLite file's directory if missing, apply
    /// pending migrations (unless `migrate_on_start` is off) and set up the pool.
    ///
    /// Without migrations nothing is connected yet: the pool connects on demand, so a store for
    /// a database that is down answers [`StoreError::Unavailable`] until it is back.
    ///
    /// # Errors
    /// [`PersistenceError`] for a URL of the wrong form, an out-of-range setting, or — with
    /// migrations on — a database that cannot be reached or migrated.
    pub async fn connect(config: StoreConfig) -> Result<Store, PersistenceError> {
        if config.max_connections == 0 {
            return Err(PersistenceError::Config(
                "max_connections must be at least 1".to_owned(),
            ));
        }
        if config.connect_timeout.is_zero() {
            return Err(PersistenceError::Config(
                "connect_timeout must be positive".to_owned(),
            ));
        }
        let target = config
            .database
            .0
            .clone()
            .with_connect_timeout(config.connect_timeout);
        let url = target.display_url();
        tokio::task::spawn_blocking(move || Self::connect_blocking(config, target))
            .await
            .map_err(|e| PersistenceError::Connect {
                url,
                message: format!("setup task failed: {e}"),
            })?
    }

    fn connect_blocking(config: StoreConfig, target: Target) -> Result<Store, PersistenceError> {
        target.create_parent_dir()?;
        if config.migrate_on_start {
            migrations::migrate_target(&target)?;
        }
        let url = target.display_url();
        let backend = target.backend();
        let pool = Pool::builder()
            .max_size(config.max_connections)
            // One warm connection; the rest are made on demand and closed when idle.
            .min_idle(Some(1))
            // No ping before use (it cost PostgreSQL a round trip and a commit per login):
            // a connection the server closed fails at BEGIN and is replaced there.
            .test_on_check_out(false)
            .connection_timeout(config.connect_timeout)
            .error_handler(Box::new(LogErrors { url: url.clone() }))
            .build_unchecked(Manager {
                target: target.clone(),
            });
        let writer = match backend {
            Backend::Sqlite => Some(
                Writer::start(
                    pool.clone(),
                    Arc::clone(&config.keyring),
                    target.clone(),
                    config.connect_timeout,
                )
                .map_err(|e| PersistenceError::Connect {
                    url: url.clone(),
                    message: format!("cannot start the SQLite writer: {e}"),
                })?,
            ),
            Backend::Postgres => None,
        };
        tracing::debug!(database = %url, max_connections = config.max_connections, "store ready");
        Ok(Store {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(config.max_connections as usize)),
                writer,
                pool,
                keyring: config.keyring,
                connect_timeout: config.connect_timeout,
                backend,
                url,
                target,
            }),
        })
    }

    /// The connection pool right now, for metrics: (open connections, idle ones, maximum).
    pub fn pool_state(&self) -> (u32, u32, u32) {
        let state = self.inner.pool.state();
        (
            state.connections,
            state.idle_connections,
            self.inner.pool.max_size(),
        )
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Run `work` in one transaction of `mode` on a blocking thread, retrying on conflicts.
    /// The single place where transactions begin, commit, roll back and retry.
    pub(crate) async fn run<T, E, F>(&self, mode: TxMode, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Retryable + Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        // One budget for waiting, first for a permit and then for a connection: when the
        // database is down, queued requests get their answer within the connect timeout
        // instead of piling up.
        let deadline = Instant::now() + inner.connect_timeout;
        if let Some(writer) = &inner.writer
            && mode.writes()
        {
            return writer.submit(work, deadline).await;
        }
        let permit = inner.wait_for(&inner.permits, deadline).await?;
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            inner.run_blocking(mode, deadline, work)
        });
        match task.await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "a store transaction's thread failed");
                Err(StoreError::Unavailable("the transaction's thread failed".to_owned()).into())
            }
        }
    }
}

impl Store {
    /// Run `statement` on PostgreSQL as one statement outside an explicit transaction (it
    /// commits by itself), on a blocking thread, running it again on conflicts as [`Store::run`]
    /// runs a transaction again. `Ok(None)` on SQLite, and when the statement failed otherwise
    /// (a connection the server closed, which is discarded; a schema without what it calls):
    /// nothing of it stayed, and the caller takes its transaction's path, which handles those.
    pub(crate) async fn run_statement<T, F>(&self, statement: F) -> Result<Option<T>, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut diesel::PgConnection) -> diesel::QueryResult<T> + Send + 'static,
    {
        if self.inner.backend != Backend::Postgres {
            return Ok(None);
        }
        let inner = Arc::clone(&self.inner);
        let deadline = Instant::now() + inner.connect_timeout;
        let permit = inner.wait_for(&inner.permits, deadline).await?;
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            inner.run_statement_blocking(deadline, statement)
        });
        match task.await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "a store statement's thread failed");
                Err(StoreError::Unavailable(
                    "the statement's thread failed".to_owned(),
                ))
            }
        }
    }
}

impl Inner {
    fn run_statement_blocking<T, F>(
        &self,
        deadline: Instant,
        mut statement: F,
    ) -> Result<Option<T>, StoreError>
    where
        F: FnMut(&mut diesel::PgConnection) -> diesel::QueryResult<T>,
    {
        let mut conn = self.connection(deadline)?;
        for attempt in 1..=MAX_ATTEMPTS {
            if attempt > 1 {
                std::thread::sleep(backoff(attempt - 1));
            }
            let connection::DbConnection::Pg(pg) = &mut *conn else {
                return Ok(None);
            };
            let error = match statement(pg) {
                Ok(value) => return Ok(Some(value)),
                Err(e) => e,
            };
            match Failure::of(&error) {
                Failure::Conflict(_) => {
                    tracing::debug!(attempt, "statement conflicted; running it again");
                }
                Failure::Corrupt(message) => return Err(StoreError::Corrupt(message)),
                Failure::Busy(message) | Failure::Unavailable(message) => {
                    tracing::debug!(database = %self.url, error = %self.scrub(message), "a statement failed; taking the transaction's path");
                    // A connection the server closed must not go back into the pool; any
                    // other failure (a schema without the function) leaves it usable.
                    if matches!(
                        error,
                        diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::ClosedConnection,
                            _
                        )
                    ) {
                        connection::discard(&mut conn);
                    }
                    return Ok(None);
                }
            }
        }
        tracing::warn!(
            attempts = MAX_ATTEMPTS,
            "statement gave up after repeated conflicts"
        );
        Err(StoreError::Contention {
            attempts: MAX_ATTEMPTS,
        })
    }

    /// A permit of `gate`, waiting at most until `deadline`.
    async fn wait_for(
        &self,
        gate: &Arc<Semaphore>,
        deadline: Instant,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, StoreError> {
        match tokio::time::timeout_at(deadline.into(), Arc::clone(gate).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(StoreError::Unavailable(
                "the store is shutting down".to_owned(),
            )),
            Err(_elapsed) => {
                tracing::warn!(database = %self.url, "every database connection stayed busy");
                Err(StoreError::Unavailable(format!(
                    "every connection to {} stayed busy for {:?}",
                    self.url, self.connect_timeout
                )))
            }
        }
    }

    /// A pooled connection, waiting at most until `deadline`.
    fn connection(&self, deadline: Instant) -> Result<PooledConnection<Manager>, StoreError> {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(std::time::Duration::from_millis(1));
        self.pool.get_timeout(wait).map_err(|e| {
            tracing::warn!(database = %self.url, error = %e, "no database connection");
            StoreError::Unavailable(format!("no connection to {}: {e}", self.url))
        })
    }

    fn run_blocking<T, E, F>(&self, mode: TxMode, deadline: Instant, mut work: F) -> Result<T, E>
    where
        E: From<StoreError> + Retryable,
        F: FnMut(&mut Tx<'_>) -> Result<T, E>,
    {
        let started = Instant::now();
        let mut conn = self.connection(deadline)?;
        for attempt in 1..=MAX_ATTEMPTS {
            if attempt > 1 {
                std::thread::sleep(backoff(attempt - 1));
                if connection::is_broken(&mut conn) {
                    // Returned to the pool, r2d2 sees it is broken and closes it.
                    conn = self.connection(Instant::now() + self.connect_timeout)?;
                }
            }
            let retry = match self.begin(&mut conn, mode, deadline) {
                Err(e) => self.retry_or_fail(mode, &e)?,
                Ok(()) => {
                    let (outcome, conflict) = {
                        let mut tx = Tx::new(&mut conn, &self.keyring, mode);
                        let outcome = work(&mut tx);
                        (outcome, tx.conflict())
                    };
                    match (outcome, conflict) {
                        (Ok(value), None) => match connection::commit(&mut conn) {
                            Ok(()) => return Ok(value),
                            // A serialization failure at COMMIT: diesel already rolled back.
                            Err(e) => self.retry_or_fail(mode, &e)?,
                        },
                        (Err(error), None) if !error.is_conflict() => {
                            // A rule said no (or the database failed): nothing `work` wrote
                            // stays.
                            self.roll_back(&mut conn);
                            return Err(error);
                        }
                        (_, conflict) => {
                            if !self.roll_back(&mut conn) {
                                return Err(StoreError::Unavailable(
                                    "the connection failed while rolling back".to_owned(),
                                )
                                .into());
                            }
                            conflict.unwrap_or(Retry::Clash)
                        }
                    }
                }
            };
            // SQLite already waited busy_timeout before saying busy; retrying that for long
            // would hold the caller far beyond any request deadline.
            if retry == Retry::Busy && started.elapsed() >= SQLITE_BUSY_BUDGET {
                tracing::warn!(database = %self.url, "SQLite's write lock stayed taken");
                return Err(StoreError::Unavailable(format!(
                    "database is locked: SQLite's write lock stayed taken for {:?}",
                    started.elapsed()
                ))
                .into());
            }
            tracing::debug!(attempt, ?retry, "transaction conflicted; running it again");
        }
        tracing::warn!(
            attempts = MAX_ATTEMPTS,
            "transaction gave up after repeated conflicts"
        );
        Err(StoreError::Contention {
            attempts: MAX_ATTEMPTS,
        }
        .into())
    }

    /// BEGIN on `conn`; a pooled connection whose server went away (a PostgreSQL restart
    /// closed every idle one) is discarded and replaced by the next, up to the pool's size, so
    /// a restart costs no request an error.
    fn begin(
        &self,
        conn: &mut PooledConnection<Manager>,
        mode: TxMode,
        deadline: Instant,
    ) -> diesel::QueryResult<()> {
        let mut replaced = 0;
        loop {
            match connection::begin(conn, mode) {
                Err(e)
                    if self.backend == Backend::Postgres
                        && replaced < self.pool.max_size()
                        && matches!(Failure::of(&e), Failure::Unavailable(_)) =>
                {
                    tracing::debug!(database = %self.url, error = %self.scrub(e.to_string()), "replacing a closed connection");
                    connection::discard(conn);
                    match self.connection(deadline) {
                        // The old one goes back to the pool, which closes it.
                        Ok(fresh) => *conn = fresh,
                        Err(_) => return Err(e),
                    }
                    replaced += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// An error met outside `work` (at BEGIN or COMMIT): `Ok` to run the transaction again,
    /// `Err` to give up with this error.
    fn retry_or_fail(
        &self,
        mode: TxMode,
        error: &diesel::result::Error,
    ) -> Result<Retry, StoreError> {
        match Failure::of(error) {
            Failure::Conflict(_) => Ok(Retry::Clash),
            Failure::Busy(_) if mode.writes() => Ok(Retry::Busy),
            Failure::Busy(m) | Failure::Unavailable(m) => {
                Err(StoreError::Unavailable(self.scrub(m)))
            }
            Failure::Corrupt(m) => Err(StoreError::Corrupt(m)),
        }
    }

    fn scrub(&self, message: String) -> String {
        self.target.scrub(message)
    }

    /// Roll back; false when the connection is unusable (it will not go back into the pool).
    fn roll_back(&self, conn: &mut PooledConnection<Manager>) -> bool {
        match connection::rollback(conn) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(database = %self.url, error = %e, "rollback failed");
                !connection::is_broken(conn)
            }
        }
    }
}

/// Exponential backoff with jitter, so racing transactions spread out instead of colliding
/// again in lockstep.
pub(crate) fn backoff(retry: u32) -> Duration {
    let cap = BACKOFF_BASE
        .saturating_mul(1 << retry.min(16))
        .min(BACKOFF_MAX);
    let micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::rng().random_range(micros / 2..=micros))
}

impl IdentityStore for Store {
    fn transact<T, F>(
        &self,
        mode: TxMode,
        mut work: F,
    ) -> impl Future<Output = Result<T, DomainError>> + Send
    where
        T: Send + 'static,
        F: FnMut(&mut dyn StoreTx) -> Result<T, DomainError> + Send + 'static,
    {
        self.run(mode, move |tx: &mut Tx<'_>| work(tx))
    }

    fn login_at_once(
        &self,
        login: &LoginRequest,
    ) -> impl Future<Output = Result<Option<LoginRecord>, DomainError>> + Send {
        login::login(self, login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for retry in 1..=MAX_ATTEMPTS {
            let d = backoff(retry);
            assert!(d <= BACKOFF_MAX, "{d:?}");
            assert!(d >= BACKOFF_BASE / 2, "{d:?}");
        }
        assert!(backoff(1) <= Duration::from_millis(4));
    }
}
