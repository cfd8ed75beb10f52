//! The simulator's state and every rule of WeChat it plays, as plain functions over that state.
//! Nothing here does I/O or awaits; callers hold the lock only for one of these calls.
//!
//! This module holds the apps, users, codes, faults, counters and clock, and code2Session;
//! its children hold the other endpoints: `oauth` (the OAuth exchange and `sns/userinfo`),
//! `tokens` (stable_token, getAccessToken and the access_token check), `mini` (phone number,
//! checksession), `account` (an official account's `cgi-bin/user/info`).

mod account;
mod mini;
mod oauth;
mod tokens;

pub(crate) use account::FollowerQuery;
pub(crate) use mini::{CheckSessionQuery, PhoneNumberBody};
pub(crate) use oauth::UserInfoQuery;
pub(crate) use tokens::{StableTokenBody, TokenQuery};

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::prelude::{BASE64_STANDARD, Engine as _};
use rand::Rng as _;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use crate::model::{
    AppKind, AppRegistration, CODE_TTL_SECS, CODE2SESSION_PATH, CallCounts, Fault, FaultRule,
    Login, OAUTH_ACCESS_TOKEN_PATH, OAuthScope, PHONE_NUMBER_PATH, SimError, UnionidPolicy,
};

const MAX_APPS: usize = 1_000;
const MAX_USERS: usize = 100_000;
const MAX_CODES: usize = 100_000;
const MAX_FAULT_RULES: usize = 1_000;
const MAX_FAULTS_PER_RULE: usize = 1_000;
const MAX_COUNTED_APPIDS: usize = 1_000;
/// The longest identifier the control API accepts (appid, secret, openid, unionid, code).
pub(crate) const MAX_ID_LEN: usize = 128;
/// The longest fault delay.
pub(crate) const MAX_DELAY_MS: u64 = 60_000;
/// Codes older than this are forgotten when room is needed; they would answer 40029 anyway.
const CODE_RETENTION_MS: i64 = 2 * CODE_TTL_MS;
const CODE_TTL_MS: i64 = CODE_TTL_SECS as i64 * 1000;

/// The anonymised avatar WeChat returns since 2022.
const GREY_AVATAR: &str = "https://thirdwx.qlogo.cn/mmopen/vi_32/POgEwh4mIHO4nibH0KlMECNjjGxQUq24ZEaGT4poC6icRiccVGKSyXwibcPq4BWmiaIGuG1icwxaQX6grC9VemZoJ8rg/132";

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

#[derive(Debug)]
struct ActiveRule {
    rule: FaultRule,
    /// For a queue: the faults left. For a sticky rule: unused (the rule's list cycles).
    queue: VecDeque<Fault>,
    next: usize,
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

/// What a fault rule can match a call on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallKey<'a> {
    pub(crate) path: &'static str,
    pub(crate) appid: Option<&'a str>,
    pub(crate) code: Option<&'a str>,
}

/// The query of a code2Session call; absent parameters are `None`.
#[derive(Debug, Default)]
pub(crate) struct Code2SessionQuery {
    pub(crate) appid: Option<String>,
    pub(crate) secret: Option<String>,
    pub(crate) js_code: Option<String>,
    pub(crate) grant_type: Option<String>,
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

    pub(crate) fn login(
        &mut self,
        appid: &str,
        openid: Option<&str>,
        unionid: Option<&str>,
    ) -> Result<Login, SimError> {
        self.require_kind(appid, "call wx.login", |kind| kind == AppKind::MiniProgram)?;
        let openid = self.user_for_code(appid, openid, unionid)?;
        let user = self.user_entry(appid, &openid)?;
        // wx.login makes a new session key and the previous one stops working.
        let session_key = random_key();
        user.session_key = Some(session_key.clone());
        let code = self.issue_code(appid, &openid, CodePurpose::Login);
        Ok(Login {
            code,
            openid,
            session_key,
            expires_in: CODE_TTL_SECS,
        })
    }

    /// Checks ids, makes room for a code, and creates or updates the user a code is for;
    /// returns the (maybe generated) openid.
    fn user_for_code(
        &mut self,
        appid: &str,
        openid: Option<&str>,
        unionid: Option<&str>,
    ) -> Result<String, SimError> {
        if let Some(openid) = openid {
            check_id("openid", openid)?;
        }
        if let Some(unionid) = unionid {
            check_id("unionid", unionid)?;
        }
        let now = self.now_ms();
        self.make_room_for_code(now)?;
        let openid = openid.map_or_else(|| format!("o{}", random_text(27)), str::to_owned);
        let user = self.user_entry(appid, &openid)?;
        if let Some(unionid) = unionid {
            user.unionid = Some(unionid.to_owned());
        }
        Ok(openid)
    }

    /// Issues a fresh code; the caller made room with [`make_room_for_code`](Self::make_room_for_code).
    fn issue_code(&mut self, appid: &str, openid: &str, purpose: CodePurpose) -> String {
        let code = random_text(32);
        let issued_at_ms = self.now_ms();
        self.codes.insert(
            code.clone(),
            IssuedCode {
                appid: appid.to_owned(),
                openid: openid.to_owned(),
                purpose,
                issued_at_ms,
                used: false,
            },
        );
        code
    }

    /// Looks a code up for an exchange: it must exist, be of this app and purpose, and be
    /// fresh (else 40029), and be unused (else `used_errcode`). Marks it used.
    fn spend_code(
        &mut self,
        appid: &str,
        code: &str,
        purpose: impl Fn(&CodePurpose) -> bool,
        used_errcode: (i64, &str),
    ) -> Result<(String, CodePurpose), Answer> {
        let now = self.now_ms();
        let Some(issued) = self
            .codes
            .get_mut(code)
            .filter(|c| c.appid == appid && purpose(&c.purpose) && c.is_fresh(now))
        else {
            return Err(errcode(40029, "invalid code"));
        };
        if issued.used {
            return Err(errcode(used_errcode.0, used_errcode.1));
        }
        issued.used = true;
        Ok((issued.openid.clone(), issued.purpose.clone()))
    }

    /// Sets whether a user follows; `unionid` sets the person's unionid as `login` does.
    pub(crate) fn set_following(
        &mut self,
        appid: &str,
        openid: &str,
        following: bool,
        unionid: Option<&str>,
    ) -> Result<(), SimError> {
        self.require_app(appid)?;
        check_id("openid", openid)?;
        if let Some(unionid) = unionid {
            check_id("unionid", unionid)?;
        }
        let now_s = self.now_ms() / 1000;
        let user = self.user_entry(appid, openid)?;
        if following && !user.following {
            user.followed_at_s = now_s;
        }
        user.following = following;
        if let Some(unionid) = unionid {
            user.unionid = Some(unionid.to_owned());
        }
        Ok(())
    }

    /// The current session key of a user, the unionid getUserInfo carries, and the clock.
    pub(crate) fn user_info_inputs(
        &self,
        appid: &str,
        openid: &str,
    ) -> Result<(String, Option<String>, i64), SimError> {
        self.require_app(appid)?;
        let user = self
            .users
            .get(&(appid.to_owned(), openid.to_owned()))
            .ok_or_else(|| SimError::UnknownUser {
                appid: appid.to_owned(),
                openid: openid.to_owned(),
            })?;
        let session_key = user
            .session_key
            .clone()
            .ok_or_else(|| SimError::NoSession {
                appid: appid.to_owned(),
                openid: openid.to_owned(),
            })?;
        Ok((session_key, user.unionid.clone(), self.now_ms()))
    }

    pub(crate) fn add_fault_rule(&mut self, rule: FaultRule) -> Result<(), SimError> {
        if rule.faults.is_empty() {
            return Err(SimError::InvalidInput(
                "a fault rule needs at least one fault".into(),
            ));
        }
        if rule.faults.len() > MAX_FAULTS_PER_RULE {
            return Err(SimError::Capacity("faults in one rule"));
        }
        if self.rules.len() >= MAX_FAULT_RULES {
            return Err(SimError::Capacity("fault rules"));
        }
        for fault in &rule.faults {
            if let Fault::Delay { ms } = fault
                && *ms > MAX_DELAY_MS
            {
                return Err(SimError::InvalidInput(format!(
                    "a delay is at most {MAX_DELAY_MS} ms"
                )));
            }
        }
        self.rules.push(ActiveRule {
            queue: rule.faults.iter().cloned().collect(),
            rule,
            next: 0,
        });
        Ok(())
    }

    pub(crate) fn clear_faults(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn calls(&self) -> CallCounts {
        self.calls.clone()
    }

    pub(crate) fn reset_calls(&mut self) {
        self.calls = CallCounts::default();
        for app in self.apps.values_mut() {
            app.tokens.force_refresh_calls = 0;
        }
    }

    // --- code2Session -------------------------------------------------------------------------

    /// Counts a call of `path` for `appid` (as sent, or the access_token's app).
    pub(crate) fn count_call(&mut self, path: &str, appid: Option<&str>) {
        let endpoint = self.calls.endpoints.entry(path.to_owned()).or_default();
        endpoint.total += 1;
        let appid = appid.unwrap_or_default();
        let key = if appid.len() > MAX_ID_LEN {
            "(invalid)".to_owned()
        } else if endpoint.by_appid.contains_key(appid)
            || endpoint.by_appid.len() < MAX_COUNTED_APPIDS
        {
            appid.to_owned()
        } else {
            "(other)".to_owned()
        };
        *endpoint.by_appid.entry(key).or_default() += 1;
    }

    /// The next fault for a call, if any rule matches: code rules first, then app rules, then
    /// rules for every call; queued faults are consumed.
    pub(crate) fn take_fault(&mut self, key: &CallKey<'_>) -> Option<Fault> {
        let matches = |rule: &FaultRule| {
            let target = &rule.target;
            target.appid.as_deref().is_none_or(|a| Some(a) == key.appid)
                && target.code.as_deref().is_none_or(|c| Some(c) == key.code)
                && target.path.as_deref().is_none_or(|p| p == key.path)
        };
        let specificity = |rule: &FaultRule| {
            if rule.target.code.is_some() {
                0
            } else if rule.target.appid.is_some() {
                1
            } else {
                2
            }
        };
        let index = (0..3).find_map(|level| {
            self.rules
                .iter()
                .position(|r| specificity(&r.rule) == level && matches(&r.rule))
        })?;
        let active = self.rules.get_mut(index)?;
        if active.rule.sticky {
            let faults = &active.rule.faults;
            let fault = faults.get(active.next % faults.len().max(1)).cloned();
            active.next = active.next.wrapping_add(1);
            fault
        } else {
            let fault = active.queue.pop_front();
            if active.queue.is_empty() {
                self.rules.remove(index);
            }
            fault
        }
    }

    /// The answer for a fault (not [`Fault::Delay`], which the caller plays by waiting).
    pub(crate) fn fault_answer(&mut self, fault: &Fault, key: &CallKey<'_>) -> Answer {
        match fault {
            Fault::SystemBusy { consume_code } => {
                if *consume_code {
                    self.consume_code_if_valid(key);
                }
                errcode(-1, "system error")
            }
            Fault::RateLimited => errcode(
                45011,
                "api minute-quota reach limit mustslower retry next minute",
            ),
            Fault::HighRisk => errcode(40226, "code blocked"),
            Fault::InvalidCredential => errcode(40125, "invalid appsecret"),
            Fault::Errcode {
                errcode: code,
                errmsg,
            } => Answer::Json(json!({
                "errcode": code,
                "errmsg": errmsg,
            })),
            Fault::NonJson502 => Answer::Raw {
                status: 502,
                content_type: "text/html",
                body: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                       <center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
                    .into(),
            },
            Fault::Http500 => Answer::Raw {
                status: 500,
                content_type: "text/plain",
                body: "Internal Server Error".into(),
            },
            Fault::DropConnection => Answer::Drop,
            // The caller waits, then asks for the normal answer.
            Fault::Delay { .. } => errcode(-1, "system error"),
        }
    }

    /// WeChat's checks of a code exchange (code2Session and the OAuth exchange alike), in its
    /// order: appid, secret, grant_type, code. Returns the app's id, the code and the app.
    fn checked_exchange<'q>(
        &self,
        query: &'q Code2SessionQuery,
    ) -> Result<(String, &'q str, &App), Answer> {
        let Some(appid) = present(&query.appid) else {
            return Err(errcode(41002, "appid missing"));
        };
        let Some(app) = self.apps.get(appid) else {
            return Err(errcode(40013, "invalid appid"));
        };
        let Some(secret) = present(&query.secret) else {
            return Err(errcode(41004, "appsecret missing"));
        };
        if secret != app.secret {
            return Err(errcode(40125, "invalid appsecret"));
        }
        if query.grant_type.as_deref() != Some("authorization_code") {
            return Err(errcode(40002, "invalid grant_type"));
        }
        let Some(code) = present(&query.js_code) else {
            return Err(errcode(41008, "missing code"));
        };
        Ok((appid.to_owned(), code, app))
    }

    /// The normal answer: WeChat's checks in order, then the session.
    pub(crate) fn code2session(&mut self, query: &Code2SessionQuery) -> Answer {
        let (appid, js_code, policy) = match self.checked_exchange(query) {
            Ok((appid, code, app)) => (appid, code, app.policy),
            Err(answer) => return answer,
        };
        let openid = match self.spend_code(
            &appid,
            js_code,
            |p| *p == CodePurpose::Login,
            (40163, "code been used"),
        ) {
            Ok((openid, _)) => openid,
            Err(answer) => return answer,
        };
        let Some(user) = self.users.get(&(appid, openid.clone())) else {
            // Only reachable if users were dropped; WeChat would not know the code either.
            return errcode(40029, "invalid code");
        };
        let Some(session_key) = user.session_key.clone() else {
            return errcode(40029, "invalid code");
        };
        let unionid = user.unionid_for(policy);
        let mut body = json!({ "openid": openid, "session_key": session_key });
        if let (Some(unionid), Some(object)) = (unionid, body.as_object_mut()) {
            object.insert("unionid".into(), Value::String(unionid));
        }
        Answer::Json(body)
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

    fn user_entry(&mut self, appid: &str, openid: &str) -> Result<&mut User, SimError> {
        let key = (appid.to_owned(), openid.to_owned());
        if !self.users.contains_key(&key) && self.users.len() >= MAX_USERS {
            return Err(SimError::Capacity("users"));
        }
        Ok(self.users.entry(key).or_default())
    }

    fn make_room_for_code(&mut self, now: i64) -> Result<(), SimError> {
        if self.codes.len() < MAX_CODES {
            return Ok(());
        }
        self.codes
            .retain(|_, c| now.saturating_sub(c.issued_at_ms) <= CODE_RETENTION_MS);
        if self.codes.len() < MAX_CODES {
            Ok(())
        } else {
            Err(SimError::Capacity("codes"))
        }
    }

    /// Marks the call's code used if it is a valid code of the call's app and endpoint.
    fn consume_code_if_valid(&mut self, key: &CallKey<'_>) {
        let now = self.now_ms();
        let (Some(appid), Some(code)) = (key.appid, key.code) else {
            return;
        };
        let Some(issued) = self.codes.get_mut(code) else {
            return;
        };
        let right_endpoint = match issued.purpose {
            CodePurpose::Login => key.path == CODE2SESSION_PATH,
            CodePurpose::OAuth { .. } => key.path == OAUTH_ACCESS_TOKEN_PATH,
            CodePurpose::Phone { .. } => key.path == PHONE_NUMBER_PATH,
        };
        if right_endpoint && issued.appid == appid && issued.is_fresh(now) {
            issued.used = true;
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

/// The plain profile (`rawData`) and the full plaintext of a getUserInfo answer.
pub(crate) fn user_info_plaintext(
    openid: &str,
    unionid: Option<&str>,
    nick_name: &str,
    watermark_appid: &str,
    timestamp: i64,
) -> (String, Value) {
    let profile = json!({
        "nickName": nick_name,
        "gender": 0,
        "language": "",
        "city": "",
        "province": "",
        "country": "",
        "avatarUrl": GREY_AVATAR,
    });
    let raw_data = profile.to_string();
    let mut full = profile;
    if let Some(object) = full.as_object_mut() {
        object.insert("openId".into(), Value::String(openid.to_owned()));
        if let Some(unionid) = unionid {
            object.insert("unionId".into(), Value::String(unionid.to_owned()));
        }
        object.insert(
            "watermark".into(),
            json!({ "appid": watermark_appid, "timestamp": timestamp }),
        );
    }
    (raw_data, full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CODE2SESSION_PATH;

    fn query(appid: &str, secret: &str, code: &str) -> Code2SessionQuery {
        Code2SessionQuery {
            appid: Some(appid.into()),
            secret: Some(secret.into()),
            js_code: Some(code.into()),
            grant_type: Some("authorization_code".into()),
        }
    }

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

    #[test]
    fn code_works_once_then_40163() {
        let mut state = state_with_app(UnionidPolicy::Always);
        let login = state.login("wx1", Some("o1"), Some("u1")).expect("login");
        let answer = state.code2session(&query("wx1", "s", &login.code));
        assert_eq!(
            answer,
            Answer::Json(
                json!({"openid": "o1", "session_key": login.session_key, "unionid": "u1"})
            )
        );
        let again = state.code2session(&query("wx1", "s", &login.code));
        assert_eq!(errcode_of(&again), Some(40163));
    }

    #[test]
    fn checks_come_in_wechats_order() {
        let mut state = state_with_app(UnionidPolicy::Always);
        let mut q = query("", "s", "c");
        assert_eq!(errcode_of(&state.code2session(&q)), Some(41002));
        q.appid = Some("wx2".into());
        assert_eq!(errcode_of(&state.code2session(&q)), Some(40013));
        q.appid = Some("wx1".into());
        q.secret = None;
        assert_eq!(errcode_of(&state.code2session(&q)), Some(41004));
        q.secret = Some("bad".into());
        assert_eq!(errcode_of(&state.code2session(&q)), Some(40125));
        q.secret = Some("s".into());
        q.grant_type = Some("client_credential".into());
        assert_eq!(errcode_of(&state.code2session(&q)), Some(40002));
        q.grant_type = Some("authorization_code".into());
        q.js_code = None;
        assert_eq!(errcode_of(&state.code2session(&q)), Some(41008));
        q.js_code = Some("nope".into());
        assert_eq!(errcode_of(&state.code2session(&q)), Some(40029));
    }

    #[test]
    fn code_expires_after_five_minutes() {
        let mut state = state_with_app(UnionidPolicy::Always);
        let login = state.login("wx1", Some("o1"), None).expect("login");
        state.advance_clock(Duration::from_secs(CODE_TTL_SECS + 1));
        let answer = state.code2session(&query("wx1", "s", &login.code));
        assert_eq!(errcode_of(&answer), Some(40029));
    }

    #[test]
    fn sticky_rules_cycle_and_queues_drain() {
        let mut state = state_with_app(UnionidPolicy::Always);
        state
            .add_fault_rule(FaultRule {
                target: crate::FaultTarget::any(),
                faults: vec![Fault::RateLimited, Fault::HighRisk],
                sticky: true,
            })
            .expect("rule");
        state
            .add_fault_rule(FaultRule {
                target: crate::FaultTarget::app("wx1"),
                faults: vec![Fault::Http500],
                sticky: false,
            })
            .expect("rule");
        let q = CallKey {
            path: CODE2SESSION_PATH,
            appid: Some("wx1"),
            code: Some("c"),
        };
        assert_eq!(state.take_fault(&q), Some(Fault::Http500));
        assert_eq!(state.take_fault(&q), Some(Fault::RateLimited));
        assert_eq!(state.take_fault(&q), Some(Fault::HighRisk));
        assert_eq!(state.take_fault(&q), Some(Fault::RateLimited));
        state.clear_faults();
        assert_eq!(state.take_fault(&q), None);
    }

    #[test]
    fn path_targets_spare_other_endpoints() {
        let mut state = state_with_app(UnionidPolicy::Always);
        state
            .add_fault_rule(FaultRule {
                target: crate::FaultTarget::app("wx1").at_path(crate::STABLE_TOKEN_PATH),
                faults: vec![Fault::RateLimited],
                sticky: true,
            })
            .expect("rule");
        let mut key = CallKey {
            path: CODE2SESSION_PATH,
            appid: Some("wx1"),
            code: None,
        };
        assert_eq!(state.take_fault(&key), None);
        key.path = crate::STABLE_TOKEN_PATH;
        assert_eq!(state.take_fault(&key), Some(Fault::RateLimited));
    }

    #[test]
    fn a_code_works_only_at_its_endpoint() {
        let mut state = state_with_app(UnionidPolicy::Always);
        let login = state.login("wx1", Some("o1"), None).expect("login");
        let key = CallKey {
            path: OAUTH_ACCESS_TOKEN_PATH,
            appid: Some("wx1"),
            code: Some(&login.code),
        };
        state.consume_code_if_valid(&key);
        let answer = state.code2session(&query("wx1", "s", &login.code));
        assert_eq!(
            errcode_of(&answer),
            None,
            "a fault elsewhere did not spend it"
        );
    }

    #[test]
    fn only_mini_programs_log_in() {
        let mut state = State::default();
        state
            .register_app(
                AppRegistration::new("wxoa", "s", UnionidPolicy::Always)
                    .with_kind(AppKind::OfficialAccount),
            )
            .expect("register");
        assert!(matches!(
            state.login("wxoa", Some("o"), None),
            Err(SimError::WrongAppKind { .. })
        ));
    }

    #[test]
    fn counters_cap_distinct_appids() {
        let mut state = State::default();
        for i in 0..(MAX_COUNTED_APPIDS + 10) {
            state.count_call(CODE2SESSION_PATH, Some(&format!("wx{i}")));
        }
        let calls = state.calls();
        assert_eq!(
            calls.total(CODE2SESSION_PATH),
            (MAX_COUNTED_APPIDS + 10) as u64
        );
        assert_eq!(calls.for_app(CODE2SESSION_PATH, "(other)"), 10);
    }
}
