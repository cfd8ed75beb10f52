//! The client against local servers only: a small axum fake for exact answer shapes, raw TCP
//! servers for broken connections, and the `wxlink-wechat-sim` simulator for the happy path.
//!
//! This file holds the shared helpers and code2Session; the modules hold the other calls.

mod mini_program;
mod oauth;
mod tokens;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use wxlink_wechat_client::{
    AppSecret, ClientConfig, Code2Session, Error, SessionKey, WeChatClient,
};

const APPID: &str = "wx4f4bc4dec97d474b";
const SECRET: &str = "very-secret-app-secret-0123456789";
const CODE: &str = "js-code+with/special=chars";

// ---------------------------------------------------------------------------------------------
// The fake: answers from a queue, then a default; records every request's path and query.

#[derive(Clone)]
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    delay: Duration,
}

impl Reply {
    fn text(body: &str) -> Self {
        Self {
            status: 200,
            content_type: "text/plain",
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    fn with_content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = content_type;
        self
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn errcode(errcode: i64, errmsg: &str) -> Self {
        Self::text(&format!(r#"{{"errcode":{errcode},"errmsg":"{errmsg}"}}"#))
    }
}

struct Fake {
    queue: Mutex<VecDeque<Reply>>,
    default: Reply,
    calls: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
}

/// A request as the fake saw it.
#[derive(Clone, Debug)]
struct Recorded {
    method: Method,
    /// Path and query.
    uri: String,
    content_type: Option<String>,
    body: String,
}

impl Recorded {
    fn path(&self) -> &str {
        self.uri
            .split_once('?')
            .map_or(self.uri.as_str(), |(path, _)| path)
    }

    fn query(&self) -> Vec<(String, String)> {
        let query = self.uri.split_once('?').map_or("", |(_, query)| query);
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

struct FakeServer {
    base_url: String,
    state: Arc<Fake>,
}

impl FakeServer {
    async fn start(queue: Vec<Reply>, default: Reply) -> Self {
        let state = Arc::new(Fake {
            queue: Mutex::new(queue.into()),
            default,
            calls: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url: format!("http://{addr}"),
            state,
        }
    }

    async fn always(reply: Reply) -> Self {
        Self::start(Vec::new(), reply).await
    }

    fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<String> {
        self.recorded().into_iter().map(|r| r.uri).collect()
    }

    fn recorded(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }
}

async fn answer(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    request_body: Bytes,
) -> Response {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    let request_body = String::from_utf8_lossy(&request_body).into_owned();
    fake.requests.lock().expect("lock").push(Recorded {
        method,
        uri: uri.to_string(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: request_body.clone(),
    });
    let reply = fake
        .queue
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or_else(|| fake.default.clone());
    // A slow WeChat, as the test asked for: the delay is what the client's budget is tested
    // against, not synchronisation.
    tokio::time::sleep(reply.delay).await;
    // Echo the request into error pages, as some proxies do, to prove bodies are redacted.
    let body = reply
        .body
        .replace("{uri}", &uri.to_string())
        .replace("{body}", &request_body);
    (
        StatusCode::from_u16(reply.status).expect("status"),
        [(header::CONTENT_TYPE, reply.content_type)],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn config(base_url: &str) -> wxlink_wechat_client::ClientConfigBuilder {
    ClientConfig::builder()
        .api_base(base_url)
        .timeout(Duration::from_secs(3))
        .backoff_base(Duration::from_millis(5))
}

fn client(base_url: &str) -> WeChatClient {
    WeChatClient::new(config(base_url).build().expect("config")).expect("client")
}

async fn call(client: &WeChatClient) -> Result<Code2Session, Error> {
    client
        .code2session(APPID, &AppSecret::new(SECRET), CODE)
        .await
}

/// Every error the tests see goes through here: no secret in its Debug or Display.
fn assert_no_secret(error: &Error) {
    assert_none_of(error, &[SECRET, CODE]);
}

/// No Debug or Display of the error or its sources shows any of these values, raw or
/// URL-encoded.
fn assert_none_of(error: &Error, secrets: &[&str]) {
    let mut texts = vec![
        format!("{error:?}"),
        format!("{error}"),
        format!("{error:#?}"),
    ];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        texts.push(format!("{cause:?} {cause}"));
        source = cause.source();
    }
    for text in texts {
        for secret in secrets {
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            assert!(!text.contains(secret), "{secret} leaked: {text}");
            assert!(!text.contains(&encoded), "{secret} leaked encoded: {text}");
        }
    }
}

/// A server that reads each request and closes the connection without answering; it counts
/// the connections.
async fn closing_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0_u8; 4096];
            let _ = stream.read(&mut buf).await;
            drop(stream);
        }
    });
    (format!("http://{addr}"), accepted)
}

async fn expect_error(client: &WeChatClient) -> Error {
    let error = call(client).await.expect_err("the call fails");
    assert_no_secret(&error);
    error
}

// ---------------------------------------------------------------------------------------------
// Success shapes.

#[tokio::test]
async fn text_plain_json_without_errcode_is_a_session() {
    let fake = FakeServer::always(Reply::text(
        r#"{"session_key":"tiihtNczf5v6AKRyjwEUhQ==","openid":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","unionid":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA"}"#,
    ))
    .await;
    let session = call(&client(&fake.base_url)).await.expect("a session");
    assert_eq!(session.openid, "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
    assert_eq!(
        session.session_key.expose_secret(),
        "tiihtNczf5v6AKRyjwEUhQ=="
    );
    assert_eq!(
        session.unionid.as_deref(),
        Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA")
    );
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn application_json_with_errcode_zero_and_no_unionid() {
    let fake = FakeServer::always(
        Reply::text(r#"{"errcode":0,"errmsg":"ok","session_key":"k==","openid":"o1"}"#)
            .with_content_type("application/json; charset=utf-8"),
    )
    .await;
    let session = call(&client(&fake.base_url)).await.expect("a session");
    assert_eq!(session.openid, "o1");
    assert_eq!(session.unionid, None);
}

#[tokio::test]
async fn request_has_exactly_wechats_shape() {
    let fake = FakeServer::always(Reply::text(r#"{"session_key":"k","openid":"o"}"#)).await;
    call(&client(&fake.base_url)).await.expect("a session");
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let (path, query) = request.split_once('?').expect("a query");
    assert_eq!(path, "/sns/jscode2session");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let expected = [
        ("appid", APPID),
        ("secret", SECRET),
        ("js_code", CODE),
        ("grant_type", "authorization_code"),
    ];
    assert_eq!(pairs.len(), expected.len(), "{pairs:?}");
    for (name, value) in expected {
        assert!(
            pairs.iter().any(|(n, v)| n == name && v == value),
            "{name} missing in {pairs:?}"
        );
    }
    assert!(!query.contains("access_token"));
}

#[tokio::test]
async fn api_base_path_is_kept_as_a_prefix() {
    let fake = FakeServer::always(Reply::text(r#"{"session_key":"k","openid":"o"}"#)).await;
    let client = client(&format!("{}/wechat/", fake.base_url));
    call(&client).await.expect("a session");
    assert!(fake.requests()[0].starts_with("/wechat/sns/jscode2session?"));
}

// ---------------------------------------------------------------------------------------------
// Errcodes.

#[tokio::test]
async fn errcodes_map_to_variants_without_retry() {
    type Check = fn(&Error) -> bool;
    let cases: [(i64, &str, Check); 9] = [
        (40029, "invalid code, rid: 1", |e| {
            matches!(e, Error::InvalidCode)
        }),
        (40163, "code been used, rid: 2", |e| {
            matches!(e, Error::CodeUsed)
        }),
        (40226, "code blocked", |e| matches!(e, Error::HighRiskUser)),
        (
            45011,
            "api minute-quota reach limit mustslower retry next minute",
            |e| matches!(e, Error::RateLimited),
        ),
        (
            40125,
            "invalid appsecret",
            |e| matches!(e, Error::InvalidCredential { errcode: 40125, errmsg } if errmsg == "invalid appsecret"),
        ),
        (40013, "invalid appid", |e| {
            matches!(e, Error::InvalidCredential { errcode: 40013, .. })
        }),
        (40001, "invalid credential", |e| {
            matches!(e, Error::InvalidCredential { errcode: 40001, .. })
        }),
        (
            41008,
            "missing code",
            |e| matches!(e, Error::Api { errcode: 41008, errmsg } if errmsg == "missing code"),
        ),
        (40002, "invalid grant_type", |e| {
            matches!(e, Error::Api { errcode: 40002, .. })
        }),
    ];
    for (errcode, errmsg, check) in cases {
        let fake = FakeServer::always(Reply::errcode(errcode, errmsg)).await;
        let error = expect_error(&client(&fake.base_url)).await;
        assert!(check(&error), "{errcode}: {error:?}");
        assert_eq!(error.errcode(), Some(errcode));
        assert_eq!(fake.calls(), 1, "errcode {errcode} must not be retried");
    }
}

#[tokio::test]
async fn errcode_zero_without_openid_is_unexpected() {
    let fake = FakeServer::always(Reply::text(
        r#"{"errcode":0,"errmsg":"ok","session_key":"sk"}"#,
    ))
    .await;
    let error = expect_error(&client(&fake.base_url)).await;
    assert!(matches!(error, Error::UnexpectedAnswer { .. }), "{error:?}");
    assert!(!format!("{error:?}").contains("sk"));

    let fake = FakeServer::always(Reply::text(r#"{"openid":"o","session_key":""}"#)).await;
    let error = expect_error(&client(&fake.base_url)).await;
    assert!(matches!(error, Error::UnexpectedAnswer { .. }), "{error:?}");
}

// ---------------------------------------------------------------------------------------------
// Non-JSON and HTTP failures.

#[tokio::test]
async fn html_502_is_http_with_its_body_kept_and_redacted() {
    let html = "<html><body><h1>502 Bad Gateway</h1><p>{uri}</p></body></html>";
    let fake = FakeServer::always(
        Reply::text(html)
            .with_status(502)
            .with_content_type("text/html"),
    )
    .await;
    let error = expect_error(&client(&fake.base_url)).await;
    match &error {
        Error::Http { status, body } => {
            assert_eq!(*status, 502);
            assert!(body.contains("502 Bad Gateway"), "{body}");
            assert!(body.contains("secret=[redacted]"), "{body}");
            assert!(body.contains("js_code=[redacted]"), "{body}");
        }
        other => panic!("expected Http, got {other:?}"),
    }
    assert!(error.is_retryable());
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn non_json_200_is_not_json_and_the_body_is_capped() {
    let fake = FakeServer::always(Reply::text(&"<p>maintenance</p>".repeat(5000))).await;
    let error = expect_error(&client(&fake.base_url)).await;
    match error {
        Error::NotJson { status, body } => {
            assert_eq!(status, 200);
            assert!(body.starts_with("<p>maintenance</p>"));
            assert!(body.len() <= 1024 + 3, "{}", body.len());
        }
        other => panic!("expected NotJson, got {other:?}"),
    }
}

#[tokio::test]
async fn non_2xx_json_errcode_is_mapped_by_errcode() {
    let fake = FakeServer::always(Reply::errcode(40029, "invalid code").with_status(400)).await;
    let error = expect_error(&client(&fake.base_url)).await;
    assert!(matches!(error, Error::InvalidCode), "{error:?}");
}

#[tokio::test]
async fn http_500_json_without_errcode_is_http() {
    let fake = FakeServer::always(Reply::text(r#"{"message":"oops"}"#).with_status(500)).await;
    let error = expect_error(&client(&fake.base_url)).await;
    assert!(
        matches!(error, Error::Http { status: 500, .. }),
        "{error:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Time budget.

#[tokio::test]
async fn slow_answer_beyond_the_budget_times_out() {
    let fake = FakeServer::always(
        Reply::text(r#"{"session_key":"k","openid":"o"}"#).delayed(Duration::from_secs(10)),
    )
    .await;
    let client = WeChatClient::new(
        config(&fake.base_url)
            .timeout(Duration::from_millis(300))
            .build()
            .expect("config"),
    )
    .expect("client");
    let started = Instant::now();
    let error = expect_error(&client).await;
    let elapsed = started.elapsed();
    assert!(matches!(error, Error::Timeout), "{error:?}");
    assert!(error.is_retryable());
    // The server answers after 10 s: a client without its budget would get the answer.
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert_eq!(fake.calls(), 1);
}

/// Serves raw HTTP over TCP: headers and the start of a body, then nothing for a long time.
async fn slow_body_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0_u8; 4096];
                let _ = stream.read(&mut buf).await;
                let head =
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 60\r\n\r\n";
                let _ = stream.write_all(head.as_bytes()).await;
                // One byte every 200 ms: the body would take 12 s.
                for byte in br#"{"openid":"o","session_key":"k"}"#.iter().cycle().take(60) {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    // The trickle is the behaviour under test, not synchronisation.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

#[tokio::test]
async fn slowly_trickling_body_times_out() {
    let (base_url, accepted) = slow_body_server().await;
    let client = WeChatClient::new(
        config(&base_url)
            .timeout(Duration::from_millis(500))
            .build()
            .expect("config"),
    )
    .expect("client");
    let error = expect_error(&client).await;
    // The body never ends: only the budget ends the call.
    assert!(matches!(error, Error::Timeout), "{error:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// Transport failures.

#[tokio::test]
async fn connection_refused_is_transport_and_retried_within_budget() {
    // A port nothing listens on.
    let port = wxlink_tests::process::free_port().expect("a free port");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let client = client(&format!("http://{addr}"));
    let error = expect_error(&client).await;
    assert!(
        matches!(&error, Error::Transport(t) if t.is_connect()),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(error.errcode(), None);
    assert_eq!(
        error.to_string(),
        "transport error talking to wechat (could not connect)"
    );
    assert!(std::error::Error::source(&error).is_some());
}

#[tokio::test]
async fn connection_closed_after_the_request_is_not_retried() {
    let (base_url, accepted) = closing_server().await;
    let error = expect_error(&client(&base_url)).await;
    assert!(
        matches!(&error, Error::Transport(t) if !t.is_connect()),
        "{error:?}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "a request that may have reached WeChat is never retried"
    );
}

// ---------------------------------------------------------------------------------------------
// Retries.

#[tokio::test]
async fn system_busy_then_success_retries() {
    let fake = FakeServer::start(
        vec![Reply::errcode(-1, "system error")],
        Reply::text(r#"{"session_key":"k","openid":"o"}"#),
    )
    .await;
    let session = call(&client(&fake.base_url)).await.expect("a session");
    assert_eq!(session.openid, "o");
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn system_busy_then_code_used_is_code_consumed_by_retry() {
    let fake = FakeServer::start(
        vec![Reply::errcode(-1, "system error")],
        Reply::errcode(40163, "code been used, rid: 6789"),
    )
    .await;
    let error = expect_error(&client(&fake.base_url)).await;
    assert!(
        matches!(error, Error::CodeConsumedByRetry { errcode: 40163 }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(fake.calls(), 2);

    let fake = FakeServer::start(
        vec![Reply::errcode(-1, "system error")],
        Reply::errcode(40029, "invalid code"),
    )
    .await;
    let error = expect_error(&client(&fake.base_url)).await;
    assert!(
        matches!(error, Error::CodeConsumedByRetry { errcode: 40029 }),
        "{error:?}"
    );
}

#[tokio::test]
async fn system_busy_forever_is_system_busy_after_max_retries_plus_one_calls() {
    for max_retries in [0, 1, 2, 3] {
        let fake = FakeServer::always(Reply::errcode(-1, "system error")).await;
        let client = WeChatClient::new(
            config(&fake.base_url)
                .max_retries(max_retries)
                .build()
                .expect("config"),
        )
        .expect("client");
        let error = expect_error(&client).await;
        assert!(matches!(error, Error::SystemBusy), "{error:?}");
        assert_eq!(error.errcode(), Some(-1));
        assert_eq!(fake.calls(), max_retries as usize + 1);
    }
}

#[tokio::test]
async fn no_retry_when_the_backoff_would_exceed_the_budget() {
    let fake = FakeServer::always(Reply::errcode(-1, "system error")).await;
    let client = WeChatClient::new(
        config(&fake.base_url)
            .timeout(Duration::from_millis(300))
            .backoff_base(Duration::from_secs(1))
            .jitter(false)
            .build()
            .expect("config"),
    )
    .expect("client");
    let error = expect_error(&client).await;
    assert!(matches!(error, Error::SystemBusy), "{error:?}");
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn retries_never_outlast_the_budget() {
    // Each answer takes 150 ms; a 400 ms budget cannot fit three of them.
    let fake =
        FakeServer::always(Reply::errcode(-1, "system error").delayed(Duration::from_millis(150)))
            .await;
    let client = WeChatClient::new(
        config(&fake.base_url)
            .timeout(Duration::from_millis(400))
            .max_retries(5)
            .backoff_base(Duration::from_millis(10))
            .build()
            .expect("config"),
    )
    .expect("client");
    let error = expect_error(&client).await;
    assert!(
        matches!(error, Error::Timeout | Error::SystemBusy),
        "{error:?}"
    );
    assert!(fake.calls() <= 3, "{}", fake.calls());
}

#[tokio::test]
async fn rate_limit_and_high_risk_are_not_retried() {
    for (errcode, msg) in [
        (45011, "api minute-quota reach limit"),
        (40226, "code blocked"),
    ] {
        let fake = FakeServer::start(
            vec![Reply::errcode(errcode, msg)],
            Reply::text(r#"{"session_key":"k","openid":"o"}"#),
        )
        .await;
        let error = expect_error(&client(&fake.base_url)).await;
        assert_eq!(error.errcode(), Some(errcode));
        assert_eq!(fake.calls(), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Redaction.

#[test]
fn secrets_debug_is_redacted() {
    assert_eq!(
        format!("{:?}", AppSecret::new(SECRET)),
        "AppSecret([redacted])"
    );
    assert_eq!(
        format!("{:?}", SessionKey::new("tiihtNczf5v6AKRyjwEUhQ==")),
        "SessionKey([redacted])"
    );
    let session = Code2Session {
        openid: "o1".into(),
        session_key: SessionKey::new("tiihtNczf5v6AKRyjwEUhQ=="),
        unionid: Some("u1".into()),
    };
    let debug = format!("{session:?}");
    assert!(!debug.contains("tiihtNczf5v6AKRyjwEUhQ=="), "{debug}");
    assert!(debug.contains("SessionKey([redacted])"), "{debug}");
    assert!(debug.contains("o1") && debug.contains("u1"), "{debug}");
}

#[test]
fn client_clones_share_the_config() {
    let client = WeChatClient::new(ClientConfig::default()).expect("client");
    let clone = client.clone();
    assert_eq!(
        clone.config().api_base().as_str(),
        "https://api.weixin.qq.com/"
    );
}

// ---------------------------------------------------------------------------------------------
// Against the simulator: the happy path and WeChat's real rules end to end.

mod against_the_simulator {
    use super::*;
    use wxlink_wechat_sim::{Fault, FaultTarget, Simulator, UnionidPolicy};

    #[tokio::test]
    async fn login_then_code_reuse_then_consumed_by_retry() {
        let sim = Simulator::builder()
            .app(APPID, SECRET, UnionidPolicy::Always)
            .start()
            .await
            .expect("simulator");
        let client = client(&sim.base_url());
        let secret = AppSecret::new(SECRET);

        let login = sim.login(APPID, "o-sim", Some("u-sim")).expect("login");
        let session = client
            .code2session(APPID, &secret, &login.code)
            .await
            .expect("a session");
        assert_eq!(session.openid, "o-sim");
        assert_eq!(session.unionid.as_deref(), Some("u-sim"));
        assert_eq!(session.session_key.expose_secret(), login.session_key);

        // WeChat's single use: the same code again is the user's problem.
        let error = client
            .code2session(APPID, &secret, &login.code)
            .await
            .expect_err("reused");
        assert!(matches!(error, Error::CodeUsed), "{error:?}");

        // -1 that consumed the code, then the retry meets 40163: upstream's fault.
        let login = sim.login(APPID, "o-sim", None).expect("login");
        sim.queue_faults(
            FaultTarget::code(&login.code),
            [Fault::SystemBusy { consume_code: true }],
        )
        .expect("fault");
        let error = client
            .code2session(APPID, &secret, &login.code)
            .await
            .expect_err("consumed");
        assert_no_secret(&error);
        assert!(
            matches!(error, Error::CodeConsumedByRetry { errcode: 40163 }),
            "{error:?}"
        );
        assert_eq!(sim.code2session_calls_for(APPID), 4);

        // A wrong secret is a configuration error, and never echoed.
        let login = sim.login(APPID, "o-sim", None).expect("login");
        let error = client
            .code2session(APPID, &AppSecret::new("wrong-secret"), &login.code)
            .await
            .expect_err("bad secret");
        assert!(
            matches!(error, Error::InvalidCredential { errcode: 40125, .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn unbound_app_gets_no_unionid() {
        let sim = Simulator::builder()
            .app(APPID, SECRET, UnionidPolicy::Never)
            .start()
            .await
            .expect("simulator");
        let login = sim.login(APPID, "o-1", Some("u-1")).expect("login");
        let session = client(&sim.base_url())
            .code2session(APPID, &AppSecret::new(SECRET), &login.code)
            .await
            .expect("a session");
        assert_eq!(session.unionid, None);
    }
}
