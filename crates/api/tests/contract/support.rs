//! Support that cannot join two people for good: a unionid is held only while an identity
//! vouches for it, and a wrong merge can be split again.

use serde_json::{Value, json};

use crate::helpers::{APP_A, APP_B, Api, Backend, TestApp, assert_error, unsigned_body};
use wxlink_tests::answers::{LoginResponse, Reply};
use wxlink_tests::internal_api::{SERVICE_TOKEN, internal, with_tokens};

on_both_backends!(
    a_wrong_merge_split_back_out_leaves_each_person_their_own,
    a_wrong_merge_undone_by_an_unlink_releases_the_unionid,
    splits_that_break_a_rule_change_nothing,
);

async fn post(app: &TestApp, path: &str, body: &Value) -> Reply {
    app.post_json(path, Some(SERVICE_TOKEN), body).await
}

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
    let merged = post(
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

    let split = post(
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
        let reply = post(&app, &split, &body).await;
        assert_error(&reply, status, code, &body.to_string());
    }
    // The merged-away user is not split: its owner is.
    let merged_away = post(
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
