//! The store: a connection pool, a bound on blocking work, and transactions that retry.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use diesel::r2d2::{Pool, PooledConnection};
use rand::Rng as _;
use tokio::sync::Semaphore;
use wxlink_crypto::Keyring;
use wxlink_domain::{DomainError, IdentityStore, StoreError, StoreTx, TxMode};

use crate::config::StoreConfig;
use crate::connection::{self, Backend, LogErrors, Manager, Target};
use crate::error::{Failure, PersistenceError, Retryable};
use crate::migrations;
use crate::tx::Tx;

/// How many times a transaction runs before the store answers `Contention`.
pub const MAX_ATTEMPTS: u32 = 12;

/// Backoff before attempt n+1 is drawn from [cap/2, cap] with cap = 2 ms · 2ⁿ⁻¹, at most
/// 100 ms: enough to let the winner of a race commit, short enough for a login.
const BACKOFF_BASE: Duration = Duration::from_millis(2);
const BACKOFF_MAX: Duration = Duration::from_millis(100);

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
    pub(crate) keyring: Arc<Keyring>,
    backend: Backend,
    url: String,
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
        let target = Target::parse(&config.url, config.connect_timeout)?;
        let url = target.display_url();
        tokio::task::spawn_blocking(move || Self::connect_blocking(config, target))
            .await
            .map_err(|e| PersistenceError::Connect {
                url,
                message: format!("setup task failed: {e}"),
            })?
    }

    fn connect_blocking(config: StoreConfig, target: Target) -> Result<Store, PersistenceError> {
        if let Target::Sqlite { path } = &target {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| PersistenceError::CreateDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
        }
        if config.migrate_on_start {
            migrations::migrate_target(&target)?;
        }
        let url = target.display_url();
        let backend = target.backend();
        let pool = Pool::builder()
            .max_size(config.max_connections)
            // One warm connection; the rest are made on demand and closed when idle.
            .min_idle(Some(1))
            // A pooled connection is pinged before use, so after a PostgreSQL restart dead
            // connections are dropped and replaced instead of failing one request each.
            .test_on_check_out(true)
            .connection_timeout(config.connect_timeout)
            .error_handler(Box::new(LogErrors { url: url.clone() }))
            .build_unchecked(Manager {
                target: target.clone(),
            });
        tracing::debug!(database = %url, max_connections = config.max_connections, "store ready");
        Ok(Store {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(config.max_connections as usize)),
                pool,
                keyring: config.keyring,
                backend,
                url,
                target,
            }),
        })
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
        let permit = Arc::clone(&inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is shutting down".to_owned()))?;
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            inner.run_blocking(mode, work)
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

impl Inner {
    fn connection(&self) -> Result<PooledConnection<Manager>, StoreError> {
        self.pool.get().map_err(|e| {
            tracing::warn!(database = %self.url, error = %e, "no database connection");
            StoreError::Unavailable(format!("no connection to {}: {e}", self.url))
        })
    }

    fn run_blocking<T, E, F>(&self, mode: TxMode, mut work: F) -> Result<T, E>
    where
        E: From<StoreError> + Retryable,
        F: FnMut(&mut Tx<'_>) -> Result<T, E>,
    {
        let mut conn = self.connection()?;
        for attempt in 1..=MAX_ATTEMPTS {
            if attempt > 1 {
                std::thread::sleep(backoff(attempt - 1));
                if connection::is_broken(&mut conn) {
                    // Returned to the pool, r2d2 sees it is broken and closes it.
                    conn = self.connection()?;
                }
            }
            if let Err(e) = connection::begin(&mut conn, mode) {
                match self.failure(mode, &e) {
                    StoreError::Conflict => continue,
                    other => return Err(other.into()),
                }
            }
            let (outcome, conflicted) = {
                let mut tx = Tx::new(&mut conn, &self.keyring, mode);
                let outcome = work(&mut tx);
                (outcome, tx.conflicted())
            };
            match outcome {
                Ok(value) if !conflicted => match connection::commit(&mut conn) {
                    Ok(()) => return Ok(value),
                    Err(e) => match self.failure(mode, &e) {
                        // A serialization failure at COMMIT: diesel already rolled back.
                        StoreError::Conflict => continue,
                        other => return Err(other.into()),
                    },
                },
                Err(error) if !conflicted && !error.is_conflict() => {
                    // A rule said no (or the database failed): nothing `work` wrote stays.
                    self.roll_back(&mut conn);
                    return Err(error);
                }
                _ => {
                    tracing::debug!(attempt, "transaction conflicted; running it again");
                    if !self.roll_back(&mut conn) {
                        return Err(StoreError::Unavailable(
                            "the connection failed while rolling back".to_owned(),
                        )
                        .into());
                    }
                }
            }
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

    /// Classify an error met outside `work` (at BEGIN or COMMIT).
    fn failure(&self, mode: TxMode, error: &diesel::result::Error) -> StoreError {
        match Failure::of(error) {
            Failure::Conflict(_) => StoreError::Conflict,
            Failure::Busy(_) if mode == TxMode::Write => StoreError::Conflict,
            Failure::Busy(m) | Failure::Unavailable(m) => StoreError::Unavailable(self.scrub(m)),
            Failure::Corrupt(m) => StoreError::Corrupt(m),
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
fn backoff(retry: u32) -> Duration {
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
