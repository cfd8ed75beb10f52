//! Secret values: redacted `Debug`, no `Display`, one documented way to read them.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session_key WeChat gives for one login: base64 of 16 bytes, as WeChat sends it.
///
/// It decrypts the user's encrypted data, so it never leaves wxlink.
#[derive(Clone)]
pub struct SessionKey(SecretString);

impl SessionKey {
    /// Wrap a session_key as received from WeChat.
    pub fn new(base64_text: impl Into<String>) -> Self {
        Self(SecretString::from(base64_text.into()))
    }

    /// The key's base64 text.
    ///
    /// # Security Warning
    /// Only for decrypting, signing and sealing; never log, return or store it in clear.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(
            self.expose_secret()
                .as_bytes()
                .ct_eq(other.expose_secret().as_bytes()),
        )
    }
}

/// A bearer token handed to a client at login. wxlink stores only its [`TokenHash`].
#[derive(Clone)]
pub struct SessionToken(SecretString);

/// Why a bearer token was refused before any lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bearer token is malformed")]
pub struct MalformedToken;

impl SessionToken {
    /// Wrap a freshly generated token (see the `IdSource` port).
    pub fn new(text: impl Into<String>) -> Self {
        Self(SecretString::from(text.into()))
    }

    /// Parse a token a client presented: an opaque token of 16 to 256 URL-safe characters, or
    /// a signed access token (a JWT: three dot-separated URL-safe parts, at most 4096 bytes).
    pub fn parse(text: &str) -> Result<Self, MalformedToken> {
        let url_safe = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        let opaque = (16..=256).contains(&text.len()) && text.bytes().all(url_safe);
        let signed = (16..=4096).contains(&text.len())
            && text.split('.').count() == 3
            && text.split('.').all(|part| !part.is_empty())
            && text.bytes().all(|b| url_safe(b) || b == b'.');
        if opaque || signed {
            Ok(Self::new(text))
        } else {
            Err(MalformedToken)
        }
    }

    /// The token's text.
    ///
    /// # Security Warning
    /// Only to hand it to the client it was issued to; never log or store it.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// SHA-256 of the token: what the store keeps and looks up by.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.expose_secret().as_bytes()).into())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

/// SHA-256 of a [`SessionToken`]. Not secret by itself: the token cannot be derived from it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// From the 32 stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes to store.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, e.g. for a store that keeps text.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// From lowercase or uppercase hex.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to tell hashes apart in logs.
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let key = SessionKey::new("tiihtNczf5v6AKRyjwEUhQ==");
        let token = SessionToken::new("abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(format!("{key:?}"), "SessionKey([redacted])");
        assert_eq!(format!("{token:?}"), "SessionToken([redacted])");
        assert!(!format!("{:?}", token.hash()).contains("abcdef"));
    }

    #[test]
    fn token_hash_is_sha256_and_round_trips_through_hex() {
        let token = SessionToken::new("abc");
        assert_eq!(
            token.hash().to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            TokenHash::from_hex(&token.hash().to_hex()),
            Some(token.hash())
        );
    }

    #[test]
    fn presented_tokens_are_checked_for_shape() {
        assert!(SessionToken::parse("abcdefghijklmnop").is_ok());
        assert!(SessionToken::parse("short").is_err());
        assert!(SessionToken::parse("abcdefghijklmnop qrstuv").is_err());
        assert!(SessionToken::parse(&"a".repeat(257)).is_err());
    }
}
