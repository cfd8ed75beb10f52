//! A simulator of WeChat's server API for login and identity linking, to test services that
//! call WeChat without the internet and without real WeChat accounts.
//!
//! It is for tests (in-process, on a free port), for sandboxes that embed it (mount its
//! [`Router`](axum::Router)), and for other teams' black-box tests (the `wxlink-wechat-sim`
//! binary, driven over HTTP).
//! It plays what a client meets on the real service:
//!
//! - `GET /sns/jscode2session` (code2Session) answers JSON sent as `Content-Type: text/plain`:
//!   `{"openid","session_key","unionid"?}` on success (no `errcode` field) or
//!   `{"errcode","errmsg"}` with WeChat's messages and a `, rid: …` suffix.
//! - Codes come from a simulated `wx.login` ([`Sim::login`]), expire after five minutes on a
//!   clock tests can move ([`Sim::advance_clock`]) and work once (40163 `code been used`).
//! - Each login rotates the user's session key; [`Sim::user_info`] encrypts the user's data
//!   under the current key, as `wx.getUserInfo` does.
//! - Apps have a kind ([`AppKind`]): mini programs log in with `wx.login`; official accounts,
//!   mobile apps and websites with OAuth ([`Sim::oauth_authorize`], then
//!   `GET /sns/oauth2/access_token` and `GET /sns/userinfo`).
//! - `POST /cgi-bin/stable_token` hands out the app's access_token with WeChat's five-minute
//!   handover and forced refreshes; every endpoint that takes an access_token checks it
//!   (40001, 42001), and tests can expire or revoke it ([`Sim::expire_access_token`],
//!   [`Sim::revoke_access_token`]).
//! - `GET /cgi-bin/token` is the classic getAccessToken most SDKs call by default: a new token
//!   on every call, the previous one working five more minutes; its tokens work wherever
//!   stable_token's do.
//! - `GET /cgi-bin/user/info` gives an official account's follower record with the unionid
//!   of a bound account ([`Sim::follow_with_unionid`] makes a follower).
//! - `POST /wxa/business/getuserphonenumber` exchanges a code of the getPhoneNumber button
//!   ([`Sim::phone_code`]); `GET /wxa/checksession` tells whether a session key is current.
//! - Per app, a [`UnionidPolicy`] decides when the unionid is told (it says whether the app is
//!   bound to an Open Platform account).
//! - Faults ([`Fault`]) can be queued or made sticky per code, per app, per endpoint or for
//!   every call: errcode -1 (optionally consuming the code), 45011, 40226, 40125, any errcode,
//!   an HTML 502, a 500, a delay, a dropped connection.
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
//! The other kinds of app and the calls with an access_token:
//!
//! ```
//! use wxlink_wechat_sim::{AppKind, AppRegistration, OAuthScope, Sim, UnionidPolicy};
//!
//! let sim = Sim::new();
//! sim.register_app_with(
//!     AppRegistration::new("wx_oa", "oa-secret", UnionidPolicy::Always)
//!         .with_kind(AppKind::OfficialAccount),
//! )?;
//! // The user consents on the official account's authorize page:
//! let scope = OAuthScope::SnsapiUserinfo;
//! let grant = sim.oauth_authorize("wx_oa", Some("o-oa"), Some("unionid-1"), scope)?;
//! // GET /sns/oauth2/access_token?appid=wx_oa&secret=oa-secret&code={grant.code}
//! //     &grant_type=authorization_code
//! // answers {"access_token","expires_in":7200,"refresh_token","openid":"o-oa",
//! //          "scope":"snsapi_userinfo","unionid":"unionid-1","is_snapshotuser":0}.
//!
//! sim.register_app("wx_mini", "mini-secret", UnionidPolicy::Always)?;
//! // The user taps the getPhoneNumber button:
//! let phone = sim.phone_code("wx_mini", "o-mini", "13800138000", None)?;
//! // POST /cgi-bin/stable_token gives an access_token, then
//! // POST /wxa/business/getuserphonenumber?access_token=… {"code": phone.code} gives the number.
//! sim.revoke_access_token("wx_mini")?; // as a rival's forced refresh: the token now gets 40001
//! # let _ = (grant, phone);
//! # Ok::<(), wxlink_wechat_sim::SimError>(())
//! ```
//!
//! # Control API over HTTP
//!
//! Every control method has an HTTP twin taking and giving JSON, so that another process can
//! drive a simulator it did not start. Errors are `{"error": {"code", "message"}}`: 400
//! `invalid_request`, 404 `unknown_app` / `unknown_user` / `not_found`, 409 `no_session` /
//! `wrong_app_kind`, 413 for bodies over 64 KiB.
//!
//! | method, path | body | answer |
//! |---|---|---|
//! | `POST /__sim/apps` | [`AppRegistration`]: `{"appid","secret","unionid_policy"?: "always" \| "never" \| "when_following","kind"?: "mini_program" \| "official_account" \| "mobile_app" \| "website","unionid_in_exchange"?: true}` | 201 `{"appid","unionid_policy","kind","unionid_in_exchange"}` |
//! | `POST /__sim/login` | `{"appid","openid"?,"unionid"?}` (openid generated if absent; mini programs only) | [`Login`]: `{"code","openid","session_key","expires_in"}` |
//! | `POST /__sim/oauth-authorize` | `{"appid","openid"?,"unionid"?,"scope": "snsapi_base" \| "snsapi_userinfo" \| "snsapi_login"}` | [`OAuthCode`]: `{"code","openid","scope","expires_in"}` |
//! | `POST /__sim/oauth-snapshot-visit` | `{"appid"}` (official accounts only) | [`OAuthCode`] of a snapshot page's virtual user: `snsapi_base`, a fresh openid, `"is_snapshotuser":1` in the exchange, never a unionid |
//! | `POST /__sim/phone-code` | `{"appid","openid","phone_number","country_code"?: "86"}` (digits; a number is accepted for `country_code`) | [`PhoneCode`]: `{"code","expires_in"}` |
//! | `GET /__sim/access-token?appid=…` | – | [`AccessTokenStatus`]: `{"appid","access_token","expires_in","previous_access_token","force_refreshes_today","force_refresh_calls"}` |
//! | `POST /__sim/access-token/expire` | `{"appid"}` | `{"ok":true}` (the token now gets 42001) |
//! | `POST /__sim/access-token/revoke` | `{"appid"}` | `{"ok":true}` (the token now gets 40001) |
//! | `POST /__sim/follow` | `{"appid","openid","following"?: true,"unionid"?}` | the same object |
//! | `POST /__sim/user-info` | [`UserInfoRequest`]: `{"appid","openid","include_unionid"?: true,"nick_name"?,"watermark_appid"?,"watermark_timestamp"?}` | [`UserInfo`]: `{"encrypted_data","iv","raw_data","signature"}` |
//! | `POST /__sim/faults` | [`FaultRule`]: `{"appid"?,"code"?,"path"?,"faults":[{"kind":…}],"sticky"?: false}` | 201 `{"ok":true}` |
//! | `DELETE /__sim/faults` | – | `{"ok":true}` |
//! | `GET /__sim/calls` | – | [`CallCounts`]: `{"/sns/jscode2session":{"total","by_appid":{…}}, …}` |
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
//! # The other endpoints
//!
//! `sns/*` answer JSON as `text/plain`, like code2Session; `cgi-bin/*` and `wxa/*` as
//! `application/json; encoding=utf-8`. Every errmsg carries a `, rid: …` suffix.
//!
//! | endpoint | success | checks, in order |
//! |---|---|---|
//! | `GET /sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code` | `{"access_token","expires_in":7200,"refresh_token","openid","scope","unionid"?,"is_snapshotuser"}` (`1` and no unionid for a code of [`Sim::oauth_snapshot_visit`], else `0`) | code2Session's, with `code` for `js_code`; a code of `wx.login` or of another app is 40029 |
//! | `GET /sns/userinfo?access_token&openid&lang` | `{"openid","nickname","sex","province","city","country","headimgurl","privilege","unionid"?}` | 41001 token missing, 40001 unknown, 42001 expired, 41009 openid missing, 40003 another user's openid, 48001 `api unauthorized` for `snsapi_base` |
//! | `POST /cgi-bin/stable_token` `{"grant_type","appid","secret","force_refresh"?}` | `{"access_token","expires_in"}` | 47001 `data format error` (not a JSON object, a field of the wrong type), 41002, 40013, 41004, 40125 `invalid appsecret`, 40002 (not `client_credential`), 45009 (21st forced refresh of the day); GET is 43002 |
//! | `GET /cgi-bin/token?grant_type&appid&secret` | `{"access_token","expires_in":7200}`, a new token each call | 41002, 40013, 41004, 40001 `invalid credential, appsecret is invalid`, 40002 (not `client_credential`) |
//! | `GET /cgi-bin/user/info?access_token&openid&lang` | a follower: `{"subscribe":1,"openid","language","subscribe_time","unionid"?,"remark","groupid","tagid_list","subscribe_scene","qr_scene","qr_scene_str"}`; a known non-follower: `{"subscribe":0,"openid"}` | token (41001, 40001, 42001), 48001 for a token of an app that is not an official account, 40003 `invalid openid` for a missing or unknown openid |
//! | `POST /wxa/business/getuserphonenumber?access_token` `{"code","openid"?}` | `{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber","purePhoneNumber","countryCode","watermark":{"timestamp","appid"}}}` | token (41001, 40001, 42001), 48001 for a token of an app that is not a mini program, 47001, 41008 code missing, 40003 `invalid openid` when `openid` is not the code's user (the code is not spent), 40029 for a code unknown, expired, of another app or already used; GET is 43002 |
//! | `GET /wxa/checksession?access_token&openid&signature&sig_method` | `{"errcode":0,"errmsg":"ok"}` | token (41001, 40001, 42001), 48001 as above, 87008 `invalid sig_method` unless `hmac_sha256`, 41009 openid missing, 40003 unknown user, 87009 `invalid signature` unless the signature is `hmac_sha256(current session_key, "")` in hex |
//!
//! The OAuth exchange returns the unionid for `snsapi_userinfo` and `snsapi_login` grants when
//! the app's policy tells it (`Always`, or `WhenFollowing` for a follower) and its
//! `unionid_in_exchange` is true; `sns/userinfo` returns it whenever the policy tells it.
//! `countryCode` is a JSON number, as in WeChat's example; `phoneNumber` is the bare number for
//! 86 and `+{countryCode}{number}` otherwise.
//! Every `wx.login` rotates the session key, so a key stored before the user's last login gets
//! 87009: exactly what a service checks to find a stale key.
//!
//! # stable_token
//!
//! Tokens live [`ACCESS_TOKEN_TTL_SECS`] (7200 s) on the simulator clock.
//! Normal mode hands out the same token while more than five minutes of it remain; the first
//! call within its last five minutes renews it as if WeChat had done so exactly five minutes
//! before expiry (the new token expires 7200 s after that moment) and the old token keeps
//! working until its own expiry, so every token handed out has `expires_in` > 300.
//! `force_refresh: true` kills the current and previous tokens at once (40001 from then on)
//! and issues a new one; it is allowed 20 times per Beijing-time day (errcode 45009
//! `reach max api daily quota limit` after that), and, as WeChat documents, one made within
//! 30 s of the previous forced refresh does not refresh: it answers the current token like
//! normal mode.
//! [`Sim::expire_access_token`] and [`Sim::revoke_access_token`] make the app's tokens answer
//! 42001 and 40001 at once (the classic tokens below too); [`Sim::access_token_status`] shows
//! the stable tokens and counts forced refreshes.
//!
//! # The classic getAccessToken
//!
//! `GET /cgi-bin/token` ([`GET_ACCESS_TOKEN_PATH`]) issues a new 7200 s token on every call, as
//! WeChat does: the previous one keeps working for five more minutes and then answers 40001
//! (`… not latest`), and the one before it stops at once. Its tokens and stable_token's do not
//! affect each other and work at the same endpoints.
//!
//! # Faults and counters on every endpoint
//!
//! Every WeChat endpoint is counted under its path ([`CODE2SESSION_PATH`],
//! [`OAUTH_ACCESS_TOKEN_PATH`], [`SNS_USERINFO_PATH`], [`STABLE_TOKEN_PATH`],
//! [`GET_ACCESS_TOKEN_PATH`], [`CGI_USER_INFO_PATH`], [`PHONE_NUMBER_PATH`],
//! [`CHECK_SESSION_PATH`]) and appid: the `appid` sent, or for calls
//! with an access_token the app of that token (empty for an unknown one).
//! Faults match on the same appid, on the code (js_code, OAuth code, phone code) and, with
//! [`FaultTarget::at_path`], on the endpoint; a fault without a path plays on whichever
//! endpoint is called first. A consuming `system_busy` spends OAuth and phone codes too.
//!
//! # The binary
//!
//! `wxlink-wechat-sim --bind 127.0.0.1:0 --app wx4f4bc4dec97d474b:secret[:policy][:kind]`
//! prints its base URL as the first line on stdout and serves until SIGINT or SIGTERM.
//!
//! # Crate features
//!
//! - `cli`: the `wxlink-wechat-sim` binary (`clap`, `tracing-subscriber`); the library needs
//!   neither, so crates that embed the simulator leave it off.
//!
//! # Public dependencies
//!
//! `axum` 0.8 ([`Sim::router`] returns an `axum::Router`), `tokio` 1
//! ([`SimBuilder::serve`] takes a `tokio::net::TcpListener`; serving needs a tokio runtime),
//! `serde` 1 (the control types are `Serialize` and `Deserialize`) and `wxlink-crypto`
//! ([`SimError::Crypto`] holds its `DecryptError`) appear in the API.
//!
//! The runnable example is `cargo run -p wxlink-wechat-sim --example sandbox`.
//! The minimum supported Rust version is the `rust-version` of the crate's `Cargo.toml`.

#![deny(missing_docs)]

mod http;
mod model;
mod server;
mod sim;
mod state;

pub use model::{
    ACCESS_TOKEN_OVERLAP_SECS, ACCESS_TOKEN_TTL_SECS, AccessTokenStatus, AppKind, AppRegistration,
    CGI_USER_INFO_PATH, CHECK_SESSION_PATH, CODE_TTL_SECS, CODE2SESSION_PATH, CallCounts,
    EndpointCalls, Fault, FaultRule, FaultTarget, GET_ACCESS_TOKEN_PATH, Login,
    OAUTH_ACCESS_TOKEN_PATH, OAuthCode, OAuthScope, PHONE_NUMBER_PATH, PhoneCode,
    SNS_USERINFO_PATH, STABLE_TOKEN_PATH, SimError, UnionidPolicy, UserInfo, UserInfoRequest,
};
pub use server::{SimBuilder, SimHandle, Simulator};
pub use sim::Sim;

// The README's Rust examples are compiled as doctests, so that they keep up with the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
