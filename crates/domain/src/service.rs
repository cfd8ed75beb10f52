//! The use cases: login, submit user info, current user, logout.

use std::sync::Arc;

use crate::access::{self, AccessGrant, AccessTokens, Signer};
use crate::accounts::Presence;
use crate::error::{DomainError, UserDataError};
use crate::ids::{AppId, JsCode, OpenId, UserId};
use crate::linking::{self, Origin};
use crate::model::{
    DecryptBudget, LoginOutcome, PhoneNumber, Reservation, Session, SpentBudget, UnixTime,
};
use crate::ports::{
    Clock, EncryptedUserData, ExpectedWatermark, IdSource, IdentityStore, LoginRecord,
    LoginRequest, StoreTx, TxMode, UserDataOpener, WeChatSessions,
};
use crate::secrets::{SessionKey, SessionToken, TokenHash};

/// The knobs of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a bearer token works.
    pub session_ttl_secs: u64,
    /// How old a watermark may be; `None` = no age check (the appid is always checked).
    pub max_watermark_age_secs: Option<u64>,
    /// How many failed decryptions a session and an identity may have.
    pub decrypt_budget: DecryptBudget,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            session_ttl_secs: 7 * 24 * 3600,
            max_watermark_age_secs: Some(600),
            decrypt_budget: DecryptBudget::default(),
        }
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The new bearer token: an opaque session token, or a signed access token.
    pub token: SessionToken,
    /// With signed access tokens: the refresh token that gets the next one.
    pub refresh_token: Option<SessionToken>,
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

/// A successful refresh: a new access token and the refresh token for the next one.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The new signed access token.
    pub token: SessionToken,
    /// The new refresh token; the one presented no longer works.
    pub refresh_token: SessionToken,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Who the user is now (after merges).
    pub user_id: UserId,
    /// Whether the user's unionid is known.
    pub unionid_linked: bool,
}

/// What one refresh-token exchange found, decided inside its transaction.
enum Exchange {
    Granted(AccessGrant),
    /// Unknown, or its session no longer works.
    Refused,
    /// Already used: the session was revoked in this transaction.
    Reused,
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
pub struct Service<Store, WeChat, Opener> {
    store: Store,
    wechat: WeChat,
    opener: Opener,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    policy: Policy,
    signer: Signer,
}

impl<Store, WeChat, Opener> Service<Store, WeChat, Opener>
where
    Store: IdentityStore,
    WeChat: WeChatSessions,
    Opener: UserDataOpener,
{
    /// Wire the use cases to their ports.
    pub fn new(
        store: Store,
        wechat: WeChat,
        opener: Opener,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        policy: Policy,
    ) -> Self {
        Self {
            store,
            wechat,
            opener,
            clock,
            ids,
            policy,
            signer: None,
        }
    }

    /// Issue signed access tokens (JWTs) with refresh tokens instead of opaque session tokens;
    /// the session still lives `session_ttl_secs`, and so do its refresh tokens.
    #[must_use]
    pub fn with_access_tokens(mut self, signer: Arc<dyn AccessTokens>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Log a user in with a `wx.login` code: every user gets a session at once, linked by
    /// unionid when WeChat tells it, provisional otherwise.
    pub async fn login(&self, appid: AppId, code: JsCode) -> Result<LoggedIn, DomainError> {
        let wechat = self.wechat.code2session(&appid, &code).await?;
        let token = self.ids.new_token();
        let token_hash = token.hash();
        // With signed access tokens the session token is never handed out (its hash is the
        // session's id, `sid`); the client gets a refresh token instead.
        let refresh = self.signer.as_ref().map(|_| self.ids.new_token());
        let refresh_hash = refresh.as_ref().map(SessionToken::hash);
        let now = self.clock.now();
        let ttl = self.policy.session_ttl_secs;
        // No user id yet: one is minted only if the login makes a new user (the store's
        // one-statement login makes its own).
        let request = LoginRequest {
            appid,
            openid: wechat.openid,
            unionid: wechat.unionid,
            at: now,
            token_hash,
            expires_at: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            session_key: wechat.session_key,
            refresh_token: refresh_hash,
        };
        let login_appid = request.appid.clone();
        let record = match self.store.login_at_once(&request).await? {
            Some(record) => record,
            None => {
                // Every race of a login is a uniqueness violation or a guarded update (the
                // rules of `linking::login`), so it needs no serializable isolation.
                self.store
                    .transact(
                        TxMode::WriteGuarded,
                        login_work(request, Arc::clone(&self.ids)),
                    )
                    .await?
            }
        };
        let LoginRecord {
            user_id,
            unionid_linked,
            outcome,
        } = record;
        let (token, expires_in) = match &self.signer {
            None => (token, ttl),
            Some(signer) => {
                let issued = signer.issue(&AccessGrant {
                    sub: user_id.clone(),
                    azp: login_appid,
                    sid: token_hash,
                    unionid_linked,
                    iat: now,
                })?;
                (issued.token, issued.expires_in)
            }
        };
        Ok(LoggedIn {
            token,
            refresh_token: refresh,
            expires_in,
            user_id,
            unionid_linked,
            outcome,
        })
    }

    /// Exchange a refresh token for a new access token and a new refresh token (rotation). The
    /// presented one stops working; presenting one that was already used revokes its whole
    /// session (RFC 9700 §4.14: a stolen token and its owner can no longer both go on), and
    /// so does losing a race with another exchange of the same token.
    pub async fn refresh(&self, presented: &SessionToken) -> Result<Refreshed, DomainError> {
        let signer = self.signer.clone().ok_or(DomainError::InvalidToken)?;
        if access::is_signed(presented) {
            return Err(DomainError::InvalidToken);
        }
        let now = self.clock.now();
        let presented_hash = presented.hash();
        let next = self.ids.new_token();
        let next_hash = next.hash();
        let exchange = self
            .store
            .transact(TxMode::Write, move |tx| {
                let Some(row) = tx.refresh_token(&presented_hash)? else {
                    return Ok(Exchange::Refused);
                };
                let Some(session) = tx.session(&row.session)?.filter(|s| s.is_live(now)) else {
                    return Ok(Exchange::Refused);
                };
                if row.used || !tx.use_refresh_token(&presented_hash, now)? {
                    tx.revoke_session(&row.session, now)?;
                    return Ok(Exchange::Reused);
                }
                tx.insert_refresh_token(&next_hash, &row.session, now)?;
                let user = linking::resolve(tx, &session.user_id)?;
                Ok(Exchange::Granted(AccessGrant {
                    unionid_linked: user.unionid.is_some(),
                    sub: user.id,
                    azp: session.appid,
                    sid: row.session,
                    iat: now,
                }))
            })
            .await?;
        let grant = match exchange {
            Exchange::Granted(grant) => grant,
            Exchange::Refused | Exchange::Reused => return Err(DomainError::InvalidToken),
        };
        let issued = signer.issue(&grant)?;
        Ok(Refreshed {
            token: issued.token,
            refresh_token: next,
            expires_in: issued.expires_in,
            user_id: grant.sub,
            unionid_linked: grant.unionid_linked,
        })
    }

    /// Learn the unionid from encrypted user data and link or merge the session's user.
    ///
    /// A refused submission changes nothing but the failed-decryption budget: one attempt is
    /// reserved before anything is decrypted or WeChat is asked, and only given back when the
    /// data has linked (or WeChat refuses a refreshing code, which decrypts nothing). Every refusal
    /// of the data keeps it, so the answers cannot serve thousands of oracle queries.
    pub async fn submit_user_info(
        &self,
        token: &SessionToken,
        submission: UserInfoSubmission,
    ) -> Result<UserInfoLinked, DomainError> {
        let now = self.clock.now();
        let (token_hash, session) = self.mini_program_session(token, now).await?;
        self.reserve_decrypt_attempt(&session, now).await?;
        let (key, code_unionid) = match &submission.code {
            Some(code) => {
                let fresh = match self.wechat.code2session(&session.appid, code).await {
                    Ok(fresh) => fresh,
                    Err(error) => {
                        self.release_decrypt_attempt(&session).await?;
                        return Err(error.into());
                    }
                };
                if fresh.openid != session.openid {
                    return Err(DomainError::IdentityMismatch);
                }
                let key = fresh.session_key.ok_or(DomainError::UnsupportedForApp)?;
                (key, fresh.unionid)
            }
            None => (self.stored_session_key(token_hash).await?, None),
        };
        let refreshed_key = submission.code.is_some().then(|| key.clone());

        let expected = ExpectedWatermark {
            appid: session.appid.clone(),
            now,
            max_age_secs: self.policy.max_watermark_age_secs,
        };
        let opened = match self.opener.open(&key, &submission.data, &expected) {
            Ok(opened) => opened,
            Err(UserDataError::DecryptFailed) if submission.code.is_none() => {
                return Err(self.explain_decrypt_failure(&session, &key).await);
            }
            Err(e) => return Err(e.into()),
        };
        if opened.openid != session.openid {
            return Err(DomainError::IdentityMismatch);
        }
        // code2Session's unionid is WeChat's own word; data that names another is refused.
        let unionid = match (opened.unionid, code_unionid) {
            (Some(data), Some(code)) if data != code => return Err(DomainError::UnionidConflict),
            (data, code) => data.or(code),
        };

        let linked = self
            .store
            .transact(TxMode::Write, move |tx| {
                let (session, user) = linking::session_user(tx, &token_hash, now)?;
                let origin = Origin::of_session(&session, now);
                let (user, merged) = match &unionid {
                    Some(unionid) => {
                        let learned = linking::learn_unionid(tx, origin, user, unionid)?;
                        tx.vouch(&session.appid, &session.openid, unionid, now)?;
                        learned
                    }
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
            .await?;
        // Given back after the link committed, in a transaction of its own: every user-info of
        // one person writes this row, and inside the serializable link transaction those writes
        // made concurrent links of one session conflict. A release that fails only costs the
        // client one attempt, so the link's answer stands.
        self.release_decrypt_attempt(&session).await.ok();
        Ok(linked)
    }

    /// Data that did not decrypt under the stored key: if WeChat says the key is no longer
    /// valid, the client must log in again ([`DomainError::SessionKeyExpired`]); otherwise, or
    /// if WeChat cannot tell, it stays a decryption failure. Nothing is cached, so a wrong
    /// answer cannot stick.
    async fn explain_decrypt_failure(&self, session: &Session, key: &SessionKey) -> DomainError {
        match self
            .wechat
            .session_key_valid(&session.appid, &session.openid, key)
            .await
        {
            Ok(false) => DomainError::SessionKeyExpired,
            Ok(true) | Err(_) => UserDataError::DecryptFailed.into(),
        }
    }

    /// Take one attempt from the session's and its identity's budgets, or refuse with
    /// [`DomainError::TooManyAttempts`], naming the spent budget, before anything is decrypted
    /// or asked.
    async fn reserve_decrypt_attempt(
        &self,
        session: &Session,
        now: UnixTime,
    ) -> Result<(), DomainError> {
        let (token, appid, openid) = (
            session.token_hash,
            session.appid.clone(),
            session.openid.clone(),
        );
        let budget = self.policy.decrypt_budget;
        let reservation = self
            .store
            .transact(TxMode::Write, move |tx| {
                Ok(tx.reserve_decrypt_attempt(&token, &appid, &openid, now, budget)?)
            })
            .await?;
        match reservation {
            Reservation::Granted => Ok(()),
            Reservation::SessionSpent => Err(DomainError::TooManyAttempts(SpentBudget::Session)),
            Reservation::IdentitySpent { until } => {
                let left = u64::try_from(until.saturating_sub(now)).unwrap_or(0);
                Err(DomainError::TooManyAttempts(SpentBudget::IdentityDay {
                    retry_after_secs: left.max(1),
                }))
            }
        }
    }

    /// Give an attempt back when nothing was decrypted after all.
    async fn release_decrypt_attempt(&self, session: &Session) -> Result<(), DomainError> {
        let (token, appid, openid) = (
            session.token_hash,
            session.appid.clone(),
            session.openid.clone(),
        );
        self.store
            .transact(TxMode::Write, move |tx| {
                Ok(tx.release_decrypt_attempt(&token, &appid, &openid)?)
            })
            .await
    }

    /// Exchange a getPhoneNumber code for the user's verified phone number and keep it on the
    /// user. Phone numbers never link or merge users.
    pub async fn attach_phone_number(
        &self,
        token: &SessionToken,
        code: JsCode,
    ) -> Result<PhoneNumber, DomainError> {
        let now = self.clock.now();
        let (token_hash, session) = self.mini_program_session(token, now).await?;
        let phone = self
            .wechat
            .phone_number(&session.appid, &session.openid, &code)
            .await?;
        let stored = phone.clone();
        self.store
            .transact(TxMode::Write, move |tx| {
                let (session, user) = linking::session_user(tx, &token_hash, now)?;
                tx.set_phone_number(&user.id, &stored, &session.appid, &session.openid, now)?;
                Ok(())
            })
            .await?;
        Ok(phone)
    }

    /// Check that the person behind a token is there, before a destructive request: `code` is a
    /// fresh login code of the identity the session logged in through (`wx.login` for a mini
    /// program, the OAuth code otherwise), and WeChat must say it is of the same openid of the
    /// same app. Writes nothing: the code makes no session.
    pub async fn prove_presence(
        &self,
        token: &SessionToken,
        code: Option<JsCode>,
    ) -> Result<Presence, DomainError> {
        let now = self.clock.now();
        // A signed token stands for its session (`sid`); an opaque one is hashed.
        let token_hash = access::session_hash(&self.signer, token, now)?;
        let session = self.live_session(token_hash, now).await?;
        let code = code.ok_or(DomainError::ReauthenticationRequired)?;
        // Asked of the session's app: a code of another app cannot name this identity.
        let fresh = self.wechat.code2session(&session.appid, &code).await?;
        if fresh.openid != session.openid {
            return Err(DomainError::IdentityMismatch);
        }
        Ok(Presence::proven(token_hash))
    }

    /// The user behind a token, with their identities.
    pub async fn current_user(&self, token: &SessionToken) -> Result<CurrentUser, DomainError> {
        let now = self.clock.now();
        let token_hash = access::session_hash(&self.signer, token, now)?;
        self.store
            .transact(TxMode::Read, move |tx| {
                let (_, user) = linking::session_user(tx, &token_hash, now)?;
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
        let token_hash = access::session_hash(&self.signer, token, now)?;
        self.store
            .transact(TxMode::Write, move |tx| {
                linking::live_session(tx, &token_hash, now)?;
                tx.revoke_session(&token_hash, now)?;
                Ok(())
            })
            .await
    }

    /// The session's stored session_key, unsealed: only the use cases that decrypt with it
    /// open it.
    async fn stored_session_key(&self, token_hash: TokenHash) -> Result<SessionKey, DomainError> {
        self.store
            .transact(TxMode::Read, move |tx| {
                tx.session_key(&token_hash)?
                    .ok_or(DomainError::UnsupportedForApp)
            })
            .await
    }

    /// The live session of a token that logged in to a mini program: only those have a
    /// session_key, to decrypt with or to ask WeChat with.
    async fn mini_program_session(
        &self,
        token: &SessionToken,
        now: UnixTime,
    ) -> Result<(TokenHash, Session), DomainError> {
        let token_hash = access::session_hash(&self.signer, token, now)?;
        let session = self.live_session(token_hash, now).await?;
        if !session.has_session_key {
            return Err(DomainError::UnsupportedForApp);
        }
        Ok((token_hash, session))
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

/// The login's transaction as the store runs it (again after a conflict). A named function:
/// the closure's type spelled out keeps the login's future provably `Send`.
fn login_work(
    request: LoginRequest,
    ids: Arc<dyn IdSource>,
) -> impl FnMut(&mut dyn StoreTx) -> Result<LoginRecord, DomainError> + Send + 'static {
    move |tx| login_transaction(tx, &request, &*ids)
}

/// The login's transaction: the rules land the login on a user, then its session (and refresh
/// token) is issued to that user.
fn login_transaction(
    tx: &mut dyn StoreTx,
    request: &LoginRequest,
    ids: &dyn IdSource,
) -> Result<LoginRecord, DomainError> {
    let origin = Origin::new(&request.appid, &request.openid, request.at);
    // The rules hold the user and the identity the session goes to (users, then identities,
    // the order of merges and splits) until the session is in.
    let (user, outcome) = linking::login(tx, origin, request.unionid.as_ref(), ids)?;
    let session = Session {
        token_hash: request.token_hash,
        user_id: user.id.clone(),
        appid: request.appid.clone(),
        openid: request.openid.clone(),
        has_session_key: request.session_key.is_some(),
        created_at: request.at,
        expires_at: request.expires_at,
        revoked: false,
    };
    tx.insert_session(&session, &request.session_key)?;
    if let Some(refresh_hash) = &request.refresh_token {
        tx.insert_refresh_token(refresh_hash, &session.token_hash, request.at)?;
    }
    Ok(LoginRecord {
        unionid_linked: user.unionid.is_some(),
        user_id: user.id,
        outcome,
    })
}

#[cfg(test)]
pub(crate) mod tests;
