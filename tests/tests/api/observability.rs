//! What operators see: Prometheus metrics, request ids, the logged configuration. (The served
//! OpenAPI document is tested in-process in `crates/api/tests/contract/openapi.rs`.)

use crate::helpers::{
    APP_A, APP_B, Api, Backend, Options, TestApp, assert_error, assert_no_secrets_in_logs,
    free_port,
};

on_both_backends!(
    metrics_count_requests_logins_wechat_calls_and_the_pool,
    request_ids_tie_answers_to_log_lines,
    start_up_logs_the_effective_configuration_without_secrets,
    webhook_credentials_stay_out_of_the_logs,
    a_client_cannot_forge_a_log_line_through_the_path,
    metrics_on_a_listener_of_their_own_leave_the_public_one,
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

/// A webhook receiver's URL may carry its credentials (`user:password@`, a token as the user,
/// `?access_token=`): the start-up configuration line and the failed deliveries' lines show the
/// URL without them.
async fn webhook_credentials_stay_out_of_the_logs(backend: Backend) {
    // Nothing listens on port 9 (discard): every delivery fails and is logged.
    let options = Options::default().extra_toml(
        "[webhooks.crm]\n\
         url = \"http://crmuser:hook-password-in-userinfo@127.0.0.1:9/hook?access_token=hook-token-in-query\"\n\
         secret = \"whsec-observability-0123456789\"\npoll_ms = 20\n\
         [webhooks.ci]\n\
         url = \"http://hook-token-as-user@127.0.0.1:9/in\"\n\
         secret = \"whsec-observability-9876543210\"\npoll_ms = 20\n",
    );
    let app = TestApp::spawn(backend, options).await;
    app.login(APP_A, "hooked", None).await;
    assert!(app.wait_for_stderr("effective configuration").await);
    assert!(
        app.wait_for_stderr("webhook delivery failed").await,
        "{}",
        app.stderr()
    );
    let logs = app.stderr();
    assert!(
        logs.contains("127.0.0.1:9/hook"),
        "the URL is still shown, without its credentials: {logs}"
    );
    assert_no_secrets_in_logs(
        &logs,
        &[
            ("the userinfo's user", "crmuser".to_owned()),
            (
                "the userinfo's password",
                "hook-password-in-userinfo".to_owned(),
            ),
            ("a query token", "hook-token-in-query".to_owned()),
            ("a token as the user", "hook-token-as-user".to_owned()),
        ],
    );
}

/// A path with a raw NEL (U+0085), LINE SEPARATOR (U+2028) or PARAGRAPH SEPARATOR (U+2029)
/// would end the log line there for tools that split on it, and what follows would read as a
/// line of its own: the path is logged with those escaped. (hyper refuses raw C0 controls in a
/// request target itself.)
async fn a_client_cannot_forge_a_log_line_through_the_path(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    // No space: it would end the request target.
    let forged = "ERROR:wxlink:FORGED-LINE:database-wiped";
    let request = format!(
        "GET /v1/x\u{85}{forged}\u{2028}FORGED-2\u{2029}FORGED-3 HTTP/1.1\r\n\
         Host: localhost\r\nConnection: close\r\n\r\n"
    );
    let answer = app.raw_http(request.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 404"),
        "the path reaches wxlink: {answer}"
    );
    assert!(
        app.wait_for_stderr("FORGED-LINE").await,
        "the request is logged: {}",
        app.stderr()
    );
    let logs = app.stderr();
    for breaker in ['\u{85}', '\u{2028}', '\u{2029}'] {
        assert!(
            !logs.contains(breaker),
            "a raw {breaker:?} from the client is in the logs:\n{logs}"
        );
    }
    // Split as a tool that honours every line break would: each piece that carries the
    // client's text is one of wxlink's own lines about the request.
    for line in logs.split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']) {
        if line.contains("FORGED") {
            assert!(
                line.contains("/v1/x\\u{85}ERROR:wxlink:FORGED-LINE"),
                "a line the client forged: {line:?}"
            );
        }
    }
}

/// `[metrics] bind` serves `/metrics` on a listener of its own (reachable only by the
/// scraper); the public listener then has none, and its OpenAPI document does not list it.
async fn metrics_on_a_listener_of_their_own_leave_the_public_one(backend: Backend) {
    let port = free_port().expect("a free port");
    let options =
        Options::default().extra_toml(&format!("[metrics]\nbind = \"127.0.0.1:{port}\"\n"));
    let app = TestApp::spawn(backend, options).await;
    app.login(APP_A, "scraped", None).await;

    let public = app.get("/metrics", None).await;
    assert_error(&public, 404, "not_found", "/metrics on the public listener");
    let doc = app.get("/openapi.json", None).await.ok_json(200, "openapi");
    assert!(doc["paths"].get("/metrics").is_none(), "{}", doc["paths"]);
    assert!(doc["paths"].get("/healthz").is_some());

    let scraped = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("the metrics listener answers");
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.expect("a body");
    assert!(text.contains("wxlink_logins_total"), "{text}");
    // The metrics listener serves nothing else.
    let other = app
        .client
        .get(format!("http://127.0.0.1:{port}/v1/me"))
        .send()
        .await
        .expect("the metrics listener answers");
    assert_eq!(other.status(), 404);
}
