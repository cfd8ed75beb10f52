//! WeChat's access token (the one `phone-number` needs) over its two-hour lifetime: wxlink
//! keeps one per app and renews it in the last five minutes, before WeChat would refuse it, and
//! not earlier (`stable_token` calls are a daily quota). The clock is moved, not waited for.

use std::time::Duration;

use crate::helpers::{APP_B, Api, Backend, Options, TestApp};

on_both_backends!(wechats_access_token_is_renewed_in_its_last_minutes_and_not_before);

async fn wechats_access_token_is_renewed_in_its_last_minutes_and_not_before(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let login = app.login(APP_B, "tok-b", Some("tok-union")).await;
    let phone = async || {
        let code = app.wx_phone_code(APP_B, "tok-b", "13800138000", Some("86"));
        let reply = app.phone_number(&login.token, &code).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        app.sim.stable_token_calls_for(APP_B)
    };
    assert_eq!(phone().await, 1, "the first call fetches a token");
    // Ten minutes before the token's end, it is still used.
    app.advance_clock(Duration::from_secs(7200 - 600));
    assert_eq!(phone().await, 1, "a token with ten minutes left is kept");
    // In its last five minutes it is renewed, once.
    app.advance_clock(Duration::from_secs(360));
    assert_eq!(phone().await, 2, "renewed in the last five minutes");
    assert_eq!(phone().await, 2, "renewed once");
    // Two hours on, the renewed one has run out too.
    app.advance_clock(Duration::from_secs(7200));
    assert_eq!(phone().await, 3);
}
