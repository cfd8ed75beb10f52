//! The ports: what the domain needs from the outside world, as traits the adapters implement.

use std::future::Future;

use crate::error::{DomainError, StoreError, UserDataError, WeChatError};
use crate::ids::{AppId, JsCode, OpenId, UnionId, UserId};
use crate::model::{Event, PhoneNumber, Session, UnixTime, User};
use crate::secrets::{SessionKey, SessionToken, TokenHash};

/// The operations one store transaction offers. Synchronous: the store runs the whole
/// transaction on its own thread, so a use case's rules read like straight-line code.
///
/// A uniqueness violation is reported as [`StoreError::Conflict`], which makes the store retry
/// the whole transaction.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait StoreTx {
    /// The user owning identity (appid, openid), if any.
    fn identity_owner(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Option<UserId>, StoreError>;
    /// A user by id.
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
    /// Record that `from` was merged into `into`.
    fn mark_merged(&mut self, from: &UserId, into: &UserId, at: UnixTime)
    -> Result<(), StoreError>;
    /// The identities of a user, ordered by appid then openid.
    fn identities(&mut self, user: &UserId) -> Result<Vec<(AppId, OpenId)>, StoreError>;
    /// Store a new session.
    fn insert_session(&mut self, session: &Session) -> Result<(), StoreError>;
    /// A session by its token's hash, revoked or expired ones included.
    fn session(&mut self, token: &TokenHash) -> Result<Option<Session>, StoreError>;
    /// Replace a session's session_key (after a refreshing code).
    fn replace_session_key(
        &mut self,
        token: &TokenHash,
        key: &SessionKey,
    ) -> Result<(), StoreError>;
    /// Revoke a session.
    fn revoke_session(&mut self, token: &TokenHash, at: UnixTime) -> Result<(), StoreError>;
    /// Append an event to the log.
    fn append_event(&mut self, event: &Event) -> Result<(), StoreError>;
    /// Store a user's verified phone number (replacing any earlier one).
    fn set_phone_number(
        &mut self,
        user: &UserId,
        phone: &PhoneNumber,
        at: UnixTime,
    ) -> Result<(), StoreError>;
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
}

/// What WeChat gives for a login code: code2Session for mini programs, the OAuth exchange for
/// official accounts, mobile apps and websites.
#[derive(Debug, Clone, PartialEq)]
pub struct WeChatSession {
    /// The user's openid in the app.
    pub openid: OpenId,
    /// The session_key for decrypting this user's data (mini programs only).
    pub session_key: Option<SessionKey>,
    /// The unionid, when WeChat tells it.
    pub unionid: Option<UnionId>,
}

/// WeChat's server API, as the use cases need it.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait WeChatSessions: Send + Sync + 'static {
    /// Exchange a login code of `appid` for the user's session.
    fn code2session(
        &self,
        appid: &AppId,
        code: &JsCode,
    ) -> impl Future<Output = Result<WeChatSession, WeChatError>> + Send;

    /// Whether WeChat still considers `key` the user's valid session_key (checkSessionKey).
    fn session_key_valid(
        &self,
        appid: &AppId,
        openid: &OpenId,
        key: &SessionKey,
    ) -> impl Future<Output = Result<bool, WeChatError>> + Send;

    /// Exchange a getPhoneNumber code for the user's verified phone number.
    fn phone_number(
        &self,
        appid: &AppId,
        openid: &OpenId,
        code: &JsCode,
    ) -> impl Future<Output = Result<PhoneNumber, WeChatError>> + Send;
}

/// Encrypted user data as the client sends it (from `wx.getUserInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedUserData {
    /// Base64 ciphertext.
    pub encrypted_data: String,
    /// Base64 initialisation vector.
    pub iv: String,
    /// The raw JSON text and its signature, when the client sent both.
    pub signed_raw_data: Option<(String, String)>,
}

/// What the decrypted data says, once its signature held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedUserData {
    /// The user's openid the data is about.
    pub openid: OpenId,
    /// The unionid, when the data carries one (`wx.getUserProfile`'s never does).
    pub unionid: Option<UnionId>,
    /// The app the data was made for.
    pub watermark_appid: String,
    /// When WeChat made the data.
    pub watermark_timestamp: UnixTime,
}

/// Decrypts and checks user data with a session_key.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait UserDataOpener: Send + Sync + 'static {
    /// Check the raw_data signature (when given) and decrypt.
    fn open(
        &self,
        key: &SessionKey,
        data: &EncryptedUserData,
    ) -> Result<OpenedUserData, UserDataError>;
}

/// The time.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> UnixTime;
}

/// Fresh random tokens and user ids.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait IdSource: Send + Sync + 'static {
    /// A new bearer token (at least 32 random bytes, URL-safe).
    fn new_token(&self) -> SessionToken;
    /// A new user id.
    fn new_user_id(&self) -> UserId;
}
