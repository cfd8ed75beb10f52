//! WeChat's published vectors, embedded so the tests stand alone.
//! `shared/vectors/` beside the checkout holds the same values; when it exists the tests check that
//! the two copies agree, but the constants here are the source of truth.

use std::path::PathBuf;

use serde_json::Value;

/// WeChat's official decryption sample (`shared/vectors/official-decrypt.json`).
pub mod official {
    pub const APPID: &str = "wx4f4bc4dec97d474b";
    pub const SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    pub const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
    pub const ENCRYPTED_DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
    pub const OPEN_ID: &str = "oGZUI0egBJY1zhBYw2KhdUfwVJJE";
    pub const UNION_ID: &str = "ocMvos6NjeKLIBqg5Mr9QjxrP1FA";
    pub const NICK_NAME: &str = "Band";
    pub const TIMESTAMP: i64 = 1_477_314_187;
    pub const PKCS7_PAD_LEN: usize = 7;
}

/// WeChat's login-state HMAC vectors (`shared/vectors/session-key-hmac.json`):
/// (session key, message, lowercase hex HMAC-SHA256).
pub const SESSION_HMAC: [(&str, &str, &str); 2] = [
    (
        "o0q0otL8aEzpcZL/FT9WsQ==",
        r#"{"foo":"bar"}"#,
        "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b",
    ),
    (
        "tiihtNczf5v6AKRyjwEUhQ==",
        "",
        "7154f9f8b4b76b92f541cbf0e37d48840fa06e5e42da92a6f80168a1516a4735",
    ),
];

/// The rawData example of WeChat's "开放数据校验与解密" page.
pub mod raw_data {
    pub const RAW_DATA: &str = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
    pub const SESSION_KEY: &str = "HyVFkGl5F5OQWJZZaNzBBg==";
    pub const SIGNATURE: &str = "75e81ceda165f4ffa64f4068af58c64b8f54b88c";
}

/// Reads a file of the shared vectors directory, if the checkout has one beside it.
fn shared_vector(name: &str) -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vectors")
        .join(name);
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("shared vector file is JSON"))
}

#[test]
fn shared_official_vector_matches_the_embedded_copy() {
    let Some(file) = shared_vector("official-decrypt.json") else {
        return;
    };
    assert_eq!(file["appid"], official::APPID);
    assert_eq!(file["session_key"], official::SESSION_KEY);
    assert_eq!(file["iv"], official::IV);
    assert_eq!(file["encrypted_data"], official::ENCRYPTED_DATA);
    let expect = &file["expect"];
    assert_eq!(expect["openId"], official::OPEN_ID);
    assert_eq!(expect["unionId"], official::UNION_ID);
    assert_eq!(expect["nickName"], official::NICK_NAME);
    assert_eq!(expect["watermark"]["appid"], official::APPID);
    assert_eq!(expect["watermark"]["timestamp"], official::TIMESTAMP);
    assert_eq!(expect["pkcs7_pad_len"], official::PKCS7_PAD_LEN);
}

#[test]
fn shared_hmac_vectors_match_the_embedded_copy() {
    let Some(file) = shared_vector("session-key-hmac.json") else {
        return;
    };
    let cases = file["cases"].as_array().expect("cases is an array");
    assert_eq!(cases.len(), SESSION_HMAC.len());
    for (case, (key, message, hmac)) in cases.iter().zip(SESSION_HMAC) {
        assert_eq!(case["session_key"], key);
        assert_eq!(case["message"], message);
        assert_eq!(case["hmac_sha256_hex"], hmac);
    }
}
