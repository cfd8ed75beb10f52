//! The domain's errors: what went wrong, in the words of the linking rules.

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness or serialization conflict with a concurrent transaction; retrying may succeed.
    #[error("conflict with a concurrent transaction")]
    Conflict,
    /// Conflicts persisted through every retry.
    #[error("too much contention: gave up after {attempts} attempts")]
    Contention {
        /// How many times the transaction ran.
        attempts: u32,
    },
    /// The database cannot be reached or did not answer.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Stored data broke an invariant.
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// A sealed value could not be opened with the data keys this node has: a key problem
    /// (a missing or wrong key, or a tampered value). Names the value and the key id, never a
    /// secret.
    #[error("data key problem: {0}")]
    Key(String),
}

/// Why WeChat did not give a session for a login code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WeChatError {
    /// The code is invalid, expired or already used (40029, 40163).
    #[error("the code is invalid, expired or already used")]
    InvalidCode,
    /// WeChat blocks this user's login (40226).
    #[error("WeChat blocked this user's login")]
    UserBlocked,
    /// WeChat's rate limit (45011).
    #[error("WeChat rate limit reached")]
    RateLimited,
    /// WeChat did not answer in time.
    #[error("WeChat did not answer in time")]
    Timeout,
    /// The appid has no configuration (no secret).
    #[error("app is not configured")]
    UnknownApp,
    /// Anything else: busy after retries, odd answers, bad credentials.
    #[error("WeChat error: {0}")]
    Upstream(String),
}

/// Why encrypted user data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserDataError {
    /// The data did not decrypt to JSON user data with this session's key.
    #[error("encrypted data does not decrypt with the session's key: {0}")]
    DecryptFailed(String),
    /// `sha1(raw_data + session_key)` is not the given signature.
    #[error("raw_data signature does not match")]
    SignatureMismatch,
}

/// Every way a use case can refuse or fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The bearer token is unknown, expired or revoked.
    #[error("invalid or expired token")]
    InvalidToken,
    /// WeChat refused or failed the code exchange.
    #[error(transparent)]
    WeChat(#[from] WeChatError),
    /// The encrypted data was refused.
    #[error(transparent)]
    UserData(#[from] UserDataError),
    /// The data's watermark names another app.
    #[error("watermark names another app")]
    WatermarkMismatch,
    /// The data's watermark is older than allowed.
    #[error("watermark is too old")]
    WatermarkExpired,
    /// The decrypted openId (or a refreshing code's openid) is not the session's.
    #[error("the data belongs to another WeChat user than the session")]
    IdentityMismatch,
    /// The data names another unionid than the one the user already has.
    #[error("the user already has another unionid")]
    UnionidConflict,
    /// The data did not decrypt and WeChat says the stored session_key is no longer valid: the
    /// client must call `wx.login` and retry with the code.
    #[error(
        "the session_key expired; call wx.login, then wx.getUserInfo again, and retry with the new code"
    )]
    SessionKeyExpired,
    /// The session's app kind cannot do this (e.g. user info for an official account login,
    /// which has no session_key).
    #[error("this login's app kind does not support the request")]
    UnsupportedForApp,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
