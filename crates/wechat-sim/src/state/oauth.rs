//! The OAuth login of official accounts, mobile apps and websites: the user's consent (a
//! control call), the code exchange, and `sns/userinfo`.

use serde_json::{Value, json};

use super::tokens::{MAX_TOKENS, NOT_LATEST};
use super::{Answer, Code2SessionQuery, CodePurpose, State, errcode, present, random_text};
use crate::model::{ACCESS_TOKEN_TTL_SECS, CODE_TTL_SECS, OAuthCode, OAuthScope, SimError};

const TTL_MS: i64 = ACCESS_TOKEN_TTL_SECS as i64 * 1000;
use super::GREY_AVATAR;

/// A user access_token handed out by the code exchange.
#[derive(Debug)]
pub(super) struct UserToken {
    appid: String,
    openid: String,
    scope: OAuthScope,
    expires_at_ms: i64,
}

/// The query of a `sns/userinfo` call.
#[derive(Debug, Default)]
pub(crate) struct UserInfoQuery {
    pub(crate) access_token: Option<String>,
    pub(crate) openid: Option<String>,
}

impl State {
    /// Plays the user's consent: a fresh five-minute OAuth code for this scope.
    pub(crate) fn oauth_authorize(
        &mut self,
        appid: &str,
        openid: Option<&str>,
        unionid: Option<&str>,
        scope: OAuthScope,
    ) -> Result<OAuthCode, SimError> {
        self.require_kind(appid, &format!("grant {}", scope.as_str()), |kind| {
            kind.allows_scope(scope)
        })?;
        let openid = self.user_for_code(appid, openid, unionid)?;
        Ok(self.issue_oauth_code(appid, openid, scope, false))
    }

    /// Plays a visit of an official account's page in snapshot mode (a page opened from a
    /// Moments share without tapping "使用完整服务"): a fresh `snsapi_base` code of a virtual
    /// user with a fresh openid and no unionid, whose exchange says `is_snapshotuser: 1`.
    pub(crate) fn oauth_snapshot_visit(&mut self, appid: &str) -> Result<OAuthCode, SimError> {
        let scope = OAuthScope::SnsapiBase;
        self.require_kind(appid, "open a snapshot page", |kind| {
            kind == crate::AppKind::OfficialAccount
        })?;
        let openid = self.user_for_code(appid, None, None)?;
        Ok(self.issue_oauth_code(appid, openid, scope, true))
    }

    /// A single-use OAuth code of `openid` for a grant of `scope`.
    fn issue_oauth_code(
        &mut self,
        appid: &str,
        openid: String,
        scope: OAuthScope,
        snapshot: bool,
    ) -> OAuthCode {
        let code = self.issue_code(appid, &openid, CodePurpose::OAuth { scope, snapshot });
        OAuthCode {
            code,
            openid,
            scope,
            expires_in: CODE_TTL_SECS,
        }
    }

    /// `GET /sns/oauth2/access_token`: code2Session's checks in its order, then the tokens.
    /// The query reuses [`Code2SessionQuery`], its `js_code` holding the `code` parameter.
    pub(crate) fn oauth_access_token(&mut self, query: &Code2SessionQuery) -> Answer {
        let (appid, code, policy, in_exchange) = match self.checked_exchange(query) {
            Ok((appid, code, app)) => (appid, code, app.policy, app.unionid_in_exchange),
            Err(answer) => return answer,
        };
        let (openid, purpose) = match self.spend_code(
            &appid,
            code,
            |p| matches!(p, CodePurpose::OAuth { .. }),
            (40163, "code been used"),
        ) {
            Ok(spent) => spent,
            Err(answer) => return answer,
        };
        let CodePurpose::OAuth { scope, snapshot } = purpose else {
            return errcode(40029, "invalid code");
        };
        let now = self.now_ms();
        if self.user_tokens.len() >= MAX_TOKENS {
            self.user_tokens.retain(|_, t| t.expires_at_ms > now);
            if self.user_tokens.len() >= MAX_TOKENS {
                return errcode(-1, "system error");
            }
        }
        let access_token = random_text(88);
        let refresh_token = random_text(88);
        self.user_tokens.insert(
            access_token.clone(),
            UserToken {
                appid: appid.clone(),
                openid: openid.clone(),
                scope,
                expires_at_ms: now + TTL_MS,
            },
        );
        let unionid = self
            .users
            .get(&(appid, openid.clone()))
            .and_then(|user| user.unionid_for(policy))
            .filter(|_| scope.allows_profile() && in_exchange && !snapshot);
        let mut body = json!({
            "access_token": access_token,
            "expires_in": ACCESS_TOKEN_TTL_SECS,
            "refresh_token": refresh_token,
            "openid": openid,
            "scope": scope.as_str(),
            "is_snapshotuser": i64::from(snapshot),
        });
        if let (Some(unionid), Some(object)) = (unionid, body.as_object_mut()) {
            object.insert("unionid".into(), Value::String(unionid));
        }
        Answer::Json(body)
    }

    /// The appid of a user access_token, valid or not, for counters and fault targets.
    pub(crate) fn user_token_appid(&self, token: &Option<String>) -> Option<String> {
        let token = token.as_deref()?;
        self.user_tokens.get(token).map(|t| t.appid.clone())
    }

    /// `GET /sns/userinfo`.
    pub(crate) fn sns_userinfo(&self, query: &UserInfoQuery) -> Answer {
        let Some(token) = present(&query.access_token) else {
            return errcode(41001, "access_token missing");
        };
        let Some(grant) = self.user_tokens.get(token) else {
            return errcode(40001, NOT_LATEST);
        };
        if self.now_ms() >= grant.expires_at_ms {
            return errcode(42001, "access_token expired");
        }
        let Some(openid) = present(&query.openid) else {
            return errcode(41009, "missing openid");
        };
        if openid != grant.openid {
            return errcode(40003, "invalid openid");
        }
        if !grant.scope.allows_profile() {
            return errcode(48001, "api unauthorized");
        }
        let user = self.users.get(&(grant.appid.clone(), grant.openid.clone()));
        let policy = self.apps.get(&grant.appid).map(|app| app.policy);
        let unionid = user
            .zip(policy)
            .and_then(|(user, policy)| user.unionid_for(policy));
        let mut body = json!({
            "openid": grant.openid,
            "nickname": "微信用户",
            "sex": 0,
            "province": "",
            "city": "",
            "country": "",
            "headimgurl": GREY_AVATAR,
            "privilege": [],
        });
        if let (Some(unionid), Some(object)) = (unionid, body.as_object_mut()) {
            object.insert("unionid".into(), Value::String(unionid));
        }
        Answer::Json(body)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::errcode_of;
    use super::*;
    use crate::{AppKind, AppRegistration, UnionidPolicy};

    fn state(kind: AppKind, policy: UnionidPolicy, in_exchange: bool) -> State {
        let mut state = State::default();
        state
            .register_app(
                AppRegistration::new("wxoa", "s", policy)
                    .with_kind(kind)
                    .with_unionid_in_exchange(in_exchange),
            )
            .expect("register");
        state
    }

    fn exchange(state: &mut State, code: &str) -> Answer {
        state.oauth_access_token(&Code2SessionQuery {
            appid: Some("wxoa".into()),
            secret: Some("s".into()),
            js_code: Some(code.into()),
            grant_type: Some("authorization_code".into()),
        })
    }

    fn json(answer: Answer) -> Value {
        match answer {
            Answer::Json(value) => value,
            other => panic!("not json: {other:?}"),
        }
    }

    fn userinfo(state: &State, token: &Value, openid: &str) -> Answer {
        state.sns_userinfo(&UserInfoQuery {
            access_token: token.as_str().map(str::to_owned),
            openid: Some(openid.into()),
        })
    }

    #[test]
    fn userinfo_scope_gives_the_unionid_and_the_profile() {
        let mut state = state(AppKind::OfficialAccount, UnionidPolicy::Always, true);
        let grant = state
            .oauth_authorize("wxoa", Some("o1"), Some("u1"), OAuthScope::SnsapiUserinfo)
            .expect("code");
        let answer = json(exchange(&mut state, &grant.code));
        assert_eq!(answer["openid"], "o1");
        assert_eq!(answer["unionid"], "u1");
        assert_eq!(answer["scope"], "snsapi_userinfo");
        assert_eq!(answer["expires_in"], 7200);
        assert_eq!(answer["is_snapshotuser"], 0);
        let profile = json(userinfo(&state, &answer["access_token"], "o1"));
        assert_eq!(profile["unionid"], "u1");
        assert_eq!(errcode_of(&exchange(&mut state, &grant.code)), Some(40163));
        assert_eq!(
            errcode_of(&userinfo(&state, &answer["access_token"], "o2")),
            Some(40003)
        );
        state.advance_clock(Duration::from_secs(7200));
        assert_eq!(
            errcode_of(&userinfo(&state, &answer["access_token"], "o1")),
            Some(42001)
        );
    }

    #[test]
    fn a_snapshot_page_gives_a_virtual_user() {
        let mut app = state(AppKind::MobileApp, UnionidPolicy::Always, true);
        assert!(matches!(
            app.oauth_snapshot_visit("wxoa"),
            Err(SimError::WrongAppKind { .. })
        ));
        let mut state = state(AppKind::OfficialAccount, UnionidPolicy::Always, true);
        let grant = state.oauth_snapshot_visit("wxoa").expect("code");
        let answer = json(exchange(&mut state, &grant.code));
        assert_eq!(answer["is_snapshotuser"], 1);
        assert_eq!(answer["openid"], grant.openid.as_str());
        assert!(answer.get("unionid").is_none());
    }

    #[test]
    fn base_scope_has_no_unionid_and_no_profile() {
        let mut state = state(AppKind::OfficialAccount, UnionidPolicy::Always, true);
        let grant = state
            .oauth_authorize("wxoa", Some("o1"), Some("u1"), OAuthScope::SnsapiBase)
            .expect("code");
        let answer = json(exchange(&mut state, &grant.code));
        assert!(answer.get("unionid").is_none());
        assert_eq!(
            errcode_of(&userinfo(&state, &answer["access_token"], "o1")),
            Some(48001)
        );
    }

    #[test]
    fn unionid_only_in_userinfo_or_not_at_all() {
        let mut state = state(AppKind::MobileApp, UnionidPolicy::Always, false);
        let grant = state
            .oauth_authorize("wxoa", None, Some("u1"), OAuthScope::SnsapiUserinfo)
            .expect("code");
        let answer = json(exchange(&mut state, &grant.code));
        assert!(answer.get("unionid").is_none());
        let profile = json(userinfo(&state, &answer["access_token"], &grant.openid));
        assert_eq!(profile["unionid"], "u1");

        let mut state = state_unbound();
        let grant = state
            .oauth_authorize("wxoa", Some("o1"), Some("u1"), OAuthScope::SnsapiLogin)
            .expect("code");
        let answer = json(exchange(&mut state, &grant.code));
        assert!(answer.get("unionid").is_none());
        let profile = json(userinfo(&state, &answer["access_token"], "o1"));
        assert!(profile.get("unionid").is_none());
    }

    fn state_unbound() -> State {
        state(AppKind::Website, UnionidPolicy::Never, true)
    }

    #[test]
    fn scopes_must_fit_the_kind_and_codes_their_endpoint() {
        let mut state = state(AppKind::Website, UnionidPolicy::Always, true);
        assert!(matches!(
            state.oauth_authorize("wxoa", None, None, OAuthScope::SnsapiUserinfo),
            Err(SimError::WrongAppKind { .. })
        ));
        assert_eq!(errcode_of(&exchange(&mut state, "nope")), Some(40029));
        let mut mini = super::super::tests::state_with_app(UnionidPolicy::Always);
        assert!(matches!(
            mini.oauth_authorize("wx1", None, None, OAuthScope::SnsapiBase),
            Err(SimError::WrongAppKind { .. })
        ));
    }
}
