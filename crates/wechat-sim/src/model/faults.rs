//! Faults the simulator plays instead of (or before) the normal answers.

use serde::{Deserialize, Serialize};

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
    /// Only calls of this endpoint path, e.g. [`STABLE_TOKEN_PATH`](super::STABLE_TOKEN_PATH);
    /// every endpoint when `None`.
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

    /// Narrows the target to one endpoint path, e.g.
    /// [`CODE2SESSION_PATH`](super::CODE2SESSION_PATH).
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
