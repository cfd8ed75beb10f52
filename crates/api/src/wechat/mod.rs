//! The WeChat adapter: the domain's WeChat port over the WeChat client and the access tokens.

use std::collections::HashMap;
use std::sync::Arc;

use wxlink_domain::{
    AppId, AppKind, DomainError, JsCode, OpenId, PhoneNumber, SessionKey, UnionId, WeChatError,
    WeChatSession, WeChatSessions,
};

use crate::limits::RateLimits;
use access_tokens::AccessTokens;
use wxlink_wechat_client::{AppSecret, Error as ClientError, WeChatClient};

pub(crate) mod access_tokens;

/// One configured app, as the WeChat adapter needs it.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    /// The app secret.
    pub secret: AppSecret,
    /// How its login codes are exchanged.
    pub kind: AppKind,
}

/// WeChat's server API through [`WeChatClient`]: each app's login codes by its kind, and the
/// calls that need an access token through the cluster-wide access token cache.
#[derive(Debug, Clone)]
pub struct WeChatAdapter {
    client: WeChatClient,
    apps: Arc<HashMap<AppId, AppCredentials>>,
    tokens: AccessTokens,
    limits: Arc<RateLimits>,
}

impl WeChatAdapter {
    /// An adapter for the configured apps.
    /// Every call made for a client counts against the app's limit in `limits` first.
    pub fn new(
        client: WeChatClient,
        apps: HashMap<AppId, AppCredentials>,
        tokens: AccessTokens,
        limits: Arc<RateLimits>,
    ) -> Self {
        Self {
            client,
            apps: Arc::new(apps),
            tokens,
            limits,
        }
    }

    /// Count one call to WeChat against the app's limit, here where the calls are made so that
    /// no use case can forget it; a refused call is not made.
    async fn spend_quota(&self, appid: &AppId) -> Result<(), WeChatError> {
        self.limits
            .check_app(appid)
            .await
            .map_err(|wait| WeChatError::CallLimited {
                retry_after_secs: wait.0,
            })
    }

    /// Official accounts, mobile apps and websites: the OAuth code exchange, then
    /// `sns/userinfo` when the grant allows it and the exchange carried no unionid.
    async fn oauth_login(
        &self,
        appid: &AppId,
        app: &AppCredentials,
        code: &JsCode,
    ) -> Result<(String, Option<String>), WeChatError> {
        let exchange = observed(
            "oauth2_access_token",
            self.client
                .oauth2_access_token(appid.as_str(), &app.secret, code.as_str()),
        )
        .await
        .map_err(|e| map_client_error(appid, e))?;
        if exchange.is_snapshot_user {
            // The openid of a snapshot page's virtual user is not the person's: a user made
            // from it could never be linked or merged with the real one.
            tracing::info!(%appid, "refused the OAuth login of a snapshot page's virtual user");
            return Err(WeChatError::SnapshotUser);
        }
        let may_read_userinfo = exchange
            .scope
            .split(',')
            .any(|s| matches!(s.trim(), "snsapi_userinfo" | "snsapi_login"));
        let unionid = match exchange.unionid {
            Some(unionid) => Some(unionid),
            // A second call to WeChat, counted like the first; past the app's limit the login
            // goes on without it (the code is spent already), and the unionid can come later.
            None if may_read_userinfo && self.spend_quota(appid).await.is_err() => {
                tracing::info!(%appid, "over the app's WeChat call limit: logging in without sns/userinfo");
                None
            }
            None if may_read_userinfo => {
                match observed(
                    "sns_userinfo",
                    self.client
                        .sns_userinfo(&exchange.access_token, &exchange.openid),
                )
                .await
                {
                    Ok(info) => info.unionid,
                    // The user is logged in either way; the unionid can come later.
                    Err(error) => {
                        tracing::warn!(%appid, error = %error_chain(&error), "sns/userinfo failed; continuing without unionid");
                        None
                    }
                }
            }
            None => None,
        };
        Ok((exchange.openid, unionid))
    }
}

impl WeChatSessions for WeChatAdapter {
    async fn code2session(
        &self,
        appid: &AppId,
        code: &JsCode,
    ) -> Result<WeChatSession, WeChatError> {
        let app = self.apps.get(appid).ok_or(WeChatError::UnknownApp)?;
        self.spend_quota(appid).await?;
        // The domain's rule: only a mini program's login has a session_key (code2Session).
        let (openid, session_key, unionid) = if app.kind.has_session_key() {
            let answer = observed(
                "code2session",
                self.client
                    .code2session(appid.as_str(), &app.secret, code.as_str()),
            )
            .await
            .map_err(|e| map_client_error(appid, e))?;
            let key = SessionKey::new(answer.session_key.expose_secret());
            (answer.openid, Some(key), answer.unionid)
        } else {
            let (openid, unionid) = self.oauth_login(appid, app, code).await?;
            (openid, None, unionid)
        };
        let unexpected = |what: &str, e: wxlink_domain::IdError| {
            WeChatError::Upstream(format!("WeChat returned a malformed {what}: {e}"))
        };
        Ok(WeChatSession {
            openid: OpenId::parse(openid).map_err(|e| unexpected("openid", e))?,
            session_key,
            unionid: unionid
                .filter(|u| !u.is_empty())
                .map(UnionId::parse)
                .transpose()
                .map_err(|e| unexpected("unionid", e))?,
        })
    }

    async fn session_key_valid(
        &self,
        appid: &AppId,
        openid: &OpenId,
        key: &SessionKey,
    ) -> Result<bool, DomainError> {
        self.spend_quota(appid).await?;
        let key = wxlink_wechat_client::SessionKey::new(key.expose_secret());
        self.tokens
            .with_token(appid, |token| {
                let (client, key) = (&self.client, &key);
                async move {
                    observed(
                        "checksession",
                        client.check_session_key(&token, openid.as_str(), key),
                    )
                    .await
                }
            })
            .await
    }

    async fn phone_number(
        &self,
        appid: &AppId,
        openid: &OpenId,
        code: &JsCode,
    ) -> Result<PhoneNumber, DomainError> {
        self.spend_quota(appid).await?;
        let info = self
            .tokens
            .with_token(appid, |token| {
                let client = &self.client;
                async move {
                    observed(
                        "getuserphonenumber",
                        client.get_phone_number(&token, code.as_str(), Some(openid.as_str())),
                    )
                    .await
                }
            })
            .await?;
        if info.watermark.appid != appid.as_str() {
            return Err(WeChatError::Upstream(
                "the phone number's watermark names another app".into(),
            )
            .into());
        }
        Ok(PhoneNumber {
            phone_number: info.phone_number,
            pure_phone_number: info.pure_phone_number,
            country_code: info.country_code,
        })
    }
}

/// Await a call to WeChat and count it in the metrics.
pub(crate) async fn observed<T>(
    endpoint: &'static str,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    let result = call.await;
    crate::metrics::wechat_call(endpoint, &result);
    result
}

/// The domain's view of a client error; configuration errors are logged as such.
pub(crate) fn map_client_error(appid: &AppId, error: ClientError) -> WeChatError {
    match error {
        ClientError::InvalidCode | ClientError::CodeUsed => WeChatError::InvalidCode,
        ClientError::HighRiskUser => WeChatError::UserBlocked,
        ClientError::RateLimited => WeChatError::RateLimited,
        ClientError::Timeout => WeChatError::Timeout,
        ClientError::InvalidCredential { errcode, .. } => {
            tracing::error!(%appid, errcode, error = %error, "configuration error: WeChat rejected this app's appid or secret");
            WeChatError::Errcode(errcode)
        }
        other => {
            let chain = error_chain(&other);
            tracing::warn!(%appid, error = %chain, errcode = ?other.errcode(), "code2session failed");
            match other.errcode() {
                Some(errcode) => WeChatError::Errcode(errcode),
                None => WeChatError::Upstream(chain),
            }
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
