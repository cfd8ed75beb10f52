//! User data that cannot be opened, belongs to someone else, or names another unionid.

use serde_json::{Value, json};

use crate::helpers::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

on_both_backends!(
    refreshing_code_of_another_openid_is_identity_mismatch,
    undecryptable_data_is_decrypt_failed,
    another_unionid_is_unionid_conflict,
);

async fn refreshing_code_of_another_openid_is_identity_mismatch(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let login = app.login(APP_A, "tara-in-a", Some("tara-union")).await;
    let before = app.me_ok(&login.token).await;
    let own = app.wx_user_info(APP_A, "tara-in-a");

    let someone_else = app.wx_login(APP_A, "uma-in-a", Some("uma-union"));
    let mut body = signed_body(&own);
    body["code"] = json!(someone_else.code);
    let reply = app.user_info(&login.token, &body).await;
    assert_error(
        &reply,
        403,
        "identity_mismatch",
        "refreshing code of another openid",
    );
    assert_eq!(app.me_ok(&login.token).await, before);

    // The stored key was not replaced: the session's own data still opens without a code.
    let linked = app.user_info_ok(&login.token, &unsigned_body(&own)).await;
    assert!(linked.unionid_linked);
    assert_eq!(linked.user_id, login.user_id);
}

async fn undecryptable_data_is_decrypt_failed(backend: Backend) {
    let app = TestApp::spawn(backend, more_attempts()).await;
    let (wx, login) = app.login_full(APP_A, "vera-in-a", Some("vera-union")).await;
    let before = app.me_ok(&login.token).await;
    let info = app.wx_user_info(APP_A, "vera-in-a");

    let mut other_iv = unsigned_body(&info);
    other_iv["iv"] = json!(if info.iv == FORGED_IV {
        "ZmVkY2JhOTg3NjU0MzIxMA=="
    } else {
        FORGED_IV
    });
    let cases: Vec<(&str, Value)> = vec![
        (
            "random bytes",
            json!({"encrypted_data": "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=", "iv": FORGED_IV}),
        ),
        ("one block too short", {
            let mut body = unsigned_body(&info);
            let data = wxlink_crypto::decode_base64(&info.encrypted_data).expect("base64");
            body["encrypted_data"] = json!(STANDARD.encode(&data[..data.len() - 16]));
            body
        }),
        ("another iv", other_iv),
        (
            "plaintext that is not JSON",
            forged_body(&wx.session_key, b"this is not json"),
        ),
        (
            "JSON without openId",
            forged_body(
                &wx.session_key,
                json!({"unionId": "vera-union", "watermark": {"appid": APP_A, "timestamp": app.now()}})
                    .to_string()
                    .as_bytes(),
            ),
        ),
    ];
    for (what, body) in cases {
        let reply = app.user_info(&login.token, &body).await;
        assert_error(&reply, 422, "decrypt_failed", what);
        assert_eq!(app.me_ok(&login.token).await, before, "{what}");
    }

    let mut bad = signed_body(&info);
    bad["signature"] = json!(wxlink_crypto::raw_data_signature(
        &info.raw_data,
        "AAAAAAAAAAAAAAAAAAAAAA=="
    ));
    let reply = app.user_info(&login.token, &bad).await;
    assert_error(&reply, 422, "signature_mismatch", "signed with another key");
    assert_eq!(app.me_ok(&login.token).await, before);
}

async fn another_unionid_is_unionid_conflict(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;

    // user-info whose data names another unionid than the user's.
    let (wx, login) = app
        .login_full(APP_B, "wendy-in-b", Some("wendy-union"))
        .await;
    let before = app.me_ok(&login.token).await;
    assert!(before.unionid_linked);
    let forged = forged_body(
        &wx.session_key,
        &user_plaintext("wendy-in-b", Some("not-wendy-union"), APP_B, app.now()),
    );
    let reply = app.user_info(&login.token, &forged).await;
    assert_error(
        &reply,
        409,
        "unionid_conflict",
        "data names another unionid",
    );
    assert_eq!(app.me_ok(&login.token).await, before);

    // A login whose code2Session unionid differs from the user's: refused, nothing written.
    let wx = app.wx_login(APP_B, "wendy-in-b", Some("other-union"));
    let reply = app.login_with_code(APP_B, &wx.code).await;
    assert_error(
        &reply,
        409,
        "unionid_conflict",
        "login with another unionid",
    );
    assert_eq!(app.me_ok(&login.token).await, before);
    let back = app.login(APP_B, "wendy-in-b", Some("wendy-union")).await;
    assert_eq!(back.user_id, login.user_id);
    // Nobody owns the other unionid.
    let stranger = app.login(APP_B, "xena-in-b", Some("other-union")).await;
    assert_ne!(stranger.user_id, login.user_id);
    assert_eq!(
        app.me_ok(&stranger.token).await.identities,
        identities(&[(APP_B, "xena-in-b")])
    );

    // A refreshing code that yields one unionid with data that names another.
    let login = app.login(APP_B, "yuki-in-b", None).await;
    assert!(login.needs_user_info, "a WeChat user without unionid yet");
    let before = app.me_ok(&login.token).await;
    let relogin = app.wx_login(APP_B, "yuki-in-b", Some("yuki-union"));
    let mut body = forged_body(
        &relogin.session_key,
        &user_plaintext("yuki-in-b", Some("fake-union"), APP_B, app.now()),
    );
    body["code"] = json!(relogin.code);
    let reply = app.user_info(&login.token, &body).await;
    assert_error(&reply, 409, "unionid_conflict", "code and data disagree");
    assert_eq!(app.me_ok(&login.token).await, before);

    // The refused refresh did not store the new key: honest data under it needs a code.
    let honest = forged_body(
        &relogin.session_key,
        &user_plaintext("yuki-in-b", Some("yuki-union"), APP_B, app.now()),
    );
    let reply = app.user_info(&login.token, &honest).await;
    assert_error(
        &reply,
        422,
        "session_key_expired",
        "the refused refresh must not have stored its key",
    );
    assert_eq!(app.me_ok(&login.token).await, before);
}

/// More refusals on one session than its default budget of failed decryptions (5) allows.
fn more_attempts() -> Options {
    Options::default().security_toml("max_failed_decrypts_per_session = 10\n")
}
