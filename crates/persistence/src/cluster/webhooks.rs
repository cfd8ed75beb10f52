//! Webhook delivery state. The `events` table is the outbox (every creation, link and merge is
//! appended in the transaction that made it); each webhook keeps a cursor, the feed position of
//! the last event its receiver acknowledged, and a lease so that one node delivers at a time. Delivery
//! is at least once: a node that dies after a POST and before advancing the cursor makes the
//! next holder send those events again.

use diesel::prelude::*;
use wxlink_domain::{StoreError, TxMode, UnixTime};

use crate::store::Store;
use crate::store::schema::webhook_cursors;
use crate::store::tx::Tx;

impl Store {
    /// Take (or keep) the delivery lease of webhook `name` until `now + lease_secs`; returns
    /// the cursor if `holder` has the lease now.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn lease_webhook(
        &self,
        name: &str,
        holder: &str,
        now: UnixTime,
        lease_secs: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let row = webhook_cursors::table
                .filter(webhook_cursors::name.eq(name.as_str()))
                .select(webhook_cursors::last_event_id)
                .get_result::<i64>(tx.conn)
                .optional();
            if tx.db(row)?.is_none() {
                let inserted = diesel::insert_into(webhook_cursors::table)
                    .values((
                        webhook_cursors::name.eq(name.as_str()),
                        webhook_cursors::last_event_id.eq(0),
                        webhook_cursors::lease_holder.eq(holder.as_str()),
                        webhook_cursors::lease_until.eq(now + lease_secs),
                    ))
                    .execute(tx.conn);
                // A concurrent first insert is a conflict: the retry sees the row.
                return tx.db(inserted).map(|_| Some(0));
            }
            let mine = webhook_cursors::table.filter(webhook_cursors::name.eq(name.as_str()));
            let taken = diesel::update(
                mine.filter(
                    webhook_cursors::lease_until
                        .lt(now)
                        .or(webhook_cursors::lease_holder.eq(holder.as_str())),
                ),
            )
            .set((
                webhook_cursors::lease_holder.eq(holder.as_str()),
                webhook_cursors::lease_until.eq(now + lease_secs),
            ))
            .execute(tx.conn);
            if tx.db(taken)? == 0 {
                return Ok(None);
            }
            let cursor = mine
                .select(webhook_cursors::last_event_id)
                .get_result::<i64>(tx.conn);
            tx.db(cursor).map(Some)
        })
        .await
    }

    /// Move webhook `name`'s cursor forward to `last_event_id`, if `holder` still holds the
    /// lease; returns whether it did.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn advance_webhook(
        &self,
        name: &str,
        holder: &str,
        last_event_id: i64,
    ) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let updated = diesel::update(
                webhook_cursors::table
                    .filter(webhook_cursors::name.eq(name.as_str()))
                    .filter(webhook_cursors::lease_holder.eq(holder.as_str()))
                    .filter(webhook_cursors::last_event_id.lt(last_event_id)),
            )
            .set(webhook_cursors::last_event_id.eq(last_event_id))
            .execute(tx.conn);
            Ok(tx.db(updated)? == 1)
        })
        .await
    }
}
