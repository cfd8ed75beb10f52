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
    /// The OAuth code is of a virtual user of an official account's snapshot page
    /// (`is_snapshotuser: 1`): not a real person's grant, so it never creates, links or merges
    /// a user.
    #[error("the login comes from a snapshot page's virtual user")]
    SnapshotUser,
    /// WeChat answered an errcode that has no meaning of its own here (e.g. 40125, a bad
    /// secret, or -1 after the retries); its errmsg is logged where the answer is read.
    #[error("WeChat answered errcode {0}")]
    Errcode(i64),
    /// Anything else: odd answers, transport failures. The text is for logs only.
    #[error("WeChat error: {0}")]
    Upstream(String),
    /// wxlink's own limit of WeChat calls for this app refused the call, which was not made.
    #[error("the app's limit of WeChat calls is reached")]
    CallLimited {
        /// Seconds until the app may call again.
        retry_after_secs: u64,
    },
}

/// Why encrypted user data was refused.
///
/// [`UserDataError::DecryptFailed`] carries no reason on purpose: AES-CBC is unauthenticated, so
/// an answer that tells bad padding from bad JSON is a padding oracle. The opener logs the
/// reason; the sender only learns that the data did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserDataError {
    /// The data did not open as user data with this session's key, whatever the reason (bad
    /// padding, not UTF-8, not JSON, a missing or malformed field).
    #[error(
        "the encrypted data does not open with this session's key; call wx.login, then wx.getUserInfo again, and retry with the new code"
    )]
    DecryptFailed,
    /// `sha1(raw_data + session_key)` is not the given signature.
    #[error("raw_data signature does not match")]
    SignatureMismatch,
    /// The data's watermark names another app.
    #[error("watermark names another app")]
    WatermarkMismatch,
    /// The data's watermark is older than allowed.
    #[error("watermark is too old")]
    WatermarkExpired,
    /// The data's watermark lies further in the future than clock skew explains.
    #[error("watermark lies in the future")]
    WatermarkInFuture,
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
    /// The decrypted openId (or a refreshing or re-authenticating code's openid) is not the
    /// session's.
    #[error("the data or code belongs to another WeChat user than the session")]
    IdentityMismatch,
    /// A destructive request came with the bearer token alone: it needs a fresh login code of
    /// the identity the token logged in through, as proof that the person is there.
    #[error(
        "this needs proof that the person is there: send a fresh code of the login's WeChat user (wx.login in a mini program, a new OAuth authorisation otherwise)"
    )]
    ReauthenticationRequired,
    /// The data names another unionid than the one the user already has.
    #[error("the user already has another unionid")]
    UnionidConflict,
    /// The data did not decrypt and WeChat says the stored session_key is no longer valid: the
    /// client must call `wx.login` and retry with the code.
    #[error(
        "the session_key expired; call wx.login, then wx.getUserInfo again, and retry with the new code"
    )]
    SessionKeyExpired,
    /// The session spent its budget of failed decryptions (the client must call `wx.login`
    /// and start a new session), or its identity its daily one (no login helps until the day
    /// is over).
    #[error("{0}")]
    TooManyAttempts(crate::model::SpentBudget),
    /// The session's app kind cannot do this (e.g. user info for an official account login,
    /// which has no session_key).
    #[error("this login's app kind does not support the request")]
    UnsupportedForApp,
    /// No such user (never existed, or deleted).
    #[error("no such user")]
    UserNotFound,
    /// The user has no such identity.
    #[error("the user has no such identity")]
    IdentityNotFound,
    /// Unlinking the user's only identity would leave a user nobody can log in as.
    #[error("this is the user's only identity; cancel the account instead")]
    LastIdentity,
    /// A support action on a user that was merged into another.
    #[error("the user was merged into {0}; act on that user")]
    UserMerged(crate::ids::UserId),
    /// A split's `into` was never merged into the user being split.
    #[error("that user was never merged into this one")]
    NotMergedHere,
    /// A user cannot be merged into itself.
    #[error("a user cannot be merged into itself")]
    SameUser,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
