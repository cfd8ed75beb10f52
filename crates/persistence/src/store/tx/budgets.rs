//! The budgets of failed decryptions: per session, and per identity and day across its
//! sessions, reserved before a decryption and given back when it succeeds. Single-row
//! conditional updates under READ COMMITTED, so that one person's concurrent requests do not
//! pile up into serialization failures.

use diesel::prelude::*;
use wxlink_domain::{AppId, DecryptBudget, OpenId, Reservation, StoreError, TokenHash, UnixTime};

use super::Tx;
use crate::store::schema::{decrypt_budgets, sessions};

/// How long an identity's count of failed decryptions lasts.
pub(crate) const IDENTITY_WINDOW_SECS: i64 = 24 * 3600;
/// The purpose of [`wxlink_crypto::DataKey::keyed_hash`] for `decrypt_budgets`.
const DECRYPT_BUDGET_CONTEXT: &str = "decrypt budget";

impl Tx<'_> {
    /// The key of an identity's row in `decrypt_budgets`: a keyed hash, so that the rows,
    /// which outlive the identity, hold no openid.
    pub(crate) fn identity_hash(&self, appid: &AppId, openid: &OpenId) -> [u8; 32] {
        let identity = format!("{appid}\n{openid}");
        self.keyring
            .current_key()
            .keyed_hash(DECRYPT_BUDGET_CONTEXT, identity.as_bytes())
    }

    /// [`StoreTx::reserve_decrypt_attempt`](wxlink_domain::StoreTx::reserve_decrypt_attempt).
    pub(super) fn reserve_budgets(
        &mut self,
        token: &TokenHash,
        appid: &AppId,
        openid: &OpenId,
        now: UnixTime,
        budget: DecryptBudget,
    ) -> Result<Reservation, StoreError> {
        self.writing()?;
        // Every user-info of one person counts on one decrypt_budgets row. Under SERIALIZABLE,
        // PostgreSQL fails all but one of the concurrent updates of a row, and the retries pile
        // up into contention; each statement below is a single-row conditional update, atomic
        // under READ COMMITTED too (a waiting update re-checks its condition on the row it
        // gets). The reservation is the first and only work of its transaction.
        self.read_committed()?;
        let session = sessions::token_hash.eq(token.as_bytes().as_slice());
        // The conditional updates are the reservation: a row that is spent is not counted, and
        // each is one atomic step on every node.
        let reserved = diesel::update(
            sessions::table
                .filter(session)
                .filter(sessions::failed_decrypts.lt(i64::from(budget.per_session))),
        )
        .set(sessions::failed_decrypts.eq(sessions::failed_decrypts + 1))
        .execute(self.conn);
        if self.db(reserved)? == 0 {
            return Ok(Reservation::SessionSpent);
        }
        let hash = self.identity_hash(appid, openid);
        let identity = decrypt_budgets::identity_hash.eq(hash.as_slice());
        let window_over =
            diesel::update(decrypt_budgets::table.filter(identity).filter(
                decrypt_budgets::window_since.le(now.saturating_sub(IDENTITY_WINDOW_SECS)),
            ))
            .set((
                decrypt_budgets::failed_decrypts.eq(0),
                decrypt_budgets::window_since.eq(now),
            ))
            .execute(self.conn);
        self.db(window_over)?;
        let cap = i64::from(budget.per_identity_per_day);
        let reserve_identity = |tx: &mut Self| {
            let reserved = diesel::update(
                decrypt_budgets::table
                    .filter(identity)
                    .filter(decrypt_budgets::failed_decrypts.lt(cap)),
            )
            .set(decrypt_budgets::failed_decrypts.eq(decrypt_budgets::failed_decrypts + 1))
            .execute(tx.conn);
            tx.db(reserved).map(|rows| rows > 0)
        };
        if reserve_identity(self)? {
            return Ok(Reservation::Granted);
        }
        let exists = decrypt_budgets::table
            .filter(identity)
            .select(decrypt_budgets::window_since)
            .get_result::<i64>(self.conn)
            .optional();
        let Some(window_since) = self.db(exists)? else {
            // The identity's first attempt: a concurrent first insert violates the key, a
            // conflict, and the rerun counts on the row that one made.
            let inserted = diesel::insert_into(decrypt_budgets::table)
                .values((
                    decrypt_budgets::identity_hash.eq(hash.as_slice()),
                    decrypt_budgets::failed_decrypts.eq(1),
                    decrypt_budgets::window_since.eq(now),
                ))
                .execute(self.conn);
            self.db(inserted)?;
            return Ok(Reservation::Granted);
        };
        // Under READ COMMITTED the row may have been committed by a concurrent first attempt
        // after the update above looked for it and before this statement saw it: ask once
        // more, now that it is visible, before calling the budget spent.
        if reserve_identity(self)? {
            return Ok(Reservation::Granted);
        }
        // The identity's budget is spent: give the session's attempt back, so that a refusal
        // changes nothing.
        let undone = diesel::update(sessions::table.filter(session))
            .set(sessions::failed_decrypts.eq(sessions::failed_decrypts - 1))
            .execute(self.conn);
        self.db(undone)?;
        Ok(Reservation::IdentitySpent {
            until: window_since.saturating_add(IDENTITY_WINDOW_SECS),
        })
    }

    /// [`StoreTx::release_decrypt_attempt`](wxlink_domain::StoreTx::release_decrypt_attempt).
    pub(super) fn release_budgets(
        &mut self,
        token: &TokenHash,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<(), StoreError> {
        self.writing()?;
        self.read_committed()?;
        let released = diesel::update(
            sessions::table
                .filter(sessions::token_hash.eq(token.as_bytes().as_slice()))
                .filter(sessions::failed_decrypts.gt(0)),
        )
        .set(sessions::failed_decrypts.eq(sessions::failed_decrypts - 1))
        .execute(self.conn);
        self.db(released)?;
        let hash = self.identity_hash(appid, openid);
        let released = diesel::update(
            decrypt_budgets::table
                .filter(decrypt_budgets::identity_hash.eq(hash.as_slice()))
                .filter(decrypt_budgets::failed_decrypts.gt(0)),
        )
        .set(decrypt_budgets::failed_decrypts.eq(decrypt_budgets::failed_decrypts - 1))
        .execute(self.conn);
        self.db(released)?;
        Ok(())
    }
}
