//! The two signatures keyed by a session key: the SHA-1 `signature` that comes with `rawData`,
//! and the HMAC-SHA256 that `wxa/checksession` and `wxa/resetusersessionkey` expect.
//!
//! Both use the session key's base64 text as it is, not the 16 bytes it decodes to.
//! The text is taken byte for byte: no space repair, since a session key comes from
//! code2Session, not through a form.

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Computes the `signature` WeChat sends with `rawData`: lowercase hex of
/// SHA-1(`raw_data` followed by the session key's base64 text).
///
/// `raw_data` must be the exact string the client received, not a re-serialisation of it.
pub fn raw_data_signature(raw_data: &str, session_key_b64: &str) -> String {
    hex::encode(raw_data_digest(raw_data, session_key_b64))
}

/// Checks a `rawData` signature in constant time.
///
/// `signature_hex` is 40 hex digits in either case; anything else is `false`.
pub fn verify_raw_data_signature(
    raw_data: &str,
    session_key_b64: &str,
    signature_hex: &str,
) -> bool {
    let mut claimed = [0u8; 20];
    if hex::decode_to_slice(signature_hex, &mut claimed).is_err() {
        return false;
    }
    raw_data_digest(raw_data, session_key_b64)
        .ct_eq(&claimed)
        .into()
}

fn raw_data_digest(raw_data: &str, session_key_b64: &str) -> [u8; 20] {
    let mut sha1 = Sha1::new();
    sha1.update(raw_data.as_bytes());
    sha1.update(session_key_b64.as_bytes());
    sha1.finalize().into()
}

/// Computes WeChat's user login-state signature: lowercase hex of HMAC-SHA256 over `message`,
/// keyed by the session key's base64 text bytes.
///
/// WeChat's pages write the arguments in both orders; this order is the one its published test
/// vector confirms.
pub fn session_signature(session_key_b64: &str, message: &[u8]) -> String {
    // HMAC takes keys of any length (long ones are hashed first), so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(session_key_b64.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// The `signature` query parameter of `wxa/checksession` and `wxa/resetusersessionkey`
/// (with `sig_method=hmac_sha256`): [`session_signature`] over the empty message.
pub fn check_session_signature(session_key_b64: &str) -> String {
    session_signature(session_key_b64, b"")
}
