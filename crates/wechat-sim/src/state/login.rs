//! `wx.login`'s codes and code2Session: issuing a single-use five-minute code, WeChat's
//! checks of a code exchange in its order, and spending a code (the OAuth and phone number
//! exchanges spend theirs the same way).

use serde_json::{Value, json};

use super::{
    Answer, App, CallKey, CodePurpose, IssuedCode, State, check_id, errcode, present, random_key,
    random_text,
};
use crate::model::{
    AppKind, CODE_TTL_SECS, CODE2SESSION_PATH, Login, OAUTH_ACCESS_TOKEN_PATH, PHONE_NUMBER_PATH,
    SimError,
};

const MAX_CODES: usize = 100_000;
/// Codes older than this are forgotten when room is needed; they would answer 40029 anyway.
const CODE_RETENTION_MS: i64 = 2 * super::CODE_TTL_MS;

/// The query of a code2Session call; absent parameters are `None`.
#[derive(Debug, Default)]
pub(crate) struct Code2SessionQuery {
    pub(crate) appid: Option<String>,
    pub(crate) secret: Option<String>,
    pub(crate) js_code: Option<String>,
    pub(crate) grant_type: Option<String>,
}

impl State {
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
    pub(super) fn user_for_code(
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
    pub(super) fn issue_code(&mut self, appid: &str, openid: &str, purpose: CodePurpose) -> String {
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
    pub(super) fn spend_code(
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

    /// WeChat's checks of a code exchange (code2Session and the OAuth exchange alike), in its
    /// order: appid, secret, grant_type, code. Returns the app's id, the code and the app.
    pub(super) fn checked_exchange<'q>(
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
    pub(super) fn consume_code_if_valid(&mut self, key: &CallKey<'_>) {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{errcode_of, state_with_app};
    use super::*;
    use crate::{AppRegistration, UnionidPolicy};

    fn query(appid: &str, secret: &str, code: &str) -> Code2SessionQuery {
        Code2SessionQuery {
            appid: Some(appid.into()),
            secret: Some(secret.into()),
            js_code: Some(code.into()),
            grant_type: Some("authorization_code".into()),
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
}
