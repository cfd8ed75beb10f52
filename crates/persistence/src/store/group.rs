//! SQLite group commit: one writer thread takes the queued write transactions, runs many of
//! them in one SQLite transaction, each in a savepoint of its own, and answers them after the
//! one `COMMIT`; a background thread checkpoints the WAL, so no login waits for a checkpoint.
//!
//! SQLite has one write lock, so writers run one at a time anyway; handing them to one thread
//! removes the wait for the lock, makes one commit (one WAL append) serve a whole group, and
//! keeps the writer on a connection whose page cache no other writer invalidates.
//! A group takes whatever is queued when the writer is free, up to [`MAX_GROUP`]; it never
//! waits for more to arrive, so a write waits at most for the group before it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use diesel::r2d2::{Pool, PooledConnection};
use tokio::sync::{mpsc, oneshot};
use wxlink_crypto::Keyring;
use wxlink_domain::{StoreError, TxMode};

use crate::store::connection::{self, DbConnection, Manager};
use crate::store::error::{Failure, Retryable};
use crate::store::tx::Tx;
use crate::store::url::Target;
use crate::store::{MAX_ATTEMPTS, SQLITE_BUSY_BUDGET, backoff};

/// Most write transactions in one SQLite transaction: one per client of the benchmark's 64,
/// and a bound on how long one group holds the answers of its first members.
const MAX_GROUP: usize = 64;

/// Write transactions queued for the writer; beyond this, writers wait on the async side
/// (within their `connect_timeout`), so memory stays bounded under any load.
const QUEUE_LENGTH: usize = 1024;

/// How often the background thread checkpoints the WAL: often enough that the WAL stays a
/// few MiB at thousands of logins per second.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// One queued write transaction, type-erased for the queue.
trait Job: Send {
    /// Run the work once on `conn`, inside the group's transaction.
    fn attempt(&mut self, conn: &mut DbConnection, keyring: &Keyring) -> Step;
    /// Send the answer: the work's own outcome, or `failure` when its writes did not stay.
    fn answer(self: Box<Self>, failure: Option<StoreError>);
}

/// How one attempt of a job ended.
enum Step {
    /// The work succeeded; its answer waits for the `COMMIT`.
    Done,
    /// A rule said no (or a statement failed): its writes are rolled back, its error stands.
    Refused,
    /// A conflict: roll back its savepoint and run it again.
    Conflict,
}

struct Queued<T, E, F> {
    work: F,
    outcome: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Job for Queued<T, E, F>
where
    T: Send,
    E: From<StoreError> + Retryable + Send,
    F: FnMut(&mut Tx<'_>) -> Result<T, E> + Send,
{
    fn attempt(&mut self, conn: &mut DbConnection, keyring: &Keyring) -> Step {
        let mut tx = Tx::new(conn, keyring, TxMode::Write);
        let outcome = (self.work)(&mut tx);
        match (outcome, tx.conflict()) {
            (Ok(value), None) => {
                self.outcome = Some(Ok(value));
                Step::Done
            }
            (Err(error), None) if !error.is_conflict() => {
                self.outcome = Some(Err(error));
                Step::Refused
            }
            _ => Step::Conflict,
        }
    }

    fn answer(self: Box<Self>, failure: Option<StoreError>) {
        let outcome = match (failure, self.outcome) {
            (None, Some(outcome)) => outcome,
            (Some(error), _) => Err(error.into()),
            (None, None) => Err(StoreError::Unavailable("the write was not run".to_owned()).into()),
        };
        // The caller may have gone away (its request was cancelled); nothing to tell then.
        let _ = self.reply.send(outcome);
    }
}

/// The handle to the writer thread; dropping the last one stops both threads.
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Start the writer and the checkpointer for the SQLite database of `pool`.
    pub(crate) fn start(
        pool: Pool<Manager>,
        keyring: Arc<Keyring>,
        target: Target,
        connect_timeout: Duration,
    ) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::channel(QUEUE_LENGTH);
        let url = target.display_url();
        let checkpoints = target.clone();
        let group = Group {
            pool,
            keyring,
            target,
            url,
            connect_timeout,
        };
        std::thread::Builder::new()
            .name("wxlink-sqlite-writer".to_owned())
            .spawn(move || group.serve(jobs))?;
        let alive = mpsc::Sender::downgrade(&queue);
        std::thread::Builder::new()
            .name("wxlink-sqlite-checkpoint".to_owned())
            .spawn(move || checkpoint_until_dropped(&checkpoints, &alive))?;
        Ok(Writer { queue })
    }

    /// Queue `work` (waiting at most until `deadline` for room) and wait for its answer.
    pub(crate) async fn submit<T, E, F>(&self, work: F, deadline: Instant) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Retryable + Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Queued {
            work,
            outcome: None,
            reply,
        });
        match tokio::time::timeout_at(deadline.into(), self.queue.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_closed)) => {
                return Err(
                    StoreError::Unavailable("the store is shutting down".to_owned()).into(),
                );
            }
            Err(_elapsed) => {
                tracing::warn!("the SQLite writer's queue stayed full");
                return Err(StoreError::Unavailable(
                    "the SQLite writer's queue stayed full".to_owned(),
                )
                .into());
            }
        }
        answer.await.unwrap_or_else(|_| {
            tracing::error!("the SQLite writer dropped a transaction unanswered");
            Err(StoreError::Unavailable("the transaction's thread failed".to_owned()).into())
        })
    }
}

/// What the writer thread needs.
struct Group {
    pool: Pool<Manager>,
    keyring: Arc<Keyring>,
    target: Target,
    url: String,
    connect_timeout: Duration,
}

impl Group {
    fn serve(self, mut jobs: mpsc::Receiver<Box<dyn Job>>) {
        while let Some(first) = jobs.blocking_recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match jobs.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            self.commit(group);
        }
    }

    /// Run `group` in one transaction and answer every job.
    fn commit(&self, group: Vec<Box<dyn Job>>) {
        let mut conn = match self.begin() {
            Ok(conn) => conn,
            Err(error) => return fail_all(group, &error),
        };
        let mut done: Vec<Box<dyn Job>> = Vec::with_capacity(group.len());
        let mut jobs = group.into_iter();
        while let Some(mut job) = jobs.next() {
            match self.run_job(&mut conn, job.as_mut()) {
                Ok(Some(Step::Done)) => done.push(job),
                Ok(Some(_)) => job.answer(None),
                Ok(None) => job.answer(Some(StoreError::Contention {
                    attempts: MAX_ATTEMPTS,
                })),
                Err(error) => {
                    // The transaction is unusable: nothing of the group stays.
                    tracing::warn!(database = %self.url, error = %error, "group transaction failed");
                    self.roll_back(&mut conn);
                    job.answer(Some(error.clone()));
                    done.extend(jobs);
                    return fail_all(done, &error);
                }
            }
        }
        match connection::commit(&mut conn) {
            Ok(()) => done.into_iter().for_each(|job| job.answer(None)),
            Err(e) => {
                // diesel has tried to roll back already.
                let error = self.store_error(&e);
                tracing::warn!(database = %self.url, error = %error, "group commit failed");
                fail_all(done, &error);
            }
        }
    }

    /// A connection in `BEGIN IMMEDIATE`, retrying SQLite's busy answer (another process holds
    /// the write lock) for one busy budget, as `Store::run` does for a single writer.
    fn begin(&self) -> Result<PooledConnection<Manager>, StoreError> {
        let started = Instant::now();
        let mut conn = self.pool.get_timeout(self.connect_timeout).map_err(|e| {
            tracing::warn!(database = %self.url, error = %e, "no database connection");
            StoreError::Unavailable(format!("no connection to {}: {e}", self.url))
        })?;
        let mut retry = 0;
        loop {
            let Err(e) = connection::begin(&mut conn, TxMode::Write) else {
                return Ok(conn);
            };
            retry += 1;
            match Failure::of(&e) {
                Failure::Busy(_) | Failure::Conflict(_)
                    if started.elapsed() < SQLITE_BUSY_BUDGET =>
                {
                    std::thread::sleep(backoff(retry));
                }
                Failure::Busy(_) | Failure::Conflict(_) => {
                    tracing::warn!(database = %self.url, "SQLite's write lock stayed taken");
                    return Err(StoreError::Unavailable(format!(
                        "database is locked: SQLite's write lock stayed taken for {:?}",
                        started.elapsed()
                    )));
                }
                _ => return Err(self.store_error(&e)),
            }
        }
    }

    /// Run one job in a savepoint until it is done or refused (`Some`), or has conflicted
    /// [`MAX_ATTEMPTS`] times (`None`). `Err` when the savepoint itself failed.
    fn run_job(
        &self,
        conn: &mut DbConnection,
        job: &mut dyn Job,
    ) -> Result<Option<Step>, StoreError> {
        for attempt in 1..=MAX_ATTEMPTS {
            self.sql(conn, "SAVEPOINT job")?;
            let step = catch_unwind(AssertUnwindSafe(|| job.attempt(conn, &self.keyring)));
            match step {
                Ok(Step::Done) => {
                    self.sql(conn, "RELEASE job")?;
                    return Ok(Some(Step::Done));
                }
                Ok(step) => {
                    self.sql(conn, "ROLLBACK TO job; RELEASE job")?;
                    if let Step::Refused = step {
                        return Ok(Some(Step::Refused));
                    }
                    tracing::debug!(attempt, "transaction conflicted; running it again");
                }
                Err(_panic) => {
                    tracing::error!("a store transaction panicked");
                    self.sql(conn, "ROLLBACK TO job; RELEASE job")?;
                    return Err(StoreError::Unavailable(
                        "the transaction's thread failed".to_owned(),
                    ));
                }
            }
        }
        tracing::warn!(
            attempts = MAX_ATTEMPTS,
            "transaction gave up after repeated conflicts"
        );
        Ok(None)
    }

    fn sql(&self, conn: &mut DbConnection, sql: &str) -> Result<(), StoreError> {
        conn.batch_execute(sql).map_err(|e| self.store_error(&e))
    }

    fn roll_back(&self, conn: &mut PooledConnection<Manager>) {
        if let Err(e) = connection::rollback(conn) {
            tracing::warn!(database = %self.url, error = %e, "rollback failed");
        }
    }

    fn store_error(&self, error: &diesel::result::Error) -> StoreError {
        match Failure::of(error) {
            Failure::Corrupt(m) => StoreError::Corrupt(m),
            Failure::Conflict(m) | Failure::Busy(m) | Failure::Unavailable(m) => {
                StoreError::Unavailable(self.target.scrub(m))
            }
        }
    }
}

fn fail_all(jobs: Vec<Box<dyn Job>>, error: &StoreError) {
    for job in jobs {
        job.answer(Some(error.clone()));
    }
}

/// Checkpoint the WAL in the background (connections run with `wal_autocheckpoint = 0`),
/// until the store is dropped. `PASSIVE` takes no lock that a writer or reader waits for.
/// The thread keeps a connection of its own, so busy readers cannot starve it of one.
fn checkpoint_until_dropped(target: &Target, alive: &mpsc::WeakSender<Box<dyn Job>>) {
    let mut conn: Option<DbConnection> = None;
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        if alive.upgrade().is_none() {
            return;
        }
        let checkpoint = match conn.as_mut() {
            Some(c) => c
                .batch_execute("PRAGMA wal_checkpoint(PASSIVE)")
                .map_err(|e| e.to_string()),
            None => target.establish().map(|c| conn = Some(c)),
        };
        if let Err(error) = checkpoint {
            tracing::debug!(database = %target.display_url(), %error, "WAL checkpoint skipped");
            // Reconnect next time: the file may have been replaced or the connection broken.
            conn = None;
        }
    }
}
