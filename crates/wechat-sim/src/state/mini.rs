//! Mini program calls that take the app's access_token: the phone number exchange and
//! checkSessionKey.

use serde_json::json;

use super::{Answer, CodePurpose, State, errcode, ok_with, present};
use crate::model::{AppKind, CODE_TTL_SECS, PhoneCode, SimError};

/// The longest phone number accepted, in digits.
const MAX_PHONE_DIGITS: usize = 20;

/// The JSON body of a getuserphonenumber call.
#[derive(Debug, Default)]
pub(crate) struct PhoneNumberBody {
    pub(crate) code: Option<String>,
    pub(crate) openid: Option<String>,
}

/// The query of a checksession call.
#[derive(Debug, Default)]
pub(crate) struct CheckSessionQuery {
    pub(crate) access_token: Option<String>,
    pub(crate) openid: Option<String>,
    pub(crate) signature: Option<String>,
    pub(crate) sig_method: Option<String>,
}

impl State {
    /// Plays the getPhoneNumber button: a fresh five-minute phone code for a user's number.
    pub(crate) fn phone_code(
        &mut self,
        appid: &str,
        openid: &str,
        phone_number: &str,
        country_code: Option<&str>,
    ) -> Result<PhoneCode, SimError> {
        self.require_kind(appid, "issue phone codes", |kind| {
            kind == AppKind::MiniProgram
        })?;
        let digits = |what: &str, value: &str, max: usize| {
            if value.is_empty() || value.len() > max || !value.bytes().all(|b| b.is_ascii_digit()) {
                Err(SimError::InvalidInput(format!(
                    "{what} must be 1 to {max} ASCII digits"
                )))
            } else {
                Ok(())
            }
        };
        digits("phone_number", phone_number, MAX_PHONE_DIGITS)?;
        let country_code = country_code.unwrap_or("86");
        digits("country_code", country_code, 4)?;
        let country_code: u16 = country_code
            .parse()
            .map_err(|_| SimError::InvalidInput("country_code is not a number".into()))?;
        let openid = self.user_for_code(appid, Some(openid), None)?;
        let code = self.issue_code(
            appid,
            &openid,
            CodePurpose::Phone {
                pure_phone_number: phone_number.to_owned(),
                country_code,
            },
        );
        Ok(PhoneCode {
            code,
            expires_in: CODE_TTL_SECS,
        })
    }

    /// The app of a valid access_token that must be a mini program's.
    fn mini_program_token(&self, token: &Option<String>) -> Result<String, Answer> {
        let appid = self.check_access_token(token)?;
        match self.apps.get(&appid) {
            Some(app) if app.kind == AppKind::MiniProgram => Ok(appid),
            _ => Err(errcode(48001, "api unauthorized")),
        }
    }

    /// `POST /wxa/business/getuserphonenumber?access_token=…`.
    pub(crate) fn phone_number(
        &mut self,
        token: &Option<String>,
        body: &PhoneNumberBody,
    ) -> Answer {
        let appid = match self.mini_program_token(token) {
            Ok(appid) => appid,
            Err(answer) => return answer,
        };
        let Some(code) = present(&body.code) else {
            return errcode(41008, "missing code");
        };
        // A given openid must be the code's user; the code is not spent by a mismatch.
        if let Some(openid) = body.openid.as_deref() {
            let owner = self
                .codes
                .get(code)
                .filter(|c| c.appid == appid && matches!(c.purpose, CodePurpose::Phone { .. }))
                .map(|c| c.openid.as_str());
            if owner.is_some_and(|owner| owner != openid) {
                return errcode(40003, "invalid openid");
            }
        }
        // WeChat answers a used phone code like an unknown one.
        let (_, purpose) = match self.spend_code(
            &appid,
            code,
            |p| matches!(p, CodePurpose::Phone { .. }),
            (40029, "invalid code"),
        ) {
            Ok(spent) => spent,
            Err(answer) => return answer,
        };
        let CodePurpose::Phone {
            pure_phone_number,
            country_code,
        } = purpose
        else {
            return errcode(40029, "invalid code");
        };
        let phone_number = if country_code == 86 {
            pure_phone_number.clone()
        } else {
            format!("+{country_code}{pure_phone_number}")
        };
        ok_with(json!({
            "phone_info": {
                "phoneNumber": phone_number,
                "purePhoneNumber": pure_phone_number,
                "countryCode": country_code,
                "watermark": { "timestamp": self.now_ms() / 1000, "appid": appid },
            }
        }))
    }

    /// `GET /wxa/checksession`: errcode 0 when the signature is made with the user's current
    /// session key, 87009 otherwise.
    pub(crate) fn check_session(&self, query: &CheckSessionQuery) -> Answer {
        let appid = match self.mini_program_token(&query.access_token) {
            Ok(appid) => appid,
            Err(answer) => return answer,
        };
        if query.sig_method.as_deref() != Some("hmac_sha256") {
            return errcode(87008, "invalid sig_method");
        }
        let Some(openid) = present(&query.openid) else {
            return errcode(41009, "missing openid");
        };
        let Some(user) = self.users.get(&(appid, openid.to_owned())) else {
            return errcode(40003, "invalid openid");
        };
        let valid = match (&user.session_key, present(&query.signature)) {
            (Some(key), Some(signature)) => {
                wxlink_crypto::check_session_signature(key).eq_ignore_ascii_case(signature)
            }
            _ => false,
        };
        if valid {
            ok_with(json!({}))
        } else {
            errcode(87009, "invalid signature")
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::StableTokenBody;
    use super::super::tests::{errcode_of, state_with_app};
    use super::*;
    use crate::UnionidPolicy;

    fn token(state: &mut State) -> Option<String> {
        let answer = state.stable_token(&StableTokenBody {
            grant_type: Some("client_credential".into()),
            appid: Some("wx1".into()),
            secret: Some("s".into()),
            force_refresh: false,
        });
        match answer {
            Answer::Json(value) => value["access_token"].as_str().map(str::to_owned),
            _ => None,
        }
    }

    fn phone_body(code: &str, openid: Option<&str>) -> PhoneNumberBody {
        PhoneNumberBody {
            code: Some(code.into()),
            openid: openid.map(str::to_owned),
        }
    }

    #[test]
    fn phone_code_gives_the_number_once() {
        let mut state = state_with_app(UnionidPolicy::Always);
        let token = token(&mut state);
        let code = state
            .phone_code("wx1", "o1", "13800138000", None)
            .expect("code")
            .code;
        let Answer::Json(answer) = state.phone_number(&token, &phone_body(&code, Some("o1")))
        else {
            panic!("not json")
        };
        assert_eq!(answer["errcode"], 0);
        assert_eq!(answer["errmsg"], "ok");
        let info = &answer["phone_info"];
        assert_eq!(info["phoneNumber"], "13800138000");
        assert_eq!(info["purePhoneNumber"], "13800138000");
        assert_eq!(info["countryCode"], Value::from(86));
        assert_eq!(info["watermark"]["appid"], "wx1");
        let again = state.phone_number(&token, &phone_body(&code, None));
        assert_eq!(errcode_of(&again), Some(40029));
    }

    #[test]
    fn foreign_numbers_and_openid_checks() {
        let mut state = state_with_app(UnionidPolicy::Always);
        let token = token(&mut state);
        let code = state
            .phone_code("wx1", "o1", "6505550100", Some("1"))
            .expect("code")
            .code;
        let mismatch = state.phone_number(&token, &phone_body(&code, Some("o2")));
        assert_eq!(errcode_of(&mismatch), Some(40003));
        let Answer::Json(answer) = state.phone_number(&token, &phone_body(&code, None)) else {
            panic!("not json")
        };
        assert_eq!(answer["phone_info"]["phoneNumber"], "+16505550100");
        assert_eq!(answer["phone_info"]["countryCode"], Value::from(1));
        assert!(matches!(
            state.phone_code("wx1", "o1", "12ab", None),
            Err(SimError::InvalidInput(_))
        ));
        let missing = state.phone_number(&token, &PhoneNumberBody::default());
        assert_eq!(errcode_of(&missing), Some(41008));
        assert_eq!(
            errcode_of(&state.phone_number(&Some("bad".into()), &phone_body(&code, None))),
            Some(40001)
        );
    }

    #[test]
    fn checksession_knows_the_current_key() {
        let mut state = state_with_app(UnionidPolicy::Always);
        let token = token(&mut state);
        let first = state.login("wx1", Some("o1"), None).expect("login");
        let query = |key: &str, method: &str| CheckSessionQuery {
            access_token: token.clone(),
            openid: Some("o1".into()),
            signature: Some(wxlink_crypto::check_session_signature(key)),
            sig_method: Some(method.into()),
        };
        assert_eq!(
            state.check_session(&query(&first.session_key, "hmac_sha256")),
            Answer::Json(json!({"errcode": 0, "errmsg": "ok"}))
        );
        assert_eq!(
            errcode_of(&state.check_session(&query(&first.session_key, "md5"))),
            Some(87008)
        );
        let second = state.login("wx1", Some("o1"), None).expect("login");
        assert_eq!(
            errcode_of(&state.check_session(&query(&first.session_key, "hmac_sha256"))),
            Some(87009)
        );
        assert_eq!(
            errcode_of(&state.check_session(&query(&second.session_key, "hmac_sha256"))),
            Some(0)
        );
        let mut unknown = query(&second.session_key, "hmac_sha256");
        unknown.openid = Some("nobody".into());
        assert_eq!(errcode_of(&state.check_session(&unknown)), Some(40003));
    }
}
