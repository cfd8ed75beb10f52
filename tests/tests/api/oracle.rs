//! `user-info` is no decryption oracle: the failed-decryption budget of a session survives a
//! restart of the process. The padding-oracle attack itself, one answer for every failure, the
//! per-identity budget and future watermarks are tested in-process in
//! `crates/api/tests/contract/oracle.rs`.

use serde_json::json;
use wxlink_wechat_sim::CHECK_SESSION_PATH;

use crate::helpers::{APP_A, Api, Backend, Options, TestApp, assert_error, raw_block};

on_both_backends!(failed_decryptions_are_budgeted_per_session_across_restarts);

/// What the budget defaults to (`[security] max_failed_decrypts_per_session`).
const SESSION_BUDGET: usize = 5;
/// The 6th failed decryption on a session is refused without decrypting or asking WeChat, also
/// after a restart; an honest retry within the budget still links.
async fn failed_decryptions_are_budgeted_per_session_across_restarts(backend: Backend) {
    let mut app = TestApp::spawn(backend, Options::default()).await;
    let (wx, login) = app
        .login_full(APP_A, "mallory", Some("mallory-union"))
        .await;
    let garbage = json!({
        "encrypted_data": raw_block(&wx.session_key, crate::helpers::FORGED_IV, b"padding is wrong"),
        "iv": crate::helpers::FORGED_IV,
    });
    for attempt in 1..=3 {
        let reply = app.user_info(&login.token, &garbage).await;
        assert_error(&reply, 422, "decrypt_failed", &format!("failure {attempt}"));
    }
    app.restart().await;
    for attempt in 4..=SESSION_BUDGET {
        let reply = app.user_info(&login.token, &garbage).await;
        assert_error(&reply, 422, "decrypt_failed", &format!("failure {attempt}"));
    }
    let checks = app.sim.calls().total(CHECK_SESSION_PATH);
    assert_eq!(
        checks, SESSION_BUDGET as u64,
        "each failure asked WeChat once"
    );
    // Past the budget even genuine data is refused, without decrypting or asking WeChat.
    let genuine = app.wx_user_info(APP_A, "mallory");
    let reply = app
        .user_info(&login.token, &crate::helpers::unsigned_body(&genuine))
        .await;
    let message = assert_error(&reply, 429, "too_many_attempts", "past the budget");
    // The session's budget: a new login is the way out, and the answer says so.
    assert!(message.contains("log in again"), "{message}");
    assert_eq!(
        reply.header("retry-after"),
        None,
        "a new login helps at once"
    );
    assert_eq!(app.sim.calls().total(CHECK_SESSION_PATH), checks);
    assert!(!app.me_ok(&login.token).await.unionid_linked);

    // The client's way out: wx.login, a new session with its own budget.
    let (wx, login) = app
        .login_full(APP_A, "mallory", Some("mallory-union"))
        .await;
    let garbage = json!({
        "encrypted_data": raw_block(&wx.session_key, crate::helpers::FORGED_IV, b"padding is wrong"),
        "iv": crate::helpers::FORGED_IV,
    });
    for attempt in 1..SESSION_BUDGET {
        let reply = app.user_info(&login.token, &garbage).await;
        assert_error(
            &reply,
            422,
            "decrypt_failed",
            &format!("new session {attempt}"),
        );
    }
    let genuine = app.wx_user_info(APP_A, "mallory");
    let linked = app
        .user_info_ok(&login.token, &crate::helpers::unsigned_body(&genuine))
        .await;
    assert!(linked.unionid_linked);
}
