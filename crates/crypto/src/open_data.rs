//! Decryption of the `encryptedData` a mini program receives from `wx.getUserInfo`,
//! `wx.getUserProfile`, the legacy `getPhoneNumber` button, share info and WeRun data.
//!
//! The algorithm is fixed by WeChat: AES-128-CBC with PKCS#7 padding, keyed by the user's
//! `session_key`, with the `iv` that came with the data.

use aes::Aes128;
use cbc::cipher::block_padding::{NoPadding, Pkcs7};
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use secrecy::zeroize::Zeroizing;

use crate::base64_forms::{self, Base64Error};
use crate::watermark::Watermark;

/// AES block size, which is also the length of the session key and of the iv.
const BLOCK_LEN: usize = 16;

/// Why encrypted data could not be decrypted, or decrypted to something unusable.
///
/// Each variant names one input and one way it failed, so a log line says which side is wrong.
///
/// # Security
///
/// Never show a variant, or its text, to the sender of the data. AES-CBC is unauthenticated:
/// an answer that tells [`DecryptError::BadPadding`] from any other variant is a padding oracle,
/// and with a client-chosen iv it lets the sender forge data under a key they never saw. Answer
/// every variant with one generic error, log the variant, and budget failures per session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// The session key is not in an accepted base64 form.
    #[error("session key is not valid base64")]
    SessionKeyNotBase64(#[source] Base64Error),
    /// The session key decodes to something other than 16 bytes.
    #[error("session key decodes to {len} bytes, expected 16")]
    SessionKeyLength {
        /// The decoded length.
        len: usize,
    },
    /// The iv is not in an accepted base64 form.
    #[error("iv is not valid base64")]
    IvNotBase64(#[source] Base64Error),
    /// The iv decodes to something other than 16 bytes.
    #[error("iv decodes to {len} bytes, expected 16")]
    IvLength {
        /// The decoded length.
        len: usize,
    },
    /// The encrypted data is not in an accepted base64 form.
    #[error("encrypted data is not valid base64")]
    CiphertextNotBase64(#[source] Base64Error),
    /// The encrypted data decodes to no bytes at all.
    #[error("encrypted data is empty")]
    CiphertextEmpty,
    /// The encrypted data is not a whole number of 16-byte AES blocks, so it was cut or padded in
    /// transit.
    #[error("encrypted data is {len} bytes, not a multiple of 16")]
    CiphertextLength {
        /// The decoded length.
        len: usize,
    },
    /// The decrypted bytes do not end in strict PKCS#7 padding.
    ///
    /// This is what a wrong or stale session key, a wrong iv, or damaged data looks like:
    /// AES-CBC itself cannot tell, only the padding check can.
    #[error("bad padding after decryption (wrong session key or iv, or damaged data)")]
    BadPadding,
    /// The plaintext is not UTF-8.
    #[error("decrypted data is not UTF-8")]
    PlaintextNotUtf8(#[source] std::str::Utf8Error),
    /// The plaintext is UTF-8 but not JSON.
    #[error("decrypted data is not JSON")]
    PlaintextNotJson(#[source] serde_json::Error),
    /// The plaintext is JSON but lacks a field that user data always carries.
    ///
    /// `null` counts as missing.
    #[error("decrypted user data lacks `{field}`")]
    MissingField {
        /// The missing field, as WeChat names it (`openId`, `watermark`, `watermark.appid`,
        /// `watermark.timestamp`).
        field: &'static str,
    },
    /// The plaintext has the required fields but a field has the wrong type.
    #[error("decrypted user data has an unexpected shape")]
    InvalidUserData(#[source] serde_json::Error),
}

/// The user data WeChat encrypts for `wx.getUserInfo` and `wx.getUserProfile`.
///
/// Field names follow WeChat's camelCase (`openId`, `unionId`), unlike code2Session's lowercase
/// `openid`/`unionid`.
/// Fields WeChat adds later are ignored when reading; `None` fields are left out when writing, as
/// WeChat leaves them out.
/// Since 2021 the profile fields are anonymised for new mini program versions, and
/// `wx.getUserProfile` never carries `unionId`: do not take identity from here when code2Session
/// can give it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserData {
    /// The user's openid for this mini program.
    pub open_id: String,
    /// The user's unionid, present only if the mini program is bound to an Open Platform account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub union_id: Option<String>,
    /// Nickname (`微信用户` for anonymised data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<String>,
    /// 0 unknown, 1 male, 2 female.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<i64>,
    /// Language of the profile, such as `zh_CN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub province: Option<String>,
    /// Country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Which mini program the data was encrypted for, and when; see [`check_watermark`](crate::check_watermark).
    pub watermark: Watermark,
}

/// Decrypts `encryptedData` and parses the plaintext as JSON.
///
/// All three arguments are base64 in one of the [accepted forms](crate#accepted-base64-forms).
/// The result still has to be checked: call [`check_watermark`](crate::check_watermark) on its
/// `watermark`, or use [`decrypt_user_data`] to get it typed.
///
/// # Errors
///
/// Every failure of [`decrypt_bytes`], then [`DecryptError::PlaintextNotUtf8`] and
/// [`DecryptError::PlaintextNotJson`].
pub fn decrypt(
    session_key_b64: &str,
    iv_b64: &str,
    encrypted_data_b64: &str,
) -> Result<serde_json::Value, DecryptError> {
    let plaintext = decrypt_bytes(session_key_b64, iv_b64, encrypted_data_b64)?;
    plaintext_json(&plaintext)
}

/// The plaintext as JSON.
fn plaintext_json(plaintext: &[u8]) -> Result<serde_json::Value, DecryptError> {
    let text = std::str::from_utf8(plaintext).map_err(DecryptError::PlaintextNotUtf8)?;
    serde_json::from_str(text).map_err(DecryptError::PlaintextNotJson)
}

/// Decrypts `encryptedData` to its raw plaintext, after strict PKCS#7 unpadding.
///
/// # Errors
///
/// The inputs are checked in order (session key, iv, encrypted data), and the first failure is
/// returned: a base64 or length error for one of them, [`DecryptError::CiphertextEmpty`],
/// [`DecryptError::CiphertextLength`], or [`DecryptError::BadPadding`] when the plaintext does
/// not end in 1 to 16 bytes all equal to their count.
pub fn decrypt_bytes(
    session_key_b64: &str,
    iv_b64: &str,
    encrypted_data_b64: &str,
) -> Result<Vec<u8>, DecryptError> {
    let (key, iv) = key_and_iv(session_key_b64, iv_b64)?;
    let data =
        base64_forms::decode(encrypted_data_b64).map_err(DecryptError::CiphertextNotBase64)?;
    decrypt_block_aligned(&key, &iv, data)
}

/// AES-128-CBC decryption and strict unpadding of decoded ciphertext: the one implementation
/// behind every decrypting function.
fn decrypt_block_aligned(
    key: &[u8; BLOCK_LEN],
    iv: &[u8; BLOCK_LEN],
    mut data: Vec<u8>,
) -> Result<Vec<u8>, DecryptError> {
    let len = data.len();
    if len == 0 {
        return Err(DecryptError::CiphertextEmpty);
    }
    if !len.is_multiple_of(BLOCK_LEN) {
        return Err(DecryptError::CiphertextLength { len });
    }
    let cipher = cbc::Decryptor::<Aes128>::new(key.into(), iv.into());
    // NoPadding only fails on a partial block, which was ruled out above; the padding is checked
    // below, strictly and with a variant of its own.
    let decrypted = cipher
        .decrypt_padded_mut::<NoPadding>(&mut data)
        .map_err(|_| DecryptError::CiphertextLength { len })?;
    let plaintext_len = strict_pkcs7_unpad(decrypted)
        .ok_or(DecryptError::BadPadding)?
        .len();
    data.truncate(plaintext_len);
    Ok(data)
}

/// Decrypts `encryptedData` from `wx.getUserInfo` or `wx.getUserProfile` into [`UserData`].
///
/// The watermark is parsed but not checked; call [`check_watermark`](crate::check_watermark).
///
/// # Errors
///
/// Every failure of [`decrypt`], then [`DecryptError::MissingField`] when `openId`, `watermark`,
/// `watermark.appid` or `watermark.timestamp` is absent or `null`, and
/// [`DecryptError::InvalidUserData`] when a field has the wrong type.
pub fn decrypt_user_data(
    session_key_b64: &str,
    iv_b64: &str,
    encrypted_data_b64: &str,
) -> Result<UserData, DecryptError> {
    let plaintext = decrypt_bytes(session_key_b64, iv_b64, encrypted_data_b64)?;
    user_data(&plaintext)
}

/// Like [`decrypt_user_data`], for inputs already decoded from base64: a 16-byte session key
/// (see [`session_key_bytes`]), a 16-byte iv and the ciphertext.
///
/// # Errors
///
/// [`DecryptError::CiphertextEmpty`], [`DecryptError::CiphertextLength`],
/// [`DecryptError::BadPadding`], then the plaintext and field errors of [`decrypt_user_data`].
pub fn decrypt_user_data_bytes(
    session_key: &[u8; BLOCK_LEN],
    iv: &[u8; BLOCK_LEN],
    ciphertext: &[u8],
) -> Result<UserData, DecryptError> {
    let plaintext = decrypt_block_aligned(session_key, iv, ciphertext.to_vec())?;
    user_data(&plaintext)
}

/// The user data in a decrypted plaintext, its required fields present.
fn user_data(plaintext: &[u8]) -> Result<UserData, DecryptError> {
    let text = std::str::from_utf8(plaintext).map_err(DecryptError::PlaintextNotUtf8)?;
    if !text.trim_start().starts_with('{') {
        // JSON that is not an object has none of the fields (serde would read an array
        // positionally); text that is not JSON at all is told apart.
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => DecryptError::MissingField { field: "openId" },
            Err(e) => DecryptError::PlaintextNotJson(e),
        });
    }
    // Straight into a struct whose required fields are optional, so that a missing field gets
    // its own variant without building a `serde_json::Value` first (that step cost half the time).
    let parsed: LooseUserData = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            DecryptError::InvalidUserData(e)
        } else {
            DecryptError::PlaintextNotJson(e)
        }
    })?;
    parsed.into_user_data()
}

/// [`UserData`] as read, before the presence of its required fields is checked (`null` reads as
/// absent).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LooseUserData {
    open_id: Option<String>,
    #[serde(default)]
    union_id: Option<String>,
    #[serde(default)]
    nick_name: Option<String>,
    #[serde(default)]
    gender: Option<i64>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    city: Option<String>,
    #[serde(default)]
    province: Option<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    avatar_url: Option<String>,
    watermark: Option<LooseWatermark>,
}

#[derive(serde::Deserialize)]
struct LooseWatermark {
    appid: Option<String>,
    timestamp: Option<i64>,
}

impl LooseUserData {
    fn into_user_data(self) -> Result<UserData, DecryptError> {
        let missing = |field| DecryptError::MissingField { field };
        let open_id = self.open_id.ok_or_else(|| missing("openId"))?;
        let watermark = self.watermark.ok_or_else(|| missing("watermark"))?;
        let appid = watermark.appid.ok_or_else(|| missing("watermark.appid"))?;
        let timestamp = watermark
            .timestamp
            .ok_or_else(|| missing("watermark.timestamp"))?;
        Ok(UserData {
            open_id,
            union_id: self.union_id,
            nick_name: self.nick_name,
            gender: self.gender,
            language: self.language,
            city: self.city,
            province: self.province,
            country: self.country,
            avatar_url: self.avatar_url,
            watermark: Watermark { appid, timestamp },
        })
    }
}

/// Encrypts `plaintext` the way WeChat does, returning base64 `encryptedData`.
///
/// The server never needs this; simulators and tests do.
///
/// # Errors
///
/// Only the session key and iv errors of [`DecryptError`].
pub fn encrypt(
    session_key_b64: &str,
    iv_b64: &str,
    plaintext: &[u8],
) -> Result<String, DecryptError> {
    let (key, iv) = key_and_iv(session_key_b64, iv_b64)?;
    let cipher = cbc::Encryptor::<Aes128>::new((&*key).into(), (&iv).into());
    Ok(base64_forms::encode(
        &cipher.encrypt_padded_vec_mut::<Pkcs7>(plaintext),
    ))
}

/// Decodes and length-checks a base64 session key, for [`decrypt_user_data_bytes`]; the bytes
/// are wiped when dropped.
///
/// # Errors
///
/// [`DecryptError::SessionKeyNotBase64`] and [`DecryptError::SessionKeyLength`].
pub fn session_key_bytes(
    session_key_b64: &str,
) -> Result<Zeroizing<[u8; BLOCK_LEN]>, DecryptError> {
    let key = Zeroizing::new(
        base64_forms::decode(session_key_b64).map_err(DecryptError::SessionKeyNotBase64)?,
    );
    <[u8; BLOCK_LEN]>::try_from(key.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| DecryptError::SessionKeyLength { len: key.len() })
}

/// Decodes and length-checks the session key, then the iv.
fn key_and_iv(
    session_key_b64: &str,
    iv_b64: &str,
) -> Result<(Zeroizing<[u8; BLOCK_LEN]>, [u8; BLOCK_LEN]), DecryptError> {
    let key = session_key_bytes(session_key_b64)?;
    let iv = base64_forms::decode(iv_b64).map_err(DecryptError::IvNotBase64)?;
    let iv = <[u8; BLOCK_LEN]>::try_from(iv.as_slice())
        .map_err(|_| DecryptError::IvLength { len: iv.len() })?;
    Ok((key, iv))
}

/// Strips PKCS#7 padding, refusing a pad byte of 0 or above 16 and pad bytes that differ.
fn strict_pkcs7_unpad(block_aligned: &[u8]) -> Option<&[u8]> {
    let (&last, _) = block_aligned.split_last()?;
    let pad_len = usize::from(last);
    if pad_len == 0 || pad_len > BLOCK_LEN || pad_len > block_aligned.len() {
        return None;
    }
    let (data, pad) = block_aligned.split_at(block_aligned.len() - pad_len);
    pad.iter().all(|&b| b == last).then_some(data)
}

#[cfg(test)]
mod tests {
    use super::strict_pkcs7_unpad;

    #[test]
    fn unpad_accepts_every_valid_pad_length() {
        for n in 1..=16u8 {
            let mut block = vec![b'x'; 16 - usize::from(n)];
            block.extend(std::iter::repeat_n(n, usize::from(n)));
            assert_eq!(
                strict_pkcs7_unpad(&block),
                Some(&block[..16 - usize::from(n)])
            );
        }
    }

    #[test]
    fn unpad_refuses_zero_large_and_unequal_pads() {
        let mut block = [7u8; 16];
        block[15] = 0;
        assert_eq!(strict_pkcs7_unpad(&block), None);
        block[15] = 17;
        assert_eq!(strict_pkcs7_unpad(&block), None);
        let mut block = [3u8; 16];
        block[14] = 2;
        assert_eq!(strict_pkcs7_unpad(&block), None);
        assert_eq!(strict_pkcs7_unpad(&[]), None);
        assert_eq!(strict_pkcs7_unpad(&[2]), None);
    }
}
