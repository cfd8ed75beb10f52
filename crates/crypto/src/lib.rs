//! Cryptography for WeChat mini program back ends: decrypting the user data a mini program sends,
//! checking its watermark and signatures, and sealing secrets such as session keys at rest.
//!
//! This crate is for any server that logs mini program users in, not only wxlink: it is pure
//! functions over strings and bytes, with no I/O, no clock, no async runtime and no type from the
//! rest of the workspace.
//! The WeChat side is fixed by WeChat (AES-128-CBC keyed by the `session_key`, SHA-1 over
//! `rawData`, HMAC-SHA256 for `wxa/checksession`); the sealing side is this crate's own versioned
//! AES-256-GCM format.
//!
//! # Example
//!
//! Decrypt the data of WeChat's official sample, check it was meant for our mini program, and
//! compute the signature `wxa/checksession` wants for the same session key.
//!
//! ```
//! use wxlink_crypto::{check_session_signature, check_watermark, decrypt_user_data};
//!
//! let session_key = "tiihtNczf5v6AKRyjwEUhQ==";
//! let iv = "r7BXXKkLb8qrSNn05n0qiA==";
//! # let encrypted_data = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
//! // encrypted_data: the `encryptedData` string the mini program got from wx.getUserInfo
//! let user = decrypt_user_data(session_key, iv, encrypted_data)?;
//! assert_eq!(user.open_id, "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
//! assert_eq!(user.union_id.as_deref(), Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA"));
//!
//! // The sample is from 2016, so allow it any age here; a live server passes its clock and a limit.
//! let now = 1_477_314_200;
//! check_watermark(&user.watermark, "wx4f4bc4dec97d474b", now, None)?;
//! assert!(check_watermark(&user.watermark, "wx_another_app", now, None).is_err());
//!
//! assert_eq!(
//!     check_session_signature(session_key),
//!     "7154f9f8b4b76b92f541cbf0e37d48840fa06e5e42da92a6f80168a1516a4735",
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Sealing a session key for the database, bound to the row it is stored in, and rotating the data
//! key:
//!
//! ```
//! use wxlink_crypto::{DataKey, Keyring};
//!
//! // In a service the keys come from a secret store: `DataKey::from_base64(&text)?`.
//! let first_key = || DataKey::from_bytes([7; 32]);
//! let ring = Keyring::new(first_key());
//! let sealed = ring.seal_with_aad(b"tiihtNczf5v6AKRyjwEUhQ==", b"sessions/42");
//! assert_eq!(ring.open_with_aad(&sealed, b"sessions/42")?, b"tiihtNczf5v6AKRyjwEUhQ==");
//! assert!(ring.open_with_aad(&sealed, b"sessions/43").is_err());
//!
//! // Rotation: a new key seals, the old one still opens, and re-sealing moves values over.
//! let ring = Keyring::new(DataKey::generate()).with_old_key(first_key());
//! assert!(ring.needs_reseal(&sealed));
//! let session_key = ring.open_with_aad(&sealed, b"sessions/42")?;
//! let resealed = ring.seal_with_aad(&session_key, b"sessions/42");
//! assert!(!ring.needs_reseal(&resealed));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Accepted base64 forms
//!
//! Every base64 input (session key, iv, encrypted data, data key) is read the same way:
//!
//! - the standard alphabet (`A–Z a–z 0–9 + /`) with canonical `=` padding, as WeChat sends it;
//! - the same with spaces where `+` should be: form decoding of an unescaped value turns `+` into a
//!   space, and the standard alphabet has no space, so each space is read back as `+`.
//!
//! Everything else is refused with a [`Base64Error`] that says where: the URL-safe alphabet
//! (`-`, `_`), missing or extra `=`, line breaks and other whitespace, and non-zero trailing bits.
//! The signature functions are different: they use the session key's base64 *text* as it is.
//!
//! # Security
//!
//! - No function panics on any input, except [`Keyring::seal`] on a plaintext over AES-GCM's
//!   64 GiB limit.
//! - WeChat's encrypted data is AES-CBC without authentication: anyone with the session key can
//!   forge it, and a wrong key is only noticed as bad padding most of the time.
//!   The watermark appid check is what ties the data to your mini program; always make it.
//! - [`DecryptError`] tells the variants apart for logs only. Never show these typed errors, or
//!   their text, to whoever sent the data: AES-CBC is unauthenticated, and an answer that tells
//!   bad padding from bad UTF-8, bad JSON or a missing field is a padding oracle. With a
//!   client-chosen iv it lets anyone encrypt any plaintext under their own session key (CBC-R)
//!   in a few thousand requests per block. Answer one generic error for every variant, log the
//!   variant (never the data, iv or key), and budget failures per session and per user so that
//!   the thousands of queries an oracle needs are never answered.
//! - Signatures are compared in constant time ([`verify_raw_data_signature`]).
//! - [`DataKey`] keeps its bytes in a [`secrecy::SecretBox`], zeroed on drop, and its `Debug` is
//!   redacted; decoded session keys are zeroed after use. The AES round keys derived while a
//!   function runs are not zeroed.
//! - Sealing uses a random 96-bit nonce per value; keep a key under about 2³² seals.
//! - [`DataKey::id`] and [`DataKey::fingerprint`] are public: log and store them to tell keys
//!   apart (e.g. to check that every node of a cluster has the same keys); neither reveals the
//!   key. [`sealed_key_id`] reads which key sealed a value without any key.
//! - [`DataKey::keyed_hash`] names a value (say an openid) in a table without storing it: an
//!   HMAC under a key derived per purpose, so it changes when the data key rotates.
//!
//! # Crate features
//!
//! None.
//!
//! # Public dependencies
//!
//! `serde` 1 ([`UserData`] and [`Watermark`] are `Serialize` and `Deserialize`), `serde_json` 1
//! ([`decrypt`] returns a `serde_json::Value`) and `secrecy` 0.10 ([`DataKey::to_base64`]
//! returns a `SecretString`) appear in the API.
//!
//! The runnable examples are in `examples/`: `cargo run -p wxlink-crypto --example decrypt`
//! and `--example seal`. The minimum supported Rust version is the `rust-version` of the crate's `Cargo.toml`.

#![deny(missing_docs)]

mod base64_forms;
mod data_key;
mod open_data;
mod seal;
mod signature;
mod watermark;

pub use base64_forms::{Base64Error, decode as decode_base64};
pub use data_key::{DataKey, KeyError, KeyId};
pub use open_data::{
    DecryptError, UserData, decrypt, decrypt_bytes, decrypt_user_data, decrypt_user_data_bytes,
    encrypt, session_key_bytes,
};
pub use seal::{Keyring, SealError, sealed_key_id};
pub use signature::{
    check_session_signature, raw_data_signature, session_signature, verify_raw_data_signature,
};
pub use watermark::{MAX_CLOCK_SKEW_SECS, Watermark, WatermarkError, check_watermark};

// The README's Rust examples are compiled as doctests, so that they keep up with the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
