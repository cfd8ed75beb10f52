//! The simulator's public data types: what the control API takes and gives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The path of code2Session, also the key of its call counter.
pub const CODE2SESSION_PATH: &str = "/sns/jscode2session";

/// How long a code from [`Sim::login`](crate::Sim::login) can be exchanged: five minutes, as
/// on WeChat.
pub const CODE_TTL_SECS: u64 = 300;

/// When code2Session returns a user's unionid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnionidPolicy {
    /// Whenever the user has one: a mini program bound to an Open Platform account (the rule
    /// since 2021-02-23).
    #[default]
    Always,
    /// Never: a mini program that is not bound to an Open Platform account.
    Never,
    /// Only if the user follows the platform's official account (the rule before 2021-02-23).
    WhenFollowing,
}

impl std::str::FromStr for UnionidPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            "when_following" | "when-following" => Ok(Self::WhenFollowing),
            other => Err(format!(
                "unknown unionid policy {other:?} (expected always, never or when_following)"
            )),
        }
    }
}

/// A registered mini program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRegistration {
    /// The appid, e.g. `wx4f4bc4dec97d474b`.
    pub appid: String,
    /// The AppSecret code2Session must be called with.
    pub secret: String,
    /// When code2Session returns the unionid.
    #[serde(default)]
    pub unionid_policy: UnionidPolicy,
}

/// What `wx.login` produced: a fresh code, and the user's new session key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// The single-use code, valid for [`CODE_TTL_SECS`].
    pub code: String,
    /// The user's openid (generated when the login request named none).
    pub openid: String,
    /// The user's new session key (base64 of 16 bytes); the previous one no longer works.
    /// Returned so that tests can check what the service under test stored.
    pub session_key: String,
    /// Seconds the code stays valid.
    pub expires_in: u64,
}

/// What to put into a simulated `wx.getUserInfo` / `wx.getUserProfile` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfoRequest {
    /// The mini program.
    pub appid: String,
    /// The user; must have logged in once, so that it has a session key.
    pub openid: String,
    /// Whether the encrypted data carries `unionId` when the user has one.
    /// `true` is `wx.getUserInfo`; `false` is `wx.getUserProfile`, whose data never does.
    #[serde(default = "yes")]
    pub include_unionid: bool,
    /// The nickname in the profile; default `微信用户`, the anonymised name.
    #[serde(default)]
    pub nick_name: Option<String>,
    /// Overrides `watermark.appid` (default: `appid`), to test watermark checks.
    #[serde(default)]
    pub watermark_appid: Option<String>,
    /// Overrides `watermark.timestamp` (default: the simulator clock, in Unix seconds).
    #[serde(default)]
    pub watermark_timestamp: Option<i64>,
}

fn yes() -> bool {
    true
}

impl UserInfoRequest {
    /// A `wx.getUserInfo` request for a user, with every option at its default.
    pub fn new(appid: impl Into<String>, openid: impl Into<String>) -> Self {
        Self {
            appid: appid.into(),
            openid: openid.into(),
            include_unionid: true,
            nick_name: None,
            watermark_appid: None,
            watermark_timestamp: None,
        }
    }

    /// Leaves `unionId` out, as `wx.getUserProfile` does.
    pub fn without_unionid(mut self) -> Self {
        self.include_unionid = false;
        self
    }
}

/// The encrypted user data a mini program would send to its backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Base64 AES-128-CBC ciphertext of the user's JSON, under the current session key.
    pub encrypted_data: String,
    /// Base64 of the 16-byte iv.
    pub iv: String,
    /// The plain profile JSON (no openId or unionId), as `rawData`.
    pub raw_data: String,
    /// Hex `sha1(raw_data + session_key)`.
    pub signature: String,
}

/// A failure the simulator plays instead of (or before) the normal code2Session answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// errcode -1 `system error`.
    SystemBusy {
        /// Whether the code still counts as used afterwards, as when WeChat consumed it before
        /// failing. A retry with the same code then meets 40163.
        #[serde(default)]
        consume_code: bool,
    },
    /// errcode 45011, the minute quota.
    RateLimited,
    /// errcode 40226 `code blocked`, a high-risk user.
    HighRisk,
    /// errcode 40125 `invalid appsecret`.
    InvalidCredential,
    /// Any errcode and errmsg.
    Errcode {
        /// The errcode.
        errcode: i64,
        /// The errmsg.
        errmsg: String,
    },
    /// HTTP 502 with an HTML body, as from a gateway.
    #[serde(rename = "non_json_502")]
    NonJson502,
    /// HTTP 500 with a plain-text body that is not JSON.
    #[serde(rename = "http_500")]
    Http500,
    /// Waits, then answers normally.
    Delay {
        /// Milliseconds to wait, at most 60 000.
        ms: u64,
    },
    /// Closes the connection without an answer.
    DropConnection,
}

/// Which code2Session calls a fault applies to; every field given must match.
///
/// A target naming a code is tried before one naming only an appid, which is tried before one
/// naming neither (every call).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultTarget {
    /// Only calls with this appid.
    #[serde(default)]
    pub appid: Option<String>,
    /// Only calls with this js_code.
    #[serde(default)]
    pub code: Option<String>,
}

impl FaultTarget {
    /// Every call.
    pub fn any() -> Self {
        Self::default()
    }

    /// Calls for one app.
    pub fn app(appid: impl Into<String>) -> Self {
        Self {
            appid: Some(appid.into()),
            code: None,
        }
    }

    /// Calls with one code.
    pub fn code(code: impl Into<String>) -> Self {
        Self {
            appid: None,
            code: Some(code.into()),
        }
    }
}

/// A list of faults for a target: played one per call in order and then gone, or, when
/// `sticky`, played in a cycle until cleared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Which calls it applies to (flattened in JSON: `appid`, `code`).
    #[serde(flatten)]
    pub target: FaultTarget,
    /// The faults, in order.
    pub faults: Vec<Fault>,
    /// Repeat forever instead of being consumed.
    #[serde(default)]
    pub sticky: bool,
}

/// Calls of one simulated WeChat endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointCalls {
    /// All calls.
    pub total: u64,
    /// Calls per `appid` query parameter as sent (even an unregistered one; empty when missing).
    pub by_appid: BTreeMap<String, u64>,
}

/// Call counters, keyed by endpoint path (e.g. [`CODE2SESSION_PATH`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallCounts {
    /// Per endpoint path.
    pub endpoints: BTreeMap<String, EndpointCalls>,
}

impl CallCounts {
    /// All calls of an endpoint.
    pub fn total(&self, path: &str) -> u64 {
        self.endpoints.get(path).map_or(0, |e| e.total)
    }

    /// Calls of an endpoint for one appid.
    pub fn for_app(&self, path: &str, appid: &str) -> u64 {
        self.endpoints
            .get(path)
            .and_then(|e| e.by_appid.get(appid))
            .copied()
            .unwrap_or(0)
    }
}

/// Why a control operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another I/O failure of the server socket.
    #[error("simulator socket error")]
    Io(#[from] std::io::Error),
    /// The appid was never registered.
    #[error("unknown app {0}")]
    UnknownApp(String),
    /// No such user for that app.
    #[error("unknown user {openid} of app {appid}")]
    UnknownUser {
        /// The appid.
        appid: String,
        /// The openid.
        openid: String,
    },
    /// The user never logged in, so there is no session key to encrypt with.
    #[error("user {openid} of app {appid} has no session_key: log in first")]
    NoSession {
        /// The appid.
        appid: String,
        /// The openid.
        openid: String,
    },
    /// A field is empty, too long or malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A size cap was reached (apps, users, codes or fault rules).
    #[error("simulator capacity reached: too many {0}")]
    Capacity(&'static str),
    /// Encrypting the user data failed.
    #[error("cannot encrypt user data")]
    Crypto(#[source] wxlink_crypto::DecryptError),
}

impl SimError {
    /// A stable snake_case name of the error, used as `error.code` by the HTTP control API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Bind { .. } | Self::Io(_) => "io_error",
            Self::UnknownApp(_) => "unknown_app",
            Self::UnknownUser { .. } => "unknown_user",
            Self::NoSession { .. } => "no_session",
            Self::InvalidInput(_) => "invalid_request",
            Self::Capacity(_) => "capacity_reached",
            Self::Crypto(_) => "crypto_error",
        }
    }
}
