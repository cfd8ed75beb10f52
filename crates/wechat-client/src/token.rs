//! The app's global access_token, from `cgi-bin/stable_token`.

use serde::Deserialize;
use serde_json::json;

use crate::client::{Call, required, unexpected};
use crate::endpoint::Endpoint;
use crate::{AccessToken, AppSecret, Error, WeChatClient};

/// The answer of a successful stable_token call.
///
/// Its `Debug` output does not show the token.
#[derive(Clone, Debug)]
pub struct StableToken {
    /// The app's global interface credential.
    pub access_token: AccessToken,
    /// Seconds the token stays valid, at most 7200. In normal mode WeChat hands out a new
    /// token five minutes before the old one expires, so this is at least 300.
    pub expires_in: u64,
}

#[derive(Deserialize)]
struct RawStableToken {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl WeChatClient {
    /// Gets the app's global access_token (getStableAccessToken):
    /// `POST {api_base}/cgi-bin/stable_token` with the JSON body
    /// `{"grant_type":"client_credential","appid","secret","force_refresh"}`.
    ///
    /// In normal mode (`force_refresh: false`) every caller gets the same token while it is
    /// valid, so several nodes can share it without a coordinator; the call is idempotent, and
    /// errcode -1 and connection failures are retried.
    /// `force_refresh: true` invalidates the current token for everyone (WeChat allows it 20
    /// times a day, 30 s apart, and meant for a leaked token); it is retried only after a
    /// connection that could not be made.
    /// Never force a refresh because a call met [`Error::AccessTokenInvalid`]: get the token in
    /// normal mode again instead.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCredential`] (40001 or 40125 wrong secret, 40013 unknown appid),
    /// [`Error::RateLimited`] (45011), [`Error::SystemBusy`] (-1), [`Error::Api`] for other
    /// errcodes (e.g. 45009 daily limit of forced refreshes, 40164 caller IP not allowed),
    /// [`Error::UnexpectedAnswer`] without a token or `expires_in`, and the transport errors of
    /// every call.
    pub async fn stable_token(
        &self,
        appid: &str,
        secret: &AppSecret,
        force_refresh: bool,
    ) -> Result<StableToken, Error> {
        let body = json!({
            "grant_type": "client_credential",
            "appid": appid,
            "secret": secret.expose_secret(),
            "force_refresh": force_refresh,
        });
        let raw: RawStableToken = self
            .execute(Call {
                endpoint: Endpoint::StableToken { force_refresh },
                query: Vec::new(),
                body: Some(body),
                secrets: vec![secret.expose_secret()],
                appid: Some(appid),
            })
            .await?;
        Ok(StableToken {
            access_token: AccessToken::new(required(raw.access_token, "an access_token")?),
            expires_in: raw
                .expires_in
                .ok_or_else(|| unexpected("errcode 0 without expires_in"))?,
        })
    }
}
