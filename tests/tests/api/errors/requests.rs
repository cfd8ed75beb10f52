//! Requests wxlink refuses before doing anything that need a real HTTP server: oversized and
//! chunked bodies, HTTP the stack cannot parse (the rest is in `crates/api/tests/contract/`).

use serde_json::{Value, json};

use crate::helpers::*;

on_both_backends!(
    oversized_bodies_are_payload_too_large,
    #[ignore = "bug: requests hyper cannot parse (bad request line, non-numeric Content-Length) \
                get hyper's bare `400 Bad Request` with an empty body, not the contract's JSON error"]
    unparseable_http_gets_the_error_shape,
);

async fn oversized_bodies_are_payload_too_large(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default().max_body_bytes(1024)).await;
    let wx = app.wx_login(APP_B, "mia-in-b", Some("mia-union"));
    let padded = json!({"appid": APP_B, "code": wx.code, "padding": "x".repeat(2000)});
    let reply = app.post_json("/v1/wechat/login", None, &padded).await;
    assert_error(&reply, 413, "payload_too_large", "login of 2 KB");
    assert_eq!(app.sim.code2session_calls(), 0);

    // One byte over the limit is refused; exactly the limit is read, and the code was not
    // used by the refused requests.
    let exactly = |len: usize| {
        let body = |padding: usize| {
            json!({"appid": APP_B, "code": wx.code, "padding": "x".repeat(padding)}).to_string()
        };
        let body = body(len - body(0).len());
        assert_eq!(body.len(), len);
        body
    };
    let reply = app
        .post_raw(
            "/v1/wechat/login",
            None,
            Some("application/json"),
            exactly(1025),
        )
        .await;
    assert_error(&reply, 413, "payload_too_large", "login of 1025 bytes");
    let login = crate::helpers::LoginResponse::parse(
        &app.post_raw(
            "/v1/wechat/login",
            None,
            Some("application/json"),
            exactly(1024),
        )
        .await,
    );

    let big = json!({"encrypted_data": "A".repeat(4000), "iv": FORGED_IV});
    let reply = app.user_info(&login.token, &big).await;
    assert_error(&reply, 413, "payload_too_large", "user-info of 4 KB");

    // A chunked body (no Content-Length) over the limit.
    let mut chunked = format!(
        "POST /v1/wechat/login HTTP/1.1\r\nHost: wxlink\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        2000
    )
    .into_bytes();
    chunked.extend(std::iter::repeat_n(b' ', 2000));
    chunked.extend(b"\r\n0\r\n\r\n");
    let answer = app.raw_http(&chunked);
    assert_raw_error(&answer, 413, "payload_too_large", "chunked body of 2 KB");

    // Not JSON either: the 413 still has the contract's shape.
    let reply = app
        .post_raw(
            "/v1/wechat/login",
            None,
            Some("text/plain"),
            vec![b'x'; 100_000],
        )
        .await;
    assert_error(&reply, 413, "payload_too_large", "100 KB of text");
}

/// HTTP the stack itself refuses is still answered in the contract's shape ("any other 4xx
/// that the HTTP stack produces itself is `invalid_request`").
async fn unparseable_http_gets_the_error_shape(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let cases: [(&str, &[u8]); 2] = [
        (
            "Content-Length that is not a number",
            b"POST /v1/wechat/login HTTP/1.1\r\nHost: wxlink\r\nContent-Length: abc\r\n\
              Connection: close\r\n\r\n",
        ),
        ("a request line that is not HTTP", b"GARBAGE\r\n\r\n"),
    ];
    for (what, request) in cases {
        let answer = app.raw_http(request);
        assert_raw_error(&answer, 400, "invalid_request", what);
    }
}

/// Check a raw HTTP/1.1 answer: status line, JSON Content-Type, the error body.
#[track_caller]
fn assert_raw_error(answer: &str, status: u16, code: &str, what: &str) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    assert!(
        head.starts_with(&format!("HTTP/1.1 {status} ")),
        "{what}: expected {status}, got:\n{answer}"
    );
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: Content-Type {content_type:?} in:\n{answer}"
    );
    let value: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}):\n{answer}"));
    assert_eq!(value["error"]["code"], code, "{what}: {answer}");
    assert!(
        value["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {answer}"
    );
}
