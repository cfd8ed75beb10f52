//! The internal API for other teams: service tokens, user lookups, the event feed, and webhook
//! delivery of the same events.

use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{APP_A, APP_B, Backend, Options, TestApp, assert_error};

const SERVICE_TOKEN: &str = "svc-token-for-the-crm-team-0123456789";

on_both_backends!(
    the_internal_api_is_off_without_tokens_and_needs_one_with_them,
    users_are_found_by_id_identity_and_unionid,
    the_event_feed_pages_through_creations_links_and_merges,
    webhooks_deliver_every_event_signed_in_order_despite_failures,
);

fn with_tokens() -> Options {
    Options::default().extra_toml(&format!("[internal]\ntokens = [\"{SERVICE_TOKEN}\"]\n"))
}

async fn internal(app: &TestApp, path: &str) -> crate::helpers::Reply {
    app.get(path, Some(SERVICE_TOKEN)).await
}

/// A provisional user on APP_A merged into the owner on APP_B: every event kind.
async fn merge_someone(app: &TestApp) -> (String, String) {
    let provisional = app.login(APP_A, "in-a", Some("in-union")).await;
    let owner = app.login(APP_B, "in-b", Some("in-union")).await;
    let info = app.wx_user_info(APP_A, "in-a");
    let body = crate::helpers::unsigned_body(&info);
    let merged = app.user_info_ok(&provisional.token, &body).await;
    assert!(merged.merged);
    (provisional.user_id, owner.user_id)
}

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

pub(crate) type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A receiver that answers 500 to its first `failures` POSTs, then 200; it records every POST
/// (timestamp header, signature header, body).
pub(crate) async fn receiver(failures: usize) -> (String, Received) {
    let received: Received = Arc::default();
    let seen = Arc::clone(&received);
    let handler = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let seen = Arc::clone(&seen);
        async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let mut all = seen.lock().expect("receiver lock");
            all.push((
                header("x-wxlink-timestamp"),
                header("x-wxlink-signature"),
                body.to_vec(),
            ));
            if all.len() <= failures {
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            } else {
                axum::http::StatusCode::OK
            }
        }
    };
    let router = axum::Router::new().route("/hook", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, received)
}

async fn webhooks_deliver_every_event_signed_in_order_despite_failures(backend: Backend) {
    const SECRET: &str = "whsec-0123456789abcdef";
    let (url, received) = receiver(3).await;
    let options = with_tokens().extra_toml(&format!(
        "[webhooks.crm]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\npoll_ms = 20\n"
    ));
    let app = TestApp::spawn(backend, options).await;
    merge_someone(&app).await;
    let feed = internal(&app, "/internal/v1/events?limit=100")
        .await
        .ok_json(200, "the feed");
    let expected: Vec<i64> = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(expected.len(), 5);

    // Bounded poll until the receiver has acknowledged every event.
    let delivered = || -> Vec<i64> {
        let all = received.lock().expect("receiver lock");
        let mut ids: Vec<i64> = all
            .iter()
            .skip(3) // the failed ones were not acknowledged
            .flat_map(|(_, _, body)| {
                let body: Value = serde_json::from_slice(body).unwrap_or_default();
                body["events"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|e| e["id"].as_i64().unwrap_or(0))
            })
            .collect();
        ids.dedup();
        ids
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while delivered().last() != expected.last() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        delivered(),
        expected,
        "every event, in order, at least once"
    );

    let all = received.lock().expect("receiver lock");
    assert!(
        all.len() >= 4,
        "the failures were retried: {} POSTs",
        all.len()
    );
    for (timestamp, signature, body) in all.iter() {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(signature, &expected, "every POST is signed");
    }
}
