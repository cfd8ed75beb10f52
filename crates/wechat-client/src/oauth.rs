//! The OAuth code exchange of official accounts, mobile apps and websites, and `sns/userinfo`.

use serde::Deserialize;

use crate::client::{Call, non_empty, required, unexpected};
use crate::endpoint::Endpoint;
use crate::{AppSecret, Error, RefreshToken, UserAccessToken, WeChatClient};

/// The answer of a successful OAuth code exchange (`sns/oauth2/access_token`).
///
/// Its `Debug` output shows the openid, scope and unionid but not the tokens.
#[derive(Clone, Debug)]
pub struct OAuthAccessToken {
    /// The user-level token for [`WeChatClient::sns_userinfo`] (not the app's global token).
    pub access_token: UserAccessToken,
    /// Seconds the user access token stays valid (7200 today).
    pub expires_in: u64,
    /// Renews the user access token.
    pub refresh_token: RefreshToken,
    /// The user's id in this app.
    pub openid: String,
    /// The scopes the user granted, comma-separated as WeChat sends them (e.g.
    /// `snsapi_userinfo`).
    pub scope: String,
    /// The user's id across the apps of one Open Platform account, when WeChat returned one
    /// (only for `snsapi_userinfo` and `snsapi_login` grants of a bound app).
    /// An empty string from WeChat is reported as `None`.
    pub unionid: Option<String>,
    /// WeChat's `is_snapshotuser: 1`: a virtual user of an official account's page opened in
    /// snapshot mode ("快照页", e.g. from a Moments share), who has not really authorized.
    /// Its openid is not the person's; do not create, link or merge a user for it, and ask the
    /// visitor to tap "使用完整服务" (use the full service) to log in for real.
    /// `false` when WeChat sent `0` or omitted the field.
    pub is_snapshot_user: bool,
}

#[derive(Deserialize)]
struct RawOAuthAccessToken {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
    #[serde(default)]
    is_snapshotuser: Option<i64>,
}

/// A user's profile from `sns/userinfo`.
///
/// Since 2021 WeChat anonymises most of it (nickname `微信用户`, a grey avatar, empty region,
/// `sex` 0); rely only on `openid` and `unionid`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SnsUserInfo {
    /// The user's id in this app.
    pub openid: String,
    /// The user's id across the apps of one Open Platform account, when the app is bound.
    /// An empty string from WeChat is reported as `None`.
    #[serde(default)]
    pub unionid: Option<String>,
    /// The nickname.
    #[serde(default)]
    pub nickname: Option<String>,
    /// 1 male, 2 female, 0 unknown (always 0 nowadays).
    #[serde(default)]
    pub sex: Option<i64>,
    /// The province (empty nowadays).
    #[serde(default)]
    pub province: Option<String>,
    /// The city (empty nowadays).
    #[serde(default)]
    pub city: Option<String>,
    /// The country (empty nowadays).
    #[serde(default)]
    pub country: Option<String>,
    /// The avatar's URL.
    #[serde(default)]
    pub headimgurl: Option<String>,
    /// Privileges, e.g. `chinaunicom` for WoCard users.
    #[serde(default)]
    pub privilege: Vec<String>,
}

impl WeChatClient {
    /// Exchanges the code of an official account's web OAuth, of a mobile app's WeChat login or
    /// of a website's QR-code login for the user's tokens, openid and (maybe) unionid:
    /// `GET {api_base}/sns/oauth2/access_token?appid=…&secret=…&code=…&grant_type=authorization_code`.
    ///
    /// A code works once, so only connection failures before anything was sent are retried;
    /// errcode -1 is returned at once as [`Error::SystemBusy`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCode`] (40029), [`Error::CodeUsed`] (40163),
    /// [`Error::InvalidCredential`] (40001, 40013, 40125), [`Error::RateLimited`] (45011),
    /// [`Error::SystemBusy`] (-1), [`Error::Api`] for other errcodes,
    /// [`Error::UnexpectedAnswer`] without an access_token, refresh_token, expires_in or openid,
    /// and the transport errors of every call.
    pub async fn oauth2_access_token(
        &self,
        appid: &str,
        secret: &AppSecret,
        code: &str,
    ) -> Result<OAuthAccessToken, Error> {
        let raw: RawOAuthAccessToken = self
            .execute(Call {
                endpoint: Endpoint::OAuthAccessToken,
                query: vec![
                    ("appid", appid),
                    ("secret", secret.expose_secret()),
                    ("code", code),
                    ("grant_type", "authorization_code"),
                ],
                body: None,
                secrets: vec![secret.expose_secret(), code],
                appid: Some(appid),
            })
            .await?;
        Ok(OAuthAccessToken {
            access_token: UserAccessToken::new(required(raw.access_token, "an access_token")?),
            expires_in: raw
                .expires_in
                .ok_or_else(|| unexpected("errcode 0 without expires_in"))?,
            refresh_token: RefreshToken::new(required(raw.refresh_token, "a refresh_token")?),
            openid: required(raw.openid, "an openid")?,
            scope: raw.scope.unwrap_or_default(),
            unionid: non_empty(raw.unionid),
            is_snapshot_user: raw.is_snapshotuser == Some(1),
        })
    }

    /// Reads the profile of the user who granted a `snsapi_userinfo` (or `snsapi_login`) OAuth
    /// code: `GET {api_base}/sns/userinfo?access_token=…&openid=…&lang=zh_CN`.
    ///
    /// Call it when the code exchange returned no unionid but the scope allows the profile: its
    /// `unionid` appears whenever the app is bound to an Open Platform account.
    /// The call changes nothing, so errcode -1 and connection failures are retried.
    ///
    /// # Errors
    ///
    /// [`Error::ScopeUnauthorized`] (48001) for a `snsapi_base` grant,
    /// [`Error::AccessTokenInvalid`] (40001, 40014, 42001) for an invalid or expired user token,
    /// [`Error::Api`] for other errcodes (e.g. 40003 invalid openid),
    /// [`Error::UnexpectedAnswer`] when the answer has no openid or another user's,
    /// and the transport errors of every call.
    pub async fn sns_userinfo(
        &self,
        access_token: &UserAccessToken,
        openid: &str,
    ) -> Result<SnsUserInfo, Error> {
        let mut info: SnsUserInfo = self
            .execute(Call {
                endpoint: Endpoint::SnsUserInfo,
                query: vec![
                    ("access_token", access_token.expose_secret()),
                    ("openid", openid),
                    ("lang", "zh_CN"),
                ],
                body: None,
                secrets: vec![access_token.expose_secret()],
                appid: None,
            })
            .await?;
        if info.openid.is_empty() {
            return Err(unexpected("errcode 0 without an openid"));
        }
        if info.openid != openid {
            return Err(unexpected("the profile of another openid"));
        }
        info.unionid = non_empty(info.unionid);
        Ok(info)
    }
}
