//! A client whose `wx.login` rotated the session_key: its data no longer opens with the key
//! wxlink stored, until it sends the new code along.
//!
//! The contract's "session key health" extension: when data does not decrypt and no code came
//! with it, wxlink asks WeChat (`wxa/checksession`) whether the stored key is still valid; a
//! rotated key is `session_key_expired`, and `decrypt_failed` remains when WeChat says the key
//! is valid or cannot be asked.

use serde_json::json;
use wxlink_wechat_sim::{CHECK_SESSION_PATH, Fault, FaultTarget, UserInfoRequest};

use crate::helpers::{
    APP_A, APP_B, Api, Backend, Options, TestApp, UserInfoResponse, assert_error, identities,
    signed_body, unsigned_body,
};

on_both_backends!(
    stale_session_key_recovers_with_the_new_code,
    stale_session_key_with_signed_raw_data_is_not_a_signature_mismatch,
    stale_session_key_is_decrypt_failed_when_wechat_cannot_be_asked,
    refused_refresh_keeps_the_stored_session_key,
);

async fn stale_session_key_recovers_with_the_new_code(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let login = app.login(APP_A, "erin-in-a", Some("erin-union")).await;
    let before = app.me_ok(&login.token).await;

    // The mini program calls wx.login again: a new code, and the key rotates.
    let relogin = app.wx_login(APP_A, "erin-in-a", None);
    let info = app.wx_user_info(APP_A, "erin-in-a");

    let reply = app.user_info(&login.token, &unsigned_body(&info)).await;
    assert_error(
        &reply,
        422,
        "session_key_expired",
        "data under a rotated key",
    );
    assert_eq!(
        app.me_ok(&login.token).await,
        before,
        "a refused request changes nothing"
    );
    assert!(!before.unionid_linked);

    // The same data with the new code: wxlink refreshes the key first, and links.
    let mut body = signed_body(&info);
    body["code"] = json!(relogin.code);
    assert_eq!(
        app.user_info_ok(&login.token, &body).await,
        UserInfoResponse {
            user_id: login.user_id.clone(),
            unionid_linked: true,
            merged: false
        }
    );
    let me = app.me_ok(&login.token).await;
    assert!(me.unionid_linked);
    assert_eq!(me.identities, identities(&[(APP_A, "erin-in-a")]));

    // The refreshed key is now the session's: new data opens without a code.
    let info = app.wx_user_info(APP_A, "erin-in-a");
    assert_eq!(
        app.user_info_ok(&login.token, &unsigned_body(&info))
            .await
            .user_id,
        login.user_id
    );

    // The code was used by the refresh; sending it again is WeChat's 40163.
    let mut body = signed_body(&info);
    body["code"] = json!(relogin.code);
    let reply = app.user_info(&login.token, &body).await;
    assert_error(&reply, 401, "invalid_code", "a refreshing code used twice");
}

/// The usual client sends all four fields of `wx.getUserInfo`'s answer. wxlink decrypts first
/// and checks the signature after (contract), so a stale key is reported as such and not as
/// tampered data: the client must learn "send a new code".
async fn stale_session_key_with_signed_raw_data_is_not_a_signature_mismatch(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let login = app.login(APP_A, "finn-in-a", Some("finn-union")).await;
    let before = app.me_ok(&login.token).await;
    let _rotated = app.wx_login(APP_A, "finn-in-a", None);
    let info = app.wx_user_info(APP_A, "finn-in-a");

    let reply = app.user_info(&login.token, &signed_body(&info)).await;
    assert_error(
        &reply,
        422,
        "session_key_expired",
        "signed data under a rotated key",
    );
    assert_eq!(app.me_ok(&login.token).await, before);
}

async fn stale_session_key_is_decrypt_failed_when_wechat_cannot_be_asked(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let login = app.login(APP_A, "gus-in-a", Some("gus-union")).await;
    let before = app.me_ok(&login.token).await;
    let _rotated = app.wx_login(APP_A, "gus-in-a", None);
    let info = app.wx_user_info(APP_A, "gus-in-a");
    app.sim
        .sticky_fault(
            FaultTarget::any().at_path(CHECK_SESSION_PATH),
            Fault::Http500,
        )
        .expect("sticky fault");

    let reply = app.user_info(&login.token, &signed_body(&info)).await;
    assert_error(
        &reply,
        422,
        "decrypt_failed",
        "rotated key while checksession fails",
    );
    assert_eq!(app.me_ok(&login.token).await, before);
}

async fn refused_refresh_keeps_the_stored_session_key(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let login = app.login(APP_A, "gina-in-a", Some("gina-union")).await;
    let before = app.me_ok(&login.token).await;

    // A refresh whose data is refused (another app's watermark) must not store the new key.
    let relogin = app.wx_login(APP_A, "gina-in-a", None);
    let foreign = app
        .sim
        .user_info_with(&UserInfoRequest {
            watermark_appid: Some(APP_B.to_owned()),
            ..UserInfoRequest::new(APP_A, "gina-in-a")
        })
        .expect("simulated wx.getUserInfo");
    let mut body = signed_body(&foreign);
    body["code"] = json!(relogin.code);
    let reply = app.user_info(&login.token, &body).await;
    assert_error(
        &reply,
        422,
        "watermark_mismatch",
        "refresh with foreign data",
    );
    assert_eq!(app.me_ok(&login.token).await, before);

    // So data under the new key still does not open without a code …
    let info = app.wx_user_info(APP_A, "gina-in-a");
    let reply = app.user_info(&login.token, &unsigned_body(&info)).await;
    assert_error(
        &reply,
        422,
        "session_key_expired",
        "the refused refresh must not have replaced the stored key",
    );
    assert_eq!(app.me_ok(&login.token).await, before);

    // … and a fresh code (the refused one was consumed by WeChat) recovers.
    let relogin = app.wx_login(APP_A, "gina-in-a", None);
    let info = app.wx_user_info(APP_A, "gina-in-a");
    let mut body = signed_body(&info);
    body["code"] = json!(relogin.code);
    let linked = app.user_info_ok(&login.token, &body).await;
    assert!(linked.unionid_linked && !linked.merged);
    assert_eq!(linked.user_id, login.user_id);
}
