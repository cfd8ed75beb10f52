//! Retries.

use super::*;

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
        let client = client_with(config(&fake.base_url).max_retries(max_retries));
        let error = expect_error(&client).await;
        assert!(matches!(error, Error::SystemBusy), "{error:?}");
        assert_eq!(error.errcode(), Some(-1));
        assert_eq!(fake.calls(), max_retries as usize + 1);
    }
}

#[tokio::test]
async fn no_retry_when_the_backoff_would_exceed_the_budget() {
    let fake = FakeServer::always(Reply::errcode(-1, "system error")).await;
    let client = client_with(
        config(&fake.base_url)
            .timeout(Duration::from_millis(300))
            .backoff_base(Duration::from_secs(1))
            .jitter(false),
    );
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
    let client = client_with(
        config(&fake.base_url)
            .timeout(Duration::from_millis(400))
            .max_retries(5)
            .backoff_base(Duration::from_millis(10)),
    );
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
