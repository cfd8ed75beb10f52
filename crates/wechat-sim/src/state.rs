//! The simulator's state and every rule of WeChat it plays, as plain functions over that state.
//! Nothing here does I/O or awaits; callers hold the lock only for one of these calls.
//!
//! This module holds the apps, users, codes and clock, and the registration of apps; its
//! children hold the rules: `login` (`wx.login`'s codes and code2Session), `users` (following
//! and getUserInfo's plaintext), `oauth` (the OAuth exchange and `sns/userinfo`), `tokens`
//! (stable_token, getAccessToken and the access_token check), `mini` (phone number,
//! checksession), `account` (an official account's `cgi-bin/user/info`), and the test
//! controls `faults` (fault injection) and `calls` (call counters).

mod account;
mod calls;
mod faults;
mod login;
mod mini;
mod oauth;
mod tokens;
mod users;

pub(crate) use account::FollowerQuery;
use faults::ActiveRule;
pub(crate) use faults::{CallKey, MAX_DELAY_MS};
pub(crate) use login::Code2SessionQuery;
pub(crate) use mini::{CheckSessionQuery, PhoneNumberBody};
pub(crate) use oauth::UserInfoQuery;
pub(crate) use tokens::{StableTokenBody, TokenQuery};
use users::GREY_AVATAR;
pub(crate) use users::user_info_plaintext;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::prelude::{BASE64_STANDARD, Engine as _};
use rand::Rng as _;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use crate::model::{
    AppKind, AppRegistration, CODE_TTL_SECS, CallCounts, OAuthScope, SimError, UnionidPolicy,
};

const MAX_APPS: usize = 1_000;
/// The longest identifier the control API accepts (appid, secret, openid, unionid, code).
pub(crate) const MAX_ID_LEN: usize = 128;
const CODE_TTL_MS: i64 = CODE_TTL_SECS as i64 * 1000;

#[derive(Debug)]
struct App {
    secret: String,
    policy: UnionidPolicy,
    kind: AppKind,
    unionid_in_exchange: bool,
    tokens: tokens::AppTokens,
}

#[derive(Debug, Default)]
struct User {
    unionid: Option<String>,
    following: bool,
    /// When the user last followed the official account (simulator clock, Unix seconds).
    followed_at_s: i64,
    session_key: Option<String>,
}

impl User {
    /// The unionid an app with this policy may tell: "bound" is `Always`, or `WhenFollowing`
    /// for a follower.
    fn unionid_for(&self, policy: UnionidPolicy) -> Option<String> {
        match policy {
            UnionidPolicy::Always => self.unionid.clone(),
            UnionidPolicy::Never => None,
            UnionidPolicy::WhenFollowing => self.unionid.clone().filter(|_| self.following),
        }
    }
}

/// What a code was issued for; a code only works at its own endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CodePurpose {
    /// `wx.login`, for code2Session.
    Login,
    /// An OAuth consent, for the OAuth exchange; `snapshot` for a virtual user of an official
    /// account's snapshot page, who has not really consented.
    OAuth { scope: OAuthScope, snapshot: bool },
    /// The getPhoneNumber button, for the phone number exchange.
    Phone {
        pure_phone_number: String,
        country_code: u16,
    },
}

#[derive(Debug)]
struct IssuedCode {
    appid: String,
    openid: String,
    purpose: CodePurpose,
    issued_at_ms: i64,
    used: bool,
}

impl IssuedCode {
    fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.issued_at_ms) <= CODE_TTL_MS
    }
}

/// Everything the simulator knows.
#[derive(Debug, Default)]
pub(crate) struct State {
    apps: HashMap<String, App>,
    users: HashMap<(String, String), User>,
    codes: HashMap<String, IssuedCode>,
    rules: Vec<ActiveRule>,
    calls: CallCounts,
    clock_offset: Duration,
    /// Every app access_token ever handed out that is still remembered, by token.
    access_tokens: HashMap<String, tokens::TokenRecord>,
    /// Every user access_token of the OAuth exchange still remembered, by token.
    user_tokens: HashMap<String, oauth::UserToken>,
}

/// What a WeChat endpoint answers.
#[derive(Debug, PartialEq)]
pub(crate) enum Answer {
    /// HTTP 200 with this JSON (as `text/plain` or `application/json`, by endpoint).
    Json(Value),
    /// Any status, content type and body.
    Raw {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// No answer: the connection is closed.
    Drop,
}

impl State {
    // --- clock --------------------------------------------------------------------------------

    /// The simulator clock: wall-clock time plus every [`advance_clock`](Self::advance_clock).
    pub(crate) fn now_ms(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let now = real.saturating_add(self.clock_offset);
        i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
    }

    pub(crate) fn advance_clock(&mut self, by: Duration) {
        self.clock_offset = self.clock_offset.saturating_add(by);
    }

    // --- control ------------------------------------------------------------------------------

    pub(crate) fn register_app(&mut self, app: AppRegistration) -> Result<(), SimError> {
        check_appid(&app.appid)?;
        check_id("secret", &app.secret)?;
        if !self.apps.contains_key(&app.appid) && self.apps.len() >= MAX_APPS {
            return Err(SimError::Capacity("apps"));
        }
        // Registering again changes the settings but keeps the app's tokens.
        let tokens = self
            .apps
            .remove(&app.appid)
            .map(|old| old.tokens)
            .unwrap_or_default();
        self.apps.insert(
            app.appid,
            App {
                secret: app.secret,
                policy: app.unionid_policy,
                kind: app.kind,
                unionid_in_exchange: app.unionid_in_exchange,
                tokens,
            },
        );
        Ok(())
    }

    // --- helpers ------------------------------------------------------------------------------

    fn require_app(&self, appid: &str) -> Result<&App, SimError> {
        self.apps
            .get(appid)
            .ok_or_else(|| SimError::UnknownApp(appid.to_owned()))
    }

    /// The app, if its kind allows `operation`.
    fn require_kind(
        &self,
        appid: &str,
        operation: &str,
        allowed: impl Fn(AppKind) -> bool,
    ) -> Result<&App, SimError> {
        let app = self.require_app(appid)?;
        if allowed(app.kind) {
            Ok(app)
        } else {
            Err(SimError::WrongAppKind {
                appid: appid.to_owned(),
                kind: app.kind,
                operation: operation.to_owned(),
            })
        }
    }
}

/// A query parameter that is present and not empty.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

/// errcode 0 with `errmsg` "ok", plus these fields.
fn ok_with(fields: Value) -> Answer {
    let mut body = json!({ "errcode": 0, "errmsg": "ok" });
    if let (Some(object), Value::Object(fields)) = (body.as_object_mut(), fields) {
        object.extend(fields);
    }
    Answer::Json(body)
}

/// An errcode answer with WeChat's `, rid: …` suffix.
pub(crate) fn errcode(code: i64, message: &str) -> Answer {
    let mut rng = rand::rng();
    let rid = format!(
        "{:08x}-{:08x}-{:08x}",
        rng.random::<u32>(),
        rng.random::<u32>(),
        rng.random::<u32>()
    );
    Answer::Json(json!({ "errcode": code, "errmsg": format!("{message}, rid: {rid}") }))
}

fn random_text(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A new session key: base64 of 16 random bytes.
fn random_key() -> String {
    let mut bytes = [0_u8; 16];
    rand::rng().fill(&mut bytes);
    BASE64_STANDARD.encode(bytes)
}

/// A new iv: base64 of 16 random bytes.
pub(crate) fn random_iv() -> String {
    random_key()
}

pub(crate) fn check_id(what: &str, value: &str) -> Result<(), SimError> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(SimError::InvalidInput(format!(
            "{what} must be 1 to {MAX_ID_LEN} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(SimError::InvalidInput(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

fn check_appid(appid: &str) -> Result<(), SimError> {
    check_id("appid", appid)?;
    if !appid
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(SimError::InvalidInput(
            "appid must be ASCII letters, digits, '_' or '-'".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn state_with_app(policy: UnionidPolicy) -> State {
        let mut state = State::default();
        state
            .register_app(AppRegistration::new("wx1", "s", policy))
            .expect("register");
        state
    }

    pub(super) fn errcode_of(answer: &Answer) -> Option<i64> {
        match answer {
            Answer::Json(value) => value.get("errcode").and_then(Value::as_i64),
            _ => None,
        }
    }
}
