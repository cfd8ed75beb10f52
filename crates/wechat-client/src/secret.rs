//! Secret newtypes: values that must never reach a log, a `Debug` dump or an error message.

use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};

/// A mini program's AppSecret (`secret=` in the code2Session query).
///
/// Its `Debug` output is `AppSecret([redacted])`.
/// It implements neither `Display` nor `Serialize`, so it cannot be printed or written out by
/// accident; it implements `Deserialize` so that it can be read from configuration.
/// The memory holding it is zeroed when it is dropped.
#[derive(Clone)]
pub struct AppSecret(SecretString);

impl AppSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(SecretString::from(secret.into()))
    }

    /// Returns the secret itself.
    ///
    /// # Security Warning
    ///
    /// The returned text is the AppSecret in clear.
    /// Only pass it to the request that needs it; never log it, store it in an error or send it
    /// to a client.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppSecret([redacted])")
    }
}

impl From<String> for AppSecret {
    fn from(secret: String) -> Self {
        Self::new(secret)
    }
}

impl<'de> serde::Deserialize<'de> for AppSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// A user's `session_key` as returned by code2Session: the base64 text of a 16-byte AES key.
///
/// It decrypts the user's `encryptedData` and signs `rawData`; anyone holding it can forge or read
/// that user's data, so it is treated like a password.
/// Its `Debug` output is `SessionKey([redacted])`; it implements neither `Display` nor `Serialize`.
/// The memory holding it is zeroed when it is dropped.
#[derive(Clone)]
pub struct SessionKey(SecretString);

impl SessionKey {
    /// Wraps a session key (the base64 text WeChat sent, unchanged).
    pub fn new(session_key: impl Into<String>) -> Self {
        Self(SecretString::from(session_key.into()))
    }

    /// Returns the base64 text of the session key.
    ///
    /// # Security Warning
    ///
    /// The returned text is the key in clear.
    /// Use it only to decrypt or verify the user's data, or to seal it for storage; never log it,
    /// store it unencrypted or send it to a client.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

impl From<String> for SessionKey {
    fn from(session_key: String) -> Self {
        Self::new(session_key)
    }
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
    fn app_secret_deserializes_from_a_string() {
        let secret: AppSecret = serde_json::from_str("\"abc\"").expect("a JSON string");
        assert_eq!(secret.expose_secret(), "abc");
    }
}
