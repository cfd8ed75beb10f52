//! Transport failures.

use super::*;

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
