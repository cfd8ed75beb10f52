//! What the simulated client side produces: codes, session keys, user data; and what the
//! control API reports of an app's access token.

use serde::{Deserialize, Serialize};

use super::{OAuthScope, yes};

/// What `wx.login` produced: a fresh code, and the user's new session key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// The single-use code, valid for [`CODE_TTL_SECS`](super::CODE_TTL_SECS).
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
    /// The single-use code, valid for [`CODE_TTL_SECS`](super::CODE_TTL_SECS).
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
    /// The single-use code, valid for [`CODE_TTL_SECS`](super::CODE_TTL_SECS).
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
