//! The use cases: login, submit user info, current user, logout.

use crate::error::{DomainError, UserDataError};
use crate::ids::{AppId, JsCode, OpenId, UserId};
use crate::linking::{self, Origin};
use crate::model::{LoginOutcome, PhoneNumber, Session, UnixTime};
use crate::ports::{
    Clock, EncryptedUserData, IdSource, IdentityStore, TxMode, UserDataOpener, WeChatSessions,
};
use crate::secrets::{SessionKey, SessionToken, TokenHash};

/// The knobs of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a bearer token works.
    pub session_ttl_secs: u64,
    /// How old a watermark may be; `None` = no age check (the appid is always checked).
    pub max_watermark_age_secs: Option<u64>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            session_ttl_secs: 7 * 24 * 3600,
            max_watermark_age_secs: Some(600),
        }
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The new bearer token.
    pub token: SessionToken,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Who the user is.
    pub user_id: UserId,
    /// Whether the user's unionid is known.
    pub unionid_linked: bool,
    /// What the login did.
    pub outcome: LoginOutcome,
}

/// Encrypted user data, and optionally a fresh login code to refresh the session_key first.
#[derive(Debug, Clone)]
pub struct UserInfoSubmission {
    /// The data and iv (and signed raw data) from `wx.getUserInfo`.
    pub data: EncryptedUserData,
    /// A fresh `wx.login` code.
    pub code: Option<JsCode>,
}

/// The outcome of submitting user info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfoLinked {
    /// Who the user is now.
    pub user_id: UserId,
    /// Whether the user's unionid is known.
    pub unionid_linked: bool,
    /// Whether this call merged the session's provisional user into the unionid's owner.
    pub merged: bool,
}

/// The user behind a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    /// Who the user is.
    pub user_id: UserId,
    /// Whether the user's unionid is known.
    pub unionid_linked: bool,
    /// The user's (appid, openid) identities.
    pub identities: Vec<(AppId, OpenId)>,
}

/// The use cases over the ports. Cheap to share: hold it in an `Arc`.
#[derive(Debug)]
pub struct Service<S, W, D, C, I> {
    store: S,
    wechat: W,
    opener: D,
    clock: C,
    ids: I,
    policy: Policy,
}

impl<S, W, D, C, I> Service<S, W, D, C, I>
where
    S: IdentityStore,
    W: WeChatSessions,
    D: UserDataOpener,
    C: Clock,
    I: IdSource,
{
    /// Wire the use cases to their ports.
    pub fn new(store: S, wechat: W, opener: D, clock: C, ids: I, policy: Policy) -> Self {
        Self {
            store,
            wechat,
            opener,
            clock,
            ids,
            policy,
        }
    }

    /// The store, for adapters that need it directly (health checks).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The rules' settings.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Log a user in with a `wx.login` code: every user gets a session at once, linked by
    /// unionid when WeChat tells it, provisional otherwise.
    pub async fn login(&self, appid: AppId, code: JsCode) -> Result<LoggedIn, DomainError> {
        let wechat = self.wechat.code2session(&appid, &code).await?;
        let token = self.ids.new_token();
        let token_hash = token.hash();
        let new_user_id = self.ids.new_user_id();
        let now = self.clock.now();
        let ttl = self.policy.session_ttl_secs;
        // Every race of a login is a uniqueness violation or a guarded update (the rules of
        // `linking::login`), so it needs no serializable isolation.
        let (user_id, unionid_linked, outcome) = self
            .store
            .transact(TxMode::WriteGuarded, move |tx| {
                let origin = Origin {
                    appid: &appid,
                    openid: &wechat.openid,
                    at: now,
                };
                let (user, outcome) =
                    linking::login(tx, origin, wechat.unionid.as_ref(), &new_user_id)?;
                tx.insert_session(&Session {
                    token_hash,
                    user_id: user.id.clone(),
                    appid: appid.clone(),
                    openid: wechat.openid.clone(),
                    session_key: wechat.session_key.clone(),
                    created_at: now,
                    expires_at: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
                    revoked: false,
                })?;
                Ok((user.id, user.unionid.is_some(), outcome))
            })
            .await?;
        Ok(LoggedIn {
            token,
            expires_in: ttl,
            user_id,
            unionid_linked,
            outcome,
        })
    }

    /// Learn the unionid from encrypted user data and link or merge the session's user.
    /// A refused submission changes nothing.
    pub async fn submit_user_info(
        &self,
        token: &SessionToken,
        submission: UserInfoSubmission,
    ) -> Result<UserInfoLinked, DomainError> {
        let now = self.clock.now();
        let token_hash = token.hash();
        let session = self.live_session(token_hash, now).await?;

        // Only mini program logins have a session_key to decrypt with.
        let stored_key = session
            .session_key
            .clone()
            .ok_or(DomainError::UnsupportedForApp)?;
        let (key, code_unionid) = match &submission.code {
            Some(code) => {
                let fresh = self.wechat.code2session(&session.appid, code).await?;
                if fresh.openid != session.openid {
                    return Err(DomainError::IdentityMismatch);
                }
                let key = fresh.session_key.ok_or(DomainError::UnsupportedForApp)?;
                (key, fresh.unionid)
            }
            None => (stored_key, None),
        };
        let refreshed_key = submission.code.is_some().then(|| key.clone());

        let opened = match self.opener.open(&key, &submission.data) {
            Ok(opened) => opened,
            Err(UserDataError::DecryptFailed(reason)) if submission.code.is_none() => {
                return Err(self.explain_decrypt_failure(&session, &key, reason).await);
            }
            Err(e) => return Err(e.into()),
        };
        if opened.watermark_appid != session.appid.as_str() {
            return Err(DomainError::WatermarkMismatch);
        }
        if let Some(max_age) = self.policy.max_watermark_age_secs {
            let age = now.saturating_sub(opened.watermark_timestamp);
            if age > i64::try_from(max_age).unwrap_or(i64::MAX) {
                return Err(DomainError::WatermarkExpired);
            }
        }
        if opened.openid != session.openid {
            return Err(DomainError::IdentityMismatch);
        }
        // code2Session's unionid is WeChat's own word; data that names another is refused.
        let unionid = match (opened.unionid, code_unionid) {
            (Some(data), Some(code)) if data != code => return Err(DomainError::UnionidConflict),
            (data, code) => data.or(code),
        };

        self.store
            .transact(TxMode::Write, move |tx| {
                let session = linking::live_session(tx, &token_hash, now)?;
                let user = linking::resolve(tx, &session.user_id)?;
                let origin = Origin {
                    appid: &session.appid,
                    openid: &session.openid,
                    at: now,
                };
                let (user, merged) = match &unionid {
                    Some(unionid) => linking::learn_unionid(tx, origin, user, unionid)?,
                    None => (user, false),
                };
                if let Some(key) = &refreshed_key {
                    tx.replace_session_key(&token_hash, key)?;
                }
                Ok(UserInfoLinked {
                    unionid_linked: user.unionid.is_some(),
                    user_id: user.id,
                    merged,
                })
            })
            .await
    }

    /// Data that did not decrypt under the stored key: if WeChat says the key is no longer
    /// valid, the client must log in again ([`DomainError::SessionKeyExpired`]); otherwise, or
    /// if WeChat cannot tell, it stays a decryption failure. Nothing is cached, so a wrong
    /// answer cannot stick.
    async fn explain_decrypt_failure(
        &self,
        session: &Session,
        key: &SessionKey,
        reason: String,
    ) -> DomainError {
        match self
            .wechat
            .session_key_valid(&session.appid, &session.openid, key)
            .await
        {
            Ok(false) => DomainError::SessionKeyExpired,
            Ok(true) | Err(_) => UserDataError::DecryptFailed(reason).into(),
        }
    }

    /// Exchange a getPhoneNumber code for the user's verified phone number and keep it on the
    /// user. Phone numbers never link or merge users.
    pub async fn attach_phone_number(
        &self,
        token: &SessionToken,
        code: JsCode,
    ) -> Result<PhoneNumber, DomainError> {
        let now = self.clock.now();
        let token_hash = token.hash();
        let session = self.live_session(token_hash, now).await?;
        if session.session_key.is_none() {
            return Err(DomainError::UnsupportedForApp);
        }
        let phone = self
            .wechat
            .phone_number(&session.appid, &session.openid, &code)
            .await?;
        let stored = phone.clone();
        self.store
            .transact(TxMode::Write, move |tx| {
                let session = linking::live_session(tx, &token_hash, now)?;
                let user = linking::resolve(tx, &session.user_id)?;
                tx.set_phone_number(&user.id, &stored, now)?;
                Ok(())
            })
            .await?;
        Ok(phone)
    }

    /// The user behind a token, with their identities.
    pub async fn current_user(&self, token: &SessionToken) -> Result<CurrentUser, DomainError> {
        let now = self.clock.now();
        let token_hash = token.hash();
        self.store
            .transact(TxMode::Read, move |tx| {
                let session = linking::live_session(tx, &token_hash, now)?;
                let user = linking::resolve(tx, &session.user_id)?;
                let identities = tx.identities(&user.id)?;
                Ok(CurrentUser {
                    unionid_linked: user.unionid.is_some(),
                    user_id: user.id,
                    identities,
                })
            })
            .await
    }

    /// Revoke a token.
    pub async fn logout(&self, token: &SessionToken) -> Result<(), DomainError> {
        let now = self.clock.now();
        let token_hash = token.hash();
        self.store
            .transact(TxMode::Write, move |tx| {
                linking::live_session(tx, &token_hash, now)?;
                tx.revoke_session(&token_hash, now)?;
                Ok(())
            })
            .await
    }

    async fn live_session(
        &self,
        token_hash: TokenHash,
        now: UnixTime,
    ) -> Result<Session, DomainError> {
        self.store
            .transact(TxMode::Read, move |tx| {
                linking::live_session(tx, &token_hash, now)
            })
            .await
    }
}

#[cfg(test)]
mod tests;
