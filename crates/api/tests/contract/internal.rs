//! The internal API for other teams: service tokens, user lookups and the event feed (webhook
//! delivery, which runs beside the server, is tested on the process in `tests/tests/api/`).

use serde_json::{Value, json};

use crate::helpers::{
    APP_A, APP_B, Api, Backend, Options, TestApp, assert_error, exact_object, unsigned_body,
};
use wxlink_tests::internal_api::{
    SERVICE_TOKEN, internal, internal_post, introspect, merge_someone, with_tokens,
};

on_both_backends!(
    the_internal_api_is_off_without_tokens_and_needs_one_with_them,
    users_are_found_by_id_identity_and_unionid,
    the_event_feed_pages_through_creations_links_and_merges,
    a_merge_moves_the_phone_number_and_the_event_says_so,
    introspection_tells_whom_a_token_stands_for,
);

async fn the_internal_api_is_off_without_tokens_and_needs_one_with_them(backend: Backend) {
    let off = TestApp::spawn(backend.clone(), Options::default()).await;
    let reply = off.get("/internal/v1/events", Some(SERVICE_TOKEN)).await;
    assert_error(&reply, 404, "not_found", "internal API without tokens");

    let app = TestApp::spawn(backend, with_tokens()).await;
    let none = app.get("/internal/v1/events", None).await;
    assert_error(&none, 401, "invalid_token", "no service token");
    let wrong = app
        .get(
            "/internal/v1/events",
            Some("svc-token-for-the-crm-team-0123456788"),
        )
        .await;
    assert_error(&wrong, 401, "invalid_token", "a wrong service token");
    // A user's bearer token is no service token.
    let user = app.login(APP_B, "in-user", Some("in-user-union")).await;
    let as_user = app.get("/internal/v1/events", Some(&user.token)).await;
    assert_error(&as_user, 401, "invalid_token", "a user token");
    assert_eq!(internal(&app, "/internal/v1/events").await.status, 200);
}

async fn users_are_found_by_id_identity_and_unionid(backend: Backend) {
    let app = TestApp::spawn(backend, with_tokens()).await;
    let (provisional, owner) = merge_someone(&app).await;

    let by_id = internal(&app, &format!("/internal/v1/users/{owner}"))
        .await
        .ok_json(200, "by id");
    assert_eq!(by_id["user_id"], owner.as_str());
    assert_eq!(by_id["unionid"], "in-union");
    assert_eq!(by_id["merged_into"], Value::Null);
    assert_eq!(
        by_id["identities"],
        json!([{"appid": APP_A, "openid": "in-a"}, {"appid": APP_B, "openid": "in-b"}])
    );
    let by_identity = internal(
        &app,
        &format!("/internal/v1/users?appid={APP_A}&openid=in-a"),
    )
    .await
    .ok_json(200, "by identity");
    assert_eq!(by_identity, by_id);
    let by_unionid = internal(&app, "/internal/v1/users?unionid=in-union")
        .await
        .ok_json(200, "by unionid");
    assert_eq!(by_unionid, by_id);

    // The merged-away user still answers, pointing at its owner.
    let merged = internal(&app, &format!("/internal/v1/users/{provisional}"))
        .await
        .ok_json(200, "merged user");
    assert_eq!(merged["merged_into"], owner.as_str());
    assert_eq!(merged["identities"], json!([]));

    let missing = internal(&app, "/internal/v1/users?unionid=nobody").await;
    assert_error(&missing, 404, "not_found", "an unknown unionid");
    let ambiguous = internal(&app, "/internal/v1/users?appid=wx0000000000000000").await;
    assert_error(&ambiguous, 400, "invalid_request", "appid without openid");
}

async fn the_event_feed_pages_through_creations_links_and_merges(backend: Backend) {
    let app = TestApp::spawn(backend, with_tokens()).await;
    let (provisional, owner) = merge_someone(&app).await;

    let mut cursor = 0;
    let mut events = Vec::new();
    loop {
        let page = internal(&app, &format!("/internal/v1/events?after={cursor}&limit=2"))
            .await
            .ok_json(200, "events page");
        let batch = page["events"].as_array().expect("events is a list").clone();
        assert!(batch.len() <= 2, "limit is honoured");
        let next = page["next_cursor"].as_i64().expect("next_cursor");
        if batch.is_empty() {
            assert_eq!(next, cursor, "an empty page keeps the cursor");
            break;
        }
        assert!(next > cursor);
        cursor = next;
        events.extend(batch);
    }
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "user_created",
            "identity_linked",
            "user_created",
            "identity_linked",
            "users_merged"
        ]
    );
    let ids: Vec<i64> = events
        .iter()
        .map(|e| e["id"].as_i64().unwrap_or(0))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    let merge = &events[4];
    assert_eq!(merge["from"], provisional.as_str());
    assert_eq!(merge["into"], owner.as_str());
    assert_eq!(merge["appid"], APP_A);

    let bad = internal(&app, "/internal/v1/events?after=-1").await;
    assert_error(&bad, 400, "invalid_request", "a negative cursor");
}

/// A provisional user verifies a phone number, then learns the unionid of another user: the
/// owner has the number now, the merged user has none, and the merge event says what moved.
async fn a_merge_moves_the_phone_number_and_the_event_says_so(backend: Backend) {
    let app = TestApp::spawn(backend, with_tokens()).await;
    let provisional = app.login(APP_A, "ph-a", Some("ph-union")).await;
    let owner = app.login(APP_B, "ph-b", Some("ph-union")).await;
    assert!(!provisional.unionid_linked && owner.unionid_linked);
    let code = app.wx_phone_code(APP_A, "ph-a", "13900001111", Some("86"));
    app.phone_number(&provisional.token, &code)
        .await
        .ok_json(200, "phone number");
    let user = |id: String| {
        let app = &app;
        async move {
            internal(app, &format!("/internal/v1/users/{id}"))
                .await
                .ok_json(200, "a user")
        }
    };
    assert_eq!(
        user(owner.user_id.clone()).await["phone_number"],
        Value::Null
    );

    let info = app.wx_user_info(APP_A, "ph-a");
    let merged = app
        .user_info_ok(&provisional.token, &crate::helpers::unsigned_body(&info))
        .await;
    assert!(merged.merged);

    let number = json!({
        "phone_number": "13900001111",
        "pure_phone_number": "13900001111",
        "country_code": "86"
    });
    assert_eq!(user(owner.user_id.clone()).await["phone_number"], number);
    let gone = user(provisional.user_id.clone()).await;
    assert_eq!(gone["phone_number"], Value::Null);
    assert_eq!(gone["merged_into"], owner.user_id.as_str());
    let feed = internal(&app, "/internal/v1/events?limit=100")
        .await
        .ok_json(200, "the feed");
    let merge = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "users_merged")
        .expect("a merge event")
        .clone();
    assert_eq!(
        merge["detail"],
        json!({"by": "unionid", "phone": "moved", "sessions": 1})
    );
    // The merged user's session acts as the owner, as the detail says.
    assert_eq!(app.me_ok(&provisional.token).await.user_id, owner.user_id);
}

async fn introspection_tells_whom_a_token_stands_for(backend: Backend) {
    let app = TestApp::spawn(backend, with_tokens()).await;
    let provisional = app.login(APP_A, "intro-a", Some("intro-union")).await;
    let active = introspect(&app, &provisional.token).await;
    let fields = exact_object(
        &active,
        &[
            "active",
            "sub",
            "client_id",
            "iat",
            "exp",
            "unionid_linked",
            "token_type",
            "iss",
        ],
        "an active token",
    );
    assert_eq!(fields["token_type"], "Bearer");
    assert_eq!(fields["iss"], "wxlink");
    assert_eq!(fields["active"], true);
    assert_eq!(fields["sub"], provisional.user_id.as_str());
    assert_eq!(fields["client_id"], APP_A);
    assert_eq!(fields["unionid_linked"], false);
    let (iat, exp) = (
        fields["iat"].as_i64().expect("iat is a number"),
        fields["exp"].as_i64().expect("exp is a number"),
    );
    assert_eq!(
        u64::try_from(exp - iat).expect("exp after iat"),
        provisional.expires_in,
        "iat and exp are the token's lifetime"
    );

    // After the merge the token stands for the owner.
    let owner = app.login(APP_B, "intro-b", Some("intro-union")).await;
    let info = app.wx_user_info(APP_A, "intro-a");
    app.user_info_ok(&provisional.token, &unsigned_body(&info))
        .await;
    let after = introspect(&app, &provisional.token).await;
    assert_eq!(after["sub"], owner.user_id.as_str());
    assert_eq!(after["unionid_linked"], true);

    let logged_out = app.logout(&owner.token).await;
    assert_eq!(logged_out.status, 204);
    for token in [
        owner.token.as_str(),
        "a-well-formed-token-nobody-was-given-0123456789",
        "not a token!",
        "",
    ] {
        assert_eq!(
            introspect(&app, token).await,
            json!({"active": false}),
            "{token:?}"
        );
    }
    for (body, what) in [
        (json!({}), "no token field"),
        (json!({"token": 7}), "a number"),
    ] {
        assert_error(
            &internal_post(&app, "/internal/v1/introspect", &body).await,
            400,
            "invalid_request",
            what,
        );
    }
    let no_service = app
        .post_json(
            "/internal/v1/introspect",
            Some(&provisional.token),
            &json!({"token": provisional.token}),
        )
        .await;
    assert_error(
        &no_service,
        401,
        "invalid_token",
        "a user's token as service token",
    );
}
