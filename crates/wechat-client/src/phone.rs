//! The phone number behind a mini program's getPhoneNumber button.

use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::client::{Call, unexpected};
use crate::endpoint::Endpoint;
use crate::{AccessToken, Error, WeChatClient};

/// The user's phone number, as `getuserphonenumber` returns it.
///
/// Its `Debug` output masks the middle of the numbers (`138****8000`), so that logging it does
/// not spread personal data.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneInfo {
    /// The number with its country calling code for numbers outside China (`phoneNumber`).
    pub phone_number: String,
    /// The number without country calling code (`purePhoneNumber`).
    pub pure_phone_number: String,
    /// The country calling code, e.g. `86` (`countryCode`; WeChat's table says string, its
    /// example shows a number, and both are accepted).
    pub country_code: String,
    /// Which app and when the number was issued for.
    pub watermark: PhoneWatermark,
}

/// The watermark of a [`PhoneInfo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneWatermark {
    /// The mini program the number was issued for.
    pub appid: String,
    /// When, in Unix seconds.
    pub timestamp: i64,
}

impl fmt::Debug for PhoneInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneInfo")
            .field("phone_number", &mask(&self.phone_number))
            .field("pure_phone_number", &mask(&self.pure_phone_number))
            .field("country_code", &self.country_code)
            .field("watermark", &self.watermark)
            .finish()
    }
}

/// The first three and last four characters of a number, the rest as `*`; all `*` when short.
fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < 3 || i >= chars.len() - 4 {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct RawAnswer {
    #[serde(default)]
    phone_info: Option<RawPhoneInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPhoneInfo {
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    pure_phone_number: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    country_code: Option<String>,
    #[serde(default)]
    watermark: Option<RawWatermark>,
}

#[derive(Deserialize)]
struct RawWatermark {
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    timestamp: Option<i64>,
}

/// A JSON string or number, as text.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient {
        Text(String),
        Integer(i64),
    }
    Ok(Option::<Lenient>::deserialize(d)?.map(|value| match value {
        Lenient::Text(text) => text,
        Lenient::Integer(number) => number.to_string(),
    }))
}

impl WeChatClient {
    /// Exchanges the code of a mini program's getPhoneNumber button for the user's phone number:
    /// `POST {api_base}/wxa/business/getuserphonenumber?access_token=…` with the JSON body
    /// `{"code"}` or `{"code","openid"}` (WeChat then checks that code and openid belong
    /// together).
    ///
    /// The code works once, so only connection failures before anything was sent are retried;
    /// errcode -1 is returned at once as [`Error::SystemBusy`].
    ///
    /// # Errors
    ///
    /// [`Error::AccessTokenInvalid`] (40001, 40014, 42001: get the current token and retry
    /// once, with a new code if the user must tap again), [`Error::InvalidCode`] (40029, also
    /// for a code already used), [`Error::RateLimited`] (45011),
    /// [`Error::InvalidCredential`] (40013), [`Error::SystemBusy`] (-1), [`Error::Api`] for
    /// other errcodes (e.g. 40003 when the openid does not match), [`Error::UnexpectedAnswer`]
    /// without `phone_info` or its numbers, and the transport errors of every call.
    pub async fn get_phone_number(
        &self,
        access_token: &AccessToken,
        code: &str,
        openid: Option<&str>,
    ) -> Result<PhoneInfo, Error> {
        let body = match openid {
            Some(openid) => json!({ "code": code, "openid": openid }),
            None => json!({ "code": code }),
        };
        let raw: RawAnswer = self
            .execute(Call {
                endpoint: Endpoint::PhoneNumber,
                query: vec![("access_token", access_token.expose_secret())],
                body: Some(body),
                secrets: vec![access_token.expose_secret(), code],
                appid: None,
            })
            .await?;
        let info = raw
            .phone_info
            .ok_or_else(|| unexpected("errcode 0 without phone_info"))?;
        let phone_number = info
            .phone_number
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unexpected("phone_info without phoneNumber"))?;
        let pure_phone_number = info
            .pure_phone_number
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unexpected("phone_info without purePhoneNumber"))?;
        let watermark = info.watermark.unwrap_or(RawWatermark {
            appid: None,
            timestamp: None,
        });
        Ok(PhoneInfo {
            phone_number,
            pure_phone_number,
            country_code: info.country_code.unwrap_or_default(),
            watermark: PhoneWatermark {
                appid: watermark.appid.unwrap_or_default(),
                timestamp: watermark.timestamp.unwrap_or_default(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_code_is_read_from_a_number_or_a_string() {
        for (json, expected) in [
            (r#"{"countryCode":86}"#, Some("86")),
            (r#"{"countryCode":"86"}"#, Some("86")),
            (r#"{"countryCode":null}"#, None),
            (r#"{}"#, None),
        ] {
            let info: RawPhoneInfo = serde_json::from_str(json).expect(json);
            assert_eq!(info.country_code.as_deref(), expected, "{json}");
        }
        assert!(serde_json::from_str::<RawPhoneInfo>(r#"{"countryCode":[86]}"#).is_err());
    }

    #[test]
    fn debug_masks_the_numbers() {
        let info = PhoneInfo {
            phone_number: "+8613800138000".into(),
            pure_phone_number: "13800138000".into(),
            country_code: "86".into(),
            watermark: PhoneWatermark {
                appid: "wx1".into(),
                timestamp: 1,
            },
        };
        let debug = format!("{info:?}");
        assert!(!debug.contains("13800138000"), "{debug}");
        assert!(debug.contains("138****8000"), "{debug}");
        assert!(debug.contains("+86*******8000"), "{debug}");
        assert_eq!(mask("1234"), "****");
    }
}
