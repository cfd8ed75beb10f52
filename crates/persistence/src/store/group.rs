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
use crate::store::error::{self, Failure};
use crate::store::retry::{self, MAX_ATTEMPTS, Retry, Retryable, Work};
use crate::store::tx::Tx;
use crate::store::url::Target;

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
trait QueuedWrite: Send {
    /// Run the work once on `conn`, inside the group's transaction.
    fn attempt(&mut self, conn: &mut DbConnection, keyring: &Keyring) -> AttemptEnd;
    /// Send the answer: the work's own outcome, or `failure` when its writes did not stay.
    fn answer(self: Box<Self>, failure: Option<StoreError>);
}

/// How one attempt of a write ended.
enum AttemptEnd {
    /// The work succeeded; its answer waits for the `COMMIT`.
    Done,
    /// A rule said no (or a statement failed): its writes are rolled back, its error stands.
    Refused,
    /// A conflict: roll back its savepoint and run it again.
    Conflict,
}

struct WorkAndReply<T, E, F> {
    work: F,
    outcome: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> QueuedWrite for WorkAndReply<T, E, F>
where
    T: Send,
    E: From<StoreError> + Retryable + Send,
    F: FnMut(&mut Tx<'_>) -> Result<T, E> + Send,
{
    fn attempt(&mut self, conn: &mut DbConnection, keyring: &Keyring) -> AttemptEnd {
        let mut tx = Tx::new(conn, keyring, TxMode::Write);
        let outcome = (self.work)(&mut tx);
        match (outcome, tx.conflict()) {
            (Ok(value), None) => {
                self.outcome = Some(Ok(value));
                AttemptEnd::Done
            }
            (Err(error), None) if !error.is_conflict() => {
                self.outcome = Some(Err(error));
                AttemptEnd::Refused
            }
            _ => AttemptEnd::Conflict,
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
    queue: mpsc::Sender<Box<dyn QueuedWrite>>,
}

impl Writer {
    /// Start the writer and the checkpointer for the SQLite database of `pool`.
    pub(crate) fn start(
        pool: Pool<Manager>,
        keyring: Arc<Keyring>,
        target: Target,
        connect_timeout: Duration,
    ) -> std::io::Result<Writer> {
        let (queue, writes) = mpsc::channel(QUEUE_LENGTH);
        let url = target.display_url();
        let checkpoints = target.clone();
        let group = GroupCommitter {
            pool,
            keyring,
            target,
            url,
            connect_timeout,
        };
        std::thread::Builder::new()
            .name("wxlink-sqlite-writer".to_owned())
            .spawn(move || group.serve(writes))?;
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
        let write: Box<dyn QueuedWrite> = Box::new(WorkAndReply {
            work,
            outcome: None,
            reply,
        });
        match tokio::time::timeout_at(deadline.into(), self.queue.send(write)).await {
            Ok(Ok(())) => {}
            Ok(Err(_closed)) => {
                return Err(error::shutting_down().into());
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
            Err(error::thread_failed("transaction").into())
        })
    }
}

/// The writer thread: takes the queued writes a group at a time and commits each group.
struct GroupCommitter {
    pool: Pool<Manager>,
    keyring: Arc<Keyring>,
    target: Target,
    url: String,
    connect_timeout: Duration,
}

impl GroupCommitter {
    fn serve(self, mut writes: mpsc::Receiver<Box<dyn QueuedWrite>>) {
        while let Some(first) = writes.blocking_recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match writes.try_recv() {
                    Ok(write) => group.push(write),
                    Err(_) => break,
                }
            }
            self.commit(group);
        }
    }

    /// Run `group` in one transaction and answer every write.
    fn commit(&self, group: Vec<Box<dyn QueuedWrite>>) {
        let mut conn = match self.begin() {
            Ok(conn) => conn,
            Err(error) => return fail_all(group, &error),
        };
        let mut done: Vec<Box<dyn QueuedWrite>> = Vec::with_capacity(group.len());
        let mut writes = group.into_iter();
        while let Some(mut write) = writes.next() {
            match self.run_write(&mut conn, write.as_mut()) {
                Ok(Some(AttemptEnd::Done)) => done.push(write),
                Ok(Some(_)) => write.answer(None),
                Ok(None) => write.answer(Some(Work::Transaction.gave_up())),
                Err(error) => {
                    // The transaction is unusable: nothing of the group stays.
                    tracing::warn!(database = %self.url, error = %error, "group transaction failed");
                    self.roll_back(&mut conn);
                    write.answer(Some(error.clone()));
                    done.extend(writes);
                    return fail_all(done, &error);
                }
            }
        }
        match connection::commit(&mut conn) {
            Ok(()) => done.into_iter().for_each(|write| write.answer(None)),
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
        let mut conn = self
            .pool
            .get_timeout(self.connect_timeout)
            .map_err(|e| error::no_connection(&self.url, e))?;
        let mut delays = retry::backoff();
        loop {
            let Err(e) = connection::begin(&mut conn, TxMode::Write) else {
                return Ok(conn);
            };
            match Failure::of(&e) {
                Failure::Busy(_) | Failure::Conflict(_) if !retry::busy_budget_spent(started) => {
                    retry::wait(&mut delays);
                }
                Failure::Busy(_) | Failure::Conflict(_) => {
                    return Err(retry::write_lock_stayed_taken(&self.url, started));
                }
                _ => return Err(self.store_error(&e)),
            }
        }
    }

    /// Run one write in a savepoint until it is done or refused (`Some`), or has conflicted
    /// [`MAX_ATTEMPTS`] times (`None`). `Err` when the savepoint itself failed.
    fn run_write(
        &self,
        conn: &mut DbConnection,
        write: &mut dyn QueuedWrite,
    ) -> Result<Option<AttemptEnd>, StoreError> {
        for attempt in 1..=MAX_ATTEMPTS {
            self.sql(conn, "SAVEPOINT queued_write")?;
            let ended = catch_unwind(AssertUnwindSafe(|| write.attempt(conn, &self.keyring)));
            match ended {
                Ok(AttemptEnd::Done) => {
                    self.sql(conn, "RELEASE queued_write")?;
                    return Ok(Some(AttemptEnd::Done));
                }
                Ok(ended) => {
                    self.sql(conn, "ROLLBACK TO queued_write; RELEASE queued_write")?;
                    if let AttemptEnd::Refused = ended {
                        return Ok(Some(AttemptEnd::Refused));
                    }
                    Work::Transaction.runs_again(attempt, Retry::Conflict);
                }
                Err(_panic) => {
                    tracing::error!("a store transaction panicked");
                    self.sql(conn, "ROLLBACK TO queued_write; RELEASE queued_write")?;
                    return Err(error::thread_failed("transaction"));
                }
            }
        }
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

fn fail_all(writes: Vec<Box<dyn QueuedWrite>>, error: &StoreError) {
    for write in writes {
        write.answer(Some(error.clone()));
    }
}

/// Checkpoint the WAL in the background (connections run with `wal_autocheckpoint = 0`),
/// until the store is dropped. `PASSIVE` takes no lock that a writer or reader waits for.
/// The thread keeps a connection of its own, so busy readers cannot starve it of one.
fn checkpoint_until_dropped(target: &Target, alive: &mpsc::WeakSender<Box<dyn QueuedWrite>>) {
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
