//! Secret newtypes: values that must never reach a log, a `Debug` dump or an error message.
//!
//! Each prints as `Name([redacted])`, implements neither `Display` nor `Serialize`, has one
//! documented accessor, and zeroes its memory when dropped.

use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};

/// Defines a secret newtype over [`SecretString`] with a redacted `Debug`, `new`,
/// `expose_secret` and `From<String>`.
macro_rules! secret_type {
    (
        $(#[$type_doc:meta])*
        pub struct $name:ident;
        new: $new_doc:literal,
        expose: $expose_doc:literal,
        warning: $warning:literal $(,)?
    ) => {
        $(#[$type_doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            #[doc = $new_doc]
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            #[doc = $expose_doc]
            ///
            /// # Security Warning
            ///
            #[doc = $warning]
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self::new(value)
            }
        }
    };
}

secret_type! {
    /// An app's AppSecret (`secret=` in code2Session, the OAuth code exchange and stable_token).
    ///
    /// Its `Debug` output is `AppSecret([redacted])`.
    /// It implements neither `Display` nor `Serialize`, so it cannot be printed or written out by
    /// accident; it implements `Deserialize` so that it can be read from configuration.
    /// The memory holding it is zeroed when it is dropped.
    pub struct AppSecret;
    new: "Wraps a secret.",
    expose: "Returns the secret itself.",
    warning: "The returned text is the AppSecret in clear. Only pass it to the request that \
              needs it; never log it, store it in an error or send it to a client.",
}

impl<'de> serde::Deserialize<'de> for AppSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

secret_type! {
    /// A user's `session_key` as returned by code2Session: the base64 text of a 16-byte AES key.
    ///
    /// It decrypts the user's `encryptedData` and signs `rawData`; anyone holding it can forge or
    /// read that user's data, so it is treated like a password.
    /// Its `Debug` output is `SessionKey([redacted])`; it implements neither `Display` nor
    /// `Serialize`. The memory holding it is zeroed when it is dropped.
    pub struct SessionKey;
    new: "Wraps a session key (the base64 text WeChat sent, unchanged).",
    expose: "Returns the base64 text of the session key.",
    warning: "The returned text is the key in clear. Use it only to decrypt or verify the \
              user's data, or to seal it for storage; never log it, store it unencrypted or \
              send it to a client.",
}

secret_type! {
    /// An app's global interface credential (`access_token=` of the `cgi-bin`, `wxa` and other
    /// server APIs), as [`WeChatClient::stable_token`](crate::WeChatClient::stable_token) returns
    /// it.
    ///
    /// Whoever holds it can call WeChat's server API in the app's name until it expires.
    /// Its `Debug` output is `AccessToken([redacted])`; it implements neither `Display` nor
    /// `Serialize`. The memory holding it is zeroed when it is dropped.
    pub struct AccessToken;
    new: "Wraps an access token, e.g. one read back from a cache shared by several nodes.",
    expose: "Returns the access token itself.",
    warning: "The returned text is the credential in clear. Only pass it to the request that \
              needs it or to a protected cache; never log it or send it to a client.",
}

secret_type! {
    /// A user-level web access token from the OAuth code exchange
    /// ([`WeChatClient::oauth2_access_token`](crate::WeChatClient::oauth2_access_token)),
    /// valid for `sns/userinfo` of that one user.
    ///
    /// It is not the app's global [`AccessToken`].
    /// Its `Debug` output is `UserAccessToken([redacted])`; it implements neither `Display` nor
    /// `Serialize`. The memory holding it is zeroed when it is dropped.
    pub struct UserAccessToken;
    new: "Wraps a user access token.",
    expose: "Returns the user access token itself.",
    warning: "The returned text reads the user's profile in clear. Only pass it to the request \
              that needs it; never log it or send it to a client.",
}

secret_type! {
    /// The refresh token of an OAuth grant: it renews a [`UserAccessToken`] for up to 180 days
    /// (30 in older documents).
    ///
    /// Its `Debug` output is `RefreshToken([redacted])`; it implements neither `Display` nor
    /// `Serialize`. The memory holding it is zeroed when it is dropped.
    pub struct RefreshToken;
    new: "Wraps a refresh token.",
    expose: "Returns the refresh token itself.",
    warning: "The returned text is a long-lived credential in clear. Store it only sealed; \
              never log it or send it to a client.",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_secret_debug_is_redacted() {
        let secret = AppSecret::new("s3cr3t-value");
        assert_eq!(format!("{secret:?}"), "AppSecret([redacted])");
        assert_eq!(format!("{secret:#?}"), "AppSecret([redacted])");
        assert_eq!(secret.expose_secret(), "s3cr3t-value");
    }

    #[test]
    fn session_key_debug_is_redacted() {
        let key = SessionKey::new("tiihtNczf5v6AKRyjwEUhQ==");
        assert_eq!(format!("{key:?}"), "SessionKey([redacted])");
        assert_eq!(key.clone().expose_secret(), "tiihtNczf5v6AKRyjwEUhQ==");
    }

    #[test]
    fn token_debug_is_redacted() {
        let access = AccessToken::from("ACCESS_TOKEN_VALUE".to_owned());
        assert_eq!(format!("{access:?}"), "AccessToken([redacted])");
        assert_eq!(access.expose_secret(), "ACCESS_TOKEN_VALUE");
        let user = UserAccessToken::new("USER_TOKEN_VALUE");
        assert_eq!(format!("{user:#?}"), "UserAccessToken([redacted])");
        assert_eq!(user.expose_secret(), "USER_TOKEN_VALUE");
        let refresh = RefreshToken::new("REFRESH_VALUE");
        assert_eq!(format!("{refresh:?}"), "RefreshToken([redacted])");
        assert_eq!(refresh.expose_secret(), "REFRESH_VALUE");
    }

    #[test]
    fn app_secret_deserializes_from_a_string() {
        let secret: AppSecret = serde_json::from_str("\"abc\"").expect("a JSON string");
        assert_eq!(secret.expose_secret(), "abc");
    }
}
