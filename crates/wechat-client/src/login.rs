//! Mini program login: code2Session, and checkSessionKey for the session key it gives.

use serde::Deserialize;

use crate::client::{Call, non_empty, required};
use crate::endpoint::{Endpoint, INVALID_SIGNATURE};
use crate::{AccessToken, AppSecret, Error, SessionKey, WeChatClient};

/// The answer of a successful code2Session call.
///
/// Its `Debug` output shows the openid and unionid but not the session key.
#[derive(Clone, Debug)]
pub struct Code2Session {
    /// The user's id in this mini program.
    pub openid: String,
    /// The session key of this login; it decrypts the user's `encryptedData`.
    pub session_key: SessionKey,
    /// The user's id across the apps bound to the same WeChat Open Platform account, when
    /// WeChat returned one. An empty string from WeChat is reported as `None`.
    pub unionid: Option<String>,
}

/// code2Session's answer; every field is optional because WeChat omits what does not apply.
#[derive(Deserialize)]
struct RawCode2Session {
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    session_key: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
}

impl WeChatClient {
    /// Exchanges a `wx.login` code for the user's openid, session key and (maybe) unionid:
    /// `GET {api_base}/sns/jscode2session?appid=…&secret=…&js_code=…&grant_type=authorization_code`.
    ///
    /// The whole call, retries and backoff included, takes at most the configured timeout.
    /// Errcode -1 and connection failures (before any byte was sent) are retried with
    /// exponential backoff, at most `max_retries` times and never past the time budget; no other
    /// failure is retried, because WeChat consumes a code on first use.
    /// The answer is parsed as JSON whatever its `Content-Type` (WeChat sends `text/plain`).
    ///
    /// # Errors
    ///
    /// See the [crate documentation](crate#errors) for the mapping of errcodes to variants.
    /// A retry that meets 40029 or 40163 returns [`Error::CodeConsumedByRetry`].
    pub async fn code2session(
        &self,
        appid: &str,
        secret: &AppSecret,
        js_code: &str,
    ) -> Result<Code2Session, Error> {
        let raw: RawCode2Session = self
            .execute(Call {
                endpoint: Endpoint::Code2Session,
                query: vec![
                    ("appid", appid),
                    ("secret", secret.expose_secret()),
                    ("js_code", js_code),
                    ("grant_type", "authorization_code"),
                ],
                body: None,
                secrets: vec![secret.expose_secret(), js_code],
                appid: Some(appid),
            })
            .await?;
        Ok(Code2Session {
            openid: required(raw.openid, "an openid")?,
            session_key: SessionKey::new(required(raw.session_key, "a session_key")?),
            unionid: non_empty(raw.unionid),
        })
    }

    /// Asks WeChat whether a user's stored session key is still the current one
    /// (checkSessionKey):
    /// `GET {api_base}/wxa/checksession?access_token=…&openid=…&signature=…&sig_method=hmac_sha256`,
    /// the signature being HMAC-SHA256 keyed by the session key's base64 text over the empty
    /// string, in lowercase hex.
    ///
    /// Returns `Ok(true)` for errcode 0 and `Ok(false)` for errcode 87009 ("invalid signature":
    /// the user logged in again since, or the key expired).
    /// The call changes nothing, so errcode -1 and connection failures are retried.
    ///
    /// # Errors
    ///
    /// [`Error::AccessTokenInvalid`] for 40001/40014/42001 (get the current token and retry
    /// once), [`Error::Api`] for other errcodes (e.g. 40003 invalid openid, 87008 invalid
    /// sig_method), and the transport errors of every call.
    pub async fn check_session_key(
        &self,
        access_token: &AccessToken,
        openid: &str,
        session_key: &SessionKey,
    ) -> Result<bool, Error> {
        let signature = wxlink_crypto::check_session_signature(session_key.expose_secret());
        let value: serde_json::Value = self
            .execute(Call {
                endpoint: Endpoint::CheckSession,
                query: vec![
                    ("access_token", access_token.expose_secret()),
                    ("openid", openid),
                    ("signature", &signature),
                    ("sig_method", "hmac_sha256"),
                ],
                body: None,
                secrets: vec![
                    access_token.expose_secret(),
                    &signature,
                    session_key.expose_secret(),
                ],
                appid: None,
            })
            .await?;
        let errcode = value
            .get("errcode")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        Ok(errcode != INVALID_SIGNATURE)
    }
}
