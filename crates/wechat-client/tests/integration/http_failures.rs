//! Non-JSON and HTTP failures.

use super::*;

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
