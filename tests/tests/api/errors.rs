//! Every row of the contract's error table that a client can cause, each with the exact
//! status, code and body shape.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use wxlink_wechat_sim::{Fault, FaultTarget};

use crate::helpers::{
    APP_A, APP_B, Backend, FORGED_IV, Options, POLL, TestApp, UNCONFIGURED_APP, assert_error,
    assert_error_shape, error_code, forged_body, identities, now_unix, signed_body, unsigned_body,
    user_plaintext,
};

on_both_backends!(
    malformed_requests_are_invalid_request,
    unknown_apps_routes_and_methods,
    oversized_bodies_are_payload_too_large,
    bad_tokens_are_invalid_token,
    expired_tokens_are_invalid_token,
    wechat_refusals_map_to_the_contract,
    upstream_failures_are_upstream_error,
    slow_wechat_is_upstream_timeout,
    refreshing_code_of_another_openid_is_identity_mismatch,
    undecryptable_data_is_decrypt_failed,
    another_unionid_is_unionid_conflict,
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
        (Method::DELETE, "/v1/me", "GET"),
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

async fn oversized_bodies_are_payload_too_large(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default().max_body_bytes(1024)).await;
    let wx = app.wx_login(APP_B, "mia-in-b", Some("mia-union"));
    let padded = json!({"appid": APP_B, "code": wx.code, "padding": "x".repeat(2000)});
    let reply = app.post_json("/v1/wechat/login", None, &padded).await;
    assert_error(&reply, 413, "payload_too_large", "login of 2 KB");
    assert_eq!(app.sim.code2session_calls(), 0);

    // Just under the limit is fine, and the code was not used by the refused request.
    let fits = json!({"appid": APP_B, "code": wx.code, "padding": "x".repeat(900)});
    let login =
        crate::helpers::LoginResponse::parse(&app.post_json("/v1/wechat/login", None, &fits).await);

    let big = json!({"encrypted_data": "A".repeat(4000), "iv": FORGED_IV});
    let reply = app.user_info(&login.token, &big).await;
    assert_error(&reply, 413, "payload_too_large", "user-info of 4 KB");

    // Not JSON either: the 413 still has the contract's shape.
    let reply = app
        .post_raw(
            "/v1/wechat/login",
            None,
            Some("text/plain"),
            vec![b'x'; 100_000],
        )
        .await;
    assert_error(&reply, 413, "payload_too_large", "100 KB of text");
}

async fn bad_tokens_are_invalid_token(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let login = app.login(APP_B, "noa-in-b", Some("noa-union")).await;
    let other = app.login(APP_B, "noa-in-b", None).await;
    let body = json!({"encrypted_data": "AAAA", "iv": FORGED_IV});

    let unknown = "A".repeat(43);
    let headers: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("empty Authorization", Some(String::new())),
        ("scheme only", Some("Bearer".to_owned())),
        ("Basic scheme", Some("Basic bm9hOnNlY3JldA==".to_owned())),
        ("token too short", Some("Bearer abc".to_owned())),
        (
            "token with foreign characters",
            Some(format!("Bearer {}!", &login.token[..40])),
        ),
        (
            "token too long",
            Some(format!("Bearer {}", "A".repeat(300))),
        ),
        ("unknown token", Some(format!("Bearer {unknown}"))),
        (
            "the token with one character changed",
            Some(format!("Bearer {}", flip_last(&login.token))),
        ),
    ];
    for (what, header) in headers {
        for (method, path) in [
            (Method::GET, "/v1/me"),
            (Method::POST, "/v1/wechat/user-info"),
            (Method::POST, "/v1/logout"),
        ] {
            let mut request = app
                .client
                .request(method.clone(), format!("{}{path}", app.address))
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some(header) = &header {
                request = request.header("authorization", header);
            }
            let reply = crate::helpers::send(request, what).await;
            assert_error(
                &reply,
                401,
                "invalid_token",
                &format!("{method} {path}: {what}"),
            );
        }
    }

    // Logout revokes that token only.
    let reply = app.logout(&login.token).await;
    assert_eq!(reply.status, 204, "logout: {}", reply.body);
    assert!(reply.body.is_empty(), "204 has no body: {:?}", reply.body);
    let revoked = [
        ("me", app.me(&login.token).await),
        ("user-info", app.user_info(&login.token, &body).await),
        ("second logout", app.logout(&login.token).await),
    ];
    for (what, reply) in revoked {
        assert_error(
            &reply,
            401,
            "invalid_token",
            &format!("revoked token: {what}"),
        );
    }
    assert_eq!(app.me_ok(&other.token).await.user_id, other.user_id);
}

async fn expired_tokens_are_invalid_token(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default().ttl_secs(2)).await;
    let login = app.login(APP_B, "olga-in-b", Some("olga-union")).await;
    assert_eq!(login.expires_in, 2);
    let expires_at = Instant::now() + Duration::from_secs(2);
    assert_eq!(app.me_ok(&login.token).await.user_id, login.user_id);

    // Poll (bounded) until the token stops working.
    let deadline = expires_at + Duration::from_secs(5);
    let expired = loop {
        let reply = app.me(&login.token).await;
        if reply.status != 200 {
            break reply;
        }
        assert!(
            Instant::now() < deadline,
            "the token still works long after expires_in"
        );
        tokio::time::sleep(POLL).await;
    };
    assert_error(&expired, 401, "invalid_token", "expired token: me");
    let body = json!({"encrypted_data": "AAAA", "iv": FORGED_IV});
    assert_error(
        &app.user_info(&login.token, &body).await,
        401,
        "invalid_token",
        "expired token: user-info",
    );
    assert_error(
        &app.logout(&login.token).await,
        401,
        "invalid_token",
        "expired token: logout",
    );
}

async fn wechat_refusals_map_to_the_contract(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;

    let reply = app.login_with_code(APP_B, "never-issued-code").await;
    assert_error(&reply, 401, "invalid_code", "40029: unknown code");

    let wx = app.wx_login(APP_B, "pia-in-b", Some("pia-union"));
    crate::helpers::LoginResponse::parse(&app.login_with_code(APP_B, &wx.code).await);
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
    assert_error(&reply, 502, "upstream_error", "-1 on every try");
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
    let login = crate::helpers::LoginResponse::parse(&app.login_with_code(APP_B, &wx.code).await);
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

    let faults: Vec<(&str, Fault)> = vec![
        ("HTML 502 from a gateway", Fault::NonJson502),
        ("plain-text 500", Fault::Http500),
        ("40125 invalid appsecret", Fault::InvalidCredential),
        (
            "an errcode wxlink does not know",
            Fault::Errcode {
                errcode: 61_024,
                errmsg: "something new".to_owned(),
            },
        ),
        ("connection dropped", Fault::DropConnection),
    ];
    for (what, fault) in faults {
        let wx = app.wx_login(APP_B, "rosa-in-b", Some("rosa-union"));
        app.sim
            .queue_faults(FaultTarget::code(&wx.code), [fault])
            .expect("queue a fault");
        let reply = app.login_with_code(APP_B, &wx.code).await;
        assert_error(&reply, 502, "upstream_error", what);
    }
    assert!(
        app.wait_for_stderr("configuration error").await,
        "40125 is also logged as a configuration error"
    );

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
    assert!(
        reply.elapsed < Duration::from_millis(1500),
        "the answer must come after about timeout_ms (300 ms), not after WeChat's 2 s: {:?}",
        reply.elapsed
    );

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
    assert!(
        reply.elapsed < Duration::from_millis(1500),
        "{:?}",
        reply.elapsed
    );
    assert_eq!(app.me_ok(&login.token).await, before);
}

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
    let app = TestApp::spawn(backend, Options::default()).await;
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
            body["encrypted_data"] = json!(base64_standard(&data[..data.len() - 16]));
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
                json!({"unionId": "vera-union", "watermark": {"appid": APP_A, "timestamp": now_unix()}})
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
        &user_plaintext("wendy-in-b", Some("not-wendy-union"), APP_B, now_unix()),
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
        &user_plaintext("yuki-in-b", Some("fake-union"), APP_B, now_unix()),
    );
    body["code"] = json!(relogin.code);
    let reply = app.user_info(&login.token, &body).await;
    assert_error(&reply, 409, "unionid_conflict", "code and data disagree");
    assert_eq!(app.me_ok(&login.token).await, before);
}

fn json_bytes(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// The token with its last character replaced by another URL-safe one.
fn flip_last(token: &str) -> String {
    let mut text = token.to_owned();
    let last = text.pop().unwrap_or('A');
    text.push(if last == 'A' { 'B' } else { 'A' });
    text
}

/// Standard base64 with padding.
fn base64_standard(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
