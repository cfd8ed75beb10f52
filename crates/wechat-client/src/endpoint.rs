//! What each WeChat call is, for the shared machinery: its path, which failures may be retried,
//! and how its errcodes read.
//!
//! Retries follow one rule: a request is sent again only if sending it twice cannot do harm.
//! A single-use code is spent by WeChat's first look at it, and a forced token refresh
//! invalidates the token every other node uses, so those calls are retried only after failures
//! that prove WeChat never saw the request (a connection that could not be made).
//! code2Session keeps its historic retry of errcode -1, whose second answer is then reported as
//! [`Error::CodeConsumedByRetry`] when the code turns out to be spent.

use crate::Error;
use crate::error::{ACCESS_TOKEN_ERRORS, SCOPE_UNAUTHORIZED};

/// WeChat's `errcode` for checksession's "invalid signature": the session key is not current.
pub(crate) const INVALID_SIGNATURE: i64 = 87009;

/// One of the WeChat calls this client makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `GET sns/jscode2session`.
    Code2Session,
    /// `GET sns/oauth2/access_token`.
    OAuthAccessToken,
    /// `GET sns/userinfo`.
    SnsUserInfo,
    /// `POST cgi-bin/stable_token`.
    StableToken {
        /// Whether the call forces a new token (and kills the current one).
        force_refresh: bool,
    },
    /// `POST wxa/business/getuserphonenumber`.
    PhoneNumber,
    /// `GET wxa/checksession`.
    CheckSession,
}

impl Endpoint {
    /// The call's name in logs and spans.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Code2Session => "code2session",
            Self::OAuthAccessToken => "oauth2_access_token",
            Self::SnsUserInfo => "sns_userinfo",
            Self::StableToken { .. } => "stable_token",
            Self::PhoneNumber => "get_phone_number",
            Self::CheckSession => "check_session_key",
        }
    }

    /// The path segments after the API base.
    pub(crate) fn path(self) -> &'static [&'static str] {
        match self {
            Self::Code2Session => &["sns", "jscode2session"],
            Self::OAuthAccessToken => &["sns", "oauth2", "access_token"],
            Self::SnsUserInfo => &["sns", "userinfo"],
            Self::StableToken { .. } => &["cgi-bin", "stable_token"],
            Self::PhoneNumber => &["wxa", "business", "getuserphonenumber"],
            Self::CheckSession => &["wxa", "checksession"],
        }
    }

    /// Whether the request spends a single-use code, so that a retry meeting 40029 or 40163
    /// may be meeting the client's own earlier attempt.
    pub(crate) fn spends_code(self) -> bool {
        matches!(
            self,
            Self::Code2Session | Self::OAuthAccessToken | Self::PhoneNumber
        )
    }

    /// Whether sending the request twice has the effect of sending it once.
    fn is_idempotent(self) -> bool {
        matches!(
            self,
            Self::SnsUserInfo
                | Self::StableToken {
                    force_refresh: false
                }
                | Self::CheckSession
        )
    }

    /// Whether errcode -1 is retried.
    pub(crate) fn retries_system_busy(self) -> bool {
        self.is_idempotent() || self == Self::Code2Session
    }

    /// Whether a connection that failed after the request was sent is retried.
    pub(crate) fn retries_after_sending(self) -> bool {
        self.is_idempotent()
    }

    /// Whether the call is authenticated by an access_token (so 40001 is about the token).
    fn takes_access_token(self) -> bool {
        matches!(
            self,
            Self::SnsUserInfo | Self::PhoneNumber | Self::CheckSession
        )
    }

    /// Whether a non-zero errcode is an answer of the call rather than a failure.
    pub(crate) fn answers_with(self, errcode: i64) -> bool {
        self == Self::CheckSession && errcode == INVALID_SIGNATURE
    }

    /// The error for a non-zero errcode of this call.
    pub(crate) fn error(self, errcode: i64, errmsg: String) -> Error {
        if self.takes_access_token() && ACCESS_TOKEN_ERRORS.contains(&errcode) {
            return Error::AccessTokenInvalid { errcode, errmsg };
        }
        if self == Self::SnsUserInfo && errcode == SCOPE_UNAUTHORIZED {
            return Error::ScopeUnauthorized;
        }
        Error::from_errcode(errcode, errmsg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Endpoint; 7] = [
        Endpoint::Code2Session,
        Endpoint::OAuthAccessToken,
        Endpoint::SnsUserInfo,
        Endpoint::StableToken {
            force_refresh: false,
        },
        Endpoint::StableToken {
            force_refresh: true,
        },
        Endpoint::PhoneNumber,
        Endpoint::CheckSession,
    ];

    #[test]
    fn a_spent_code_or_a_forced_refresh_is_never_resent_after_an_answer() {
        for endpoint in ALL {
            let harmful = endpoint.spends_code()
                || endpoint
                    == Endpoint::StableToken {
                        force_refresh: true,
                    };
            assert_eq!(endpoint.retries_after_sending(), !harmful, "{endpoint:?}");
            if harmful && endpoint != Endpoint::Code2Session {
                assert!(!endpoint.retries_system_busy(), "{endpoint:?}");
            }
        }
        assert!(Endpoint::Code2Session.retries_system_busy());
    }

    #[test]
    fn errcode_40001_depends_on_the_credential() {
        let error = |endpoint: Endpoint, errcode| endpoint.error(errcode, String::new());
        for endpoint in [
            Endpoint::Code2Session,
            Endpoint::OAuthAccessToken,
            Endpoint::StableToken {
                force_refresh: false,
            },
        ] {
            assert!(matches!(
                error(endpoint, 40001),
                Error::InvalidCredential { errcode: 40001, .. }
            ));
            assert!(matches!(
                error(endpoint, 42001),
                Error::Api { errcode: 42001, .. }
            ));
        }
        for endpoint in [
            Endpoint::SnsUserInfo,
            Endpoint::PhoneNumber,
            Endpoint::CheckSession,
        ] {
            for errcode in [40001, 40014, 42001] {
                assert!(error(endpoint, errcode).is_access_token_invalid());
            }
            assert!(matches!(
                error(endpoint, 40013),
                Error::InvalidCredential { .. }
            ));
        }
    }

    #[test]
    fn scope_unauthorized_only_on_userinfo() {
        assert!(matches!(
            Endpoint::SnsUserInfo.error(48001, String::new()),
            Error::ScopeUnauthorized
        ));
        assert!(matches!(
            Endpoint::PhoneNumber.error(48001, String::new()),
            Error::Api { errcode: 48001, .. }
        ));
        assert!(Endpoint::CheckSession.answers_with(87009));
        assert!(!Endpoint::PhoneNumber.answers_with(87009));
    }
}
