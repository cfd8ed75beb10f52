//! When a transaction runs again, how long it waits first, and what it says when it gives up:
//! one policy for the pooled transactions (`Store::run`), PostgreSQL's
//! one-statement login and SQLite's write groups (`group`).

use std::time::{Duration, Instant};

use backon::{BackoffBuilder as _, ExponentialBuilder};
use wxlink_domain::{DomainError, StoreError};

use super::connection::SQLITE_BUSY_TIMEOUT_MS;

/// How many times a transaction runs before the store answers `Contention`.
pub const MAX_ATTEMPTS: u32 = 12;

/// How long a writer keeps retrying SQLite's busy answers: one `busy_timeout`, which SQLite
/// itself already waited before the first one.
pub(crate) const SQLITE_BUSY_BUDGET: Duration =
    Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS as u64);

/// The wait before retry n is drawn from [cap/2, cap) with cap = 2 ms · 2ⁿ, at most 100 ms:
/// enough to let the winner of a race commit, short enough for a login. The jitter spreads
/// racing transactions out instead of letting them collide again in lockstep.
const BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(2))
    .with_max_delay(Duration::from_millis(50))
    .with_jitter()
    .without_max_times();

/// The waits between the attempts of one transaction, the first one first.
pub(crate) fn backoff() -> impl Iterator<Item = Duration> {
    BACKOFF.build()
}

/// Wait the next of `delays` on this (blocking) thread.
pub(crate) fn wait(delays: &mut impl Iterator<Item = Duration>) {
    // `backoff` never ends; the fallback only keeps this total.
    std::thread::sleep(delays.next().unwrap_or(Duration::from_millis(100)));
}

/// Why a transaction is run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// A uniqueness violation, serialization failure or deadlock, or the work returned
    /// [`StoreError::Conflict`].
    Conflict,
    /// SQLite's write lock was taken (after `busy_timeout`, or at once for a stale snapshot).
    Busy,
}

/// Errors a transaction treats as "run it again": the domain's [`StoreError::Conflict`].
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

/// What is run again: a transaction, or PostgreSQL's one-statement login.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Work {
    Transaction,
    Statement,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Transaction => "transaction",
            Work::Statement => "statement",
        }
    }

    /// Say that attempt `attempt` met `retry` and the work runs again.
    pub(crate) fn runs_again(self, attempt: u32, retry: Retry) {
        tracing::debug!(
            attempt,
            ?retry,
            "{} conflicted; running it again",
            self.name()
        );
    }

    /// The answer once [`MAX_ATTEMPTS`] attempts all conflicted.
    pub(crate) fn gave_up(self) -> StoreError {
        tracing::warn!(
            attempts = MAX_ATTEMPTS,
            "{} gave up after repeated conflicts",
            self.name()
        );
        StoreError::Contention {
            attempts: MAX_ATTEMPTS,
        }
    }
}

/// Whether a writer that met SQLite's busy answer, retrying since `started`, has spent its
/// [`SQLITE_BUSY_BUDGET`]: SQLite already waited `busy_timeout` before saying busy, and
/// retrying that for long would hold the caller far beyond any request deadline.
pub(crate) fn busy_budget_spent(started: Instant) -> bool {
    started.elapsed() >= SQLITE_BUSY_BUDGET
}

/// The answer when SQLite's write lock stayed taken (by another process) since `started`.
pub(crate) fn write_lock_stayed_taken(url: &str, started: Instant) -> StoreError {
    tracing::warn!(database = %url, "SQLite's write lock stayed taken");
    StoreError::Unavailable(format!(
        "database is locked: SQLite's write lock stayed taken for {:?}",
        started.elapsed()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_two_milliseconds_to_at_most_a_hundred() {
        // backon computes in f32 seconds: a few nanoseconds either way are its rounding.
        let rounding = Duration::from_micros(1);
        let mut cap = Duration::from_millis(4);
        for (retry, delay) in backoff().take(MAX_ATTEMPTS as usize).enumerate() {
            assert!(
                delay + rounding >= cap / 2 && delay <= cap + rounding,
                "retry {}: {delay:?} outside [{:?}, {cap:?}]",
                retry + 1,
                cap / 2
            );
            cap = (cap * 2).min(Duration::from_millis(100));
        }
    }
}
