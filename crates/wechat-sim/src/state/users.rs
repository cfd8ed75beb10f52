//! The users of each app: following an official account, and what getUserInfo encrypts.

use serde_json::{Value, json};

use super::{State, User, check_id};
use crate::model::SimError;

const MAX_USERS: usize = 100_000;

/// The anonymised avatar WeChat returns since 2022.
pub(super) const GREY_AVATAR: &str = "https://thirdwx.qlogo.cn/mmopen/vi_32/POgEwh4mIHO4nibH0KlMECNjjGxQUq24ZEaGT4poC6icRiccVGKSyXwibcPq4BWmiaIGuG1icwxaQX6grC9VemZoJ8rg/132";

impl State {
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

    pub(super) fn user_entry(&mut self, appid: &str, openid: &str) -> Result<&mut User, SimError> {
        let key = (appid.to_owned(), openid.to_owned());
        if !self.users.contains_key(&key) && self.users.len() >= MAX_USERS {
            return Err(SimError::Capacity("users"));
        }
        Ok(self.users.entry(key).or_default())
    }
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
