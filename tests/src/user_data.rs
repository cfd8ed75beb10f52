//! User data as `wx.getUserInfo` gives it, and forged data for refusal tests.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use wxlink_wechat_sim::UserInfo;

/// The request body a mini program sends with `wx.getUserInfo`'s answer (all four fields).
pub fn signed_body(info: &UserInfo) -> Value {
    json!({
        "encrypted_data": info.encrypted_data,
        "iv": info.iv,
        "raw_data": info.raw_data,
        "signature": info.signature,
    })
}

/// Only `encrypted_data` and `iv`.
pub fn unsigned_body(info: &UserInfo) -> Value {
    json!({"encrypted_data": info.encrypted_data, "iv": info.iv})
}

/// The iv of forged data: base64 of `0123456789abcdef`.
pub const FORGED_IV: &str = "MDEyMzQ1Njc4OWFiY2RlZg==";

/// `plaintext` encrypted under `session_key` as WeChat would, as a request body.
pub fn forged_body(session_key: &str, plaintext: &[u8]) -> Value {
    let encrypted = wxlink_crypto::encrypt(session_key, FORGED_IV, plaintext)
        .expect("encrypt forged user data");
    json!({"encrypted_data": encrypted, "iv": FORGED_IV})
}

/// A single AES block (base64) whose plaintext under `session_key` and `iv` is `plain`, with no
/// padding of its own: the first block of WeChat's encryption of 16 bytes. Sent alone, its
/// padding is whatever `plain` ends with.
pub fn raw_block(session_key: &str, iv: &str, plain: &[u8; 16]) -> String {
    let encrypted = wxlink_crypto::encrypt(session_key, iv, plain).expect("encrypt");
    let bytes = STANDARD.decode(encrypted).expect("base64");
    STANDARD.encode(&bytes[..16])
}

/// The JSON `wx.getUserInfo` encrypts.
pub fn user_plaintext(
    openid: &str,
    unionid: Option<&str>,
    watermark_appid: &str,
    timestamp: i64,
) -> Vec<u8> {
    let mut data = json!({
        "openId": openid,
        "nickName": "forger",
        "gender": 0,
        "language": "",
        "city": "",
        "province": "",
        "country": "",
        "avatarUrl": "",
        "watermark": {"appid": watermark_appid, "timestamp": timestamp},
    });
    if let Some(unionid) = unionid {
        data["unionId"] = json!(unionid);
    }
    data.to_string().into_bytes()
}
