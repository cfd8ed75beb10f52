//! WeChat access tokens, one per app for the whole cluster.
//!
//! Every node reads the app's token from the database. When it is missing or close to expiry,
//! the node that wins the database lease fetches a new one with `cgi-bin/stable_token` (normal
//! mode, never `force_refresh`) and stores it; the others keep using the current token, or wait
//! for the new one. When WeChat rejects a token (40001, 40014, 42001), the caller marks it
//! invalid if it is still the current one (compare-and-swap), fetches the current token once and
//! retries once. This is the race that per-node token refreshes lose: they invalidate each
//! other's tokens.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use wxlink_domain::{AppId, Clock, DomainError, StoreError, WeChatError};
use wxlink_persistence::{SharedAccessToken, Store};
use wxlink_wechat_client::{AccessToken, AppSecret, Error as ClientError, WeChatClient};

/// Refresh this long before expiry: stable_token hands out the next token in the last five
/// minutes of the current one, while both work.
const REFRESH_AHEAD_SECS: i64 = 300;
/// How long a node may hold the refresh lease; longer than one upstream call.
const LEASE_SECS: i64 = 15;
/// How often a node waiting for another node's refresh looks again.
const WAIT_STEP: Duration = Duration::from_millis(25);

/// The cluster-wide token cache.
#[derive(Debug, Clone)]
pub struct AccessTokens {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: WeChatClient,
    store: Store,
    secrets: HashMap<AppId, AppSecret>,
    node: String,
    /// The last token this node saw per app, to spare a database read per call.
    local: Mutex<HashMap<AppId, SharedAccessToken>>,
    /// One refresh at a time per app within this node; the lease does it across nodes.
    refreshing: Mutex<HashMap<AppId, Arc<tokio::sync::Mutex<()>>>>,
    wait_limit: Duration,
    /// The time tokens expire by (WeChat's `expires_in` counts from when it answered).
    clock: Arc<dyn Clock>,
}

impl AccessTokens {
    /// A cache for the apps in `secrets`; `node` is this process's id among the nodes.
    pub fn new(
        client: WeChatClient,
        store: Store,
        secrets: HashMap<AppId, AppSecret>,
        node: String,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let wait_limit = client.config().timeout() * 2;
        Self {
            inner: Arc::new(Inner {
                client,
                store,
                secrets,
                node,
                local: Mutex::new(HashMap::new()),
                refreshing: Mutex::new(HashMap::new()),
                wait_limit,
                clock,
            }),
        }
    }

    /// Run `call` with the app's current token; if WeChat says the token is invalid, refresh
    /// once and retry once. A failure of the token's store is a [`DomainError::Store`], so a
    /// database outage is answered as one, not as WeChat's failure.
    pub async fn with_token<T, F, Fut>(&self, appid: &AppId, call: F) -> Result<T, DomainError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let token = self.current(appid, None).await?;
        match call(AccessToken::new(token.expose_secret())).await {
            Err(e) if e.is_access_token_invalid() => {
                tracing::info!(%appid, errcode = ?e.errcode(), "WeChat rejected the access token; refreshing once");
                self.forget(appid, &token).await;
                let token = self.current(appid, Some(&token)).await?;
                call(AccessToken::new(token.expose_secret()))
                    .await
                    .map_err(|e| upstream(appid, e).into())
            }
            other => other.map_err(|e| upstream(appid, e).into()),
        }
    }

    /// The app's token: the local copy, the shared one, or a fresh one if this node wins the
    /// lease; otherwise wait (bounded) for the node that holds it. Never the `rejected` token:
    /// a concurrent caller may have read it back from the database just before it was
    /// invalidated.
    async fn current(
        &self,
        appid: &AppId,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString, DomainError> {
        let inner = &self.inner;
        let not_rejected = |t: &SharedAccessToken| {
            rejected.is_none_or(|r| r.expose_secret() != t.token.expose_secret())
        };
        let fresh_enough = |t: &SharedAccessToken, now: i64| {
            t.expires_at - now > REFRESH_AHEAD_SECS && not_rejected(t)
        };
        if let Some(t) = self
            .local(appid)
            .filter(|t| fresh_enough(t, inner.clock.now()))
        {
            return Ok(t.token);
        }
        // The callers of this node queue here; the first refreshes, the others then find its
        // token in the local copy.
        let gate = self.gate(appid);
        let _turn = gate.lock().await;
        if let Some(t) = self
            .local(appid)
            .filter(|t| fresh_enough(t, inner.clock.now()))
        {
            return Ok(t.token);
        }
        // A holder name per attempt: a node never takes over a lease it lost track of.
        let holder = format!("{}/{}", inner.node, uuid::Uuid::new_v4().simple());
        let deadline = tokio::time::Instant::now() + inner.wait_limit;
        loop {
            let now = inner.clock.now();
            let shared = inner
                .store
                .shared_access_token(appid)
                .await
                .map_err(store_error)?;
            if let Some(t) = shared.as_ref().filter(|t| fresh_enough(t, now)) {
                self.remember(appid, t.clone());
                return Ok(t.token.clone());
            }
            if inner
                .store
                .lease_access_token_refresh(
                    appid,
                    &holder,
                    now,
                    LEASE_SECS,
                    now + REFRESH_AHEAD_SECS + 1,
                )
                .await
                .map_err(store_error)?
            {
                return self.refresh(appid, &holder).await;
            }
            // Another node is refreshing: its token, while it still works, is good enough.
            if let Some(t) = shared.filter(|t| t.expires_at > now && not_rejected(t)) {
                return Ok(t.token);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WeChatError::Upstream(
                    "timed out waiting for another node to refresh the access token".into(),
                )
                .into());
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
    }

    async fn refresh(&self, appid: &AppId, holder: &str) -> Result<SecretString, DomainError> {
        let inner = &self.inner;
        let secret = inner.secrets.get(appid).ok_or(WeChatError::UnknownApp)?;
        let fetched = crate::wechat::observed(
            "stable_token",
            inner.client.stable_token(appid.as_str(), secret, false),
        )
        .await
        .map_err(|e| upstream(appid, e))?;
        let token = SecretString::from(fetched.access_token.expose_secret().to_owned());
        let now = inner.clock.now();
        let expires_at = now.saturating_add(i64::try_from(fetched.expires_in).unwrap_or(i64::MAX));
        let stored = inner
            .store
            .store_access_token(appid, holder, &token, expires_at, now)
            .await
            .map_err(store_error)?;
        if !stored {
            // The lease lapsed while WeChat answered: the cluster's token is whatever the
            // node that took the lease over stored; ours still works for this call.
            let current = inner
                .store
                .shared_access_token(appid)
                .await
                .map_err(store_error)?;
            return Ok(match current.filter(|t| t.expires_at > now) {
                Some(current) => {
                    self.remember(appid, current.clone());
                    current.token
                }
                None => token,
            });
        }
        tracing::info!(%appid, expires_in = fetched.expires_in, "refreshed the shared access token");
        self.remember(
            appid,
            SharedAccessToken {
                token: token.clone(),
                expires_at,
            },
        );
        Ok(token)
    }

    async fn forget(&self, appid: &AppId, token: &SecretString) {
        if let Ok(mut local) = self.inner.local.lock() {
            local.remove(appid);
        }
        if let Err(error) = self.inner.store.invalidate_access_token(appid, token).await {
            tracing::warn!(%appid, %error, "could not mark the access token invalid");
        }
    }

    fn gate(&self, appid: &AppId) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self
            .inner
            .refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(gates.entry(appid.clone()).or_default())
    }

    fn local(&self, appid: &AppId) -> Option<SharedAccessToken> {
        self.inner.local.lock().ok()?.get(appid).cloned()
    }

    fn remember(&self, appid: &AppId, token: SharedAccessToken) {
        if let Ok(mut local) = self.inner.local.lock() {
            local.insert(appid.clone(), token);
        }
    }
}

/// The store's error as it is: `Unavailable` becomes 503 `database_unavailable`, a key
/// problem an internal error logged as one.
fn store_error(error: StoreError) -> DomainError {
    DomainError::Store(error)
}

/// Map a client error from a call made with an access token.
pub(crate) fn upstream(appid: &AppId, error: ClientError) -> WeChatError {
    crate::wechat::map_client_error(appid, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxlink_persistence::StoreConfig;
    use wxlink_wechat_client::ClientConfig;

    /// A database outage while the token is read is the database's failure: the client gets
    /// 503 `database_unavailable`, not 502 `upstream_error`.
    #[tokio::test]
    async fn a_store_outage_while_fetching_the_token_is_database_unavailable() {
        let port = wxlink_tests::process::free_port().unwrap_or_else(|e| panic!("{e}"));
        let keyring = wxlink_crypto::Keyring::new(wxlink_crypto::DataKey::generate());
        let store = Store::connect(
            StoreConfig::new(
                wxlink_persistence::DatabaseTarget::parse(&format!(
                    "postgres://wxlink@127.0.0.1:{port}/wxlink"
                ))
                .unwrap_or_else(|e| panic!("{e}")),
                keyring,
            )
            .migrate_on_start(false)
            .connect_timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let client = WeChatClient::new(
            ClientConfig::builder()
                .api_base(format!("http://127.0.0.1:{port}"))
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let appid = AppId::parse("wx0123456789abcdef".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        let secrets = HashMap::from([(appid.clone(), AppSecret::new("secret"))]);
        let tokens = AccessTokens::new(
            client,
            store,
            secrets,
            "test-node".into(),
            Arc::new(crate::adapters::SystemClock),
        );
        let error = tokens
            .with_token(&appid, |_| async { Ok::<(), ClientError>(()) })
            .await
            .expect_err("no token without a database");
        assert!(
            matches!(error, DomainError::Store(StoreError::Unavailable(_))),
            "{error:?}"
        );
        let answer = crate::ApiError::from(error);
        assert_eq!(
            (answer.status(), answer.code.as_str()),
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable"
            )
        );
    }
}
