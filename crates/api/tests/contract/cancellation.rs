//! Cancelling an account (`DELETE /v1/me`) needs the person, not just their token: a fresh
//! code of the WeChat user the token logged in as.

use serde_json::{Value, json};
use wxlink_tests::internal_api::{events, internal, introspect, merged_person, with_tokens};
use wxlink_wechat_sim::{AppKind, OAuthScope, UnionidPolicy};

use crate::helpers::{
    APP_A, APP_B, Api, Backend, LoginResponse, Options, Snapshot, TestApp, assert_error,
};

const OFFICIAL: &str = "wxc1c2c3d4e5f60003";

on_both_backends!(
    a_stolen_token_alone_cannot_cancel_the_account,
    another_persons_code_cannot_cancel_the_account,
    the_code_of_the_tokens_own_identity_cancels_the_account,
    an_oauth_login_is_cancelled_only_with_a_fresh_oauth_code_of_its_user,
    the_proof_spends_the_apps_wechat_call_limit,
    a_cancelled_account_is_gone_and_the_person_comes_back_as_a_new_user,
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

async fn an_oauth_login_is_cancelled_only_with_a_fresh_oauth_code_of_its_user(backend: Backend) {
    let options = Options::default()
        .apps(&[
            (APP_A, UnionidPolicy::Never),
            (APP_B, UnionidPolicy::Always),
            (OFFICIAL, UnionidPolicy::Always),
        ])
        .kind(OFFICIAL, AppKind::OfficialAccount, true);
    let app = TestApp::spawn(backend, options).await;
    let authorise = |openid: &str| {
        app.sim
            .oauth_authorize(OFFICIAL, Some(openid), None, OAuthScope::SnsapiBase)
            .expect("the simulator issues an OAuth code")
            .code
    };
    let login = LoginResponse::parse(&app.login_with_code(OFFICIAL, &authorise("oa-kim")).await);
    let before = app.snapshot();

    let thiefs = authorise("oa-thief");
    let reply = app
        .cancel_with(&login.token, Some(&json!({ "code": thiefs })))
        .await;
    assert_error(
        &reply,
        403,
        "identity_mismatch",
        "another person's OAuth code",
    );
    // A snapshot page's virtual user is nobody's proof.
    let snapshot = app
        .sim
        .oauth_snapshot_visit(OFFICIAL)
        .expect("a snapshot visit")
        .code;
    let reply = app
        .cancel_with(&login.token, Some(&json!({ "code": snapshot })))
        .await;
    assert_error(&reply, 403, "snapshot_user", "a snapshot page's code");
    assert_unchanged(&before, &app.snapshot(), "refused OAuth codes");

    let reply = app
        .cancel_with(&login.token, Some(&json!({ "code": authorise("oa-kim") })))
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    app.me_refused(&login.token, "after cancelling").await;
}

/// The exchange is a call to WeChat made for a client: it counts against the app's limit, and
/// past it the cancellation is refused before WeChat is asked, changing nothing.
async fn the_proof_spends_the_apps_wechat_call_limit(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        Options::default().extra_toml("[rate_limit]\nper_app_burst = 1\nper_app_per_minute = 1\n"),
    )
    .await;
    let person = app.login(APP_B, "counted-b", None).await;
    let before = app.snapshot();
    let calls = app.sim.code2session_calls();

    let reply = app.cancel(&person.token, APP_B, "counted-b").await;
    assert_error(
        &reply,
        429,
        "rate_limited",
        "the app's WeChat calls are spent",
    );
    assert!(reply.header("retry-after").is_some(), "Retry-After");
    assert_eq!(app.sim.code2session_calls(), calls, "WeChat was not asked");
    assert_unchanged(&before, &app.snapshot(), "a refused exchange");
}

async fn a_cancelled_account_is_gone_and_the_person_comes_back_as_a_new_user(backend: Backend) {
    let app = TestApp::spawn(backend, with_tokens()).await;
    let (provisional, owner) = merged_person(&app, "gone").await;
    let second = app.login(APP_B, "gone-b", Some("gone-union")).await;

    let cancelled = app.cancel(&owner.token, APP_B, "gone-b").await;
    assert_eq!(cancelled.status, 204, "{}", cancelled.body);

    // Every token of the person stops working, the merged user's too.
    for token in [&owner.token, &second.token, &provisional.token] {
        assert_error(
            &app.me(token).await,
            401,
            "invalid_token",
            "a cancelled token",
        );
        assert_eq!(introspect(&app, token).await, json!({"active": false}));
    }
    assert_error(
        &app.cancel(&owner.token, APP_B, "gone-b").await,
        401,
        "invalid_token",
        "cancelling twice",
    );
    // The old ids and identities answer 404, like ids that never existed.
    for path in [
        format!("/internal/v1/users/{}", owner.user_id),
        format!("/internal/v1/users/{}", provisional.user_id),
        "/internal/v1/users?unionid=gone-union".to_owned(),
        format!("/internal/v1/users?appid={APP_B}&openid=gone-b"),
        format!("/internal/v1/users?appid={APP_A}&openid=gone-a"),
    ] {
        assert_error(
            &internal(&app, &path).await,
            404,
            "not_found",
            &format!("{path} after the cancellation"),
        );
    }
    let snapshot = app.snapshot();
    snapshot.assert_consistent("after a cancellation");
    let tombstone = snapshot
        .user(&owner.user_id)
        .expect("the tombstone keeps the id");
    assert!(tombstone.deleted_at.is_some() && tombstone.unionid.is_none());
    assert!(
        snapshot
            .user(&provisional.user_id)
            .expect("the merged user's tombstone")
            .deleted_at
            .is_some()
    );
    assert!(
        snapshot
            .identities
            .iter()
            .all(|i| !i.openid.starts_with("gone-")),
        "every identity is released"
    );

    // The feed tells downstream teams, with who did it.
    let feed = events(&app).await;
    let deleted: Vec<&Value> = feed
        .iter()
        .filter(|e| e["kind"] == "user_deleted")
        .collect();
    assert_eq!(deleted.len(), 1, "{feed:?}");
    assert_eq!(deleted[0]["user_id"], owner.user_id.as_str());
    assert_eq!(
        deleted[0]["detail"],
        json!({"by": "user", "sessions": 3, "identities": 2})
    );
    let released = feed
        .iter()
        .filter(|e| e["kind"] == "identity_unlinked" && e["user_id"] == owner.user_id.as_str())
        .count();
    assert_eq!(released, 2);

    // The same WeChat user logs in as somebody new.
    let again = app.login(APP_B, "gone-b", Some("gone-union")).await;
    assert_ne!(again.user_id, owner.user_id);
    assert_ne!(again.user_id, provisional.user_id);
    assert!(again.unionid_linked);
    let again_a = app.login(APP_A, "gone-a", None).await;
    assert_ne!(again_a.user_id, provisional.user_id);
    app.snapshot().assert_consistent("after coming back");
}
