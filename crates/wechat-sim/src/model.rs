//! The simulator's public data types: what the control API takes and gives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The path of code2Session, also the key of its call counter.
pub const CODE2SESSION_PATH: &str = "/sns/jscode2session";
/// The path of the OAuth code exchange (official accounts, mobile apps, websites).
pub const OAUTH_ACCESS_TOKEN_PATH: &str = "/sns/oauth2/access_token";
/// The path of the OAuth user profile.
pub const SNS_USERINFO_PATH: &str = "/sns/userinfo";
/// The path of getStableAccessToken.
pub const STABLE_TOKEN_PATH: &str = "/cgi-bin/stable_token";
/// The path of the classic getAccessToken, which replaces the app's token on every call.
pub const GET_ACCESS_TOKEN_PATH: &str = "/cgi-bin/token";
/// The path of an official account's follower record (`subscribe`, `unionid`).
pub const CGI_USER_INFO_PATH: &str = "/cgi-bin/user/info";
/// The path of the phone number exchange.
pub const PHONE_NUMBER_PATH: &str = "/wxa/business/getuserphonenumber";
/// The path of checkSessionKey.
pub const CHECK_SESSION_PATH: &str = "/wxa/checksession";

/// How long a code from [`Sim::login`](crate::Sim::login),
/// [`Sim::oauth_authorize`](crate::Sim::oauth_authorize) or
/// [`Sim::phone_code`](crate::Sim::phone_code) can be exchanged: five minutes, as on WeChat.
pub const CODE_TTL_SECS: u64 = 300;

/// The lifetime of an access_token (the app's, from stable_token, and a user's, from the OAuth
/// exchange): 7200 s on the simulator clock.
pub const ACCESS_TOKEN_TTL_SECS: u64 = 7200;

/// stable_token's handover: a token is renewed when fewer than this many seconds remain, and
/// the previous token keeps working until its own expiry, at most this long.
pub const ACCESS_TOKEN_OVERLAP_SECS: u64 = 300;

/// What kind of app an appid belongs to; it decides which login it can do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    /// A mini program: `wx.login` and code2Session, phone numbers, checkSessionKey.
    #[default]
    MiniProgram,
    /// An official account: web OAuth with `snsapi_base` or `snsapi_userinfo`.
    OfficialAccount,
    /// A mobile app on the Open Platform: OpenSDK login with `snsapi_userinfo`.
    MobileApp,
    /// A website on the Open Platform: QR-code login with `snsapi_login`.
    Website,
}

impl AppKind {
    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MiniProgram => "mini_program",
            Self::OfficialAccount => "official_account",
            Self::MobileApp => "mobile_app",
            Self::Website => "website",
        }
    }

    /// Whether a user of this kind of app can grant an OAuth code with this scope.
    pub fn allows_scope(self, scope: OAuthScope) -> bool {
        match self {
            Self::MiniProgram => false,
            Self::OfficialAccount => {
                matches!(scope, OAuthScope::SnsapiBase | OAuthScope::SnsapiUserinfo)
            }
            Self::MobileApp => scope == OAuthScope::SnsapiUserinfo,
            Self::Website => scope == OAuthScope::SnsapiLogin,
        }
    }
}

impl std::str::FromStr for AppKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mini_program" | "mini-program" => Ok(Self::MiniProgram),
            "official_account" | "official-account" => Ok(Self::OfficialAccount),
            "mobile_app" | "mobile-app" => Ok(Self::MobileApp),
            "website" => Ok(Self::Website),
            other => Err(format!(
                "unknown app kind {other:?} (expected mini_program, official_account, \
                 mobile_app or website)"
            )),
        }
    }
}

/// The scope of an OAuth grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OAuthScope {
    /// `snsapi_base`: silent, openid only (official accounts).
    #[serde(rename = "snsapi_base")]
    SnsapiBase,
    /// `snsapi_userinfo`: with consent; the profile and the unionid (official accounts, mobile
    /// apps).
    #[serde(rename = "snsapi_userinfo")]
    SnsapiUserinfo,
    /// `snsapi_login`: a website's QR-code login; the profile and the unionid.
    #[serde(rename = "snsapi_login")]
    SnsapiLogin,
}

impl OAuthScope {
    /// The scope as WeChat writes it, e.g. `snsapi_userinfo`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SnsapiBase => "snsapi_base",
            Self::SnsapiUserinfo => "snsapi_userinfo",
            Self::SnsapiLogin => "snsapi_login",
        }
    }

    /// Whether the grant allows `sns/userinfo` and returns the unionid.
    pub fn allows_profile(self) -> bool {
        self != Self::SnsapiBase
    }
}

impl std::str::FromStr for OAuthScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "snsapi_base" => Ok(Self::SnsapiBase),
            "snsapi_userinfo" => Ok(Self::SnsapiUserinfo),
            "snsapi_login" => Ok(Self::SnsapiLogin),
            other => Err(format!(
                "unknown scope {other:?} (expected snsapi_base, snsapi_userinfo or snsapi_login)"
            )),
        }
    }
}

/// When code2Session, the OAuth exchange and `sns/userinfo` return a user's unionid: whether
/// the app is bound to an Open Platform account.
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

/// A registered app.
///
/// Build one with [`AppRegistration::new`] and the `with_` methods, and register it with
/// [`Sim::register_app_with`](crate::Sim::register_app_with) or
/// [`SimBuilder::app_with`](crate::SimBuilder::app_with).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRegistration {
    /// The appid, e.g. `wx4f4bc4dec97d474b`.
    pub appid: String,
    /// The AppSecret code2Session, the OAuth exchange and stable_token must be called with.
    pub secret: String,
    /// When the unionid is returned (`Always`: the app is bound to an Open Platform account).
    #[serde(default)]
    pub unionid_policy: UnionidPolicy,
    /// What kind of app it is; default a mini program.
    #[serde(default)]
    pub kind: AppKind,
    /// Whether the OAuth exchange returns the unionid (for `snsapi_userinfo` and
    /// `snsapi_login` grants of a bound app); default true. False plays an exchange without
    /// unionid whose `sns/userinfo` still has it.
    #[serde(default = "yes")]
    pub unionid_in_exchange: bool,
}

impl AppRegistration {
    /// A mini program with this appid, secret and unionid policy.
    pub fn new(
        appid: impl Into<String>,
        secret: impl Into<String>,
        unionid_policy: UnionidPolicy,
    ) -> Self {
        Self {
            appid: appid.into(),
            secret: secret.into(),
            unionid_policy,
            kind: AppKind::MiniProgram,
            unionid_in_exchange: true,
        }
    }

    /// Sets the kind of app.
    pub fn with_kind(mut self, kind: AppKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets whether the OAuth exchange returns the unionid.
    pub fn with_unionid_in_exchange(mut self, unionid_in_exchange: bool) -> Self {
        self.unionid_in_exchange = unionid_in_exchange;
        self
    }
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

/// What a user's consent produced on an official account's authorize page, in a mobile app's
/// OpenSDK or on a website's QR-code page: a fresh OAuth code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthCode {
    /// The single-use code, valid for [`CODE_TTL_SECS`].
    pub code: String,
    /// The user's openid in this app (generated when the request named none).
    pub openid: String,
    /// The scope granted.
    pub scope: OAuthScope,
    /// Seconds the code stays valid.
    pub expires_in: u64,
}

/// What a mini program's getPhoneNumber button produced: a fresh phone code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneCode {
    /// The single-use code, valid for [`CODE_TTL_SECS`].
    pub code: String,
    /// Seconds the code stays valid.
    pub expires_in: u64,
}

/// The state of an app's stable access_token, for assertions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenStatus {
    /// The appid.
    pub appid: String,
    /// The current token, if one is valid.
    pub access_token: Option<String>,
    /// Seconds the current token stays valid.
    pub expires_in: Option<u64>,
    /// The previous token while it still works (within its last five minutes after a renewal).
    pub previous_access_token: Option<String>,
    /// Forced refreshes performed today (Beijing time), at most 20.
    pub force_refreshes_today: u32,
    /// stable_token calls with `force_refresh: true`, whatever their outcome, since the last
    /// [`reset_calls`](crate::Sim::reset_calls).
    pub force_refresh_calls: u64,
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

/// A failure the simulator plays instead of (or before) the normal answer of a WeChat endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// errcode -1 `system error`.
    SystemBusy {
        /// Whether the code still counts as used afterwards, as when WeChat consumed it before
        /// failing. A retry with the same code then meets 40163 (40029 for a phone code).
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

/// Which calls of the WeChat endpoints a fault applies to; every field given must match.
///
/// A target naming a code is tried before one naming only an appid, which is tried before one
/// naming neither (every call).
/// The appid of a call is the `appid` it sends (code2Session, the OAuth exchange,
/// stable_token, `cgi-bin/token`) or the app its access_token belongs to (`sns/userinfo`,
/// `cgi-bin/user/info`, phone number, checksession; none for an unknown token).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultTarget {
    /// Only calls with this appid.
    #[serde(default)]
    pub appid: Option<String>,
    /// Only calls with this code (js_code, OAuth code or phone code).
    #[serde(default)]
    pub code: Option<String>,
    /// Only calls of this endpoint path, e.g. [`STABLE_TOKEN_PATH`]; every endpoint when
    /// `None`.
    #[serde(default)]
    pub path: Option<String>,
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
            ..Self::default()
        }
    }

    /// Calls with one code.
    pub fn code(code: impl Into<String>) -> Self {
        Self {
            code: Some(code.into()),
            ..Self::default()
        }
    }

    /// Narrows the target to one endpoint path, e.g. [`CODE2SESSION_PATH`].
    pub fn at_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }
}

/// A list of faults for a target: played one per call in order and then gone, or, when
/// `sticky`, played in a cycle until cleared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Which calls it applies to (flattened in JSON: `appid`, `code`, `path`).
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
    /// Calls per appid: the `appid` parameter as sent (even an unregistered one; empty when
    /// missing), or for calls authenticated by an access_token the token's app (empty for an
    /// unknown token).
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
    /// The app's kind does not allow the operation, e.g. `wx.login` for an official account.
    #[error("app {appid} ({kind}) cannot {operation}", kind = .kind.as_str())]
    WrongAppKind {
        /// The appid.
        appid: String,
        /// Its kind.
        kind: AppKind,
        /// What was asked, e.g. `grant snsapi_login`.
        operation: String,
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
            Self::WrongAppKind { .. } => "wrong_app_kind",
            Self::InvalidInput(_) => "invalid_request",
            Self::Capacity(_) => "capacity_reached",
            Self::Crypto(_) => "crypto_error",
        }
    }
}
