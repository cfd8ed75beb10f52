//! An async client for WeChat's server API: the calls a service needs to log WeChat users in
//! from every kind of app and to link their identities by unionid.
//!
//! It is for any Rust service that logs WeChat users in:
//!
//! - mini programs: [`code2session`](WeChatClient::code2session) turns a `wx.login` code into
//!   the user's `openid`, `session_key` and (when WeChat gives one) `unionid`, and
//!   [`check_session_key`](WeChatClient::check_session_key) asks whether a stored session key
//!   is still current;
//! - official accounts, mobile apps and websites:
//!   [`oauth2_access_token`](WeChatClient::oauth2_access_token) exchanges an OAuth code, and
//!   [`sns_userinfo`](WeChatClient::sns_userinfo) reads the profile (with the unionid) when the
//!   scope allows;
//! - the app's global credential: [`stable_token`](WeChatClient::stable_token), the same token
//!   for every node of a service;
//! - phone numbers: [`get_phone_number`](WeChatClient::get_phone_number) exchanges the code of
//!   the getPhoneNumber button.
//!
//! It knows nothing of users, sessions or storage.
//!
//! What it takes care of:
//!
//! - WeChat answers with JSON sent as `text/plain`, omits `errcode` on success, and reuses
//!   HTTP 200 for errors: the body is parsed as JSON whatever the headers say, and a missing
//!   `errcode` counts as 0.
//! - A code works once: a call that spends a code is never sent again once WeChat may have seen
//!   it (code2Session keeps its retry of errcode -1, and a retry that then meets "code used" is
//!   reported as [`Error::CodeConsumedByRetry`], not as the user's bad code).
//!   Calls that change nothing (`sns_userinfo`, `stable_token` in normal mode,
//!   `check_session_key`) are retried after errcode -1 and connection failures.
//! - An access_token that no longer works (40001, 40014, 42001 on a call that takes one) is
//!   [`Error::AccessTokenInvalid`], so the caller can get the current token once and retry once
//!   ([`Error::is_access_token_invalid`]).
//! - A call never waits long: the configured timeout bounds the whole call, retries, backoff
//!   and a slowly trickling body included.
//! - Secrets stay secret: [`AppSecret`], [`SessionKey`], [`AccessToken`], [`UserAccessToken`]
//!   and [`RefreshToken`] print as `Name([redacted])`, logs show URLs with secrets, codes,
//!   tokens and signatures redacted, and no [`Error`] ever holds them.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use wxlink_wechat_client::{AppSecret, ClientConfig, Error, WeChatClient};
//!
//! # async fn login(js_code: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig::builder()
//!     .timeout(Duration::from_secs(5)) // the whole call, retries included
//!     .max_retries(2)
//!     .build()?;
//! let client = WeChatClient::new(config)?;
//! let secret = AppSecret::new(std::env::var("WECHAT_APP_SECRET")?);
//!
//! match client.code2session("wx4f4bc4dec97d474b", &secret, js_code).await {
//!     Ok(session) => {
//!         println!("openid {} unionid {:?}", session.openid, session.unionid);
//!         // session.session_key.expose_secret() decrypts the user's encryptedData.
//!     }
//!     Err(Error::InvalidCode | Error::CodeUsed) => {
//!         // The user's code is bad: the mini program must call wx.login again.
//!     }
//!     Err(e) if e.is_retryable() => {
//!         // WeChat or the network failed: answer "try again later".
//!     }
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! An official account's web login, reading the profile only when the exchange lacks the
//! unionid:
//!
//! ```no_run
//! # use wxlink_wechat_client::{AppSecret, Error, WeChatClient};
//! # async fn oauth(client: &WeChatClient, secret: &AppSecret, code: &str) -> Result<(), Error> {
//! let grant = client.oauth2_access_token("wx_official_account", secret, code).await?;
//! let mut unionid = grant.unionid.clone();
//! let profile_allowed = grant.scope.split(',').any(|scope| scope != "snsapi_base");
//! if unionid.is_none() && profile_allowed {
//!     unionid = client.sns_userinfo(&grant.access_token, &grant.openid).await?.unionid;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! A call with the app's access_token, refreshing once when WeChat refuses the token:
//!
//! ```no_run
//! # use wxlink_wechat_client::{AppSecret, Error, PhoneInfo, WeChatClient};
//! # async fn phone(client: &WeChatClient, secret: &AppSecret, code: &str) -> Result<PhoneInfo, Error> {
//! // A real service reads the token from a cache shared by its nodes.
//! let token = client.stable_token("wx4f4bc4dec97d474b", secret, false).await?;
//! match client.get_phone_number(&token.access_token, code, None).await {
//!     Err(e) if e.is_access_token_invalid() => {
//!         // Normal mode, never force_refresh: every node gets the same new token.
//!         let token = client.stable_token("wx4f4bc4dec97d474b", secret, false).await?;
//!         client.get_phone_number(&token.access_token, code, None).await
//!     }
//!     other => other,
//! }
//! # }
//! ```
//!
//! Point [`ClientConfigBuilder::api_base`] at a local server (such as the `wxlink-wechat-sim`
//! simulator) to test without the internet.
//!
//! # Errors
//!
//! How WeChat's answers map to [`Error`]:
//!
//! | WeChat's answer | variant | retried |
//! |---|---|---|
//! | no `errcode`, or `errcode` 0, with the call's required fields | `Ok(…)` | – |
//! | `errcode` 0 (or none) without a required field (openid, session_key, token, phone_info) | [`Error::UnexpectedAnswer`] | no |
//! | 40029 invalid code | [`Error::InvalidCode`] | no |
//! | 40163 code been used | [`Error::CodeUsed`] | no |
//! | 40029 or 40163 on a retry after WeChat may have seen the code | [`Error::CodeConsumedByRetry`] | no |
//! | 40226 code blocked (high-risk user) | [`Error::HighRiskUser`] | no |
//! | 45011 minute quota reached | [`Error::RateLimited`] | no |
//! | -1 system error | [`Error::SystemBusy`] | code2Session and idempotent calls |
//! | 40013, 40125 (bad appid, secret); 40001 on calls with the AppSecret | [`Error::InvalidCredential`] | no |
//! | 40001, 40014, 42001 on calls with an access_token | [`Error::AccessTokenInvalid`] | no |
//! | 48001 on `sns/userinfo` (a `snsapi_base` grant) | [`Error::ScopeUnauthorized`] | no |
//! | 87009 on `wxa/checksession` | `Ok(false)` | – |
//! | any other non-zero `errcode` | [`Error::Api`] | no |
//! | 2xx with a body that is not JSON | [`Error::NotJson`] | no |
//! | non-2xx without a JSON `errcode` (e.g. an HTML 502) | [`Error::Http`] | no |
//! | no complete answer within the timeout | [`Error::Timeout`] | – |
//! | connection refused before sending | [`Error::Transport`] once retries are exhausted | yes |
//! | connection reset or closed after sending | [`Error::Transport`] | idempotent calls only |
//!
//! The calls with the AppSecret are code2Session, the OAuth code exchange and stable_token;
//! the calls with an access_token are `sns_userinfo` (the user's token), `get_phone_number`
//! and `check_session_key` (the app's token).
//! The idempotent calls are `sns_userinfo`, `stable_token` without `force_refresh`, and
//! `check_session_key`.
//! A non-2xx answer whose body carries a non-zero `errcode` is mapped by its errcode.
//! [`Error::errcode`] gives the errcode back, and [`Error::is_retryable`] says whether the
//! failure is transient.
//!
//! # Crate features
//!
//! None. HTTPS uses rustls with the webpki root certificates.
//!
//! # Public dependencies
//!
//! The calls need a tokio runtime. `url` 2 appears in the API
//! ([`ClientConfig::api_base`] returns a `&url::Url`); `reqwest` does not (a
//! [`TransportError`] shows it only as its `source()`).
//!
//! The runnable examples are in `examples/`, against the `wxlink-wechat-sim` simulator:
//! `cargo run -p wxlink-wechat-client --example code2session` and `--example oauth_and_tokens`.
//! The minimum supported Rust version is the `rust-version` of the crate's `Cargo.toml`.

#![deny(missing_docs)]

mod client;
mod config;
mod endpoint;
mod error;
mod login;
mod oauth;
mod phone;
mod secret;
mod token;

pub use client::WeChatClient;
pub use config::{
    ClientConfig, ClientConfigBuilder, DEFAULT_API_BASE, DEFAULT_BACKOFF_BASE, DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
};
pub use error::{Error, TransportError};
pub use login::Code2Session;
pub use oauth::{OAuthAccessToken, SnsUserInfo};
pub use phone::{PhoneInfo, PhoneWatermark};
pub use secret::{AccessToken, AppSecret, RefreshToken, SessionKey, UserAccessToken};
pub use token::StableToken;

// The README's Rust examples are compiled as doctests, so that they keep up with the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
