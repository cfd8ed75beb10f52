//! WeChat's refusals and failures, as the contract maps them: what WeChat refuses or fails,
//! what the client gets (that an invalid app secret is also logged is tested on the process in
//! `tests/tests/api/errors/upstream.rs`).

use std::time::Duration;

use serde_json::json;
use wxlink_wechat_sim::{Fault, FaultTarget};

use crate::helpers::*;

on_both_backends!(
    wechat_refusals_map_to_the_contract,
    upstream_failures_are_upstream_error,
    slow_wechat_is_upstream_timeout,
    unreachable_wechat_is_told_without_its_address,
);

async fn unreachable_wechat_is_told_without_its_address(backend: Backend) {
    // Nothing listens there: the connection is refused.
    let closed = format!(
        "http://127.0.0.1:{}",
        wxlink_tests::process::free_port().expect("a free port")
    );
    let app = TestApp::spawn(backend, Options::default().wechat_api_base(&closed)).await;
    let wx = app.wx_login(APP_B, "tove-in-b", Some("tove-union"));
    let reply = app.login_with_code(APP_B, &wx.code).await;
    let message = assert_error(&reply, 502, "upstream_error", "connection refused");
    assert_no_internal_detail(&reply, &closed, "connection refused");
    assert_eq!(message, "WeChat did not give a usable answer");
}

/// Fail if an error body tells an anonymous client more than the category and WeChat's
/// errcode: the simulator's host and port, WeChat's errmsg (with its `rid`), the transport's
/// words, key or database texts.
#[track_caller]
fn assert_no_internal_detail(reply: &Reply, sim_base: &str, what: &str) {
    // The message only: the request id is random hex and may contain any digits.
    let body = reply.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    let host_port = sim_base.trim_start_matches("http://").to_lowercase();
    let port = host_port.rsplit(':').next().unwrap_or_default().to_owned();
    let mut leaks = vec![
        host_port.as_str(),
        "127.0.0.1",
        "localhost",
        "rid",
        "invalid appsecret",
        "something new",
        "system error",
        "connection",
        "transport",
        "key",
        "database",
        "sqlite",
        "postgres",
        "<html",
    ];
    if !port.is_empty() {
        leaks.push(port.as_str());
    }
    for leak in leaks {
        assert!(
            !body.contains(leak),
            "{what}: the error body tells {leak:?}: {}",
            reply.body
        );
    }
}

async fn wechat_refusals_map_to_the_contract(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;

    let reply = app.login_with_code(APP_B, "never-issued-code").await;
    assert_error(&reply, 401, "invalid_code", "40029: unknown code");

    let wx = app.wx_login(APP_B, "pia-in-b", Some("pia-union"));
    LoginResponse::parse(&app.login_with_code(APP_B, &wx.code).await);
    let reply = app.login_with_code(APP_B, &wx.code).await;
    assert_error(&reply, 401, "invalid_code", "40163: code used twice");

    let wx_a = app.wx_login(APP_A, "pia-in-a", None);
    let reply = app.login_with_code(APP_B, &wx_a.code).await;
    assert_error(&reply, 401, "invalid_code", "40029: another app's code");

    let faults: Vec<(&str, Fault, u16, &str)> = vec![
        ("40226 high-risk user", Fault::HighRisk, 403, "user_blocked"),
        (
            "45011 rate limit",
            Fault::RateLimited,
            429,
            "upstream_rate_limited",
        ),
    ];
    for (what, fault, status, code) in faults {
        let wx = app.wx_login(APP_B, "quinn-in-b", Some("quinn-union"));
        app.sim
            .queue_faults(FaultTarget::code(&wx.code), [fault])
            .expect("queue a fault");
        let reply = app.login_with_code(APP_B, &wx.code).await;
        assert_error(&reply, status, code, what);
    }

    // A code older than five minutes.
    let wx = app.wx_login(APP_B, "quinn-in-b", Some("quinn-union"));
    app.sim.advance_clock(Duration::from_secs(301));
    let reply = app.login_with_code(APP_B, &wx.code).await;
    assert_error(&reply, 401, "invalid_code", "40029: expired code");
}

async fn upstream_failures_are_upstream_error(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;

    // -1 on every try: bounded retries, then 502.
    let wx = app.wx_login(APP_B, "rosa-in-b", Some("rosa-union"));
    app.sim
        .sticky_fault(
            FaultTarget::code(&wx.code),
            Fault::SystemBusy {
                consume_code: false,
            },
        )
        .expect("sticky fault");
    let reply = app.login_with_code(APP_B, &wx.code).await;
    let message = assert_error(&reply, 502, "upstream_error", "-1 on every try");
    assert_eq!(message, "WeChat answered errcode -1");
    let calls = app.sim.code2session_calls();
    assert!(
        (2..=6).contains(&calls),
        "-1 is retried a bounded number of times; code2session was called {calls} times"
    );
    app.sim.clear_faults();

    // -1 once: the retry succeeds.
    let wx = app.wx_login(APP_B, "rosa-in-b", Some("rosa-union"));
    app.sim
        .queue_faults(
            FaultTarget::code(&wx.code),
            [Fault::SystemBusy {
                consume_code: false,
            }],
        )
        .expect("queue a fault");
    let login = LoginResponse::parse(&app.login_with_code(APP_B, &wx.code).await);
    assert!(login.unionid_linked);

    // -1 after WeChat consumed the code: the retry meets 40163, caused by wxlink's own try.
    let wx = app.wx_login(APP_B, "rosa-in-b", Some("rosa-union"));
    app.sim
        .queue_faults(
            FaultTarget::code(&wx.code),
            [Fault::SystemBusy { consume_code: true }],
        )
        .expect("queue a fault");
    let reply = app.login_with_code(APP_B, &wx.code).await;
    assert_error(
        &reply,
        502,
        "upstream_error",
        "-1 consuming the code, then 40163 on the retry",
    );

    let faults: Vec<(&str, Fault, Option<i64>)> = vec![
        ("HTML 502 from a gateway", Fault::NonJson502, None),
        ("plain-text 500", Fault::Http500, None),
        (
            "40125 invalid appsecret",
            Fault::InvalidCredential,
            Some(40125),
        ),
        (
            "an errcode wxlink does not know",
            Fault::Errcode {
                errcode: 61_024,
                errmsg: "something new".to_owned(),
            },
            Some(61_024),
        ),
        ("connection dropped", Fault::DropConnection, None),
    ];
    for (what, fault, errcode) in faults {
        let wx = app.wx_login(APP_B, "rosa-in-b", Some("rosa-union"));
        app.sim
            .queue_faults(FaultTarget::code(&wx.code), [fault])
            .expect("queue a fault");
        let reply = app.login_with_code(APP_B, &wx.code).await;
        let message = assert_error(&reply, 502, "upstream_error", what);
        assert_no_internal_detail(&reply, &app.sim.base_url(), what);
        if let Some(errcode) = errcode {
            assert_eq!(
                message,
                format!("WeChat answered errcode {errcode}"),
                "{what}"
            );
        }
        for secret in app.secrets.values().chain([&wx.code, &wx.session_key]) {
            assert!(
                !reply.body.contains(secret.as_str()),
                "{what}: the error body carries a secret: {}",
                reply.body
            );
        }
    }
    // The earlier session is untouched by all of it.
    assert_eq!(app.me_ok(&login.token).await.user_id, login.user_id);
}

async fn slow_wechat_is_upstream_timeout(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default().timeout_ms(300)).await;

    let wx = app.wx_login(APP_B, "sam-in-b", Some("sam-union"));
    app.sim
        .queue_faults(FaultTarget::code(&wx.code), [Fault::Delay { ms: 2000 }])
        .expect("queue a fault");
    let reply = app.login_with_code(APP_B, &wx.code).await;
    assert_error(
        &reply,
        504,
        "upstream_timeout",
        "login while WeChat is slow",
    );
    // WeChat answers after 2 s, and that answer would log the user in: the 504 itself shows
    // that the budget (300 ms) ended the wait.

    // The same for the refreshing code of user-info; nothing changes.
    let login = app.login(APP_A, "sam-in-a", Some("sam-union")).await;
    let before = app.me_ok(&login.token).await;
    let relogin = app.wx_login(APP_A, "sam-in-a", None);
    app.sim
        .queue_faults(
            FaultTarget::code(&relogin.code),
            [Fault::Delay { ms: 2000 }],
        )
        .expect("queue a fault");
    let mut body = signed_body(&app.wx_user_info(APP_A, "sam-in-a"));
    body["code"] = json!(relogin.code);
    let reply = app.user_info(&login.token, &body).await;
    assert_error(
        &reply,
        504,
        "upstream_timeout",
        "user-info refresh while slow",
    );
    assert_eq!(app.me_ok(&login.token).await, before);
}
