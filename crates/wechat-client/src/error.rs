//! The one error type of this crate, and the table from WeChat's errcodes to its variants.

use std::fmt;

/// WeChat's `errcode` for "system busy, retry later".
pub(crate) const SYSTEM_BUSY: i64 = -1;
/// WeChat's `errcode` for an invalid (unknown, expired or foreign) js_code.
pub(crate) const INVALID_CODE: i64 = 40029;
/// WeChat's `errcode` for a js_code that was already exchanged.
pub(crate) const CODE_USED: i64 = 40163;
/// WeChat's `errcode` for a login blocked by WeChat's user risk rating ("code blocked").
pub(crate) const HIGH_RISK_USER: i64 = 40226;
/// WeChat's `errcode` for "api minute-quota reach limit".
pub(crate) const RATE_LIMITED: i64 = 45011;
/// WeChat's `errcode`s that say the app's own credentials are wrong.
pub(crate) const INVALID_CREDENTIALS: [i64; 3] = [
    40001, // invalid credential
    40013, // invalid appid
    40125, // invalid appsecret
];
/// WeChat's `errcode`s that say an access_token no longer works, on calls that take one.
pub(crate) const ACCESS_TOKEN_ERRORS: [i64; 3] = [
    40001, // invalid credential, access_token is invalid or not latest
    40014, // invalid access_token
    42001, // access_token expired
];
/// WeChat's `errcode` for "api unauthorized": on `sns/userinfo`, a grant without
/// `snsapi_userinfo`.
pub(crate) const SCOPE_UNAUTHORIZED: i64 = 48001;

/// Why a call to WeChat failed.
///
/// The variants for WeChat's errcodes are listed in the [crate documentation](crate#errors).
/// No variant ever holds the AppSecret, a code, a token or a session_key: bodies kept for diagnosis
/// have them replaced by `[redacted]`, and transport errors are stripped of the request URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// errcode 40029: the code (js_code, OAuth code or phone code) is unknown, expired (codes
    /// live five minutes) or belongs to another app. The client must get a new code.
    #[error("invalid code (wechat errcode 40029)")]
    InvalidCode,

    /// errcode 40163: the code was already exchanged (codes work once).
    /// The client must get a new code.
    #[error("code already used (wechat errcode 40163)")]
    CodeUsed,

    /// errcode 40226: WeChat blocks this user's login after its risk rating. Not retryable.
    #[error("login blocked for a high-risk user (wechat errcode 40226)")]
    HighRiskUser,

    /// errcode 45011: the minute quota is exhausted. Not retried by the client; try again later.
    #[error("rate limited by wechat (wechat errcode 45011)")]
    RateLimited,

    /// errcode -1 ("system error"), still returned after the retries the call allows (none for
    /// calls that spend a single-use code, other than code2Session).
    #[error("wechat is busy (wechat errcode -1) after retries")]
    SystemBusy,

    /// errcode 40013 or 40125, or 40001 on a call authenticated by the AppSecret: the appid or
    /// AppSecret is wrong. A configuration error on the caller's side, never the user's fault.
    #[error("wechat rejected the app credentials (errcode {errcode}: {errmsg})")]
    InvalidCredential {
        /// WeChat's errcode.
        errcode: i64,
        /// WeChat's errmsg, including its `rid` when present.
        errmsg: String,
    },

    /// errcode 40001, 40014 or 42001 on a call that takes an access_token: the token is
    /// invalid, no longer the latest, or expired.
    ///
    /// On calls with the app's [`AccessToken`](crate::AccessToken), fetch the current token once
    /// (in normal mode, not `force_refresh`) and retry once; on `sns/userinfo` the user's OAuth
    /// grant has to be renewed. See [`Error::is_access_token_invalid`].
    #[error("wechat rejected the access_token (errcode {errcode}: {errmsg})")]
    AccessTokenInvalid {
        /// WeChat's errcode: 40001, 40014 or 42001.
        errcode: i64,
        /// WeChat's errmsg, including its `rid` when present.
        errmsg: String,
    },

    /// errcode 48001 on `sns/userinfo`: the user's OAuth grant has scope `snsapi_base`, which
    /// does not allow reading the profile.
    #[error("the user's authorization does not cover this api (wechat errcode 48001)")]
    ScopeUnauthorized,

    /// Any other non-zero errcode.
    #[error("wechat api error (errcode {errcode}: {errmsg})")]
    Api {
        /// WeChat's errcode.
        errcode: i64,
        /// WeChat's errmsg, including its `rid` when present.
        errmsg: String,
    },

    /// A retry (after errcode -1 or a connection error) met 40029 or 40163: WeChat most likely
    /// consumed the code on the client's own first try.
    ///
    /// Treat it as an upstream failure, not as the user's bad code.
    #[error("code consumed by an earlier attempt of this call (wechat errcode {errcode} on retry)")]
    CodeConsumedByRetry {
        /// The errcode the retry met: 40029 or 40163.
        errcode: i64,
    },

    /// A successful (2xx) answer whose body is not JSON.
    #[error("wechat answered with a body that is not json (http status {status})")]
    NotJson {
        /// The HTTP status.
        status: u16,
        /// The start of the body (at most 1 KiB, lossily decoded, secrets redacted).
        body: String,
    },

    /// A non-2xx answer that carries no JSON errcode (e.g. a proxy's HTML 502 page).
    #[error("wechat answered http status {status} without an errcode")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The start of the body (at most 1 KiB, lossily decoded, secrets redacted).
        body: String,
    },

    /// JSON that is not the expected shape: errcode 0 without a required field (an openid, a
    /// session_key, a token, the phone_info), a field of the wrong type, or a JSON value that is
    /// not an object.
    ///
    /// The body is not kept because it may hold a secret.
    #[error("unexpected answer from wechat: {reason}")]
    UnexpectedAnswer {
        /// What was wrong, e.g. `missing openid`.
        reason: String,
    },

    /// No complete answer within the configured timeout (the budget of the whole call,
    /// retries included).
    #[error("wechat did not answer in time")]
    Timeout,

    /// The connection failed: refused, reset, closed early, TLS or DNS failure.
    ///
    /// The message says only at which stage; the cause is the [`source`](std::error::Error::source).
    #[error("transport error talking to wechat ({})", .0.stage())]
    Transport(#[source] TransportError),

    /// The [`ClientConfig`](crate::ClientConfig) is not usable.
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),
}

impl Error {
    /// WeChat's errcode behind this error, if the error came from an errcode.
    ///
    /// [`Error::CodeConsumedByRetry`] returns the errcode the retry met.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            Self::InvalidCode => Some(INVALID_CODE),
            Self::CodeUsed => Some(CODE_USED),
            Self::HighRiskUser => Some(HIGH_RISK_USER),
            Self::RateLimited => Some(RATE_LIMITED),
            Self::SystemBusy => Some(SYSTEM_BUSY),
            Self::ScopeUnauthorized => Some(SCOPE_UNAUTHORIZED),
            Self::InvalidCredential { errcode, .. }
            | Self::AccessTokenInvalid { errcode, .. }
            | Self::Api { errcode, .. }
            | Self::CodeConsumedByRetry { errcode } => Some(*errcode),
            Self::NotJson { .. }
            | Self::Http { .. }
            | Self::UnexpectedAnswer { .. }
            | Self::Timeout
            | Self::Transport(_)
            | Self::InvalidConfig(_) => None,
        }
    }

    /// Whether the failure is transient, so that the same request may succeed later.
    ///
    /// True for [`SystemBusy`](Self::SystemBusy), [`RateLimited`](Self::RateLimited),
    /// [`Timeout`](Self::Timeout), [`Transport`](Self::Transport),
    /// [`CodeConsumedByRetry`](Self::CodeConsumedByRetry), and [`Http`](Self::Http) /
    /// [`NotJson`](Self::NotJson) with a 5xx or 429 status.
    ///
    /// "Later" means a new request: a single-use code (js_code, OAuth code, phone code) may have
    /// been consumed by the failed call, so a login retried by the user should start with a
    /// fresh code.
    /// An [`AccessTokenInvalid`](Self::AccessTokenInvalid) error is not retryable as such: the
    /// same request with the same token fails again; see
    /// [`is_access_token_invalid`](Self::is_access_token_invalid).
    /// The client has already made its own bounded retries before returning.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::SystemBusy
            | Self::RateLimited
            | Self::Timeout
            | Self::Transport(_)
            | Self::CodeConsumedByRetry { .. } => true,
            Self::Http { status, .. } | Self::NotJson { status, .. } => {
                *status >= 500 || *status == 429
            }
            Self::InvalidCode
            | Self::CodeUsed
            | Self::HighRiskUser
            | Self::InvalidCredential { .. }
            | Self::AccessTokenInvalid { .. }
            | Self::ScopeUnauthorized
            | Self::Api { .. }
            | Self::UnexpectedAnswer { .. }
            | Self::InvalidConfig(_) => false,
        }
    }

    /// Whether WeChat refused the access_token of the call (errcode 40001, 40014 or 42001 on a
    /// call that takes one): the caller should get the current token once and retry once.
    ///
    /// With [`stable_token`](crate::WeChatClient::stable_token) in normal mode every node gets
    /// the same current token, so no node should `force_refresh` on this error.
    /// On [`stable_token`](crate::WeChatClient::stable_token) itself, 40001 means a wrong
    /// AppSecret and is [`InvalidCredential`](Self::InvalidCredential) instead.
    pub fn is_access_token_invalid(&self) -> bool {
        matches!(self, Self::AccessTokenInvalid { .. })
    }

    /// Maps a non-zero errcode and its errmsg to a variant.
    pub(crate) fn from_errcode(errcode: i64, errmsg: String) -> Self {
        match errcode {
            INVALID_CODE => Self::InvalidCode,
            CODE_USED => Self::CodeUsed,
            HIGH_RISK_USER => Self::HighRiskUser,
            RATE_LIMITED => Self::RateLimited,
            SYSTEM_BUSY => Self::SystemBusy,
            code if INVALID_CREDENTIALS.contains(&code) => Self::InvalidCredential {
                errcode: code,
                errmsg,
            },
            code => Self::Api {
                errcode: code,
                errmsg,
            },
        }
    }
}

/// A connection-level failure, with the underlying HTTP library's error as its source.
///
/// The request URL (which may hold the AppSecret, a code or a token) has been removed from it.
pub struct TransportError {
    inner: reqwest::Error,
}

impl TransportError {
    pub(crate) fn new(error: reqwest::Error) -> Self {
        Self {
            inner: error.without_url(),
        }
    }

    /// Whether the failure happened while connecting, so the request never reached WeChat.
    ///
    /// Only such failures are retried by the client.
    pub fn is_connect(&self) -> bool {
        self.inner.is_connect()
    }

    /// A short description of when the failure happened, for messages.
    fn stage(&self) -> &'static str {
        if self.is_connect() {
            "could not connect"
        } else if self.inner.is_body() || self.inner.is_decode() {
            "connection failed while reading the answer"
        } else {
            "connection failed after the request was sent"
        }
    }
}

impl fmt::Debug for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcodes_map_to_variants() {
        let msg = || "m".to_owned();
        assert!(matches!(
            Error::from_errcode(40029, msg()),
            Error::InvalidCode
        ));
        assert!(matches!(Error::from_errcode(40163, msg()), Error::CodeUsed));
        assert!(matches!(
            Error::from_errcode(40226, msg()),
            Error::HighRiskUser
        ));
        assert!(matches!(
            Error::from_errcode(45011, msg()),
            Error::RateLimited
        ));
        assert!(matches!(Error::from_errcode(-1, msg()), Error::SystemBusy));
        for code in [40001, 40013, 40125] {
            assert!(matches!(
                Error::from_errcode(code, msg()),
                Error::InvalidCredential { errcode, .. } if errcode == code
            ));
        }
        assert!(matches!(
            Error::from_errcode(41008, msg()),
            Error::Api { errcode: 41008, .. }
        ));
    }

    #[test]
    fn access_token_errors_are_flagged() {
        let error = Error::AccessTokenInvalid {
            errcode: 42001,
            errmsg: "access_token expired".into(),
        };
        assert!(error.is_access_token_invalid());
        assert!(!error.is_retryable());
        assert_eq!(error.errcode(), Some(42001));
        assert!(!Error::SystemBusy.is_access_token_invalid());
        assert_eq!(Error::ScopeUnauthorized.errcode(), Some(48001));
        assert!(!Error::ScopeUnauthorized.is_retryable());
    }

    #[test]
    fn errcode_round_trips() {
        for code in [-1, 40029, 40163, 40226, 45011, 40125, 40013, 40001, 41008] {
            assert_eq!(
                Error::from_errcode(code, String::new()).errcode(),
                Some(code)
            );
        }
        assert_eq!(Error::Timeout.errcode(), None);
        assert_eq!(
            Error::CodeConsumedByRetry { errcode: 40163 }.errcode(),
            Some(40163)
        );
    }

    #[test]
    fn retryability() {
        assert!(Error::SystemBusy.is_retryable());
        assert!(Error::RateLimited.is_retryable());
        assert!(Error::Timeout.is_retryable());
        assert!(Error::CodeConsumedByRetry { errcode: 40163 }.is_retryable());
        assert!(!Error::InvalidCode.is_retryable());
        assert!(!Error::CodeUsed.is_retryable());
        assert!(!Error::HighRiskUser.is_retryable());
        let http = |status| Error::Http {
            status,
            body: String::new(),
        };
        assert!(http(502).is_retryable());
        assert!(!http(404).is_retryable());
    }

    #[test]
    fn messages_are_lowercase_without_period() {
        let errors = [
            Error::InvalidCode,
            Error::CodeUsed,
            Error::HighRiskUser,
            Error::RateLimited,
            Error::SystemBusy,
            Error::Timeout,
            Error::CodeConsumedByRetry { errcode: 40163 },
            Error::ScopeUnauthorized,
            Error::AccessTokenInvalid {
                errcode: 40001,
                errmsg: "invalid credential".into(),
            },
            Error::Http {
                status: 502,
                body: String::new(),
            },
        ];
        for error in errors {
            let text = error.to_string();
            assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
            assert!(!text.ends_with('.'), "{text}");
        }
    }
}
