//! Data-key rotation: every sealed value re-sealed under the keyring's current key, and the
//! keyed phone-number hashes written under it, in batches so that logins go on meanwhile.

use diesel::prelude::*;
use secrecy::zeroize::Zeroizing;
use wxlink_domain::{PhoneNumber, StoreError, TxMode};

use crate::store::Store;
use crate::store::schema::{access_tokens, sessions, signing_keys, users};
use crate::store::tx::{self, Tx};

impl Store {
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

    /// Write the keyed hash beside every sealed phone number whose hash is missing (set by a
    /// node of an older release) or under another key than the current one (after a
    /// rotation); returns how many were written. Works in batches of `batch` users.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails; batches done before stay done.
    pub async fn rehash_phone_numbers(&self, batch: u32) -> Result<u64, StoreError> {
        let batch = i64::from(batch.max(1));
        let mut after = String::new();
        let mut written = 0u64;
        loop {
            let start = after.clone();
            let (count, last, full) = self
                .run(TxMode::Write, move |tx: &mut Tx<'_>| {
                    let rows = users::table
                        .filter(users::id.gt(&start))
                        .filter(users::phone_number.is_not_null())
                        .order(users::id.asc())
                        .limit(batch)
                        .select((
                            users::id,
                            users::phone_number.assume_not_null(),
                            users::phone_hash,
                        ))
                        .load::<(String, Vec<u8>, Option<Vec<u8>>)>(tx.conn);
                    let rows = tx.db(rows)?;
                    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= batch;
                    let mut count = 0u64;
                    let mut last = None;
                    for (id, sealed, hash) in rows {
                        let user = tx::parse_user_id(id.clone())?;
                        last = Some(id);
                        let phone: PhoneNumber = match tx::open_phone(tx.keyring, &user, &sealed) {
                            Ok(phone) => phone,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot hash a phone number");
                                continue;
                            }
                        };
                        let current = tx::phone_hash(tx.keyring.current_key(), &phone).to_vec();
                        if hash.as_deref() == Some(current.as_slice()) {
                            continue;
                        }
                        let updated =
                            diesel::update(users::table.filter(users::id.eq(user.as_str())))
                                .set(users::phone_hash.eq(Some(current)))
                                .execute(tx.conn);
                        tx.db(updated)?;
                        count += 1;
                    }
                    Ok::<_, StoreError>((count, last, full))
                })
                .await?;
            written += count;
            match last {
                Some(last) if full => after = last,
                _ => break,
            }
        }
        tracing::info!(
            written,
            "phone number hashes written under the current data key"
        );
        Ok(written)
    }
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
