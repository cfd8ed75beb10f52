//! One WeChat access token per app for the whole cluster, with a lease so that exactly one node
//! refreshes it at a time while the others keep using the current one.
//!
//! The token is sealed like session keys (associated data = the appid). The lease is a row
//! update that succeeds for one node only: `lease_until < now`, or the node already holds it.

use diesel::prelude::*;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use wxlink_domain::{AppId, StoreError, TxMode, UnixTime};

use crate::store::Store;
use crate::store::schema::access_tokens;
use crate::store::tx::Tx;

/// An app's current access token, as the cluster shares it.
#[derive(Debug, Clone)]
pub struct SharedAccessToken {
    /// The token (secret).
    pub token: SecretString,
    /// Unix seconds when WeChat stops accepting it.
    pub expires_at: UnixTime,
}

impl Store {
    /// The app's shared access token, if one was stored and is not known to be invalid.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or the stored token cannot be unsealed.
    pub async fn shared_access_token(
        &self,
        appid: &AppId,
    ) -> Result<Option<SharedAccessToken>, StoreError> {
        let appid = appid.clone();
        self.run(TxMode::Read, move |tx: &mut Tx<'_>| {
            Ok(current_token(tx, &appid)?.map(|(_, shared)| shared))
        })
        .await
    }

    /// Try to take the app's refresh lease until `now + lease_secs`; true if this `holder` has
    /// it now. Exactly one holder gets a free lease, on every backend, and only while the
    /// stored token expires before `refresh_if_expiring_before`: a node that saw an old token
    /// cannot take the lease after another node stored a fresh one.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn lease_access_token_refresh(
        &self,
        appid: &AppId,
        holder: &str,
        now: UnixTime,
        lease_secs: i64,
        refresh_if_expiring_before: UnixTime,
    ) -> Result<bool, StoreError> {
        let (appid, holder) = (appid.clone(), holder.to_owned());
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let exists = access_tokens::table
                .filter(access_tokens::appid.eq(appid.as_str()))
                .select(access_tokens::lease_until)
                .get_result::<i64>(tx.conn)
                .optional();
            if tx.db(exists)?.is_none() {
                let inserted = diesel::insert_into(access_tokens::table)
                    .values((
                        access_tokens::appid.eq(appid.as_str()),
                        access_tokens::expires_at.eq(0),
                        access_tokens::lease_holder.eq(holder.as_str()),
                        access_tokens::lease_until.eq(now + lease_secs),
                        access_tokens::refreshed_at.eq(0),
                    ))
                    .execute(tx.conn);
                // A concurrent first insert is a conflict: the retry sees the row.
                return tx.db(inserted).map(|_| true);
            }
            let taken = diesel::update(
                access_tokens::table
                    .filter(access_tokens::appid.eq(appid.as_str()))
                    .filter(
                        access_tokens::lease_until
                            .lt(now)
                            .or(access_tokens::lease_holder.eq(holder.as_str())),
                    )
                    .filter(access_tokens::expires_at.lt(refresh_if_expiring_before)),
            )
            .set((
                access_tokens::lease_holder.eq(holder.as_str()),
                access_tokens::lease_until.eq(now + lease_secs),
            ))
            .execute(tx.conn);
            Ok(tx.db(taken)? == 1)
        })
        .await
    }

    /// Store a freshly fetched token and release the lease, if `holder` still holds it;
    /// returns whether it did. A holder whose lease lapsed while it fetched stores nothing:
    /// the node that took the lease over may already have stored a newer token, which a late
    /// store would overwrite.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn store_access_token(
        &self,
        appid: &AppId,
        holder: &str,
        token: &SecretString,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (app, holder) = (appid.clone(), holder.to_owned());
        let sealed = self
            .inner
            .keyring
            .seal_with_aad(token.expose_secret().as_bytes(), appid.as_str().as_bytes());
        let stored = self
            .run(TxMode::Write, move |tx: &mut Tx<'_>| {
                let updated = diesel::update(
                    access_tokens::table
                        .filter(access_tokens::appid.eq(app.as_str()))
                        .filter(access_tokens::lease_holder.eq(holder.as_str())),
                )
                .set((
                    access_tokens::token.eq(Some(sealed.clone())),
                    access_tokens::expires_at.eq(expires_at),
                    access_tokens::lease_holder.eq(None::<String>),
                    access_tokens::lease_until.eq(0),
                    access_tokens::refreshed_at.eq(now),
                ))
                .execute(tx.conn);
                Ok(tx.db(updated)? == 1)
            })
            .await?;
        if !stored {
            tracing::warn!(
                %appid,
                "not storing the fetched access token: the refresh lease passed to another node"
            );
        }
        Ok(stored)
    }

    /// Mark `token` as rejected by WeChat, if it is still the app's current one (a
    /// compare-and-swap: a token another node already replaced stays replaced). Returns whether
    /// it was the current one.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn invalidate_access_token(
        &self,
        appid: &AppId,
        token: &SecretString,
    ) -> Result<bool, StoreError> {
        let (appid, token) = (appid.clone(), token.clone());
        // Read and compare in the writing transaction, and match the sealed bytes (a fresh
        // nonce each time): a token stored meanwhile, even one expiring in the same second,
        // is never the one invalidated.
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let Some((sealed, current)) = current_token(tx, &appid)? else {
                return Ok(false);
            };
            if current.token.expose_secret() != token.expose_secret() {
                return Ok(false);
            }
            let updated = diesel::update(
                access_tokens::table
                    .filter(access_tokens::appid.eq(appid.as_str()))
                    .filter(access_tokens::token.eq(sealed)),
            )
            .set(access_tokens::expires_at.eq(0))
            .execute(tx.conn);
            Ok(tx.db(updated)? == 1)
        })
        .await
    }
}

/// The app's stored token, sealed as stored and opened.
fn current_token(
    tx: &mut Tx<'_>,
    appid: &AppId,
) -> Result<Option<(Vec<u8>, SharedAccessToken)>, StoreError> {
    let row = access_tokens::table
        .filter(access_tokens::appid.eq(appid.as_str()))
        .select((access_tokens::token, access_tokens::expires_at))
        .get_result::<(Option<Vec<u8>>, i64)>(tx.conn)
        .optional();
    let Some((Some(sealed), expires_at)) = tx.db(row)? else {
        return Ok(None);
    };
    let plain = Zeroizing::new(
        tx.keyring
            .open_with_aad(&sealed, appid.as_str().as_bytes())
            .map_err(|e| StoreError::Key(format!("access token of {appid}: {e}")))?,
    );
    let text = String::from_utf8(plain.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("access token of {appid} is not text")))?;
    let shared = SharedAccessToken {
        token: SecretString::from(text),
        expires_at,
    };
    Ok(Some((sealed, shared)))
}
