//! The ports: what the domain needs from the outside world, as traits the adapters implement.

use std::future::Future;

use crate::access::RefreshTokenRow;
use crate::error::{DomainError, StoreError, UserDataError, WeChatError};
use crate::ids::{AppId, JsCode, OpenId, UnionId, UserId};
use crate::model::{
    DecryptBudget, Event, LoginOutcome, PhoneNumber, Reservation, Session, UnixTime, User,
};
use crate::secrets::{SessionKey, SessionToken, TokenHash};

/// The operations one store transaction offers. Synchronous: the store runs the whole
/// transaction on its own thread, so a use case's rules read like straight-line code.
///
/// A uniqueness violation is reported as [`StoreError::Conflict`], which makes the store retry
/// the whole transaction.
#[cfg_attr(test, mockall::automock)]
pub trait StoreTx {
    /// The user owning identity (appid, openid), if any.
    fn identity_owner(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Option<UserId>, StoreError>;
    /// A user by id; a deleted user (a tombstone) is `None`.
    fn user(&mut self, id: &UserId) -> Result<Option<User>, StoreError>;
    /// The user owning a unionid, if any.
    fn user_by_unionid(&mut self, unionid: &UnionId) -> Result<Option<User>, StoreError>;
    /// Create a user.
    fn insert_user(&mut self, user: &User) -> Result<(), StoreError>;
    /// Give a user without a unionid its unionid.
    fn set_unionid(
        &mut self,
        user: &UserId,
        unionid: &UnionId,
        at: UnixTime,
    ) -> Result<(), StoreError>;
    /// Attach identity (appid, openid) to a user.
    fn insert_identity(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
        user: &UserId,
        at: UnixTime,
    ) -> Result<(), StoreError>;
    /// Move every identity of `from` to `into`; returns how many moved.
    fn move_identities(
        &mut self,
        from: &UserId,
        into: &UserId,
        at: UnixTime,
    ) -> Result<u64, StoreError>;
    /// Record that `from` was merged into `into`; users merged into `from` before now point at
    /// `into`, so merge chains stay one hop long.
    fn mark_merged(&mut self, from: &UserId, into: &UserId, at: UnixTime)
    -> Result<(), StoreError>;
    /// The identities of a user, ordered by appid then openid.
    fn identities(&mut self, user: &UserId) -> Result<Vec<(AppId, OpenId)>, StoreError>;
    /// Hold `user` as it is until this transaction ends: a concurrent cancellation or merge of
    /// it makes one of the two conflict, so a session issued here never lands on a user that
    /// was cancelled meanwhile (logins run with less than serializable isolation), and a merge
    /// reads both users' phone numbers as they are when it commits.
    fn hold_user(&mut self, user: &UserId) -> Result<(), StoreError>;
    /// Store a new session with its session_key, if it has one.
    fn insert_session(
        &mut self,
        session: &Session,
        key: &Option<SessionKey>,
    ) -> Result<(), StoreError>;
    /// A session by its token's hash, revoked or expired ones included; its session_key is not
    /// read.
    fn session(&mut self, token: &TokenHash) -> Result<Option<Session>, StoreError>;
    /// The session_key of a session, unsealed; `None` when the session or its key does not
    /// exist. [`StoreError::Key`] when it cannot be unsealed.
    fn session_key(&mut self, token: &TokenHash) -> Result<Option<SessionKey>, StoreError>;
    /// Replace a session's session_key (after a refreshing code).
    fn replace_session_key(
        &mut self,
        token: &TokenHash,
        key: &SessionKey,
    ) -> Result<(), StoreError>;
    /// Reserve one failed decryption against the session's budget and its identity's daily
    /// budget, before decrypting: which one is spent, with nothing changed, when either is. Atomic in
    /// the database, so concurrent requests on several nodes cannot overshoot. The identity's
    /// window starts again a day after it began. Call it alone in its transaction: a store may
    /// run that transaction with weaker isolation, since the reservation is atomic by itself.
    fn reserve_decrypt_attempt(
        &mut self,
        token: &TokenHash,
        appid: &AppId,
        openid: &OpenId,
        now: UnixTime,
        budget: DecryptBudget,
    ) -> Result<Reservation, StoreError>;
    /// Give a reservation back: the data opened and linked. Alone in its transaction, as
    /// [`StoreTx::reserve_decrypt_attempt`].
    fn release_decrypt_attempt(
        &mut self,
        token: &TokenHash,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<(), StoreError>;
    /// Revoke a session.
    fn revoke_session(&mut self, token: &TokenHash, at: UnixTime) -> Result<(), StoreError>;
    /// Append an event to the log.
    fn append_event(&mut self, event: &Event) -> Result<(), StoreError>;
    /// Take a user's unionid away (before another user takes it in a support merge).
    fn release_unionid(&mut self, user: &UserId, at: UnixTime) -> Result<(), StoreError>;
    /// Revoke every live session issued to `user` or to a user merged into it; returns how
    /// many were revoked.
    fn revoke_user_sessions(&mut self, user: &UserId, at: UnixTime) -> Result<u64, StoreError>;
    /// Revoke every live session logged in through identity (appid, openid); returns how many.
    fn revoke_identity_sessions(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
        at: UnixTime,
    ) -> Result<u64, StoreError>;
    /// Detach identity (appid, openid) from whoever owns it.
    fn delete_identity(&mut self, appid: &AppId, openid: &OpenId) -> Result<(), StoreError>;
    /// Detach every identity of a user; returns how many.
    fn delete_identities(&mut self, user: &UserId) -> Result<u64, StoreError>;
    /// Make `user`, and every user merged into it, a tombstone: unionid, phone number and the
    /// session_keys of their sessions erased, the row kept (marked deleted) for the event log.
    /// [`StoreTx::user`] no longer finds a tombstone.
    fn tombstone_user(&mut self, user: &UserId, at: UnixTime) -> Result<(), StoreError>;
    /// Store a user's verified phone number (replacing any earlier one), verified at `at`
    /// through identity (`appid`, `openid`): the number follows that identity in a split.
    fn set_phone_number(
        &mut self,
        user: &UserId,
        phone: &PhoneNumber,
        appid: &AppId,
        openid: &OpenId,
        at: UnixTime,
    ) -> Result<(), StoreError>;
    /// The identity that verified the user's phone number; `None` when the user has none, or
    /// it was verified before wxlink recorded by which identity.
    fn phone_verified_by(&mut self, user: &UserId) -> Result<Option<(AppId, OpenId)>, StoreError>;
    /// When the user's phone number was verified, if the user has one.
    fn phone_verified_at(&mut self, user: &UserId) -> Result<Option<UnixTime>, StoreError>;
    /// Give `into` the phone number of `from`, with its verification time and identity
    /// (replacing any of `into`'s); `from` has none afterwards.
    fn move_phone_number(
        &mut self,
        from: &UserId,
        into: &UserId,
        at: UnixTime,
    ) -> Result<(), StoreError>;
    /// Remove the user's phone number.
    fn clear_phone_number(&mut self, user: &UserId, at: UnixTime) -> Result<(), StoreError>;
    /// How many sessions issued to the user still work at `now`.
    fn live_sessions(&mut self, user: &UserId, now: UnixTime) -> Result<u64, StoreError>;
    /// Record that WeChat told `unionid` for identity (appid, openid): the identity vouches for
    /// it, and its user holds the unionid only while one of its identities does.
    fn vouch(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
        unionid: &UnionId,
        at: UnixTime,
    ) -> Result<(), StoreError>;
    /// How many identities of `user` vouch for `unionid`.
    fn vouchers(&mut self, user: &UserId, unionid: &UnionId) -> Result<u64, StoreError>;
    /// The identities of `user` that vouch for `unionid`, ordered by appid then openid.
    fn vouching_identities(
        &mut self,
        user: &UserId,
        unionid: &UnionId,
    ) -> Result<Vec<(AppId, OpenId)>, StoreError>;
    /// Forget what the identities of `user` vouch for (they moved away from the unionid's
    /// holder; their next login with a unionid tells it again).
    fn drop_vouches(&mut self, user: &UserId, at: UnixTime) -> Result<(), StoreError>;
    /// Hold identity (appid, openid) as belonging to `owner` until this transaction ends: a
    /// login that read its owner before a concurrent split moved it conflicts (and reruns)
    /// instead of issuing a session to the user the identity left.
    fn hold_identity(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
        owner: &UserId,
    ) -> Result<(), StoreError>;
    /// Move identity (appid, openid), with what it vouches for, to user `to`.
    fn move_identity(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
        to: &UserId,
        at: UnixTime,
    ) -> Result<(), StoreError>;
    /// A split's sessions: those logged in through one of `moved` that act as `from` (issued
    /// to it or to a user merged into it) are issued to `to` from now on, and those issued to
    /// `to` through another identity act as `from`. Returns how many live sessions moved.
    fn split_sessions(
        &mut self,
        from: &UserId,
        to: &UserId,
        moved: &[(AppId, OpenId)],
        now: UnixTime,
    ) -> Result<u64, StoreError>;
    /// Undo the merge of `user` into `merged_into`: it is no longer merged, its id works again.
    fn restore_user(
        &mut self,
        user: &UserId,
        merged_into: &UserId,
        at: UnixTime,
    ) -> Result<(), StoreError>;
    /// Store a new, unused refresh token (its hash) of `session`.
    fn insert_refresh_token(
        &mut self,
        token: &TokenHash,
        session: &TokenHash,
        at: UnixTime,
    ) -> Result<(), StoreError>;
    /// A refresh token by its hash, used or not.
    fn refresh_token(&mut self, token: &TokenHash) -> Result<Option<RefreshTokenRow>, StoreError>;
    /// Mark a refresh token used, only if it is not yet: `false` when it already was (a
    /// guarded update, so of two concurrent exchanges exactly one gets `true`).
    fn use_refresh_token(&mut self, token: &TokenHash, at: UnixTime) -> Result<bool, StoreError>;
}

/// Whether a transaction may write, and what its rules need from the store's isolation; lets
/// a store take a cheaper path where the rules allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// Only reads.
    Read,
    /// Reads and writes that must behave as if transactions ran one at a time.
    Write,
    /// Reads and writes whose every race the store itself detects: uniqueness (one identity
    /// per (appid, openid), one user per unionid) and writes conditional on what was read (a
    /// unionid is only set where there is none, a user only merged while provisional and
    /// unmerged). Such a race fails the losing write with [`StoreError::Conflict`] and the
    /// work runs again, so the store may isolate these more cheaply than [`TxMode::Write`].
    ///
    /// [`StoreError::Conflict`]: crate::StoreError::Conflict
    WriteGuarded,
}

impl TxMode {
    /// Whether this transaction may write.
    pub fn writes(self) -> bool {
        !matches!(self, TxMode::Read)
    }
}

/// Where users, identities, sessions and events live.
///
/// `transact` runs `work` in one transaction: all its writes happen or none do. If `work` (or the
/// commit) meets [`StoreError::Conflict`], the store rolls back and runs `work` again, a bounded
/// number of times, then answers [`StoreError::Contention`]. Any other error rolls back and is
/// returned as is. So `work` must be a pure function of what it reads through the transaction.
pub trait IdentityStore: Send + Sync + 'static {
    /// Run `work` in one transaction, retrying on conflicts.
    fn transact<T, F>(
        &self,
        mode: TxMode,
        work: F,
    ) -> impl Future<Output = Result<T, DomainError>> + Send
    where
        T: Send + 'static,
        F: FnMut(&mut dyn StoreTx) -> Result<T, DomainError> + Send + 'static;

    /// Decide a whole login in one step, by the same rules as the login's transaction (the
    /// linking rules, then its session and refresh token), when this store has a cheaper way
    /// to run them. `Ok(None)`: it did not decide (nothing of the login was written), and the
    /// login runs its rules in a [`IdentityStore::transact`]ion. By default it never decides.
    fn login_at_once(
        &self,
        login: &LoginRequest,
    ) -> impl Future<Output = Result<Option<LoginRecord>, DomainError>> + Send {
        let _ = login;
        std::future::ready(Ok(None))
    }
}

/// Everything a login writes, decided before its rules run: see
/// [`IdentityStore::login_at_once`].
#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// The app logged in to.
    pub appid: AppId,
    /// The user's openid in it.
    pub openid: OpenId,
    /// The unionid WeChat told with the login, if any.
    pub unionid: Option<UnionId>,
    /// When the login happens (the session's `created_at`).
    pub at: UnixTime,
    /// The session to issue (to whoever the rules land on): its token's hash.
    pub token_hash: TokenHash,
    /// When the session stops working.
    pub expires_at: UnixTime,
    /// Its session_key, if it has one.
    pub session_key: Option<SessionKey>,
    /// With signed access tokens: the hash of the session's first refresh token.
    pub refresh_token: Option<TokenHash>,
}

/// What a login decided: the user its session was issued to, whether that user holds a
/// unionid, and how the rules got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    /// The user the session acts as.
    pub user_id: UserId,
    /// Whether the user holds a unionid.
    pub unionid_linked: bool,
    /// Which rule decided.
    pub outcome: LoginOutcome,
}

/// What WeChat gives for a login code: code2Session for mini programs, the OAuth exchange for
/// official accounts, mobile apps and websites.
#[derive(Debug, Clone, PartialEq)]
pub struct WeChatSession {
    /// The user's openid in the app.
    pub openid: OpenId,
    /// The session_key for decrypting this user's data: present exactly for the apps whose
    /// [`AppKind::has_session_key`](crate::AppKind::has_session_key).
    pub session_key: Option<SessionKey>,
    /// The unionid, when WeChat tells it.
    pub unionid: Option<UnionId>,
}

/// WeChat's server API, as the use cases need it.
#[cfg_attr(test, mockall::automock)]
pub trait WeChatSessions: Send + Sync + 'static {
    /// Exchange a login code of `appid` for the user's session.
    fn code2session(
        &self,
        appid: &AppId,
        code: &JsCode,
    ) -> impl Future<Output = Result<WeChatSession, WeChatError>> + Send;

    /// Whether WeChat still considers `key` the user's valid session_key (checkSessionKey).
    ///
    /// The calls that need an access token answer [`DomainError`]: the token is read from the
    /// store, and a store failure is reported as one ([`DomainError::Store`]), not as WeChat's.
    fn session_key_valid(
        &self,
        appid: &AppId,
        openid: &OpenId,
        key: &SessionKey,
    ) -> impl Future<Output = Result<bool, DomainError>> + Send;

    /// Exchange a getPhoneNumber code for the user's verified phone number.
    fn phone_number(
        &self,
        appid: &AppId,
        openid: &OpenId,
        code: &JsCode,
    ) -> impl Future<Output = Result<PhoneNumber, DomainError>> + Send;
}

/// Encrypted user data as the client sends it (from `wx.getUserInfo`), decoded once at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedUserData {
    /// The ciphertext, decoded from base64.
    pub ciphertext: Vec<u8>,
    /// The initialisation vector, decoded from base64.
    pub iv: [u8; 16],
    /// The raw JSON text and its signature, when the client sent both.
    pub signed_raw_data: Option<(String, String)>,
}

/// What the decrypted data says, once its signature and watermark held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedUserData {
    /// The user's openid the data is about.
    pub openid: OpenId,
    /// The unionid, when the data carries one (`wx.getUserProfile`'s never does).
    pub unionid: Option<UnionId>,
}

/// What the watermark of user data must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedWatermark {
    /// The session's app: the data must be made for it.
    pub appid: AppId,
    /// The time to measure the watermark's age against.
    pub now: UnixTime,
    /// How old the data may be; `None` = no age check.
    pub max_age_secs: Option<u64>,
}

/// Decrypts and checks user data with a session_key.
///
/// Every failure to open the data is [`UserDataError::DecryptFailed`], without its reason: an
/// implementation logs the reason (at debug, never the data, iv or key) and must not let the
/// sender tell one failure from another.
#[cfg_attr(test, mockall::automock)]
pub trait UserDataOpener: Send + Sync + 'static {
    /// Decrypt, check the raw_data signature (when given), then the watermark.
    fn open(
        &self,
        key: &SessionKey,
        data: &EncryptedUserData,
        expected: &ExpectedWatermark,
    ) -> Result<OpenedUserData, UserDataError>;
}

/// The time. The use cases hold it as an `Arc<dyn Clock>`, so a test moves the time the whole
/// service reads.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: std::fmt::Debug + Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> UnixTime;
}

/// Fresh random tokens and user ids; held as an `Arc<dyn IdSource>`, as the clock.
#[cfg_attr(test, mockall::automock)]
pub trait IdSource: std::fmt::Debug + Send + Sync + 'static {
    /// A new bearer token (at least 32 random bytes, URL-safe).
    fn new_token(&self) -> SessionToken;
    /// A new user id.
    fn new_user_id(&self) -> UserId;
}
