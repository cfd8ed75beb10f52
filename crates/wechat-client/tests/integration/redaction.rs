//! Redaction.

use super::*;

#[test]
fn secrets_debug_is_redacted() {
    assert_eq!(
        format!("{:?}", AppSecret::new(SECRET)),
        "AppSecret([redacted])"
    );
    assert_eq!(
        format!("{:?}", SessionKey::new("tiihtNczf5v6AKRyjwEUhQ==")),
        "SessionKey([redacted])"
    );
    let session = Code2Session {
        openid: "o1".into(),
        session_key: SessionKey::new("tiihtNczf5v6AKRyjwEUhQ=="),
        unionid: Some("u1".into()),
    };
    let debug = format!("{session:?}");
    assert!(!debug.contains("tiihtNczf5v6AKRyjwEUhQ=="), "{debug}");
    assert!(debug.contains("SessionKey([redacted])"), "{debug}");
    assert!(debug.contains("o1") && debug.contains("u1"), "{debug}");
}

#[test]
fn client_clones_share_the_config() {
    let client = WeChatClient::new(ClientConfig::default()).expect("client");
    let clone = client.clone();
    assert_eq!(
        clone.config().api_base().as_str(),
        "https://api.weixin.qq.com/"
    );
}
