//! What the service and operators need besides the domain's port: health, housekeeping,
//! data-key rotation and user lookups. Adapter features, not domain rules.

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use wxlink_domain::{
    AppId, OpenId, PhoneNumber, StoreError, StoreTx as _, TxMode, UnionId, UnixTime, User, UserId,
};

use crate::store::Store;
use crate::store::schema::{
    access_tokens, decrypt_budgets, operator_sessions, sessions, signing_keys, users,
};
use crate::store::tx::{self, Tx};
use secrecy::zeroize::Zeroizing;

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

    /// Re-seal, under the keyring's current key, every session key sealed under an older one;
    /// returns how many were re-sealed. Works in transactions of `batch` rows (at least 1)
    /// so logins go on meanwhile.
    ///
    /// Rotation: configure the new data key as current and keep the old one in the keyring,
    /// run this, [`Store::reseal_phone_numbers`] and [`Store::reseal_access_tokens`], then
    /// [`Store::retire_unused_data_keys`], then drop the old key. A value no key of the ring
    /// opens is left as it is and logged (using it fails with [`StoreError::Key`]), and keeps
    /// its key from being retired.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails; batches done before stay done.
    pub async fn reseal_session_keys(&self, batch: u32) -> Result<u64, StoreError> {
        self.reseal(SealedColumn::SessionKeys, batch).await
    }

    /// Like [`Store::reseal_session_keys`], for users' phone numbers.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails; batches done before stay done.
    pub async fn reseal_phone_numbers(&self, batch: u32) -> Result<u64, StoreError> {
        self.reseal(SealedColumn::PhoneNumbers, batch).await
    }

    /// Like [`Store::reseal_session_keys`], for the apps' shared WeChat access tokens.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails; batches done before stay done.
    pub async fn reseal_access_tokens(&self, batch: u32) -> Result<u64, StoreError> {
        self.reseal(SealedColumn::AccessTokens, batch).await
    }

    /// Like [`Store::reseal_session_keys`], for the JWT signing keys.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails; batches done before stay done.
    pub async fn reseal_signing_keys(&self, batch: u32) -> Result<u64, StoreError> {
        self.reseal(SealedColumn::SigningKeys, batch).await
    }

    async fn reseal(&self, column: SealedColumn, batch: u32) -> Result<u64, StoreError> {
        let batch = i64::from(batch.max(1));
        let mut after: Vec<u8> = Vec::new();
        let mut resealed = 0u64;
        loop {
            let start = after.clone();
            let keyring = std::sync::Arc::clone(&self.inner.keyring);
            let (count, seen, last) = self
                .run(TxMode::Write, move |tx: &mut Tx<'_>| {
                    // Keyset pagination by row key; every key sorts after the empty one. Each
                    // value is sealed with its row key as associated data.
                    let rows = column.load(tx, &start, batch)?;
                    let mut count = 0u64;
                    for (row_key, sealed) in &rows {
                        if !keyring.needs_reseal(sealed) {
                            continue;
                        }
                        let plain = match keyring.open_with_aad(sealed, row_key) {
                            Ok(plain) => Zeroizing::new(plain),
                            Err(e) => {
                                tracing::warn!(column = ?column, error = %e, "cannot re-seal a value");
                                continue;
                            }
                        };
                        column.store(tx, row_key, keyring.seal_with_aad(&plain, row_key))?;
                        count += 1;
                    }
                    let seen = rows.len();
                    let last = rows.into_iter().last().map(|(row_key, _)| row_key);
                    Ok::<_, StoreError>((count, seen, last))
                })
                .await?;
            resealed += count;
            match last {
                Some(last) if i64::try_from(seen).unwrap_or(i64::MAX) >= batch => after = last,
                _ => break,
            }
        }
        tracing::info!(resealed, column = ?column, "re-sealed under the current data key");
        Ok(resealed)
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

/// A row's key (token hash, or user id bytes) and its sealed value.
type SealedRow = (Vec<u8>, Vec<u8>);

/// The columns that hold sealed values, each sealed with its row's key as associated data.
#[derive(Debug, Clone, Copy)]
enum SealedColumn {
    SessionKeys,
    PhoneNumbers,
    AccessTokens,
    SigningKeys,
}

impl SealedColumn {
    /// Up to `batch` (row key, sealed value) pairs with a row key after `after`.
    fn load(self, tx: &mut Tx<'_>, after: &[u8], batch: i64) -> Result<Vec<SealedRow>, StoreError> {
        match self {
            SealedColumn::SessionKeys => {
                let rows = sessions::table
                    .filter(sessions::token_hash.gt(after))
                    .filter(sessions::session_key.is_not_null())
                    .order(sessions::token_hash.asc())
                    .limit(batch)
                    .select((
                        sessions::token_hash,
                        sessions::session_key.assume_not_null(),
                    ))
                    .load::<(Vec<u8>, Vec<u8>)>(tx.conn);
                tx.db(rows)
            }
            SealedColumn::PhoneNumbers => {
                let after = String::from_utf8_lossy(after).into_owned();
                let rows = users::table
                    .filter(users::id.gt(after))
                    .filter(users::phone_number.is_not_null())
                    .order(users::id.asc())
                    .limit(batch)
                    .select((users::id, users::phone_number.assume_not_null()))
                    .load::<(String, Vec<u8>)>(tx.conn);
                Ok(tx
                    .db(rows)?
                    .into_iter()
                    .map(|(id, sealed)| (id.into_bytes(), sealed))
                    .collect())
            }
            SealedColumn::AccessTokens => {
                let after = String::from_utf8_lossy(after).into_owned();
                let rows = access_tokens::table
                    .filter(access_tokens::appid.gt(after))
                    .filter(access_tokens::token.is_not_null())
                    .order(access_tokens::appid.asc())
                    .limit(batch)
                    .select((access_tokens::appid, access_tokens::token.assume_not_null()))
                    .load::<(String, Vec<u8>)>(tx.conn);
                Ok(tx
                    .db(rows)?
                    .into_iter()
                    .map(|(appid, sealed)| (appid.into_bytes(), sealed))
                    .collect())
            }
            SealedColumn::SigningKeys => {
                // Sealed with the kid as associated data, so the kid is the row key.
                let after = String::from_utf8_lossy(after).into_owned();
                let rows = signing_keys::table
                    .filter(signing_keys::kid.gt(after))
                    .order(signing_keys::kid.asc())
                    .limit(batch)
                    .select((signing_keys::kid, signing_keys::private_key))
                    .load::<(String, Vec<u8>)>(tx.conn);
                Ok(tx
                    .db(rows)?
                    .into_iter()
                    .map(|(kid, sealed)| (kid.into_bytes(), sealed))
                    .collect())
            }
        }
    }

    fn store(self, tx: &mut Tx<'_>, row_key: &[u8], sealed: Vec<u8>) -> Result<(), StoreError> {
        let updated = match self {
            SealedColumn::SessionKeys => {
                diesel::update(sessions::table.filter(sessions::token_hash.eq(row_key)))
                    .set(sessions::session_key.eq(Some(sealed)))
                    .execute(tx.conn)
            }
            SealedColumn::PhoneNumbers => {
                let id = String::from_utf8_lossy(row_key).into_owned();
                diesel::update(users::table.filter(users::id.eq(id)))
                    .set(users::phone_number.eq(Some(sealed)))
                    .execute(tx.conn)
            }
            SealedColumn::AccessTokens => {
                let appid = String::from_utf8_lossy(row_key).into_owned();
                diesel::update(access_tokens::table.filter(access_tokens::appid.eq(appid)))
                    .set(access_tokens::token.eq(Some(sealed)))
                    .execute(tx.conn)
            }
            SealedColumn::SigningKeys => {
                let kid = String::from_utf8_lossy(row_key).into_owned();
                diesel::update(signing_keys::table.filter(signing_keys::kid.eq(kid)))
                    .set(signing_keys::private_key.eq(sealed))
                    .execute(tx.conn)
            }
        };
        tx.db(updated).map(drop)
    }
}
