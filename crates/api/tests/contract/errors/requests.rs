//! Requests wxlink refuses before doing anything: malformed bodies, unknown apps, routes and
//! methods, floods, and calls past the app's WeChat quota.

use axum::http::Method;
use serde_json::{Value, json};
use wxlink_wechat_sim::{CHECK_SESSION_PATH, PHONE_NUMBER_PATH};

use super::json_bytes;
use crate::helpers::*;

on_both_backends!(
    malformed_requests_are_invalid_request,
    unknown_apps_routes_and_methods,
    floods_are_rate_limited,
    token_routes_are_rate_limited_per_ip,
    failed_user_info_and_phone_calls_count_toward_the_app_limit,
);

async fn malformed_requests_are_invalid_request(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let deep = |levels: usize| {
        format!(
            r#"{{"appid":"{APP_B}","code":"never-issued","x":{}{}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    let login_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"{not json".to_vec()),
        ("empty body", Vec::new()),
        ("a JSON array", b"[]".to_vec()),
        ("JSON null", b"null".to_vec()),
        ("invalid UTF-8", vec![b'{', 0xff, 0xfe, b'}']),
        ("missing code", json_bytes(&json!({"appid": APP_B}))),
        ("missing appid", json_bytes(&json!({"code": "abc"}))),
        (
            "mistyped code",
            json_bytes(&json!({"appid": APP_B, "code": 123})),
        ),
        (
            "mistyped appid",
            json_bytes(&json!({"appid": ["x"], "code": "abc"})),
        ),
        (
            "empty code",
            json_bytes(&json!({"appid": APP_B, "code": ""})),
        ),
        (
            "code too long",
            json_bytes(&json!({"appid": APP_B, "code": "c".repeat(257)})),
        ),
        (
            "code with a space",
            json_bytes(&json!({"appid": APP_B, "code": "a b"})),
        ),
    ];
    for (what, body) in login_bodies {
        let reply = app
            .post_raw(
                "/v1/wechat/login",
                None,
                Some("application/json"),
                body.clone(),
            )
            .await;
        assert_error(&reply, 400, "invalid_request", &format!("login: {what}"));
    }
    assert_eq!(
        app.sim.code2session_calls(),
        0,
        "refused requests never reach WeChat"
    );

    // Deep nesting (in a field wxlink ignores) neither crashes nor hangs the service.
    for levels in [100, 200, 20_000] {
        let reply = app
            .post_raw(
                "/v1/wechat/login",
                None,
                Some("application/json"),
                deep(levels),
            )
            .await;
        let code = error_code(&reply).unwrap_or_default();
        assert!(
            matches!(code.as_str(), "invalid_request" | "invalid_code"),
            "login nested {levels} levels: {} {}",
            reply.status,
            reply.body
        );
        assert_error_shape(&reply, "deeply nested login");
    }
    assert_eq!(app.get("/healthz", None).await.status, 200);

    // Bodies are JSON whatever the Content-Type says, and unknown fields are ignored.
    for content_type in [Some("text/plain"), None] {
        let wx = app.wx_login(APP_B, "kim-in-b", Some("kim-union"));
        let body = json!({"appid": APP_B, "code": wx.code, "platform": "ios"});
        let reply = app
            .post_raw("/v1/wechat/login", None, content_type, json_bytes(&body))
            .await;
        crate::helpers::LoginResponse::parse(&reply);
    }

    // user-info bodies, with a valid token.
    let login = app.login(APP_A, "kim-in-a", Some("kim-union")).await;
    let before = app.me_ok(&login.token).await;
    let info = app.wx_user_info(APP_A, "kim-in-a");
    let valid = signed_body(&info);
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let without = |fields: &[&str]| {
        let mut body = valid.clone();
        for field in fields {
            body.as_object_mut()
                .expect("an object")
                .remove(*field)
                .expect("the field is there");
        }
        body
    };
    let url_safe = info.encrypted_data.replace('+', "-").replace('/', "_");
    let user_info_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"encrypted_data=abc".to_vec()),
        (
            "missing encrypted_data",
            json_bytes(&without(&["encrypted_data"])),
        ),
        ("missing iv", json_bytes(&without(&["iv"]))),
        ("mistyped iv", json_bytes(&with("iv", json!(16)))),
        (
            "mistyped encrypted_data",
            json_bytes(&with("encrypted_data", json!({"a": 1}))),
        ),
        (
            "encrypted_data not base64",
            json_bytes(&with("encrypted_data", json!("!!!not base64!!!"))),
        ),
        (
            "encrypted_data in the URL-safe alphabet",
            json_bytes(&with("encrypted_data", json!(format!("{url_safe}-_")))),
        ),
        (
            "encrypted_data without its padding",
            json_bytes(&with(
                "encrypted_data",
                json!(info.encrypted_data.trim_end_matches('=').to_owned() + "A"),
            )),
        ),
        (
            "empty encrypted_data",
            json_bytes(&with("encrypted_data", json!(""))),
        ),
        (
            "iv not base64",
            json_bytes(&with("iv", json!("not-base64*"))),
        ),
        (
            "iv of 8 bytes",
            json_bytes(&with("iv", json!("MDEyMzQ1Njc="))),
        ),
        (
            "iv of 24 bytes",
            json_bytes(&with("iv", json!("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"))),
        ),
        (
            "raw_data without signature",
            json_bytes(&without(&["signature"])),
        ),
        (
            "signature without raw_data",
            json_bytes(&without(&["raw_data"])),
        ),
        (
            "code too long",
            json_bytes(&with("code", json!("c".repeat(257)))),
        ),
        ("empty code", json_bytes(&with("code", json!("")))),
        ("mistyped code", json_bytes(&with("code", json!(42)))),
    ];
    for (what, body) in user_info_bodies {
        let reply = app
            .post_raw(
                "/v1/wechat/user-info",
                Some(&login.token),
                Some("application/json"),
                body,
            )
            .await;
        assert_error(
            &reply,
            400,
            "invalid_request",
            &format!("user-info: {what}"),
        );
        assert_eq!(app.me_ok(&login.token).await, before, "user-info: {what}");
    }

    // The one tolerated damage: spaces where form decoding ate the `+` of standard base64.
    let spaced = with(
        "encrypted_data",
        json!(info.encrypted_data.replace('+', " ")),
    );
    let linked = app.user_info_ok(&login.token, &spaced).await;
    assert!(linked.unionid_linked, "{linked:?}");
}

async fn unknown_apps_routes_and_methods(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;

    // An app WeChat knows but wxlink is not configured for.
    app.sim
        .register_app(
            UNCONFIGURED_APP,
            "its-secret",
            wxlink_wechat_sim::UnionidPolicy::Always,
        )
        .expect("register an app in the simulator");
    let wx = app.wx_login(UNCONFIGURED_APP, "lee", Some("lee-union"));
    for (what, appid) in [
        ("well-formed, not configured", UNCONFIGURED_APP),
        ("malformed", "not-an-appid"),
        ("empty", ""),
        ("configured appid in upper case", "WXA1B2C3D4E5F60001"),
    ] {
        let reply = app.login_with_code(appid, &wx.code).await;
        assert_error(&reply, 400, "unknown_app", what);
    }
    assert_eq!(app.sim.code2session_calls(), 0);

    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/nope"),
        (Method::POST, "/v1/nope"),
        (Method::GET, "/v1/me/extra"),
        (Method::GET, "/v1/wechat"),
        (Method::POST, "/v1/wechat/login/"),
    ] {
        let reply = app.call(method.clone(), path, None, None, None).await;
        assert_error(&reply, 404, "not_found", &format!("{method} {path}"));
    }

    for (method, path, allowed) in [
        (Method::GET, "/v1/wechat/login", "POST"),
        (Method::PUT, "/v1/wechat/login", "POST"),
        (Method::GET, "/v1/wechat/user-info", "POST"),
        (Method::POST, "/v1/me", "GET"),
        (Method::PUT, "/v1/me", "DELETE"),
        (Method::GET, "/v1/logout", "POST"),
        (Method::POST, "/healthz", "GET"),
    ] {
        let what = format!("{method} {path}");
        let reply = app.call(method, path, None, None, None).await;
        assert_error(&reply, 405, "method_not_allowed", &what);
        let allow = reply.header("allow").unwrap_or_default();
        assert!(
            allow.split(',').any(|m| m.trim() == allowed),
            "{what}: Allow header {allow:?} should list {allowed}"
        );
    }

    let health = app.get("/healthz", None).await;
    assert_eq!(health.ok_json(200, "healthz"), json!({"status": "ok"}));
}

/// A client trying tokens (or cancelling and logging out in a loop) meets the per-IP limit on
/// every route that authenticates a bearer token or writes: `GET` and `DELETE /v1/me` and
/// logout, not only the routes that ask WeChat.
async fn token_routes_are_rate_limited_per_ip(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        Options::default().extra_toml(
            "[rate_limit]\nexempt_loopback = false\nper_ip_burst = 3\nper_ip_per_minute = 1\n",
        ),
    )
    .await;
    let guess = "guessed-token-0123456789-abcdefghijklmnopq";
    // The burst of 3, one request on each route: each is counted, each is refused on its own.
    assert_error(&app.me(guess).await, 401, "invalid_token", "GET /v1/me");
    assert_error(&app.logout(guess).await, 401, "invalid_token", "logout");
    let cancel = app.cancel_with(guess, None).await;
    assert_error(&cancel, 401, "invalid_token", "DELETE /v1/me");
    // Past the burst, every one of them is refused before the token is looked up.
    for (reply, what) in [
        (app.me(guess).await, "GET /v1/me"),
        (app.logout(guess).await, "logout"),
        (app.cancel_with(guess, None).await, "DELETE /v1/me"),
    ] {
        assert_error(&reply, 429, "rate_limited", what);
        assert!(reply.header("retry-after").is_some(), "{what}: Retry-After");
    }
    // A wrong method costs nothing and is still a 405.
    let put = app
        .call(Method::PUT, "/v1/me", Some(guess), None, None)
        .await;
    assert_error(&put, 405, "method_not_allowed", "PUT /v1/me");
}

/// `[rate_limit]`: per client IP (loopback is exempt by default, so the test turns that off)
/// and per appid; refused before WeChat is asked, with `Retry-After`.
async fn floods_are_rate_limited(backend: Backend) {
    let app = TestApp::spawn(
        backend.clone(),
        Options::default().extra_toml(
            "[rate_limit]\nexempt_loopback = false\nper_ip_burst = 3\nper_ip_per_minute = 1\n",
        ),
    )
    .await;
    for i in 0..3 {
        app.login(
            APP_B,
            &format!("flood-{i}"),
            Some(&format!("flood-union-{i}")),
        )
        .await;
    }
    let wx = app.wx_login(APP_B, "flood-3", Some("flood-union-3"));
    let reply = app.login_with_code(APP_B, &wx.code).await;
    assert_error(&reply, 429, "rate_limited", "4th login with a burst of 3");
    let retry_after: u64 = reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("429 carries a Retry-After in seconds: {:?}", reply.headers));
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert_eq!(
        app.sim.code2session_calls(),
        3,
        "a refused login never reaches WeChat"
    );
    assert_eq!(
        app.get("/healthz", None).await.status,
        200,
        "health is not limited"
    );
    drop(app);

    let app = TestApp::spawn(
        backend,
        Options::default().extra_toml("[rate_limit]\nper_app_burst = 2\nper_app_per_minute = 1\n"),
    )
    .await;
    for i in 0..2 {
        app.login(APP_B, &format!("app-flood-{i}"), None).await;
    }
    let wx = app.wx_login(APP_B, "app-flood-2", None);
    let reply = app.login_with_code(APP_B, &wx.code).await;
    assert_error(
        &reply,
        429,
        "rate_limited",
        "3rd login of one app with a burst of 2",
    );
    assert!(reply.header("retry-after").is_some());
    // Another app is not affected.
    app.login(APP_A, "app-flood-a", None).await;
}

/// The per-app limit protects the app's WeChat quota: failed user-info requests (each asks
/// checksession) and phone-number requests count toward it, and a refused call never reaches
/// WeChat.
async fn failed_user_info_and_phone_calls_count_toward_the_app_limit(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        Options::default().extra_toml("[rate_limit]\nper_app_burst = 3\nper_app_per_minute = 1\n"),
    )
    .await;
    let login = app.login(APP_B, "quota-ann", None).await; // 1: code2session
    let garbage = json!({
        "encrypted_data": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "iv": "AAAAAAAAAAAAAAAAAAAAAA==",
    });
    for _ in 0..4 {
        let reply = app.user_info(&login.token, &garbage).await;
        assert_eq!(reply.status, 422, "undecryptable data: {}", reply.body);
    }
    assert_eq!(
        app.sim.calls().total(CHECK_SESSION_PATH),
        2,
        "only the app's remaining budget of 2 calls asked checksession"
    );
    let code = app.wx_phone_code(APP_B, "quota-ann", "13812345678", Some("86"));
    let reply = app.phone_number(&login.token, &code).await;
    assert_error(
        &reply,
        429,
        "rate_limited",
        "phone number over the app's limit",
    );
    assert!(reply.header("retry-after").is_some());
    assert_eq!(app.sim.calls().total(PHONE_NUMBER_PATH), 0);
    let wx = app.wx_login(APP_B, "quota-bob", None);
    let reply = app.login_with_code(APP_B, &wx.code).await;
    assert_error(&reply, 429, "rate_limited", "login over the app's limit");
    assert_eq!(app.sim.code2session_calls(), 1);
}
