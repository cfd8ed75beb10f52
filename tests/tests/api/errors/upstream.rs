//! WeChat's refusals and failures in the process's logs: an invalid app secret is an operator's
//! configuration error, so wxlink logs it as one (what the client gets for each refusal is
//! tested in-process in `crates/api/tests/contract/errors/upstream.rs`).

use wxlink_wechat_sim::{Fault, FaultTarget};

use crate::helpers::*;

on_both_backends!(an_invalid_app_secret_is_logged_as_a_configuration_error);

async fn an_invalid_app_secret_is_logged_as_a_configuration_error(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let wx = app.wx_login(APP_B, "rosa-in-b", Some("rosa-union"));
    app.sim
        .queue_faults(FaultTarget::code(&wx.code), [Fault::InvalidCredential])
        .expect("queue a fault");
    let reply = app.login_with_code(APP_B, &wx.code).await;
    assert_error(&reply, 502, "upstream_error", "40125 invalid appsecret");
    assert!(
        app.wait_for_stderr("configuration error").await,
        "40125 is also logged as a configuration error"
    );
}
