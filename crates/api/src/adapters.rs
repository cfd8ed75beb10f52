//! Adapters from the outside crates to the domain's ports.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use rand::RngCore;
use wxlink_domain::{
    AppId, Clock, EncryptedUserData, IdSource, JsCode, OpenId, OpenedUserData, SessionKey,
    SessionToken, UnionId, UnixTime, UserDataError, UserDataOpener, UserId, WeChatError,
    WeChatSession, WeChatSessions,
};
use wxlink_wechat_client::{AppSecret, Error as ClientError, WeChatClient};

/// code2Session through [`WeChatClient`], with each app's secret.
#[derive(Debug, Clone)]
pub struct WeChatAdapter {
    client: WeChatClient,
    secrets: Arc<HashMap<AppId, AppSecret>>,
}

impl WeChatAdapter {
    /// An adapter for the configured apps.
    pub fn new(client: WeChatClient, secrets: HashMap<AppId, AppSecret>) -> Self {
        Self {
            client,
            secrets: Arc::new(secrets),
        }
    }
}

impl WeChatSessions for WeChatAdapter {
    async fn code2session(
        &self,
        appid: &AppId,
        code: &JsCode,
    ) -> Result<WeChatSession, WeChatError> {
        let secret = self.secrets.get(appid).ok_or(WeChatError::UnknownApp)?;
        let answer = self
            .client
            .code2session(appid.as_str(), secret, code.as_str())
            .await
            .map_err(|e| map_client_error(appid, e))?;
        let unexpected = |what: &str, e: wxlink_domain::IdError| {
            WeChatError::Upstream(format!("code2session returned a malformed {what}: {e}"))
        };
        Ok(WeChatSession {
            openid: OpenId::parse(answer.openid).map_err(|e| unexpected("openid", e))?,
            session_key: SessionKey::new(answer.session_key.expose_secret()),
            unionid: answer
                .unionid
                .map(UnionId::parse)
                .transpose()
                .map_err(|e| unexpected("unionid", e))?,
        })
    }
}

fn map_client_error(appid: &AppId, error: ClientError) -> WeChatError {
    match error {
        ClientError::InvalidCode | ClientError::CodeUsed => WeChatError::InvalidCode,
        ClientError::HighRiskUser => WeChatError::UserBlocked,
        ClientError::RateLimited => WeChatError::RateLimited,
        ClientError::Timeout => WeChatError::Timeout,
        ClientError::InvalidCredential { errcode, .. } => {
            tracing::error!(%appid, errcode, "configuration error: WeChat rejected this app's appid or secret");
            WeChatError::Upstream(error.to_string())
        }
        other => {
            let chain = error_chain(&other);
            tracing::warn!(%appid, error = %chain, errcode = ?other.errcode(), "code2session failed");
            WeChatError::Upstream(chain)
        }
    }
}

/// An error with its sources, for logs: the client keeps details such as "connection refused"
/// in `source()`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Decrypts user data with wxlink-crypto.
#[derive(Debug, Clone, Copy, Default)]
pub struct CryptoOpener;

impl UserDataOpener for CryptoOpener {
    fn open(
        &self,
        key: &SessionKey,
        data: &EncryptedUserData,
    ) -> Result<OpenedUserData, UserDataError> {
        let key = key.expose_secret();
        // Decrypt first, as the contract orders it: a stale session_key then reads as
        // decrypt_failed (the client's cue to send a fresh code), not as a bad signature.
        let user = wxlink_crypto::decrypt_user_data(key, &data.iv, &data.encrypted_data)
            .map_err(|e| UserDataError::DecryptFailed(e.to_string()))?;
        if let Some((raw_data, signature)) = &data.signed_raw_data
            && !wxlink_crypto::verify_raw_data_signature(raw_data, key, signature)
        {
            return Err(UserDataError::SignatureMismatch);
        }
        let malformed =
            |what: &str| UserDataError::DecryptFailed(format!("decrypted {what} is malformed"));
        Ok(OpenedUserData {
            openid: OpenId::parse(user.open_id).map_err(|_| malformed("openId"))?,
            unionid: user
                .union_id
                .filter(|u| !u.is_empty())
                .map(UnionId::parse)
                .transpose()
                .map_err(|_| malformed("unionId"))?,
            watermark_appid: user.watermark.appid,
            watermark_timestamp: user.watermark.timestamp,
        })
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// Tokens of 32 random bytes (base64url, 43 characters) and random user ids, from the OS RNG.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn new_token(&self) -> SessionToken {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SessionToken::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    fn new_user_id(&self) -> UserId {
        UserId::parse(uuid::Uuid::new_v4().simple().to_string())
            .unwrap_or_else(|_| unreachable!("a simple uuid is 32 hex digits"))
    }
}
