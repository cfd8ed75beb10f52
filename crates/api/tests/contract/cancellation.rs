//! Cancelling an account (`DELETE /v1/me`) needs the person, not just their token: a fresh
//! code of the WeChat user the token logged in as.

use serde_json::json;

use crate::helpers::{APP_A, APP_B, Api, Backend, Options, Snapshot, TestApp, assert_error};

on_both_backends!(
    a_stolen_token_alone_cannot_cancel_the_account,
    another_persons_code_cannot_cancel_the_account,
    the_code_of_the_tokens_own_identity_cancels_the_account,
);

/// Nothing a refused cancellation could have written: users, identities, sessions, events.
fn assert_unchanged(before: &Snapshot, after: &Snapshot, what: &str) {
    assert_eq!(before.users, after.users, "{what}: users changed");
    assert_eq!(
        before.identities, after.identities,
        "{what}: identities changed"
    );
    assert_eq!(before.sessions, after.sessions, "{what}: sessions changed");
    assert_eq!(before.events, after.events, "{what}: events were written");
}

async fn a_stolen_token_alone_cannot_cancel_the_account(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let victim = app.login(APP_B, "victim-b", Some("victim-union")).await;
    let before = app.snapshot();

    // The thief has the bearer token and nothing else.
    for (body, what) in [
        (None, "no body"),
        (Some(json!({})), "an empty object"),
        (Some(json!({"code": null})), "a null code"),
    ] {
        let reply = app.cancel_with(&victim.token, body.as_ref()).await;
        assert_error(&reply, 400, "reauthentication_required", what);
    }
    assert_unchanged(&before, &app.snapshot(), "a token without a code");
    let me = app.me_ok(&victim.token).await;
    assert_eq!(me.user_id, victim.user_id, "the account is still there");
}

async fn another_persons_code_cannot_cancel_the_account(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let victim = app.login(APP_B, "victim-b", Some("victim-union")).await;
    app.login(APP_A, "victim-a", Some("victim-union")).await;
    let before = app.snapshot();

    // The thief can make codes of their own WeChat user in the same app, and of the victim's
    // in an app the token did not log in through: neither is the token's identity.
    let thiefs = app.wx_login(APP_B, "thief-b", None).code;
    let reply = app
        .cancel_with(&victim.token, Some(&json!({ "code": thiefs })))
        .await;
    assert_error(&reply, 403, "identity_mismatch", "the thief's own code");
    // A code is exchanged for the token's app, so another app's code is no code there.
    let other_app = app.wx_login(APP_A, "victim-a", None).code;
    let reply = app
        .cancel_with(&victim.token, Some(&json!({ "code": other_app })))
        .await;
    assert_error(&reply, 401, "invalid_code", "a code of another app");
    let reply = app
        .cancel_with(&victim.token, Some(&json!({ "code": "not a code" })))
        .await;
    assert_error(&reply, 400, "invalid_request", "a malformed code");

    assert_unchanged(&before, &app.snapshot(), "refused codes");
    let me = app.me_ok(&victim.token).await;
    assert_eq!(me.user_id, victim.user_id, "the account is still there");
}

async fn the_code_of_the_tokens_own_identity_cancels_the_account(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let person = app.login(APP_B, "leaving-b", Some("leaving-union")).await;
    let other = app.login(APP_B, "leaving-b", None).await;

    let reply = app.cancel(&person.token, APP_B, "leaving-b").await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    for token in [&person.token, &other.token] {
        assert_error(
            &app.me(token).await,
            401,
            "invalid_token",
            "after cancelling",
        );
    }
    let snapshot = app.snapshot();
    let tombstone = snapshot.user(&person.user_id).expect("the tombstone");
    assert!(tombstone.deleted_at.is_some());
    let deleted = snapshot
        .events
        .iter()
        .filter(|e| e.kind == "user_deleted")
        .count();
    assert_eq!(deleted, 1, "one user_deleted event");
}
