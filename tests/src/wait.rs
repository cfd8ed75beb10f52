//! Waiting for something another thread or process does: [`eventually`] (async) and
//! [`eventually_blocking`] check a condition again and again, at most for a bound, and say when
//! it never held. The one home of polling in the tests: none of them sleeps to synchronise.

use std::time::{Duration, Instant};

/// How long a check waits before it is tried again.
pub const POLL: Duration = Duration::from_millis(20);

/// The condition did not hold within the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    /// The bound it was given.
    pub within: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "did not happen within {:?}", self.within)
    }
}

impl std::error::Error for TimedOut {}

/// Run `check` until it answers `Some`, every [`POLL`], and answer that; or [`TimedOut`] once
/// `within` has passed (`check` runs at least once, and once more at the bound). A test that
/// needs the condition says so with `.expect("what it waited for")`.
///
/// # Errors
/// [`TimedOut`] when `check` never answered `Some` within `within`.
#[cfg(feature = "async")]
pub async fn eventually<T>(
    within: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let deadline = Instant::now() + within;
    loop {
        let past = Instant::now() >= deadline;
        if let Some(value) = check().await {
            return Ok(value);
        }
        if past {
            return Err(TimedOut { within });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a thread without an async runtime: it blocks the calling thread.
///
/// # Errors
/// [`TimedOut`] when `check` never answered `Some` within `within`.
pub fn eventually_blocking<T>(
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let deadline = Instant::now() + within;
    loop {
        let past = Instant::now() >= deadline;
        if let Some(value) = check() {
            return Ok(value);
        }
        if past {
            return Err(TimedOut { within });
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_answers_what_the_check_found_or_says_it_timed_out() {
        let mut calls = 0;
        let found = eventually_blocking(Duration::from_secs(5), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(found, Ok(3));
        let never = eventually_blocking(Duration::ZERO, || None::<()>);
        assert_eq!(
            never,
            Err(TimedOut {
                within: Duration::ZERO
            })
        );
    }
}
