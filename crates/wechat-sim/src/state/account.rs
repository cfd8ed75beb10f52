//! An official account's user management: `GET /cgi-bin/user/info`, which tells a follower's
//! unionid when the account is bound to an Open Platform account.

use serde_json::{Value, json};

use super::{Answer, State, errcode, present};
use crate::model::AppKind;

/// The query of a `cgi-bin/user/info` call (`lang` only picks the language of names, which
/// WeChat no longer returns, so it is not read).
#[derive(Debug, Default)]
pub(crate) struct FollowerQuery {
    pub(crate) access_token: Option<String>,
    pub(crate) openid: Option<String>,
}

impl State {
    /// `GET /cgi-bin/user/info`: a follower's `subscribe: 1` record, a known non-follower's
    /// `subscribe: 0` with only the openid, 40003 for an openid the account does not know.
    pub(crate) fn follower_info(&self, query: &FollowerQuery) -> Answer {
        let appid = match self.check_access_token(&query.access_token) {
            Ok(appid) => appid,
            Err(answer) => return answer,
        };
        let Some(app) = self
            .apps
            .get(&appid)
            .filter(|app| app.kind == AppKind::OfficialAccount)
        else {
            return errcode(48001, "api unauthorized");
        };
        let Some(openid) = present(&query.openid) else {
            return errcode(40003, "invalid openid");
        };
        let Some(user) = self.users.get(&(appid.clone(), openid.to_owned())) else {
            return errcode(40003, "invalid openid");
        };
        if !user.following {
            return Answer::Json(json!({ "subscribe": 0, "openid": openid }));
        }
        // Since 2021-12-27 WeChat no longer returns nickname and avatar here.
        let mut body = json!({
            "subscribe": 1,
            "openid": openid,
            "language": "zh_CN",
            "subscribe_time": user.followed_at_s,
            "remark": "",
            "groupid": 0,
            "tagid_list": [],
            "subscribe_scene": "ADD_SCENE_OTHERS",
            "qr_scene": 0,
            "qr_scene_str": "",
        });
        if let (Some(unionid), Some(object)) = (user.unionid_for(app.policy), body.as_object_mut())
        {
            object.insert("unionid".into(), Value::String(unionid));
        }
        Answer::Json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::super::TokenQuery;
    use super::super::tests::{errcode_of, state_with_app};
    use super::*;
    use crate::{AppRegistration, UnionidPolicy};

    fn state(policy: UnionidPolicy) -> (State, Option<String>) {
        let mut state = State::default();
        state
            .register_app(
                AppRegistration::new("wxoa", "s", policy).with_kind(AppKind::OfficialAccount),
            )
            .expect("register");
        let answer = state.classic_token(&TokenQuery {
            grant_type: Some("client_credential".into()),
            appid: Some("wxoa".into()),
            secret: Some("s".into()),
        });
        let token = match answer {
            Answer::Json(value) => value["access_token"].as_str().map(str::to_owned),
            _ => None,
        };
        (state, token)
    }

    fn info(state: &State, token: &Option<String>, openid: &str) -> Answer {
        state.follower_info(&FollowerQuery {
            access_token: token.clone(),
            openid: Some(openid.into()),
        })
    }

    /// `o1` follows the account (with unionid `u1`, if the account tells it): its info.
    fn follow(state: &mut State, token: &Option<String>) -> Value {
        state
            .set_following("wxoa", "o1", true, Some("u1"))
            .expect("follow");
        let Answer::Json(answer) = info(state, token, "o1") else {
            panic!("not json")
        };
        answer
    }

    #[test]
    fn a_follower_of_a_bound_account_has_a_unionid() {
        let (mut state, token) = state(UnionidPolicy::Always);
        let answer = follow(&mut state, &token);
        assert_eq!(answer["subscribe"], 1);
        assert_eq!(answer["openid"], "o1");
        assert_eq!(answer["unionid"], "u1");
        assert!(answer["subscribe_time"].as_i64().is_some_and(|t| t > 0));
        state
            .set_following("wxoa", "o1", false, None)
            .expect("unfollow");
        assert_eq!(
            info(&state, &token, "o1"),
            Answer::Json(json!({ "subscribe": 0, "openid": "o1" }))
        );
        assert_eq!(errcode_of(&info(&state, &token, "nobody")), Some(40003));
        assert_eq!(errcode_of(&info(&state, &None, "o1")), Some(41001));
    }

    #[test]
    fn unbound_accounts_and_mini_programs() {
        let (mut state, token) = state(UnionidPolicy::Never);
        let answer = follow(&mut state, &token);
        assert_eq!(answer["subscribe"], 1);
        assert!(answer.get("unionid").is_none());
        let mut mini = state_with_app(UnionidPolicy::Always);
        let answer = mini.classic_token(&TokenQuery {
            grant_type: Some("client_credential".into()),
            appid: Some("wx1".into()),
            secret: Some("s".into()),
        });
        let Answer::Json(value) = answer else {
            panic!("not json")
        };
        let token = value["access_token"].as_str().map(str::to_owned);
        mini.set_following("wx1", "o1", true, None).expect("follow");
        assert_eq!(errcode_of(&info(&mini, &token, "o1")), Some(48001));
    }
}
