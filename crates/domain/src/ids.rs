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

/// The characters an identifier is written in, said three ways that must agree: the parser's
/// test of a byte, the regex character class a JSON Schema publishes, and the words of an error.
#[derive(Debug, Clone, Copy)]
pub struct Alphabet {
    /// Whether a byte is one of its characters (all of them are ASCII).
    pub contains: fn(u8) -> bool,
    /// The same characters as a regex character class.
    pub class: &'static str,
    /// The same characters in words.
    pub described: &'static str,
}

impl Alphabet {
    /// URL-safe base64's characters: openids, unionids and user ids.
    pub const URL_SAFE: Alphabet = Alphabet {
        contains: |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_',
        class: "[A-Za-z0-9_-]",
        described: "letters, digits, - and _",
    };

    /// ASCII letters and digits: the part of an appid after `wx`.
    pub const ALPHANUMERIC: Alphabet = Alphabet {
        contains: |b| b.is_ascii_alphanumeric(),
        class: "[0-9A-Za-z]",
        described: "letters or digits",
    };

    /// Printable ASCII without the space: login codes.
    pub const PRINTABLE: Alphabet = Alphabet {
        contains: |b| b.is_ascii_graphic(),
        class: "[!-~]",
        described: "printable ASCII without spaces",
    };
}

/// An identifier's grammar as a JSON Schema states it: an anchored `pattern` (ECMA-262, in the
/// part every regex dialect reads alike) and the length in characters. Made from the constants
/// the identifier's parser checks, so the HTTP API's published schemas cannot drift from what
/// the parsers accept; a property test of the api crate holds `/openapi.json` to the parsers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grammar {
    /// The anchored regular expression.
    pub pattern: String,
    /// The fewest characters.
    pub min_length: usize,
    /// The most characters.
    pub max_length: usize,
}

impl Grammar {
    /// 1 to `max` characters of `alphabet`.
    fn of(alphabet: Alphabet, max: usize) -> Self {
        Self {
            pattern: format!("^{}+$", alphabet.class),
            min_length: 1,
            max_length: max,
        }
    }
}

/// Refuse a value that is not 1 to `max` characters of `alphabet`.
fn check_token_chars(
    kind: &'static str,
    value: &str,
    max: usize,
    alphabet: Alphabet,
) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > max {
        return Err(IdError::TooLong { kind, max });
    }
    if !value.bytes().all(alphabet.contains) {
        return Err(IdError::Malformed {
            kind,
            expected: alphabet.described,
        });
    }
    Ok(())
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
    /// What every appid starts with.
    pub const PREFIX: &str = "wx";
    /// How many characters of [`Alphabet::ALPHANUMERIC`] follow the prefix.
    pub const SUFFIX_LEN: usize = 16;

    /// Parse an appid: `wx` followed by exactly 16 ASCII letters or digits.
    pub fn parse(value: String) -> Result<Self, IdError> {
        const EXPECTED: &str = "\"wx\" followed by 16 letters or digits";
        let ok = value.len() == Self::PREFIX.len() + Self::SUFFIX_LEN
            && value.starts_with(Self::PREFIX)
            && value
                .bytes()
                .skip(Self::PREFIX.len())
                .all(Alphabet::ALPHANUMERIC.contains);
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

    /// The grammar [`AppId::parse`] checks.
    pub fn grammar() -> Grammar {
        let len = Self::PREFIX.len() + Self::SUFFIX_LEN;
        Grammar {
            pattern: format!(
                "^{}{}{{{}}}$",
                Self::PREFIX,
                Alphabet::ALPHANUMERIC.class,
                Self::SUFFIX_LEN
            ),
            min_length: len,
            max_length: len,
        }
    }
}

impl OpenId {
    /// Longest openid accepted; WeChat's are 28 characters.
    pub const MAX_LEN: usize = 128;

    /// Parse an openid: 1 to 128 characters of `A-Z a-z 0-9 - _`.
    pub fn parse(value: String) -> Result<Self, IdError> {
        check_token_chars("openid", &value, Self::MAX_LEN, Alphabet::URL_SAFE)?;
        Ok(Self(value))
    }

    /// The grammar [`OpenId::parse`] checks.
    pub fn grammar() -> Grammar {
        Grammar::of(Alphabet::URL_SAFE, Self::MAX_LEN)
    }
}

impl UnionId {
    /// Longest unionid accepted; WeChat's are 28 characters.
    pub const MAX_LEN: usize = 128;

    /// Parse a unionid: 1 to 128 characters of `A-Z a-z 0-9 - _`.
    pub fn parse(value: String) -> Result<Self, IdError> {
        check_token_chars("unionid", &value, Self::MAX_LEN, Alphabet::URL_SAFE)?;
        Ok(Self(value))
    }

    /// The grammar [`UnionId::parse`] checks.
    pub fn grammar() -> Grammar {
        Grammar::of(Alphabet::URL_SAFE, Self::MAX_LEN)
    }
}

impl UserId {
    /// Longest user id accepted; wxlink's own are 32 characters.
    pub const MAX_LEN: usize = 64;

    /// Parse a user id: 1 to 64 characters of `A-Z a-z 0-9 - _`.
    pub fn parse(value: String) -> Result<Self, IdError> {
        check_token_chars("user_id", &value, Self::MAX_LEN, Alphabet::URL_SAFE)?;
        Ok(Self(value))
    }

    /// The grammar [`UserId::parse`] checks.
    pub fn grammar() -> Grammar {
        Grammar::of(Alphabet::URL_SAFE, Self::MAX_LEN)
    }
}

impl JsCode {
    /// Longest code accepted; WeChat's are 32 characters.
    pub const MAX_LEN: usize = 256;

    /// Parse a login code: 1 to 256 printable ASCII characters without spaces.
    pub fn parse(value: String) -> Result<Self, IdError> {
        check_token_chars("code", &value, Self::MAX_LEN, Alphabet::PRINTABLE)?;
        Ok(Self(value))
    }

    /// The grammar [`JsCode::parse`] checks.
    pub fn grammar() -> Grammar {
        Grammar::of(Alphabet::PRINTABLE, Self::MAX_LEN)
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
