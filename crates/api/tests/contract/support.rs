//! Support that cannot join two people for good: a unionid is held only while an identity
//! vouches for it, and a wrong merge can be split again.

use serde_json::{Value, json};

use crate::helpers::{APP_A, APP_B, Api, Backend, TestApp, assert_error, unsigned_body};
use wxlink_tests::answers::LoginResponse;
use wxlink_tests::internal_api::{
    SERVICE_TOKEN, events, internal, internal_delete, internal_post, merged_person, with_tokens,
};

on_both_backends!(
    a_wrong_merge_split_back_out_leaves_each_person_their_own,
    a_wrong_merge_undone_by_an_unlink_releases_the_unionid,
    splits_that_break_a_rule_change_nothing,
    support_revokes_sessions_unlinks_identities_and_merges_users,
);

async fn user(app: &TestApp, id: &str) -> Value {
    internal(app, &format!("/internal/v1/users/{id}"))
        .await
        .ok_json(200, "a user")
}

/// The scenario: person A logs in on the bound app (WeChat tells unionid `u-a`) and
/// verifies a phone number there; person B logs in on the other app (provisional). Support
/// merges A into B by mistake: B's user takes `u-a`.
async fn wrong_merge(app: &TestApp, tag: &str) -> (LoginResponse, LoginResponse) {
    let a = app
        .login(APP_B, &format!("{tag}-a"), Some(&format!("{tag}-u-a")))
        .await;
    let b = app
        .login(APP_A, &format!("{tag}-b"), Some(&format!("{tag}-u-b")))
        .await;
    assert!(a.unionid_linked && !b.unionid_linked);
    let code = app.wx_phone_code(APP_B, &format!("{tag}-a"), "13900002222", Some("86"));
    app.phone_number(&a.token, &code)
        .await
        .ok_json(200, "A's phone number");
    let merged = internal_post(
        app,
        &format!("/internal/v1/users/{}/merge", b.user_id),
        &json!({ "from": a.user_id }),
    )
    .await
    .ok_json(200, "the wrong merge");
    assert_eq!(merged["unionid"], format!("{tag}-u-a"), "B's user took U");
    (a, b)
}

/// After the repair: B's user holds no unionid, A's next login lands on a user that is not
/// B's, and B's own user-info links B's own unionid.
async fn each_person_has_their_own(app: &TestApp, tag: &str, a: &LoginResponse, b: &LoginResponse) {
    assert_eq!(user(app, &b.user_id).await["unionid"], Value::Null);
    let again = app
        .login(APP_B, &format!("{tag}-a"), Some(&format!("{tag}-u-a")))
        .await;
    assert_ne!(again.user_id, b.user_id, "A's next login is not B's user");
    assert!(again.unionid_linked);
    let info = app.wx_user_info(APP_A, &format!("{tag}-b"));
    let linked = app.user_info_ok(&b.token, &unsigned_body(&info)).await;
    assert_eq!(linked.user_id, b.user_id);
    assert!(linked.unionid_linked && !linked.merged);
    assert_eq!(
        user(app, &b.user_id).await["unionid"],
        format!("{tag}-u-b"),
        "B's own unionid"
    );
    assert_ne!(a.user_id, b.user_id);
}

async fn a_wrong_merge_split_back_out_leaves_each_person_their_own(backend: Backend) {
    let app = TestApp::spawn(backend, with_tokens()).await;
    let (a, b) = wrong_merge(&app, "sp").await;

    let split = internal_post(
        &app,
        &format!("/internal/v1/users/{}/split", b.user_id),
        &json!({"identities": [{"appid": APP_B, "openid": "sp-a"}], "into": a.user_id}),
    )
    .await
    .ok_json(200, "the split");
    // A's user is restored with what A brought: the identity, the unionid it vouches for, the
    // phone number it verified.
    assert_eq!(split["user"], user(&app, &a.user_id).await);
    assert_eq!(split["remaining"], user(&app, &b.user_id).await);
    assert_eq!(split["user"]["merged_into"], Value::Null);
    assert_eq!(split["user"]["unionid"], "sp-u-a");
    assert_eq!(
        split["user"]["identities"],
        json!([{"appid": APP_B, "openid": "sp-a"}])
    );
    assert_eq!(split["user"]["phone_number"]["phone_number"], "13900002222");
    assert_eq!(split["remaining"]["phone_number"], Value::Null);
    assert_eq!(
        split["remaining"]["identities"],
        json!([{"appid": APP_A, "openid": "sp-b"}])
    );
    // Sessions follow the identity they logged in through.
    assert_eq!(app.me_ok(&a.token).await.user_id, a.user_id);
    assert_eq!(app.me_ok(&b.token).await.user_id, b.user_id);

    let feed = internal(&app, "/internal/v1/events?limit=1000")
        .await
        .ok_json(200, "the feed");
    let events = feed["events"].as_array().expect("events");
    let split_event = events
        .iter()
        .find(|e| e["kind"] == "user_split")
        .expect("a user_split event");
    assert_eq!(split_event["from"], b.user_id.as_str());
    assert_eq!(split_event["into"], a.user_id.as_str());
    assert_eq!(
        split_event["detail"],
        json!({"by": "support", "actor": "legacy-1", "identities": 1, "sessions": 1,
               "unionid": "moved", "phone": "moved"})
    );
    let released = events
        .iter()
        .find(|e| e["kind"] == "unionid_released")
        .expect("a unionid_released event");
    assert_eq!(released["user_id"], b.user_id.as_str());
    let merge = events
        .iter()
        .find(|e| e["kind"] == "users_merged")
        .expect("the merge");
    assert_eq!(
        merge["detail"]["actor"], "legacy-1",
        "support events say who"
    );

    each_person_has_their_own(&app, "sp", &a, &b).await;
    app.snapshot().assert_consistent("after the split");
}

async fn a_wrong_merge_undone_by_an_unlink_releases_the_unionid(backend: Backend) {
    let app = TestApp::spawn(backend, with_tokens()).await;
    let (a, b) = wrong_merge(&app, "ul").await;
    let unlinked = app
        .call(
            axum::http::Method::DELETE,
            &format!("/internal/v1/users/{}/identities/{APP_B}/ul-a", b.user_id),
            Some(SERVICE_TOKEN),
            None,
            None,
        )
        .await;
    assert_eq!(unlinked.status, 204, "{:?}", unlinked);
    each_person_has_their_own(&app, "ul", &a, &b).await;
    app.snapshot().assert_consistent("after the unlink");
}

async fn splits_that_break_a_rule_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend, with_tokens()).await;
    let (a, b) = wrong_merge(&app, "no").await;
    let split = format!("/internal/v1/users/{}/split", b.user_id);
    let before = (user(&app, &a.user_id).await, user(&app, &b.user_id).await);
    let cases = [
        (
            json!({"identities": [{"appid": APP_B, "openid": "someone-else"}]}),
            404,
            "not_found",
        ),
        (
            json!({"identities": [{"appid": "not-an-app", "openid": "no-a"}]}),
            404,
            "not_found",
        ),
        (
            json!({"identities": [{"appid": APP_B, "openid": "no-a"}, {"appid": APP_A, "openid": "no-b"}]}),
            409,
            "last_identity",
        ),
        (
            json!({"identities": [{"appid": APP_B, "openid": "no-a"}], "into": b.user_id}),
            409,
            "not_merged_here",
        ),
        (
            json!({"identities": [{"appid": APP_B, "openid": "no-a"}], "into": "u-nobody"}),
            409,
            "not_merged_here",
        ),
        (json!({"identities": []}), 400, "invalid_request"),
        (json!({"identities": "all"}), 400, "invalid_request"),
        (
            json!({"identities": [{"appid": APP_B, "openid": "no-a"}], "into": "bad id!"}),
            400,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let reply = internal_post(&app, &split, &body).await;
        assert_error(&reply, status, code, &body.to_string());
    }
    // The merged-away user is not split: its owner is.
    let merged_away = internal_post(
        &app,
        &format!("/internal/v1/users/{}/split", a.user_id),
        &json!({"identities": [{"appid": APP_B, "openid": "no-a"}]}),
    )
    .await;
    assert_error(
        &merged_away,
        409,
        "user_merged",
        "splitting a merged-away user",
    );
    let after = (user(&app, &a.user_id).await, user(&app, &b.user_id).await);
    assert_eq!(before, after, "nothing changed");
    app.snapshot().assert_consistent("after refused splits");
}

async fn support_revokes_sessions_unlinks_identities_and_merges_users(backend: Backend) {
    let app = TestApp::spawn(backend, with_tokens()).await;
    let (provisional, owner) = merged_person(&app, "sup").await;
    let x = owner.user_id.clone();

    // Revoke sessions: a stolen token.
    let another = app.login(APP_B, "sup-b", Some("sup-union")).await;
    let revoked = internal_post(
        &app,
        &format!("/internal/v1/users/{x}/revoke-sessions"),
        &json!({}),
    )
    .await
    .ok_json(200, "revoke sessions");
    assert_eq!(
        revoked,
        json!({"revoked": 3}),
        "own two and the merged user's"
    );
    for token in [&owner.token, &another.token, &provisional.token] {
        assert_error(
            &app.me(token).await,
            401,
            "invalid_token",
            "a revoked token",
        );
    }
    assert_error(
        &internal_post(
            &app,
            "/internal/v1/users/u-nobody/revoke-sessions",
            &json!({}),
        )
        .await,
        404,
        "not_found",
        "revoking an unknown user's sessions",
    );
    assert_error(
        &internal_post(
            &app,
            &format!("/internal/v1/users/{}/revoke-sessions", provisional.user_id),
            &json!({}),
        )
        .await,
        409,
        "user_merged",
        "revoking a merged user's sessions",
    );

    // Unlink: the identity on APP_A was linked by mistake.
    let on_a = app.login(APP_A, "sup-a", None).await;
    assert_eq!(on_a.user_id, x);
    let on_b = app.login(APP_B, "sup-b", Some("sup-union")).await;
    let unlink_a = format!("/internal/v1/users/{x}/identities/{APP_A}/sup-a");
    let reply = internal_delete(&app, &unlink_a).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    app.me_refused(&on_a.token, "the unlinked login").await;
    assert_eq!(app.me_ok(&on_b.token).await.identities.len(), 1);
    assert_error(
        &internal_delete(&app, &unlink_a).await,
        404,
        "not_found",
        "unlinking twice",
    );
    assert_error(
        &internal_delete(
            &app,
            &format!("/internal/v1/users/{x}/identities/{APP_B}/sup-b"),
        )
        .await,
        409,
        "last_identity",
        "unlinking the only identity",
    );
    assert_error(
        &internal_delete(
            &app,
            &format!("/internal/v1/users/{x}/identities/not-an-app/x"),
        )
        .await,
        404,
        "not_found",
        "a malformed appid",
    );
    assert_error(
        &internal_delete(
            &app,
            &format!("/internal/v1/users/bad%20id/identities/{APP_B}/sup-b"),
        )
        .await,
        400,
        "invalid_request",
        "a malformed user id",
    );
    let newcomer = app.login(APP_A, "sup-a", None).await;
    assert_ne!(
        newcomer.user_id, x,
        "the next login makes a new provisional user"
    );

    // Merge: support puts the newcomer back where it belongs.
    let merge = format!("/internal/v1/users/{x}/merge");
    let before = app.snapshot();
    for (body, status, code) in [
        (json!({"from": x}), 409, "same_user"),
        (json!({"from": "u-nobody"}), 404, "not_found"),
        (json!({}), 400, "invalid_request"),
        (json!({"from": provisional.user_id}), 409, "user_merged"),
    ] {
        assert_error(
            &internal_post(&app, &merge, &body).await,
            status,
            code,
            &format!("merge {body}"),
        );
    }
    assert_eq!(
        before.users,
        app.snapshot().users,
        "refused merges change nothing"
    );
    let merged = internal_post(&app, &merge, &json!({"from": newcomer.user_id}))
        .await
        .ok_json(200, "support merge");
    assert_eq!(merged["user_id"], x.as_str());
    assert_eq!(merged["merged_into"], Value::Null);
    assert_eq!(
        merged["identities"],
        json!([{"appid": APP_A, "openid": "sup-a"}, {"appid": APP_B, "openid": "sup-b"}])
    );
    assert_eq!(app.me_ok(&newcomer.token).await.user_id, x);

    // Two unionids cannot be one person; a unionid moves to a user without one.
    let other = app.login(APP_B, "sup-other", Some("sup-other-union")).await;
    assert_error(
        &internal_post(&app, &merge, &json!({"from": other.user_id})).await,
        409,
        "unionid_conflict",
        "merging two unionids",
    );
    let plain = app.login(APP_A, "sup-plain", None).await;
    let took = internal_post(
        &app,
        &format!("/internal/v1/users/{}/merge", plain.user_id),
        &json!({"from": other.user_id}),
    )
    .await
    .ok_json(200, "a merge that moves the unionid");
    assert_eq!(took["unionid"], "sup-other-union");
    let owner_now = internal(&app, "/internal/v1/users?unionid=sup-other-union")
        .await
        .ok_json(200, "the unionid's owner");
    assert_eq!(owner_now["user_id"], plain.user_id.as_str());
    assert_eq!(app.me_ok(&other.token).await.user_id, plain.user_id);

    let feed = events(&app).await;
    let kinds_with = |kind: &str| -> Vec<Value> {
        feed.iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| e["detail"].clone())
            .collect()
    };
    assert_eq!(
        kinds_with("sessions_revoked"),
        vec![json!({"by": "support", "actor": "legacy-1", "sessions": 3})]
    );
    assert_eq!(
        kinds_with("identity_unlinked"),
        vec![json!({"by": "support", "actor": "legacy-1", "sessions": 1})]
    );
    assert_eq!(
        kinds_with("users_merged"),
        vec![
            json!({"by": "unionid", "phone": "none", "sessions": 1}),
            json!({"by": "support", "actor": "legacy-1", "phone": "none", "sessions": 1}),
            json!({"by": "support", "actor": "legacy-1", "phone": "none", "sessions": 1})
        ]
    );
    app.snapshot().assert_consistent("after support's repairs");
}
