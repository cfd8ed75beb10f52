//! Rate-limit hits shared by the nodes of a cluster: each node counts locally and adds its
//! counts here in batches, reading back the cluster-wide totals, so that an attacker who
//! spreads requests over nodes meets one limit, not one per node.

use diesel::prelude::*;
use wxlink_domain::{StoreError, TxMode, UnixTime};

use crate::store::Store;
use crate::store::schema::rate_limit_windows as windows;
use crate::store::tx::Tx;

/// Hits of one key in one fixed window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowHits {
    /// What is limited, e.g. `ip:203.0.113.7`.
    pub key: String,
    /// Unix seconds where the window starts.
    pub window_start: UnixTime,
    /// How many hits: to add, or the cluster's total.
    pub hits: i64,
}

impl Store {
    /// Add each entry's hits to its (key, window) and return the cluster-wide totals of the
    /// same pairs, in one transaction (a concurrent node's batch is retried as a conflict).
    /// An entry with 0 hits only reads its total.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn add_rate_limit_hits(
        &self,
        batch: Vec<WindowHits>,
    ) -> Result<Vec<WindowHits>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let mut totals = Vec::with_capacity(batch.len());
            for entry in &batch {
                let row = windows::table
                    .filter(windows::limit_key.eq(entry.key.as_str()))
                    .filter(windows::window_start.eq(entry.window_start));
                if entry.hits != 0 {
                    let updated = diesel::update(row)
                        .set(windows::hits.eq(windows::hits + entry.hits))
                        .execute(tx.conn);
                    if tx.db(updated)? == 0 {
                        // A concurrent first insert is a conflict: the retry updates its row.
                        let inserted = diesel::insert_into(windows::table)
                            .values((
                                windows::limit_key.eq(entry.key.as_str()),
                                windows::window_start.eq(entry.window_start),
                                windows::hits.eq(entry.hits),
                            ))
                            .execute(tx.conn);
                        tx.db(inserted)?;
                    }
                }
                let total = row
                    .select(windows::hits)
                    .get_result::<i64>(tx.conn)
                    .optional();
                totals.push(WindowHits {
                    key: entry.key.clone(),
                    window_start: entry.window_start,
                    hits: tx.db(total)?.unwrap_or(0),
                });
            }
            Ok(totals)
        })
        .await
    }

    /// Delete windows that start before `before`; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn purge_rate_limit_windows(&self, before: UnixTime) -> Result<usize, StoreError> {
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let deleted = diesel::delete(windows::table.filter(windows::window_start.lt(before)))
                .execute(tx.conn);
            tx.db(deleted)
        })
        .await
    }
}
