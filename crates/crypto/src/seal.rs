//! Sealing secrets at rest with AES-256-GCM under a [`Keyring`] that supports key rotation.
//!
//! A sealed value is laid out as
//!
//! ```text
//! [0x01 version][4-byte key id][12-byte random nonce][ciphertext || 16-byte GCM tag]
//! ```
//!
//! The key id is the first 4 bytes of SHA-256 of the key (see [`DataKey::id`]).
//! The associated data given to AES-GCM is the 5-byte header (version and key id) followed by the
//! caller's associated data, so neither can be changed without [`SealError::Tampered`].

use aes_gcm::Nonce;
use aes_gcm::aead::{Aead as _, Payload};

use crate::data_key::{DataKey, KeyId};

/// The format version this crate writes.
const VERSION: u8 = 0x01;
const KEY_ID_LEN: usize = 4;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The shortest sealed value: a header, a nonce and the tag of an empty plaintext.
const MIN_SEALED_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Too short to be a sealed value of the known version.
    #[error(
        "sealed value is {len} bytes, shorter than the {MIN_SEALED_LEN} every sealed value has"
    )]
    Malformed {
        /// Its length.
        len: usize,
    },
    /// The first byte names a format version this crate does not know.
    #[error("sealed value has unknown format version {version}")]
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// No key in the keyring has the key id in the header.
    #[error("sealed value needs key {key_id}, which is not in the keyring")]
    UnknownKey {
        /// The key id in the header.
        key_id: KeyId,
    },
    /// Authentication failed: the value was changed, or the associated data differs from sealing.
    #[error("sealed value failed authentication (tampered, or different associated data)")]
    Tampered,
}

/// The data keys a service knows: the current one, which seals, and older ones, which still open.
///
/// Rotation: make the new key current and keep the old one in the ring; values sealed under it
/// still open, [`Keyring::needs_reseal`] finds them, and re-sealing moves them to the new key.
/// Once no value needs the old key, drop it.
///
/// `Debug` prints every key as `DataKey([redacted])`.
#[derive(Debug)]
pub struct Keyring {
    current: DataKey,
    old: Vec<DataKey>,
}

impl Keyring {
    /// A keyring that seals and opens with `current` only.
    pub fn new(current: DataKey) -> Self {
        Self {
            current,
            old: Vec::new(),
        }
    }

    /// Adds a key that still opens values but no longer seals them.
    #[must_use]
    pub fn with_old_key(mut self, key: DataKey) -> Self {
        self.old.push(key);
        self
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> KeyId {
        self.current.id()
    }

    /// The key that seals.
    pub fn current_key(&self) -> &DataKey {
        &self.current
    }

    /// Every key of the ring, the current one first, then the old ones in the order added.
    pub fn keys(&self) -> impl Iterator<Item = &DataKey> {
        std::iter::once(&self.current).chain(&self.old)
    }

    /// Seals `plaintext` under the current key with a fresh random nonce.
    ///
    /// A random 96-bit nonce is safe for about 2³² seals under one key; rotate long before that.
    ///
    /// # Panics
    ///
    /// Only if `plaintext` is longer than AES-GCM's limit of 64 GiB.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        self.seal_with_aad(plaintext, &[])
    }

    /// Seals `plaintext` and binds it to `aad`, such as the table and row the value belongs to.
    ///
    /// `aad` is not stored; [`Keyring::open_with_aad`] must be given the same bytes.
    ///
    /// # Panics
    ///
    /// Only if `plaintext` or `aad` is longer than AES-GCM's limit of 64 GiB.
    pub fn seal_with_aad(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let header = header(self.current.id());
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let ciphertext = self
            .current
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &full_aad(&header, aad),
                },
            )
            .expect("AES-GCM only refuses inputs over 64 GiB");
        let mut sealed = Vec::with_capacity(HEADER_LEN + NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&header);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Opens a value sealed without associated data, with whichever key in the ring sealed it.
    ///
    /// # Errors
    ///
    /// See [`Keyring::open_with_aad`].
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        self.open_with_aad(sealed, &[])
    }

    /// Opens a value sealed with `aad`, with whichever key in the ring sealed it.
    ///
    /// # Errors
    ///
    /// [`SealError::UnknownVersion`] when the first byte is not a known version,
    /// [`SealError::Malformed`] when the value is empty or too short,
    /// [`SealError::UnknownKey`] when no key in the ring has its key id, and
    /// [`SealError::Tampered`] when authentication fails.
    pub fn open_with_aad(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let parts = Parts::parse(sealed)?;
        let full_aad = full_aad(&header(parts.key_id), aad);
        let mut candidates = self
            .keys()
            .filter(|key| key.id() == parts.key_id)
            .peekable();
        if candidates.peek().is_none() {
            return Err(SealError::UnknownKey {
                key_id: parts.key_id,
            });
        }
        // Two keys share an id only by a 2⁻³² accident; trying each keeps even that case working.
        candidates
            .find_map(|key| {
                key.cipher()
                    .decrypt(
                        Nonce::from_slice(&parts.nonce),
                        Payload {
                            msg: parts.ciphertext,
                            aad: &full_aad,
                        },
                    )
                    .ok()
            })
            .ok_or(SealError::Tampered)
    }

    /// Whether `sealed` should be re-sealed: `true` unless it is in the current format under the
    /// current key.
    ///
    /// Only the header is read; the value is not authenticated.
    /// Malformed values also answer `true`, so a re-sealing pass reaches them and
    /// [`Keyring::open`] reports what is wrong instead of the pass skipping them silently.
    pub fn needs_reseal(&self, sealed: &[u8]) -> bool {
        Parts::parse(sealed).map_or(true, |parts| parts.key_id != self.current.id())
    }
}

/// The id of the key a sealed value was sealed under, read from its header without any key.
///
/// # Errors
///
/// [`SealError::UnknownVersion`] or [`SealError::Malformed`], as [`Keyring::open`] would.
pub fn sealed_key_id(sealed: &[u8]) -> Result<KeyId, SealError> {
    Parts::parse(sealed).map(|parts| parts.key_id)
}

/// A sealed value split into its fields, with version and length checked.
struct Parts<'a> {
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    ciphertext: &'a [u8],
}

impl<'a> Parts<'a> {
    fn parse(sealed: &'a [u8]) -> Result<Self, SealError> {
        let malformed = SealError::Malformed { len: sealed.len() };
        let (&version, rest) = sealed.split_first().ok_or(malformed)?;
        if version != VERSION {
            return Err(SealError::UnknownVersion { version });
        }
        if sealed.len() < MIN_SEALED_LEN {
            return Err(malformed);
        }
        let (key_id, rest) = rest.split_first_chunk::<KEY_ID_LEN>().ok_or(malformed)?;
        let (nonce, ciphertext) = rest.split_first_chunk::<NONCE_LEN>().ok_or(malformed)?;
        Ok(Self {
            key_id: KeyId::from_bytes(*key_id),
            nonce: *nonce,
            ciphertext,
        })
    }
}

fn header(key_id: KeyId) -> [u8; HEADER_LEN] {
    let [a, b, c, d] = key_id.to_bytes();
    [VERSION, a, b, c, d]
}

fn full_aad(header: &[u8; HEADER_LEN], aad: &[u8]) -> Vec<u8> {
    [header.as_slice(), aad].concat()
}
