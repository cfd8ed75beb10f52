//! Rate limits that hold across the nodes of a cluster (several wxlink nodes on one
//! PostgreSQL): without them an attacker who spreads requests over N nodes gets N times every
//! limit.
//!
//! Each node counts hits per key and fixed 60 s window in memory and adds them to the shared
//! `rate_limit_windows` table in batches: every second in the background, and at once for a key
//! whose known count has reached half its cap. The decision uses a sliding estimate (the
//! previous window weighted by how much of it still overlaps the last 60 s, plus the current
//! one), so crossing a window boundary does not reset a flood's count. A key over its cap is
//! refused from memory, without a database round trip, until the estimate falls below it.
//!
//! How far the cluster can overshoot a cap: a node admits hits of a key from memory only while
//! its known count is below half the cap, and publishes them within one sync interval; so each
//! other node can add at most `min(cap / 2, what it admits in one second)` on top of the cap.

use std::collections::HashMap;
use std::sync::Mutex;

use wxlink_domain::UnixTime;
use wxlink_persistence::{Store, WindowHits};

use super::RetryAfter;

/// The length of one window.
pub const WINDOW_SECS: i64 = 60;

/// Hits counted here and not yet added to the table, and the cluster's totals last read.
#[derive(Debug, Default)]
struct Counts {
    pending: HashMap<(String, UnixTime), i64>,
    totals: HashMap<(String, UnixTime), i64>,
}

impl Counts {
    fn known(&self, key: &str, window: UnixTime) -> i64 {
        let k = (key.to_owned(), window);
        self.totals.get(&k).copied().unwrap_or(0) + self.pending.get(&k).copied().unwrap_or(0)
    }

    fn take_pending(&mut self, key: &str, window: UnixTime) -> i64 {
        self.pending.remove(&(key.to_owned(), window)).unwrap_or(0)
    }
}

/// The cluster-wide counts of one node.
#[derive(Debug)]
pub struct SharedWindows {
    store: Store,
    counts: Mutex<Counts>,
}

fn window_of(now: UnixTime) -> UnixTime {
    now - now.rem_euclid(WINDOW_SECS)
}

/// The sliding estimate of hits in the last 60 s, rounded up: a limit never counts a hit less.
fn estimate(previous: i64, current: i64, now: UnixTime) -> i64 {
    let left = WINDOW_SECS - (now - window_of(now));
    // Counts are never negative, so adding the divisor less one rounds up.
    (previous * left + WINDOW_SECS - 1) / WINDOW_SECS + current
}

impl SharedWindows {
    /// Counts shared through `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            counts: Mutex::new(Counts::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: each update is one insert.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Count one hit of `key` against `cap` hits per 60 s across the cluster.
    pub async fn hit(&self, key: &str, cap: u64, now: UnixTime) -> Result<(), RetryAfter> {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let window = window_of(now);
        let previous = window - WINDOW_SECS;
        let refused = || {
            RetryAfter(
                u64::try_from(window + WINDOW_SECS - now)
                    .unwrap_or(1)
                    .max(1),
            )
        };
        let (add_current, add_previous) = {
            let mut counts = self.lock();
            let known = estimate(counts.known(key, previous), counts.known(key, window), now) + 1;
            if known > cap {
                return Err(refused());
            }
            if known.saturating_mul(2) < cap {
                *counts.pending.entry((key.to_owned(), window)).or_insert(0) += 1;
                return Ok(());
            }
            (
                counts.take_pending(key, window) + 1,
                counts.take_pending(key, previous),
            )
        };
        // Near the cap: decide on the cluster's own total.
        let batch = vec![
            WindowHits {
                key: key.to_owned(),
                window_start: window,
                hits: add_current,
            },
            WindowHits {
                key: key.to_owned(),
                window_start: previous,
                hits: add_previous,
            },
        ];
        match self.store.add_rate_limit_hits(batch).await {
            Ok(totals) => {
                let mut counts = self.lock();
                let mut current_total = 0;
                let mut previous_total = 0;
                for t in totals {
                    if t.window_start == window {
                        current_total = t.hits;
                    } else {
                        previous_total = t.hits;
                    }
                    counts.totals.insert((t.key, t.window_start), t.hits);
                }
                let unsynced = counts.known(key, window) - current_total;
                if estimate(previous_total, current_total + unsynced.max(0), now) > cap {
                    return Err(refused());
                }
                Ok(())
            }
            Err(error) => {
                // The local limits still hold; the hits are published at the next sync.
                tracing::warn!(%error, "rate limits: the shared counts could not be read");
                let mut counts = self.lock();
                *counts.pending.entry((key.to_owned(), window)).or_insert(0) += add_current;
                *counts
                    .pending
                    .entry((key.to_owned(), previous))
                    .or_insert(0) += add_previous;
                Ok(())
            }
        }
    }

    /// Add every pending hit to the table (one transaction) and read back the totals; forget
    /// windows that no longer count.
    pub async fn sync(&self, now: UnixTime) {
        let oldest = window_of(now) - WINDOW_SECS;
        let batch: Vec<WindowHits> = {
            let mut counts = self.lock();
            counts.totals.retain(|(_, w), _| *w >= oldest);
            counts
                .pending
                .drain()
                .filter(|((_, w), _)| *w >= oldest)
                .map(|((key, window_start), hits)| WindowHits {
                    key,
                    window_start,
                    hits,
                })
                .collect()
        };
        if batch.is_empty() {
            return;
        }
        match self.store.add_rate_limit_hits(batch.clone()).await {
            Ok(totals) => {
                let mut counts = self.lock();
                for t in totals {
                    counts.totals.insert((t.key, t.window_start), t.hits);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "rate limits: publishing the counts failed; will retry");
                let mut counts = self.lock();
                for h in batch {
                    *counts.pending.entry((h.key, h.window_start)).or_insert(0) += h.hits;
                }
            }
        }
    }

    /// Delete windows that no node reads any more.
    pub async fn purge(&self, now: UnixTime) {
        let before = window_of(now) - 2 * WINDOW_SECS;
        if let Err(error) = self.store.purge_rate_limit_windows(before).await {
            tracing::warn!(%error, "purging old rate-limit windows failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_slides_over_the_window_boundary() {
        // Just after a boundary the previous window counts nearly whole.
        assert_eq!(estimate(60, 0, 6001), 59);
        assert_eq!(estimate(60, 5, 6030), 35);
        assert_eq!(estimate(60, 5, 6059), 6);
        // Just past a boundary a flood of 10 still counts 10, not 9.
        assert_eq!(estimate(10, 0, 6001), 10);
        assert_eq!(window_of(6059), 6000);
    }
}
