//! What the service and operators need besides the domain's port: health, housekeeping and
//! user lookups. Adapter features, not domain rules.

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use wxlink_domain::{
    AppId, OpenId, PhoneNumber, StoreError, StoreTx as _, TxMode, UnionId, UnixTime, User, UserId,
};

use crate::store::Store;
use crate::store::schema::{decrypt_budgets, operator_sessions, sessions, users};
use crate::store::tx::{self, Tx};

/// Sessions are deleted this long after they expired or were revoked, so a token that just
/// stopped working is still recognised (and answered as expired) for a while.
pub const SESSION_PURGE_GRACE_SECS: i64 = 24 * 3600;

/// A user and the (appid, openid) identities attached to it, ordered by appid then openid.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// The user. A merged user has `merged_into` set and no identities left.
    pub user: User,
    /// Its identities.
    pub identities: Vec<(AppId, OpenId)>,
    /// Its verified phone number, if one was stored and this node's keyring opens it.
    pub phone_number: Option<PhoneNumber>,
}

impl Store {
    /// Health check: one trivial statement on a pooled connection.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database does not answer within the connect
    /// timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(TxMode::Read, |tx: &mut Tx<'_>| {
            let answered = tx.conn.batch_execute("SELECT 1");
            tx.db(answered)
        })
        .await
    }

    /// Delete the sessions that expired, or were revoked, more than
    /// [`SESSION_PURGE_GRACE_SECS`] before `now`; returns how many were deleted.
    /// Also deletes the console's operator sessions idle for as long, and the identities'
    /// budgets of failed decryptions whose day is over (the next
    /// attempt would start a new one), so that one outlives a cancelled person by a day at most.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn purge_expired_sessions(&self, now: UnixTime) -> Result<u64, StoreError> {
        let cutoff = now.saturating_sub(SESSION_PURGE_GRACE_SECS);
        let deleted = self
            .run(TxMode::Write, move |tx: &mut Tx<'_>| {
                let deleted = diesel::delete(
                    sessions::table.filter(
                        sessions::expires_at
                            .lt(cutoff)
                            .or(sessions::revoked_at.lt(cutoff)),
                    ),
                )
                .execute(tx.conn);
                let deleted = tx.db(deleted)?;
                // The console's operators: a session idle that long has ended anyway (the
                // console's idle timeout is at most a day).
                let operators = diesel::delete(
                    operator_sessions::table.filter(operator_sessions::last_seen_at.lt(cutoff)),
                )
                .execute(tx.conn);
                tx.db(operators)?;
                let budgets = diesel::delete(decrypt_budgets::table.filter(
                    decrypt_budgets::window_since.le(now.saturating_sub(tx::IDENTITY_WINDOW_SECS)),
                ))
                .execute(tx.conn);
                tx.db(budgets)?;
                Ok(deleted)
            })
            .await?;
        let deleted = u64::try_from(deleted).unwrap_or(u64::MAX);
        tracing::info!(deleted, cutoff, "purged old sessions");
        Ok(deleted)
    }

    /// A user by id, with its identities.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let id = id.clone();
        self.run(TxMode::Read, move |tx: &mut Tx<'_>| {
            let user = tx.user(&id)?;
            with_identities(tx, user)
        })
        .await
    }

    /// The user owning a unionid, with its identities.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn user_by_unionid(
        &self,
        unionid: &UnionId,
    ) -> Result<Option<UserRecord>, StoreError> {
        let unionid = unionid.clone();
        self.run(TxMode::Read, move |tx: &mut Tx<'_>| {
            let user = tx.user_by_unionid(&unionid)?;
            with_identities(tx, user)
        })
        .await
    }

    /// Give an (appid, openid) its whole daily budget of failed decryptions back, for a real
    /// user locked out for the day; returns whether it had spent any of it.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn reset_decrypt_budget(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<bool, StoreError> {
        let (appid, openid) = (appid.clone(), openid.clone());
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let hash = tx.identity_hash(&appid, &openid);
            let deleted = diesel::delete(
                decrypt_budgets::table
                    .filter(decrypt_budgets::identity_hash.eq(hash.as_slice()))
                    .filter(decrypt_budgets::failed_decrypts.gt(0)),
            )
            .execute(tx.conn);
            Ok(tx.db(deleted)? > 0)
        })
        .await
    }

    /// The user an (appid, openid) identity belongs to, with all its identities.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn user_by_identity(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Option<UserRecord>, StoreError> {
        let (appid, openid) = (appid.clone(), openid.clone());
        self.run(TxMode::Read, move |tx: &mut Tx<'_>| {
            let user = match tx.identity_owner(&appid, &openid)? {
                Some(owner) => tx.user(&owner)?,
                None => None,
            };
            with_identities(tx, user)
        })
        .await
    }
}

pub(crate) fn with_identities(
    tx: &mut Tx<'_>,
    user: Option<User>,
) -> Result<Option<UserRecord>, StoreError> {
    let Some(user) = user else {
        return Ok(None);
    };
    let identities = tx.identities(&user.id)?;
    let sealed = users::table
        .filter(users::id.eq(user.id.as_str()))
        .select(users::phone_number)
        .get_result::<Option<Vec<u8>>>(tx.conn);
    // A phone number this node cannot unseal does not make the user unreadable: the lookup
    // answers without it, and the key problem is logged for the operator.
    let phone_number = match tx
        .db(sealed)?
        .map(|sealed| tx::open_phone(tx.keyring, &user.id, &sealed))
        .transpose()
    {
        Ok(phone) => phone,
        Err(StoreError::Key(problem)) => {
            tracing::warn!(%problem, "data key problem: answering without the phone number");
            None
        }
        Err(other) => return Err(other),
    };
    Ok(Some(UserRecord {
        user,
        identities,
        phone_number,
    }))
}
