//! Identifiers that cannot hold invalid values: parse at the edge, then trust the type.

use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The value is empty.
    #[error("{kind} is empty")]
    Empty {
        /// Which identifier.
        kind: &'static str,
    },
    /// The value is longer than allowed.
    #[error("{kind} is longer than {max} characters")]
    TooLong {
        /// Which identifier.
        kind: &'static str,
        /// The limit.
        max: usize,
    },
    /// The value has a character or shape the identifier never has.
    #[error("{kind} is malformed: {expected}")]
    Malformed {
        /// Which identifier.
        kind: &'static str,
        /// What a valid value looks like.
        expected: &'static str,
    },
}

fn check_token_chars(
    kind: &'static str,
    value: &str,
    max: usize,
    allowed: fn(u8) -> bool,
    expected: &'static str,
) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > max {
        return Err(IdError::TooLong { kind, max });
    }
    if !value.bytes().all(allowed) {
        return Err(IdError::Malformed { kind, expected });
    }
    Ok(())
}

fn url_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value.to_owned())
            }
        }
    };
}

string_id!(
    /// A WeChat app's id: `wx` and 16 letters or digits, as WeChat issues them (e.g. `wx4f4bc4dec97d474b`).
    AppId
);
string_id!(
    /// A user's id within one app (`openid`).
    OpenId
);
string_id!(
    /// A user's id across every app bound to one WeChat Open Platform account (`unionid`).
    UnionId
);
string_id!(
    /// wxlink's own opaque, stable id of a person.
    UserId
);
string_id!(
    /// A one-time login code from `wx.login` (or an OAuth redirect), valid five minutes.
    JsCode
);

impl AppId {
    /// Parse an appid: `wx` followed by exactly 16 ASCII letters or digits.
    pub fn parse(value: String) -> Result<Self, IdError> {
        const EXPECTED: &str = "\"wx\" followed by 16 letters or digits";
        let ok = value.len() == 18
            && value.starts_with("wx")
            && value.bytes().skip(2).all(|b| b.is_ascii_alphanumeric());
        if value.is_empty() {
            Err(IdError::Empty { kind: "appid" })
        } else if ok {
            Ok(Self(value))
        } else {
            Err(IdError::Malformed {
                kind: "appid",
                expected: EXPECTED,
            })
        }
    }
}

impl OpenId {
    /// Longest openid accepted; WeChat's are 28 characters.
    pub const MAX_LEN: usize = 128;

    /// Parse an openid: 1 to 128 characters of `A-Z a-z 0-9 - _`.
    pub fn parse(value: String) -> Result<Self, IdError> {
        check_token_chars(
            "openid",
            &value,
            Self::MAX_LEN,
            url_safe,
            "letters, digits, - and _",
        )?;
        Ok(Self(value))
    }
}

impl UnionId {
    /// Longest unionid accepted; WeChat's are 28 characters.
    pub const MAX_LEN: usize = 128;

    /// Parse a unionid: 1 to 128 characters of `A-Z a-z 0-9 - _`.
    pub fn parse(value: String) -> Result<Self, IdError> {
        check_token_chars(
            "unionid",
            &value,
            Self::MAX_LEN,
            url_safe,
            "letters, digits, - and _",
        )?;
        Ok(Self(value))
    }
}

impl UserId {
    /// Parse a user id: 1 to 64 characters of `A-Z a-z 0-9 - _`.
    pub fn parse(value: String) -> Result<Self, IdError> {
        check_token_chars("user_id", &value, 64, url_safe, "letters, digits, - and _")?;
        Ok(Self(value))
    }
}

impl JsCode {
    /// Longest code accepted; WeChat's are 32 characters.
    pub const MAX_LEN: usize = 256;

    /// Parse a login code: 1 to 256 printable ASCII characters without spaces.
    pub fn parse(value: String) -> Result<Self, IdError> {
        check_token_chars(
            "code",
            &value,
            Self::MAX_LEN,
            |b| b.is_ascii_graphic(),
            "printable ASCII without spaces",
        )?;
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appid_must_look_like_wechats() {
        assert!(AppId::parse("wx4f4bc4dec97d474b".into()).is_ok());
        for bad in [
            "",
            "wx4f4bc4dec97d474",
            "wx4f4bc4dec97d474b0",
            "xx4f4bc4dec97d474b",
            "wx4f4bc4dec97d47-b",
        ] {
            assert!(AppId::parse(bad.into()).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn openid_refuses_empty_long_and_odd_characters() {
        assert!(OpenId::parse("oGZUI0egBJY1zhBYw2KhdUfwVJJE".into()).is_ok());
        assert_eq!(
            OpenId::parse(String::new()),
            Err(IdError::Empty { kind: "openid" })
        );
        assert!(matches!(
            OpenId::parse("a".repeat(129)),
            Err(IdError::TooLong { .. })
        ));
        assert!(matches!(
            OpenId::parse("a b".into()),
            Err(IdError::Malformed { .. })
        ));
        assert!(matches!(
            UnionId::parse("ü".into()),
            Err(IdError::Malformed { .. })
        ));
    }

    #[test]
    fn code_length_is_bounded() {
        assert!(JsCode::parse("0a3Xk2000ZqQwQ1v8b300pFSJb4Xk20I".into()).is_ok());
        assert!(matches!(
            JsCode::parse("c".repeat(257)),
            Err(IdError::TooLong { .. })
        ));
        assert!(matches!(
            JsCode::parse("a\nb".into()),
            Err(IdError::Malformed { .. })
        ));
    }
}
