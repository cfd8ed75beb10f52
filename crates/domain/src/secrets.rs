//! Secret values: redacted `Debug`, no `Display`, one documented way to read them.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
///
/// Issued tokens are [`SessionToken::LEN`] URL-safe characters: base64url (no padding) of a
/// 16-byte session id that begins with the time (a UUIDv7) and 32 random bytes. The id is how
/// the store finds the session: new sessions land on the rightmost page of its key instead of
/// a random one (a random page per login is a page written to disk per login). Tokens of any
/// other shape, such as the 43-character ones issued before, are found by their SHA-256.
#[derive(Clone)]
pub struct SessionToken(SecretString);

/// Why a bearer token was refused before any lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bearer token is malformed")]
pub struct MalformedToken;

impl SessionToken {
    /// The length of an issued token: base64url of a 16-byte id and a 32-byte secret.
    pub const LEN: usize = 64;

    /// Wrap a freshly generated token (see the `IdSource` port).
    pub fn new(text: impl Into<String>) -> Self {
        Self(SecretString::from(text.into()))
    }

    /// A token for the session `id` (time-ordered: a UUIDv7's bytes) with `secret` (random).
    pub fn issue(id: [u8; 16], secret: [u8; 32]) -> Self {
        let mut bytes = [0u8; 48];
        bytes[..16].copy_from_slice(&id);
        bytes[16..].copy_from_slice(&secret);
        Self::new(URL_SAFE_NO_PAD.encode(bytes))
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

    /// What the store keeps and looks the session up by: for an issued token, its session id
    /// followed by the first half of the token's SHA-256; for any other, its SHA-256.
    pub fn hash(&self) -> TokenHash {
        let text = self.expose_secret();
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let mut decoded = [0u8; 48];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut decoded) {
            Ok(48) if text.len() == Self::LEN => {
                let mut hash = [0u8; 32];
                hash[..16].copy_from_slice(&decoded[..16]);
                hash[16..].copy_from_slice(&digest[..16]);
                TokenHash(hash)
            }
            _ => TokenHash(digest),
        }
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

/// What the store keeps of a [`SessionToken`] (see [`SessionToken::hash`]). Not secret by
/// itself: the token cannot be derived from it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The first half, by which a store finds the session (an issued token's session id);
    /// the second half is then compared with [`TokenHash::matches`].
    pub fn selector(&self) -> [u8; 16] {
        let mut selector = [0u8; 16];
        selector.copy_from_slice(&self.0[..16]);
        selector
    }

    /// Whether `stored` is this hash, compared in constant time: a lookup by the selector alone
    /// must not tell a client, by its timing, how much of the rest it guessed.
    pub fn matches(&self, stored: &TokenHash) -> bool {
        bool::from(self.0.ct_eq(&stored.0))
    }

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
    fn an_issued_token_is_64_url_safe_characters_found_by_its_session_id() {
        let id = [7u8; 16];
        let token = SessionToken::issue(id, [9u8; 32]);
        let text = token.expose_secret();
        assert_eq!(text.len(), SessionToken::LEN);
        assert!(SessionToken::parse(text).is_ok());
        let hash = token.hash();
        assert_eq!(hash.selector(), id);
        let digest = Sha256::digest(text.as_bytes());
        assert_eq!(&hash.as_bytes()[16..], &digest[..16]);
        // The same session id with another secret is another hash: the id alone opens nothing.
        let forged = SessionToken::issue(id, [8u8; 32]).hash();
        assert_eq!(forged.selector(), id);
        assert!(!forged.matches(&hash));
        assert!(hash.matches(&token.hash()));
    }

    #[test]
    fn tokens_of_other_shapes_keep_their_sha256() {
        // The 43-character tokens issued before the session id, and anything else presented.
        let old = SessionToken::new("q0v7Zt3o1Xz6yqg0n2mJcCk3m9ZlWQb0c4s0cY3Hc2A");
        assert_eq!(
            old.hash().as_bytes(),
            &<[u8; 32]>::from(Sha256::digest(old.expose_secret().as_bytes()))
        );
        let odd = SessionToken::new("a".repeat(63) + "!");
        assert_eq!(
            odd.hash().as_bytes(),
            &<[u8; 32]>::from(Sha256::digest(odd.expose_secret().as_bytes()))
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
