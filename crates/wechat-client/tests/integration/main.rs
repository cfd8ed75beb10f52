//! The client against local servers only: a small axum fake for exact answer shapes (`fake`), raw
//! TCP servers for broken connections, and the `wxlink-wechat-sim` simulator for the happy path.
//!
//! This file holds the shared helpers; the modules hold code2Session's cases by what they
//! check, and the other calls.

mod against_the_simulator;
mod budget;
mod errcodes;
mod fake;
mod http_failures;
mod mini_program;
mod oauth;
mod redaction;
mod retries;
mod shapes;
mod tokens;
mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use wxlink_wechat_client::{
    AppSecret, ClientConfig, Code2Session, Error, SessionKey, WeChatClient,
};

use fake::{FakeServer, Reply};

const APPID: &str = "wx4f4bc4dec97d474b";
const SECRET: &str = "very-secret-app-secret-0123456789";
const CODE: &str = "js-code+with/special=chars";

fn config(base_url: &str) -> wxlink_wechat_client::ClientConfigBuilder {
    ClientConfig::builder()
        .api_base(base_url)
        .timeout(Duration::from_secs(3))
        .backoff_base(Duration::from_millis(5))
}

fn client(base_url: &str) -> WeChatClient {
    client_with(config(base_url))
}

fn client_with(config: wxlink_wechat_client::ClientConfigBuilder) -> WeChatClient {
    WeChatClient::new(config.build().expect("config")).expect("client")
}

/// The simulator with these tests' app, `APPID`, under `policy`.
async fn simulator(policy: wxlink_wechat_sim::UnionidPolicy) -> wxlink_wechat_sim::SimHandle {
    wxlink_wechat_sim::Simulator::builder()
        .app(APPID, SECRET, policy)
        .start()
        .await
        .expect("simulator")
}

/// A wrong app secret is a configuration error, 40125.
fn assert_bad_secret(error: &Error) {
    assert!(
        matches!(error, Error::InvalidCredential { errcode: 40125, .. }),
        "{error:?}"
    );
}

/// A raw TCP server on loopback that hands each connection to `serve`; it counts the
/// connections.
async fn tcp_server<F, Fut>(serve: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream));
        }
    });
    (format!("http://{addr}"), accepted)
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
    tcp_server(|mut stream| async move {
        let mut buf = [0_u8; 4096];
        let _ = stream.read(&mut buf).await;
    })
    .await
}

async fn expect_error(client: &WeChatClient) -> Error {
    let error = call(client).await.expect_err("the call fails");
    assert_no_secret(&error);
    error
}
