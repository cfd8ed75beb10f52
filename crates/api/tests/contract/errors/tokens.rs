//! Bearer tokens that are missing, malformed, unknown, revoked or expired.

use std::time::Duration;

use axum::http::Method;
use serde_json::json;

use super::json_bytes;
use crate::helpers::*;

on_both_backends!(
    bad_tokens_are_invalid_token,
    expired_tokens_are_invalid_token,
);

/// The token with its last character replaced by another URL-safe one.
fn flip_last(token: &str) -> String {
    let mut text = token.to_owned();
    let last = text.pop().unwrap_or('A');
    text.push(if last == 'A' { 'B' } else { 'A' });
    text
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
            let reply = app
                .call_authorized(
                    method.clone(),
                    path,
                    header.as_deref(),
                    Some("application/json"),
                    Some(json_bytes(&body)),
                )
                .await;
            assert_error(
                &reply,
                401,
                "invalid_token",
                &format!("{method} {path}: {what}"),
            );
        }
    }

    // The scheme is case-insensitive (RFC 9110).
    let reply = app
        .call_authorized(
            Method::GET,
            "/v1/me",
            Some(&format!("bearer {}", login.token)),
            None,
            None,
        )
        .await;
    assert_eq!(Me::parse(&reply).user_id, login.user_id);

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

/// A session token works for `[session] ttl_secs` and no longer: the clock is moved to either
/// side of the end instead of waiting for it (five minutes before: the wall clock runs on
/// meanwhile, and a test takes seconds).
async fn expired_tokens_are_invalid_token(backend: Backend) {
    const TTL: u64 = 3600;
    let app = TestApp::spawn(backend, Options::default().ttl_secs(TTL)).await;
    let login = app.login(APP_B, "olga-in-b", Some("olga-union")).await;
    assert_eq!(login.expires_in, TTL);
    app.advance_clock(Duration::from_secs(TTL - 300));
    assert_eq!(app.me_ok(&login.token).await.user_id, login.user_id);
    app.advance_clock(Duration::from_secs(300));

    app.me_refused(&login.token, "expired token: me").await;
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
    // Logging in again is the way back.
    let again = app.login(APP_B, "olga-in-b", Some("olga-union")).await;
    assert_eq!(again.user_id, login.user_id);
    assert_eq!(app.me_ok(&again.token).await.user_id, login.user_id);
}
