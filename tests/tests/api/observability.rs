//! What operators see: Prometheus metrics, request ids, the logged configuration.

use crate::helpers::{APP_A, APP_B, Api, Backend, Options, TestApp, assert_error};

on_both_backends!(
    metrics_count_requests_logins_wechat_calls_and_the_pool,
    request_ids_tie_answers_to_log_lines,
    start_up_logs_the_effective_configuration_without_secrets,
    the_served_openapi_document_is_the_committed_one,
);

/// The value of the sample whose line starts with `series` (name and labels, as rendered).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

async fn metrics_count_requests_logins_wechat_calls_and_the_pool(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    app.login(APP_A, "mo-a", Some("mo-union")).await;
    app.login(APP_B, "mo-b", Some("mo-union")).await;
    let refused = app.login_with_code(APP_A, "no-such-code").await;
    assert_error(&refused, 401, "invalid_code", "an unknown code");

    let reply = app.get("/metrics", None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "Prometheus text format"
    );
    let m = &reply.body;
    let expect = |series: &str, value: f64| {
        assert_eq!(sample(m, series), Some(value), "{series} in\n{m}");
    };
    expect(r#"wxlink_logins_total{outcome="provisional"}"#, 1.0);
    expect(r#"wxlink_logins_total{outcome="new"}"#, 1.0);
    expect(r#"wxlink_logins_total{outcome="refused"}"#, 1.0);
    expect(
        r#"wxlink_wechat_calls_total{endpoint="code2session",errcode="0"}"#,
        2.0,
    );
    expect(
        r#"wxlink_wechat_calls_total{endpoint="code2session",errcode="40029"}"#,
        1.0,
    );
    expect(
        r#"wxlink_http_requests_total{route="/v1/wechat/login",method="POST",status="200"}"#,
        2.0,
    );
    expect(
        r#"wxlink_http_requests_total{route="/v1/wechat/login",method="POST",status="401"}"#,
        1.0,
    );
    assert!(
        m.contains(r#"wxlink_http_request_duration_seconds_bucket{route="/v1/wechat/login",method="POST",le="0.005"}"#),
        "latency histogram:\n{m}"
    );
    assert!(
        sample(m, r#"wxlink_db_pool_connections{state="idle"}"#).is_some(),
        "{m}"
    );
    assert!(
        sample(m, "wxlink_db_pool_max_connections").is_some_and(|v| v >= 1.0),
        "{m}"
    );
}

async fn request_ids_tie_answers_to_log_lines(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let reply = app
        .get("/v1/me", Some("not-a-real-token-but-well-formed"))
        .await;
    let id = reply
        .header("x-request-id")
        .expect("every answer has an x-request-id")
        .to_owned();
    assert_error(&reply, 401, "invalid_token", "an unknown token");
    assert!(
        app.wait_for_stderr(&id).await,
        "the request id {id} appears in the logs:\n{}",
        app.stderr()
    );
    // A client's own request id is kept.
    let own = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "client-chosen-id-42")
        .send()
        .await
        .expect("wxlink answers");
    assert_eq!(
        own.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("client-chosen-id-42")
    );
}

async fn start_up_logs_the_effective_configuration_without_secrets(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    assert!(app.wait_for_stderr("effective configuration").await);
    let logs = app.stderr();
    for secret in app.secrets.values() {
        assert!(!logs.contains(secret.as_str()), "an app secret was logged");
    }
    assert!(logs.contains("max_body_bytes"), "{logs}");
}

async fn the_served_openapi_document_is_the_committed_one(backend: Backend) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openapi.json exists"))
            .expect("docs/openapi.json is JSON");

    // With service tokens and signed access tokens every route is mounted: the served
    // document is the committed one.
    let token = "svc-token-for-the-docs-0123456789";
    let options = Options::default()
        .extra_toml(&format!("[internal]\ntokens = [\"{token}\"]\n"))
        .signed_tokens("");
    let app = TestApp::spawn(backend.clone(), options).await;
    let mut served = app.get("/openapi.json", None).await.ok_json(200, "openapi");
    // The configured appids are the login's `enum`; the rest is the committed document.
    let appid = served
        .pointer_mut("/components/schemas/LoginRequest/properties/appid")
        .and_then(|v| v.as_object_mut())
        .expect("the login's appid is documented");
    let mut configured: Vec<&str> = app.secrets.keys().map(String::as_str).collect();
    configured.sort_unstable();
    assert_eq!(appid.remove("enum"), Some(serde_json::json!(configured)));
    assert_eq!(served, committed);

    // Without them the internal routes and the signed tokens' routes answer 404, and the
    // document does not list them.
    let app = TestApp::spawn(backend, Options::default()).await;
    let served = app.get("/openapi.json", None).await.ok_json(200, "openapi");
    assert_eq!(served["openapi"], "3.1.0");
    let listed = |doc: &serde_json::Value| -> Vec<String> {
        doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .cloned()
            .collect()
    };
    let public: Vec<String> = listed(&committed)
        .into_iter()
        .filter(|p| !p.starts_with("/internal/"))
        .filter(|p| !p.starts_with("/.well-known/") && p != "/v1/token/refresh")
        .collect();
    assert_eq!(listed(&served), public);
    let reply = app.get("/internal/v1/events", Some(token)).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    for path in [
        "/v1/wechat/login",
        "/v1/wechat/user-info",
        "/v1/me",
        "/v1/logout",
    ] {
        assert!(served["paths"][path].is_object(), "{path} is documented");
    }
}
