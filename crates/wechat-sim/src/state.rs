//! The simulator's state and every rule of WeChat it plays, as plain functions over that state.
//! Nothing here does I/O or awaits; callers hold the lock only for one of these calls.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::prelude::{BASE64_STANDARD, Engine as _};
use rand::Rng as _;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use crate::model::{
    AppRegistration, CODE_TTL_SECS, CallCounts, Fault, FaultRule, Login, SimError, UnionidPolicy,
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
}

#[derive(Debug, Default)]
struct User {
    unionid: Option<String>,
    following: bool,
    session_key: Option<String>,
}

#[derive(Debug)]
struct IssuedCode {
    appid: String,
    openid: String,
    issued_at_ms: i64,
    used: bool,
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
}

/// What code2Session answers.
#[derive(Debug, PartialEq)]
pub(crate) enum Answer {
    /// HTTP 200, `Content-Type: text/plain`, this JSON.
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
        self.apps.insert(
            app.appid,
            App {
                secret: app.secret,
                policy: app.unionid_policy,
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
        self.require_app(appid)?;
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
        // wx.login makes a new session key and the previous one stops working.
        let session_key = random_key();
        user.session_key = Some(session_key.clone());
        let code = random_text(32);
        self.codes.insert(
            code.clone(),
            IssuedCode {
                appid: appid.to_owned(),
                openid: openid.clone(),
                issued_at_ms: now,
                used: false,
            },
        );
        Ok(Login {
            code,
            openid,
            session_key,
            expires_in: CODE_TTL_SECS,
        })
    }

    pub(crate) fn set_following(
        &mut self,
        appid: &str,
        openid: &str,
        following: bool,
    ) -> Result<(), SimError> {
        self.require_app(appid)?;
        check_id("openid", openid)?;
        self.user_entry(appid, openid)?.following = following;
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
            if let Fault::Delay { ms } = fault {
                if *ms > MAX_DELAY_MS {
                    return Err(SimError::InvalidInput(format!(
                        "a delay is at most {MAX_DELAY_MS} ms"
                    )));
                }
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
    }

    // --- code2Session -------------------------------------------------------------------------

    /// Counts a call of `path` for `appid` (as sent).
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
    pub(crate) fn take_fault(&mut self, query: &Code2SessionQuery) -> Option<Fault> {
        let appid = query.appid.as_deref();
        let code = query.js_code.as_deref();
        let matches = |rule: &FaultRule| {
            rule.target
                .appid
                .as_deref()
                .is_none_or(|a| Some(a) == appid)
                && rule.target.code.as_deref().is_none_or(|c| Some(c) == code)
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
    pub(crate) fn fault_answer(&mut self, fault: &Fault, query: &Code2SessionQuery) -> Answer {
        match fault {
            Fault::SystemBusy { consume_code } => {
                if *consume_code {
                    self.consume_code_if_valid(query);
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

    /// The normal answer: WeChat's checks in order, then the session.
    pub(crate) fn code2session(&mut self, query: &Code2SessionQuery) -> Answer {
        let Some(appid) = present(&query.appid) else {
            return errcode(41002, "appid missing");
        };
        let Some(app) = self.apps.get(appid) else {
            return errcode(40013, "invalid appid");
        };
        let Some(secret) = present(&query.secret) else {
            return errcode(41004, "appsecret missing");
        };
        if secret != app.secret {
            return errcode(40125, "invalid appsecret");
        }
        if query.grant_type.as_deref() != Some("authorization_code") {
            return errcode(40002, "invalid grant_type");
        }
        let Some(js_code) = present(&query.js_code) else {
            return errcode(41008, "missing code");
        };
        let policy = app.policy;
        let now = self.now_ms();
        let Some(code) = self.codes.get_mut(js_code).filter(|c| c.appid == appid) else {
            return errcode(40029, "invalid code");
        };
        if now.saturating_sub(code.issued_at_ms) > CODE_TTL_MS {
            return errcode(40029, "invalid code");
        }
        if code.used {
            return errcode(40163, "code been used");
        }
        code.used = true;
        let key = (code.appid.clone(), code.openid.clone());
        let Some(user) = self.users.get(&key) else {
            // Only reachable if users were dropped; WeChat would not know the code either.
            return errcode(40029, "invalid code");
        };
        let Some(session_key) = user.session_key.clone() else {
            return errcode(40029, "invalid code");
        };
        let unionid = match policy {
            UnionidPolicy::Always => user.unionid.clone(),
            UnionidPolicy::Never => None,
            UnionidPolicy::WhenFollowing => user.unionid.clone().filter(|_| user.following),
        };
        let mut body = json!({ "openid": key.1, "session_key": session_key });
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

    fn consume_code_if_valid(&mut self, query: &Code2SessionQuery) {
        let now = self.now_ms();
        let (Some(appid), Some(js_code)) = (query.appid.as_deref(), query.js_code.as_deref())
        else {
            return;
        };
        if let Some(code) = self.codes.get_mut(js_code) {
            if code.appid == appid && now.saturating_sub(code.issued_at_ms) <= CODE_TTL_MS {
                code.used = true;
            }
        }
    }
}

/// A query parameter that is present and not empty.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

/// An errcode answer with WeChat's `, rid: …` suffix.
fn errcode(code: i64, message: &str) -> Answer {
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

    fn state_with_app(policy: UnionidPolicy) -> State {
        let mut state = State::default();
        state
            .register_app(AppRegistration {
                appid: "wx1".into(),
                secret: "s".into(),
                unionid_policy: policy,
            })
            .expect("register");
        state
    }

    fn errcode_of(answer: &Answer) -> Option<i64> {
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
        let q = query("wx1", "s", "c");
        assert_eq!(state.take_fault(&q), Some(Fault::Http500));
        assert_eq!(state.take_fault(&q), Some(Fault::RateLimited));
        assert_eq!(state.take_fault(&q), Some(Fault::HighRisk));
        assert_eq!(state.take_fault(&q), Some(Fault::RateLimited));
        state.clear_faults();
        assert_eq!(state.take_fault(&q), None);
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
