//! Secrets never reach the logs: after a full scenario, wxlink's stderr (at debug level) holds
//! no session_key, token, app secret, encrypted data or data key. (That the database holds
//! tokens only hashed and session_keys only sealed is tested in-process in
//! `crates/api/tests/contract/secrets.rs`.)

use serde_json::json;
use wxlink_wechat_sim::{Fault, FaultTarget};

use crate::helpers::{
    APP_A, APP_B, Api, Backend, Options, TestApp, assert_no_secrets_in_logs, signed_body,
};

on_both_backends!(secrets_never_reach_the_logs);

async fn secrets_never_reach_the_logs(backend: Backend) {
    let mut app = TestApp::spawn(backend, Options::default().log("debug")).await;
    let mut session_keys = Vec::new();
    let mut tokens = Vec::new();
    let mut encrypted = Vec::new();

    let (wx, owner) = app.login_full(APP_B, "sec-in-b", Some("sec-union")).await;
    session_keys.push(wx.session_key);
    tokens.push(owner.token.clone());
    let (wx, provisional) = app.login_full(APP_A, "sec-in-a", Some("sec-union")).await;
    session_keys.push(wx.session_key);
    tokens.push(provisional.token.clone());

    // A stale key (refused), then the refresh with the new code (a merge).
    let relogin = app.wx_login(APP_A, "sec-in-a", None);
    session_keys.push(relogin.session_key.clone());
    let info = app.wx_user_info(APP_A, "sec-in-a");
    encrypted.push(info.encrypted_data.clone());
    assert_eq!(
        app.user_info(&provisional.token, &signed_body(&info))
            .await
            .status,
        422
    );
    let mut body = signed_body(&info);
    body["code"] = json!(relogin.code);
    assert!(app.user_info_ok(&provisional.token, &body).await.merged);
    app.me_ok(&provisional.token).await;

    // Upstream failures that log details.
    for fault in [
        Fault::InvalidCredential,
        Fault::NonJson502,
        Fault::SystemBusy { consume_code: true },
    ] {
        let wx = app.wx_login(APP_B, "sec-in-b", None);
        session_keys.push(wx.session_key);
        app.sim
            .queue_faults(FaultTarget::code(&wx.code), [fault])
            .expect("queue a fault");
        assert_eq!(app.login_with_code(APP_B, &wx.code).await.status, 502);
    }
    assert_eq!(app.logout(&owner.token).await.status, 204);
    assert_eq!(app.me(&owner.token).await.status, 401);

    let data_key = std::fs::read_to_string(app.dir().join("wxlink.key")).expect("data key");
    app.stop();
    let stderr = app.stderr();
    assert!(
        stderr.contains("wxlink listening"),
        "the logs were captured:\n{stderr}"
    );

    let mut secrets: Vec<(&str, String)> = Vec::new();
    secrets.extend(session_keys.into_iter().map(|k| ("a session_key", k)));
    secrets.extend(tokens.into_iter().map(|t| ("a token", t)));
    secrets.extend(encrypted.into_iter().map(|e| ("encrypted_data", e)));
    secrets.extend(app.secrets.values().map(|s| ("an app secret", s.clone())));
    secrets.push(("the data key", data_key.trim().to_owned()));
    assert_no_secrets_in_logs(&stderr, &secrets);
}
