//! A simulator of WeChat's server API for mini program login, to test services that call
//! `auth.code2Session` without the internet and without real WeChat accounts.
//!
//! It is for tests (in-process, on a free port), for sandboxes that embed it (mount its
//! [`Router`](axum::Router)), and for other teams' black-box tests (the `wxlink-wechat-sim`
//! binary, driven over HTTP).
//! It plays what a client of code2Session meets on the real service:
//!
//! - `GET /sns/jscode2session` answers JSON sent as `Content-Type: text/plain`:
//!   `{"openid","session_key","unionid"?}` on success (no `errcode` field) or
//!   `{"errcode","errmsg"}` with WeChat's messages and a `, rid: …` suffix.
//! - Codes come from a simulated `wx.login` ([`Sim::login`]), expire after five minutes on a
//!   clock tests can move ([`Sim::advance_clock`]) and work once (40163 `code been used`).
//! - Each login rotates the user's session key; [`Sim::user_info`] encrypts the user's data
//!   under the current key, as `wx.getUserInfo` does.
//! - Per app, a [`UnionidPolicy`] decides when code2Session returns the unionid.
//! - Faults ([`Fault`]) can be queued or made sticky per code, per app or for every call:
//!   errcode -1 (optionally consuming the code), 45011, 40226, 40125, any errcode, an HTML 502,
//!   a 500, a delay, a dropped connection.
//! - Calls are counted per endpoint and appid ([`Sim::calls`]).
//!
//! # Example
//!
//! ```
//! use wxlink_wechat_sim::{Simulator, UnionidPolicy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = Simulator::start().await?; // 127.0.0.1, a free port, serving in the background
//! sim.register_app("wx4f4bc4dec97d474b", "app-secret", UnionidPolicy::Always)?;
//!
//! // What wx.login does on the phone: a fresh code (and a new session key for the user).
//! let login = sim.login("wx4f4bc4dec97d474b", "openid-1", Some("unionid-1"))?;
//!
//! // The service under test, configured with `sim.base_url()` as WeChat's API base, calls:
//! let url = format!(
//!     "{}/sns/jscode2session?appid=wx4f4bc4dec97d474b&secret=app-secret&js_code={}\
//!      &grant_type=authorization_code",
//!     sim.base_url(),
//!     login.code,
//! );
//! # let answer = reqwest::get(&url).await?.text().await?;
//! # assert!(answer.contains("openid-1") && answer.contains("unionid-1"));
//! // … and gets {"openid":"openid-1","session_key":"…","unionid":"unionid-1"}.
//! // A second exchange of the same code gets errcode 40163.
//! assert_eq!(sim.code2session_calls(), 1);
//!
//! // The encrypted data wx.getUserInfo would give, under the user's current session key.
//! let info = sim.user_info("wx4f4bc4dec97d474b", "openid-1")?;
//! assert_eq!(info.signature.len(), 40);
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Control API over HTTP
//!
//! Every control method has an HTTP twin taking and giving JSON, so that another process can
//! drive a simulator it did not start. Errors are `{"error": {"code", "message"}}`.
//!
//! | method, path | body | answer |
//! |---|---|---|
//! | `POST /__sim/apps` | [`AppRegistration`]: `{"appid","secret","unionid_policy"?: "always" \| "never" \| "when_following"}` | 201 `{"appid","unionid_policy"}` |
//! | `POST /__sim/login` | `{"appid","openid"?,"unionid"?}` (openid generated if absent) | [`Login`]: `{"code","openid","session_key","expires_in"}` |
//! | `POST /__sim/follow` | `{"appid","openid","following"?: true}` | the same object |
//! | `POST /__sim/user-info` | [`UserInfoRequest`]: `{"appid","openid","include_unionid"?: true,"nick_name"?,"watermark_appid"?,"watermark_timestamp"?}` | [`UserInfo`]: `{"encrypted_data","iv","raw_data","signature"}` |
//! | `POST /__sim/faults` | [`FaultRule`]: `{"appid"?,"code"?,"faults":[{"kind":…}],"sticky"?: false}` | 201 `{"ok":true}` |
//! | `DELETE /__sim/faults` | – | `{"ok":true}` |
//! | `GET /__sim/calls` | – | [`CallCounts`]: `{"/sns/jscode2session":{"total","by_appid":{…}}}` |
//! | `DELETE /__sim/calls` | – | `{"ok":true}` |
//! | `GET /__sim/clock` | – | `{"now"}` (Unix seconds) |
//! | `POST /__sim/clock` | `{"advance_secs"}` | `{"now"}` |
//!
//! Fault kinds: `{"kind":"system_busy","consume_code"?: false}`, `{"kind":"rate_limited"}`,
//! `{"kind":"high_risk"}`, `{"kind":"invalid_credential"}`,
//! `{"kind":"errcode","errcode","errmsg"}`, `{"kind":"non_json_502"}`, `{"kind":"http_500"}`,
//! `{"kind":"delay","ms"}`, `{"kind":"drop_connection"}`.
//!
//! # code2Session's checks, in order
//!
//! | condition | errcode, errmsg |
//! |---|---|
//! | `appid` missing or empty | 41002 `appid missing` |
//! | `appid` not registered | 40013 `invalid appid` |
//! | `secret` missing | 41004 `appsecret missing` |
//! | `secret` wrong | 40125 `invalid appsecret` |
//! | `grant_type` not `authorization_code` | 40002 `invalid grant_type` |
//! | `js_code` missing or empty | 41008 `missing code` |
//! | code unknown, of another app, or older than five minutes | 40029 `invalid code` |
//! | code already exchanged | 40163 `code been used` |
//!
//! A fault matching the call is played before these checks. A `system_busy` fault with
//! `consume_code: true` marks a valid code as used, as when WeChat consumed it before failing.
//!
//! # The binary
//!
//! `wxlink-wechat-sim --bind 127.0.0.1:0 --app wx4f4bc4dec97d474b:secret[:policy]` prints its
//! base URL as the first line on stdout and serves until SIGINT or SIGTERM.

#![deny(missing_docs)]

mod http;
mod model;
mod server;
mod sim;
mod state;

pub use model::{
    AppRegistration, CODE_TTL_SECS, CODE2SESSION_PATH, CallCounts, EndpointCalls, Fault, FaultRule,
    FaultTarget, Login, SimError, UnionidPolicy, UserInfo, UserInfoRequest,
};
pub use server::{SimBuilder, SimHandle, Simulator};
pub use sim::Sim;
