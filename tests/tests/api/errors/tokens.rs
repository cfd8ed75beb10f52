//! Bearer tokens that are missing, malformed, unknown, revoked or expired.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::flip_last;
use crate::helpers::*;

on_both_backends!(
    bad_tokens_are_invalid_token,
    expired_tokens_are_invalid_token,
);

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

    // The scheme is case-insensitive (RFC 9110).
    let request = app
        .client
        .get(format!("{}/v1/me", app.address))
        .header("authorization", format!("bearer {}", login.token));
    let reply = crate::helpers::send(request, "lower-case scheme").await;
    assert_eq!(crate::helpers::Me::parse(&reply).user_id, login.user_id);

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
