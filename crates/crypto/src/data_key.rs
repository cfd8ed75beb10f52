//! The 32-byte data key that seals secrets at rest, and its public key id.

use std::fmt;

use aes_gcm::{Aes256Gcm, KeyInit as _};
use hmac::{Hmac, Mac};
use secrecy::zeroize::{Zeroize as _, Zeroizing};
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use sha2::{Digest as _, Sha256};

use crate::base64_forms::{self, Base64Error};

/// Length of a data key in bytes (AES-256).
const KEY_LEN: usize = 32;
/// What [`DataKey::fingerprint`] authenticates; versioned so the scheme can change.
const FINGERPRINT_CONTEXT: &[u8] = b"wxlink data key fingerprint v1";
/// Bytes of the HMAC kept in a fingerprint.
const FINGERPRINT_LEN: usize = 8;
/// What the key of [`DataKey::keyed_hash`] is derived for, before its caller's context.
const KEYED_HASH_CONTEXT: &[u8] = b"wxlink keyed hash v1\n";

/// A 32-byte AES-256-GCM key for sealing secrets at rest.
///
/// The bytes live in a [`SecretBox`] and are zeroed when the key is dropped.
/// `Debug` prints `DataKey([redacted])`; there is no `Display`, `Serialize`, `Clone` or `PartialEq`.
/// Compare keys by [`DataKey::id`].
pub struct DataKey {
    bytes: SecretBox<[u8; KEY_LEN]>,
    /// The key schedule, expanded once instead of at every seal and open; its round keys are
    /// zeroed when it is dropped (the `aes` crate's `zeroize` feature).
    cipher: Box<Aes256Gcm>,
    id: KeyId,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl DataKey {
    /// Wraps 32 key bytes; the argument's copy is zeroed.
    pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> Self {
        let key = Self::with_bytes(SecretBox::init_with_mut(|b: &mut [u8; KEY_LEN]| *b = bytes));
        bytes.zeroize();
        key
    }

    /// Reads a key from standard base64 with `=` padding (44 characters).
    ///
    /// The same [forms](crate#accepted-base64-forms) as everywhere in this crate are accepted.
    ///
    /// # Errors
    ///
    /// [`KeyError::NotBase64`], or [`KeyError::Length`] when it does not decode to 32 bytes.
    pub fn from_base64(key_b64: &str) -> Result<Self, KeyError> {
        let decoded = Zeroizing::new(base64_forms::decode(key_b64).map_err(KeyError::NotBase64)?);
        let bytes = <[u8; KEY_LEN]>::try_from(decoded.as_slice())
            .map_err(|_| KeyError::Length { len: decoded.len() })?;
        Ok(Self::from_bytes(bytes))
    }

    /// Draws a fresh key from the thread-local CSPRNG (ChaCha seeded by the operating system).
    pub fn generate() -> Self {
        Self::with_bytes(SecretBox::init_with_mut(|b: &mut [u8; KEY_LEN]| {
            rand::fill(b);
        }))
    }

    /// The key as standard base64 with `=` padding, the form [`DataKey::from_base64`] reads.
    ///
    /// # Security Warning
    ///
    /// This is the whole key.
    /// Use it to write a newly generated key to a secret store, never to log or display it.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(base64_forms::encode(self.bytes.expose_secret()))
    }

    /// The key's public id: the first 4 bytes of SHA-256 of the key.
    ///
    /// Sealed values carry it, so the matching key can be found after rotation.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// A fingerprint to record and compare keys by, across the nodes of a cluster:
    /// HMAC-SHA256 keyed by the key over `"wxlink data key fingerprint v1"`, the first 8 bytes
    /// as 16 lowercase hex digits.
    ///
    /// Unlike [`DataKey::id`], which is only 32 bits, it tells two keys apart with certainty in
    /// practice, so a stored fingerprint that differs from a key with the same id means a
    /// mix-up. It reveals nothing about the key without the key.
    pub fn fingerprint(&self) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.bytes.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(FINGERPRINT_CONTEXT);
        hex::encode(&mac.finalize().into_bytes()[..FINGERPRINT_LEN])
    }

    /// A pseudonym of `value` for one purpose: HMAC-SHA256 of `value` under a key derived
    /// from this key for `context` (HMAC-SHA256 keyed by this key over
    /// `"wxlink keyed hash v1\n"` and `context`).
    ///
    /// Equal values give equal hashes under one key and context, so it can key a table;
    /// without the key it tells nothing of the value, not even whether a guessed value is
    /// the one hashed. Another context or another key gives unrelated hashes.
    pub fn keyed_hash(&self, context: &str, value: &[u8]) -> [u8; 32] {
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(self.bytes.expose_secret())
            .expect("HMAC takes a key of any length");
        derive.update(KEYED_HASH_CONTEXT);
        derive.update(context.as_bytes());
        let derived = Zeroizing::new(<[u8; 32]>::from(derive.finalize().into_bytes()));
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(derived.as_slice())
            .expect("HMAC takes a key of any length");
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    pub(crate) fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }

    fn with_bytes(bytes: SecretBox<[u8; KEY_LEN]>) -> Self {
        let digest = Sha256::digest(bytes.expose_secret());
        let mut id = [0u8; 4];
        id.copy_from_slice(&digest[..4]);
        let cipher = Box::new(Aes256Gcm::new(bytes.expose_secret().into()));
        Self {
            bytes,
            cipher,
            id: KeyId(id),
        }
    }
}

/// The public id of a [`DataKey`]: the first 4 bytes of SHA-256 of the key.
///
/// It is not secret. `Debug` and `Display` print it as 8 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 4]);

impl KeyId {
    /// Wraps the 4 bytes of a key id, as read from a sealed value's header.
    pub fn from_bytes(bytes: [u8; 4]) -> Self {
        Self(bytes)
    }

    /// The 4 bytes of the id.
    pub fn to_bytes(self) -> [u8; 4] {
        self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Why a [`DataKey`] could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not in an accepted base64 form.
    #[error("data key is not valid base64")]
    NotBase64(#[source] Base64Error),
    /// The text decodes to something other than 32 bytes.
    #[error("data key decodes to {len} bytes, expected 32")]
    Length {
        /// The decoded length.
        len: usize,
    },
}
