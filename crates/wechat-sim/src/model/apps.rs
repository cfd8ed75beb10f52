//! Registered apps: their kind, their unionid policy and OAuth scopes.

use serde::{Deserialize, Serialize};

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

/// serde's default of the flags that are on unless said otherwise.
pub(super) fn yes() -> bool {
    true
}
