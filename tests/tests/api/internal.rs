//! Webhook delivery of the internal API's events, which runs beside the server (service tokens,
//! lookups and the feed are in `crates/api/tests/contract/`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::{APP_A, APP_B, Api, Backend, TestApp};
use wxlink_tests::eventually;
use wxlink_tests::internal_api::{internal, merge_someone, with_tokens};

on_both_backends!(
    webhooks_deliver_every_event_signed_in_order_despite_failures,
    a_webhook_redirect_is_a_failed_delivery_never_followed,
);

/// What only PostgreSQL has: transactions that commit around one another (SQLite has one
/// writer at a time).
mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_commit_reaches_the_follower_and_the_webhook_once_in_feed_order() {
        let test = concat!(
            module_path!(),
            "::a_late_commit_reaches_the_follower_and_the_webhook_once_in_feed_order"
        );
        if let Some(backend) = crate::helpers::Backend::postgres(test) {
            super::a_late_commit_reaches_the_follower_and_the_webhook_once_in_feed_order(backend)
                .await;
        }
    }
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
    // Any method: a followed 302 arrives as a GET.
    let router = axum::Router::new().route("/hook", axum::routing::any(handler));
    let url = serve_receiver(router).await;
    (url, received)
}

/// Serve a webhook receiver on a loopback port; its `/hook` URL.
async fn serve_receiver(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

/// A receiver that answers every POST with a redirect to `to` (302 and 307 in turn, 307 keeping
/// the method and the signed body); it counts the POSTs.
async fn redirecting_receiver(to: String) -> (String, Arc<Mutex<usize>>) {
    let posts: Arc<Mutex<usize>> = Arc::default();
    let seen = Arc::clone(&posts);
    let handler = move || {
        let seen = Arc::clone(&seen);
        let to = to.clone();
        async move {
            let mut count = seen.lock().expect("receiver lock");
            *count += 1;
            let status = if *count % 2 == 1 {
                axum::http::StatusCode::FOUND
            } else {
                axum::http::StatusCode::TEMPORARY_REDIRECT
            };
            (status, [(axum::http::header::LOCATION, to)])
        }
    };
    let router = axum::Router::new().route("/hook", axum::routing::post(handler));
    let url = serve_receiver(router).await;
    (url, posts)
}

async fn a_webhook_redirect_is_a_failed_delivery_never_followed(backend: Backend) {
    let (elsewhere, stolen) = receiver(0).await;
    let (url, posts) = redirecting_receiver(elsewhere).await;
    let options = with_tokens().extra_toml(&format!(
        "[webhooks.crm]\nurl = \"{url}\"\nsecret = \"whsec-0123456789abcdef\"\npoll_ms = 10\n"
    ));
    let app = TestApp::spawn(backend, options).await;
    merge_someone(&app).await;

    // Bounded poll until the redirects were retried (backoff 20, 40, 80 ms, …).
    let _ = eventually(Duration::from_secs(20), async || {
        (*posts.lock().expect("receiver lock") >= 3).then_some(())
    })
    .await;
    let tries = *posts.lock().expect("receiver lock");
    assert!(
        tries >= 3,
        "a redirect is retried as a failure: {tries} POSTs"
    );
    assert!(
        stolen.lock().expect("receiver lock").is_empty(),
        "the redirect's target got the events"
    );
    assert!(
        app.wait_for_stderr("webhook delivery failed").await,
        "the failed delivery is logged"
    );
}

/// The ids of the events in the POSTs the receiver acknowledged (all but the first `failures`),
/// repeats of a redelivery removed.
fn acknowledged(received: &Received, failures: usize) -> Vec<i64> {
    let all = received.lock().expect("receiver lock");
    let mut ids: Vec<i64> = all
        .iter()
        .skip(failures)
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
}

/// Read the feed from `cursor` until a page comes back empty, like a follower; returns the
/// events read and moves `cursor`.
async fn follow(app: &TestApp, cursor: &mut i64) -> Vec<Value> {
    let mut read = Vec::new();
    // Bounded: every page but the last moves the cursor.
    for _ in 0..100 {
        let page = internal(app, &format!("/internal/v1/events?after={cursor}&limit=2"))
            .await
            .ok_json(200, "events page");
        let batch = page["events"].as_array().expect("events is a list").clone();
        if batch.is_empty() {
            return read;
        }
        *cursor = page["next_cursor"].as_i64().expect("next_cursor");
        read.extend(batch);
    }
    panic!("the feed did not end within 100 pages");
}

/// Poll (bounded) until the receiver acknowledged `ids`, and return what it acknowledged.
async fn acknowledged_until(received: &Received, ids: &[i64]) -> Vec<i64> {
    let _ = eventually(Duration::from_secs(20), async || {
        (acknowledged(received, 0) == ids).then_some(())
    })
    .await;
    acknowledged(received, 0)
}

/// A transaction takes an event id and stays open while later logins commit, the follower
/// reads past them and the webhook delivers them; then it commits. The follower and the
/// receiver still get its event, once, in the feed's order: nobody re-reads a window.
async fn a_late_commit_reaches_the_follower_and_the_webhook_once_in_feed_order(backend: Backend) {
    let (url, received) = receiver(0).await;
    let options = with_tokens().extra_toml(&format!(
        "[webhooks.crm]\nurl = \"{url}\"\nsecret = \"whsec-late-0123456789\"\npoll_ms = 20\n"
    ));
    let app = TestApp::spawn(backend, options).await;
    let first = app.login(APP_A, "late-a", None).await;
    let held = wxlink_persistence::testing::HeldTransaction::late_event(
        &app.database().target(),
        &first.user_id,
        APP_A,
        "late-held",
    )
    .unwrap_or_else(|e| panic!("the held event: {e}"));
    app.login(APP_A, "late-b", None).await;
    app.login(APP_B, "late-c", None).await;

    let mut cursor = 0;
    let mut seen = follow(&app, &mut cursor).await;
    assert_eq!(seen.len(), 6, "the committed logins' events: {seen:?}");
    let ids = |events: &[Value]| -> Vec<i64> {
        events
            .iter()
            .map(|e| e["id"].as_i64().unwrap_or(0))
            .collect()
    };
    let before = ids(&seen);
    assert_eq!(
        acknowledged_until(&received, &before).await,
        before,
        "the webhook delivered them too"
    );

    held.commit().expect("commit the held event");
    seen.extend(follow(&app, &mut cursor).await);
    let whole = internal(&app, "/internal/v1/events?limit=100")
        .await
        .ok_json(200, "the feed");
    let whole = whole["events"].as_array().expect("events").clone();
    assert_eq!(ids(&seen), ids(&whole), "the follower read the whole feed");
    let held_events: Vec<&Value> = seen.iter().filter(|e| e["openid"] == "late-held").collect();
    assert_eq!(
        held_events.len(),
        1,
        "the late commit, exactly once: {seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(held_events[0]),
        "after what was read before it"
    );
    assert_eq!(
        acknowledged_until(&received, &ids(&whole)).await,
        ids(&whole),
        "the receiver got every event, in feed order"
    );
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
    let delivered = || acknowledged(&received, 3);
    let _ = eventually(Duration::from_secs(20), async || {
        (delivered().last() == expected.last()).then_some(())
    })
    .await;
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
