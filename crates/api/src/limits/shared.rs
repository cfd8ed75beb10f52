//! Rate limits that hold across the nodes of a cluster (several wxlink nodes on one
//! PostgreSQL): without them an attacker who spreads requests over N nodes gets N times every
//! limit.
//!
//! Each node counts hits per key and fixed 60 s window in memory. The decision uses a sliding
//! estimate (the previous window weighted by how much of it still overlaps the last 60 s, plus
//! the current one), so crossing a window boundary does not reset a flood's count.
//!
//! - Below half a key's cap (as far as this node knows) a hit is admitted from memory and
//!   added to the shared `rate_limit_windows` table within a second, in the background.
//! - From half the cap on, a hit is admitted only out of a block of hits this node has leased:
//!   one transaction adds the whole block to the shared count and reads the totals back, and
//!   only the part of the block that keeps the shared estimate within the cap is granted. So
//!   the shared limit costs a round trip per block, not per hit. A block is sized to about one
//!   second of this node's hits of the key and at most a quarter of what is left under the cap,
//!   so blocks shrink as the cap nears; one exchange per key is in flight at a time.
//! - A key over its cap is refused from memory, without a round trip, until the estimate falls
//!   below it.
//! - When the table cannot be reached the local limits still hold: hits are admitted from
//!   memory and published later, and a key's lease is tried again at most once a second.
//!
//! How far the cluster can overshoot a cap: leased hits never take the shared count past the
//! cap, so only hits admitted from memory and not yet published can: a node admits them only
//! while its known count is below half the cap and publishes them within one sync interval.
//! Each other node can add at most `min(cap / 2, what it admits in one second)` on top of the
//! cap. The other way, hits leased and not spent (a node's last block, at most a quarter of
//! what was left) count without being used, so a key may be refused that much before the cap.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use wxlink_domain::UnixTime;
use wxlink_persistence::{Store, WindowHits};

use super::RetryAfter;

/// The length of one window.
pub const WINDOW_SECS: i64 = 60;

/// A lease covers about this many seconds of a node's hits of its key.
const LEASE_SECS: i64 = 1;

/// One key's counts in one window, on this node.
#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    /// Hits admitted from memory and not yet added to the table.
    pending: i64,
    /// The cluster's total as last read (it includes this node's leases).
    total: i64,
    /// Hits of leased blocks not spent yet (already in the table's count).
    lease: i64,
    /// Hits this node admitted, and since when it counts them: its rate, to size a lease.
    admitted: i64,
    since: UnixTime,
}

impl Slot {
    fn known(&self) -> i64 {
        self.total + self.pending
    }

    fn admit(&mut self, now: UnixTime) {
        if self.admitted == 0 {
            self.since = now;
        }
        self.admitted += 1;
    }

    /// This node's hits per second of the key (at least over one second).
    fn rate(&self, now: UnixTime) -> i64 {
        self.admitted / (now - self.since + 1).max(1)
    }
}

/// One key's windows (at most the previous and the current one after a sync).
#[derive(Debug, Default)]
struct KeyCounts {
    windows: Vec<(UnixTime, Slot)>,
    /// A lease of this key is being taken: other hits of it wait for its outcome.
    leasing: bool,
    /// The second a lease failed (the database unreachable): until the next one, hits past
    /// half the cap are admitted from memory, as below it, instead of each trying again.
    unreachable_at: Option<UnixTime>,
}

impl KeyCounts {
    fn get(&self, window: UnixTime) -> Slot {
        self.windows
            .iter()
            .find(|(w, _)| *w == window)
            .map_or_else(Slot::default, |(_, s)| *s)
    }

    fn slot(&mut self, window: UnixTime) -> &mut Slot {
        let at = match self.windows.iter().position(|(w, _)| *w == window) {
            Some(at) => at,
            None => {
                self.windows.push((window, Slot::default()));
                self.windows.len() - 1
            }
        };
        &mut self.windows[at].1
    }
}

/// Every key this node counts.
#[derive(Debug, Default)]
struct Counts {
    keys: HashMap<String, KeyCounts>,
}

impl Counts {
    fn key(&mut self, key: &str) -> &mut KeyCounts {
        // One allocation per key, not per hit.
        if !self.keys.contains_key(key) {
            self.keys.insert(key.to_owned(), KeyCounts::default());
        }
        self.keys.get_mut(key).expect("inserted above")
    }
}

/// The cluster-wide counts of one node.
#[derive(Debug)]
pub struct SharedWindows {
    store: Store,
    counts: Mutex<Counts>,
    /// Wakes the hits that wait for a lease being taken.
    leased: Notify,
    /// Round trips to the shared table made by hits (leases), not by the background sync.
    #[cfg(test)]
    exchanges: std::sync::atomic::AtomicU64,
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

/// How many hits to lease when `known` (this hit included) of `cap` are counted: about
/// [`LEASE_SECS`] of this node's rate, at most a quarter of what is left, at least this hit.
fn lease_size(rate: i64, cap: i64, known: i64) -> i64 {
    let left = cap - known + 1;
    rate.saturating_mul(LEASE_SECS).min(left / 4).max(1)
}

/// How many of a block of `size` hits just added to the shared count can be granted, when
/// the estimate with the block is `estimated`: the part that stays within the cap.
fn granted(size: i64, estimated: i64, cap: i64) -> i64 {
    (size - (estimated - cap).max(0)).clamp(0, size)
}

/// What one hit does next.
enum Step<'a> {
    Admitted,
    Refused,
    /// Another hit of the key is taking a lease: wait for it, then decide again.
    Wait(Pin<Box<Notified<'a>>>),
    /// Take a lease of `size` hits (this one included), publishing the pending hits with it.
    Lease {
        size: i64,
        current: i64,
        previous: i64,
    },
}

/// While a lease is taken. If the hit is dropped before the answer (its client went away),
/// the pending hits it carried go back; either way the key's waiters decide again.
struct Leasing<'a> {
    windows: &'a SharedWindows,
    key: &'a str,
    window: UnixTime,
    carried: Option<(i64, i64)>,
}

impl Drop for Leasing<'_> {
    fn drop(&mut self) {
        let mut counts = self.windows.lock();
        let k = counts.key(self.key);
        k.leasing = false;
        if let Some((current, previous)) = self.carried.take() {
            k.slot(self.window).pending += current;
            k.slot(self.window - WINDOW_SECS).pending += previous;
        }
        drop(counts);
        self.windows.leased.notify_waiters();
    }
}

impl SharedWindows {
    /// Counts shared through `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            counts: Mutex::new(Counts::default()),
            leased: Notify::new(),
            #[cfg(test)]
            exchanges: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: each update is one field.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Count one hit of `key` against `cap` hits per 60 s across the cluster.
    pub async fn hit(&self, key: &str, cap: u64, now: UnixTime) -> Result<(), RetryAfter> {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let window = window_of(now);
        let refused = || {
            RetryAfter(
                u64::try_from(window + WINDOW_SECS - now)
                    .unwrap_or(1)
                    .max(1),
            )
        };
        loop {
            match self.decide(key, cap, now) {
                Step::Admitted => return Ok(()),
                Step::Refused => return Err(refused()),
                Step::Wait(notified) => notified.await,
                Step::Lease {
                    size,
                    current,
                    previous,
                } => {
                    let leasing = Leasing {
                        windows: self,
                        key,
                        window,
                        carried: Some((current, previous)),
                    };
                    return if self.lease(leasing, size, cap, now).await {
                        Ok(())
                    } else {
                        Err(refused())
                    };
                }
            }
        }
    }

    /// Decide a hit from memory, or say what it needs.
    fn decide(&self, key: &str, cap: i64, now: UnixTime) -> Step<'_> {
        let window = window_of(now);
        let mut counts = self.lock();
        let k = counts.key(key);
        let slot = k.slot(window);
        if slot.lease > 0 {
            slot.lease -= 1;
            slot.admit(now);
            return Step::Admitted;
        }
        let current = *slot;
        let known = estimate(k.get(window - WINDOW_SECS).known(), current.known(), now) + 1;
        if known > cap {
            return Step::Refused;
        }
        if known.saturating_mul(2) < cap {
            let slot = k.slot(window);
            slot.pending += 1;
            slot.admit(now);
            return Step::Admitted;
        }
        if k.unreachable_at == Some(now) {
            let slot = k.slot(window);
            slot.pending += 1;
            slot.admit(now);
            return Step::Admitted;
        }
        if k.leasing {
            // Registered before the lock is released, so the wake-up cannot be missed.
            let mut notified = Box::pin(self.leased.notified());
            notified.as_mut().enable();
            return Step::Wait(notified);
        }
        k.leasing = true;
        let size = lease_size(current.rate(now), cap, known);
        Step::Lease {
            size,
            current: std::mem::take(&mut k.slot(window).pending),
            previous: std::mem::take(&mut k.slot(window - WINDOW_SECS).pending),
        }
    }

    /// Add a block of `size` hits (this hit among them) and the carried pending hits to the
    /// shared count, and keep what the cap grants; whether this hit is admitted.
    async fn lease(&self, mut leasing: Leasing<'_>, size: i64, cap: i64, now: UnixTime) -> bool {
        let (key, window) = (leasing.key, leasing.window);
        let previous = window - WINDOW_SECS;
        let (current_hits, previous_hits) = leasing.carried.unwrap_or_default();
        #[cfg(test)]
        self.exchanges
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let batch = vec![
            WindowHits {
                key: key.to_owned(),
                window_start: window,
                hits: current_hits + size,
            },
            // 0 hits only reads the previous window's total.
            WindowHits {
                key: key.to_owned(),
                window_start: previous,
                hits: previous_hits,
            },
        ];
        match self.store.add_rate_limit_hits(batch).await {
            Ok(totals) => {
                leasing.carried = None;
                let mut counts = self.lock();
                let k = counts.key(key);
                for t in totals {
                    let slot = k.slot(t.window_start);
                    // Totals only grow within a window; a sync may have read a later one.
                    slot.total = slot.total.max(t.hits);
                }
                let before = k.get(previous).known();
                let slot = k.slot(window);
                // Hits admitted from memory meanwhile are not in the total yet.
                let grant = granted(size, estimate(before, slot.known(), now), cap);
                if grant == 0 {
                    return false;
                }
                slot.lease += grant - 1;
                slot.admit(now);
                true
            }
            Err(error) => {
                // The local limits still hold; the hits are published at the next sync.
                tracing::warn!(%error, "rate limits: the shared counts could not be read");
                // This hit goes back with the carried ones (`Leasing`'s drop).
                if let Some((current, _)) = leasing.carried.as_mut() {
                    *current += 1;
                }
                let mut counts = self.lock();
                let k = counts.key(key);
                k.unreachable_at = Some(now);
                k.slot(window).admit(now);
                true
            }
        }
    }

    /// Add every pending hit to the table (one transaction) and read back the totals; forget
    /// windows that no longer count.
    pub async fn sync(&self, now: UnixTime) {
        let oldest = window_of(now) - WINDOW_SECS;
        let batch: Vec<WindowHits> = {
            let mut counts = self.lock();
            counts.keys.retain(|_, k| {
                k.windows.retain(|(w, _)| *w >= oldest);
                k.leasing || !k.windows.is_empty()
            });
            let mut batch = Vec::new();
            for (key, k) in &mut counts.keys {
                for (window_start, slot) in &mut k.windows {
                    let hits = std::mem::take(&mut slot.pending);
                    if hits > 0 {
                        batch.push(WindowHits {
                            key: key.clone(),
                            window_start: *window_start,
                            hits,
                        });
                    }
                }
            }
            batch
        };
        if batch.is_empty() {
            return;
        }
        match self.store.add_rate_limit_hits(batch.clone()).await {
            Ok(totals) => {
                let mut counts = self.lock();
                for t in totals {
                    let slot = counts.key(&t.key).slot(t.window_start);
                    slot.total = slot.total.max(t.hits);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "rate limits: publishing the counts failed; will retry");
                let mut counts = self.lock();
                for h in batch {
                    counts.key(&h.key).slot(h.window_start).pending += h.hits;
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
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

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

    #[test]
    fn a_lease_is_a_second_of_hits_and_shrinks_as_the_cap_nears() {
        assert_eq!(lease_size(2_500, 100_000, 50_000), 2_500);
        assert_eq!(lease_size(2_500, 10_000, 9_001), 250);
        assert_eq!(lease_size(2_500, 10_000, 9_999), 1);
        assert_eq!(lease_size(0, 10_000, 5_000), 1);
        // Only what keeps the estimate within the cap is granted.
        assert_eq!(granted(100, 900, 1_000), 100);
        assert_eq!(granted(100, 1_030, 1_000), 70);
        assert_eq!(granted(100, 1_200, 1_000), 0);
    }

    /// A store on a SQLite file of its own: the shared table works alike on both backends, and
    /// two `SharedWindows` on one store are two nodes.
    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}/limits.db", dir.path().display());
        let target = wxlink_persistence::DatabaseTarget::parse(&url).expect("url");
        let keyring = wxlink_crypto::Keyring::new(wxlink_crypto::DataKey::generate());
        Store::connect(wxlink_persistence::StoreConfig::new(target, keyring))
            .await
            .expect("store")
    }

    /// 10 s into a window: no previous window weighs in.
    const NOW: UnixTime = 6_010;

    /// Past half its cap, a busy key costs one round trip per lease, not per hit, also with
    /// many hits at once; and the node still admits exactly the cap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_half_the_cap_a_node_leases_blocks_instead_of_a_round_trip_per_hit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let node = Arc::new(SharedWindows::new(store(&dir).await));
        let cap = 10_000_u64;
        for _ in 0..4_999 {
            node.hit("app:wxa", cap, NOW).await.expect("below half");
        }
        assert_eq!(node.exchanges.load(Ordering::Relaxed), 0);
        // 64 clients at once past half: they share the leases.
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let node = Arc::clone(&node);
            clients.spawn(async move {
                let mut admitted = 0_u64;
                for _ in 0..100 {
                    if node.hit("app:wxa", cap, NOW).await.is_ok() {
                        admitted += 1;
                    }
                }
                admitted
            });
        }
        let admitted: u64 = clients.join_all().await.into_iter().sum();
        assert_eq!(admitted, 5_001, "4,999 + 5,001 = the cap of 10,000");
        let exchanges = node.exchanges.load(Ordering::Relaxed);
        // Each block is at most a quarter of what is left: about log(5,000)/log(4/3) blocks,
        // plus single hits at the very end (each of the 5,001 hits took one before).
        assert!(
            exchanges <= 40,
            "{exchanges} round trips for 5,001 hits past half the cap"
        );
        assert!(node.hit("app:wxa", cap, NOW).await.is_err(), "over the cap");
    }

    /// Two nodes on one table, each publishing every "second" (a sync between rounds): all
    /// the hits they admit stay within the cap plus one round of the other node's hits (what it
    /// admits from memory before its sync), and together they admit at least the cap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_admit_the_cap_and_at_most_one_second_of_the_other_node_more() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store(&dir).await;
        let nodes = [
            Arc::new(SharedWindows::new(store.clone())),
            Arc::new(SharedWindows::new(store)),
        ];
        let cap = 1_000_u64;
        let per_round = 60;
        let mut admitted = 0;
        for _ in 0..40 {
            let mut round = tokio::task::JoinSet::new();
            for node in &nodes {
                let node = Arc::clone(node);
                round.spawn(async move {
                    let mut admitted = 0;
                    for _ in 0..per_round {
                        if node.hit("ip:203.0.113.9", cap, NOW).await.is_ok() {
                            admitted += 1;
                        }
                    }
                    admitted
                });
            }
            admitted += round.join_all().await.into_iter().sum::<u64>();
            for node in &nodes {
                node.sync(NOW).await;
            }
        }
        assert!(
            (cap..=cap + per_round).contains(&admitted),
            "{admitted} hits admitted by two nodes, cap {cap}, {per_round} per node per sync"
        );
    }
}
