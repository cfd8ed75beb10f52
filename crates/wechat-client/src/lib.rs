//! An async client for WeChat's server API, starting with the mini program login call
//! `auth.code2Session`.
//!
//! It is for any Rust service that logs WeChat mini program users in: it turns the code a mini
//! program got from `wx.login` into the user's `openid`, `session_key` and (when WeChat gives
//! one) `unionid`, with typed errcodes, a hard time budget and safe retries.
//! It knows nothing of users, sessions or storage.
//!
//! What it takes care of:
//!
//! - WeChat answers with JSON sent as `text/plain`, omits `errcode` on success, and reuses
//!   HTTP 200 for errors: the body is parsed as JSON whatever the headers say, and a missing
//!   `errcode` counts as 0.
//! - A code works once: only errcode -1 and connection failures that happened before the request
//!   was sent are retried, and a retry that then meets "code used" is reported as
//!   [`Error::CodeConsumedByRetry`], not as the user's bad code.
//! - A login never waits long: the configured timeout bounds the whole call, retries, backoff and
//!   a slowly trickling body included.
//! - Secrets stay secret: [`AppSecret`] and [`SessionKey`] print as `AppSecret([redacted])` and
//!   `SessionKey([redacted])`, logs show the URL with `secret` and `js_code` redacted, and no
//!   [`Error`] ever holds them.
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
//! Point [`ClientConfigBuilder::api_base`] at a local server (such as the `wxlink-wechat-sim`
//! simulator) to test without the internet.
//!
//! # Errors
//!
//! How code2Session's answers map to [`Error`]:
//!
//! | WeChat's answer | variant | retried |
//! |---|---|---|
//! | no `errcode`, or `errcode` 0, with `openid` and `session_key` | `Ok(Code2Session)` | – |
//! | `errcode` 0 (or none) without `openid` or `session_key` | [`Error::UnexpectedAnswer`] | no |
//! | 40029 invalid code | [`Error::InvalidCode`] | no |
//! | 40163 code been used | [`Error::CodeUsed`] | no |
//! | 40029 or 40163 on a retry | [`Error::CodeConsumedByRetry`] | no |
//! | 40226 code blocked (high-risk user) | [`Error::HighRiskUser`] | no |
//! | 45011 minute quota reached | [`Error::RateLimited`] | no |
//! | -1 system error | [`Error::SystemBusy`] once retries are exhausted | yes |
//! | 40001, 40013, 40125 (bad credential, appid, secret) | [`Error::InvalidCredential`] | no |
//! | any other non-zero `errcode` | [`Error::Api`] | no |
//! | 2xx with a body that is not JSON | [`Error::NotJson`] | no |
//! | non-2xx without a JSON `errcode` (e.g. an HTML 502) | [`Error::Http`] | no |
//! | no complete answer within the timeout | [`Error::Timeout`] | – |
//! | connection refused before sending | [`Error::Transport`] once retries are exhausted | yes |
//! | connection reset or closed after sending | [`Error::Transport`] | no |
//!
//! A non-2xx answer whose body carries a non-zero `errcode` is mapped by its errcode.
//! [`Error::errcode`] gives the errcode back, and [`Error::is_retryable`] says whether the
//! failure is transient.
//!
//! # Crate features
//!
//! None. HTTPS uses rustls with the webpki root certificates.

#![deny(missing_docs)]

mod client;
mod config;
mod error;
mod secret;

pub use client::{Code2Session, WeChatClient};
pub use config::{
    ClientConfig, ClientConfigBuilder, DEFAULT_API_BASE, DEFAULT_BACKOFF_BASE, DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
};
pub use error::{Error, TransportError};
pub use secret::{AppSecret, SessionKey};
