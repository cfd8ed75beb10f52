//! What runs around every request: request ids, the error envelope, per-IP limits.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use super::error::{ApiError, Enveloped, with_request_id};
use crate::state::AppState;

/// The longest part of a request's path that a log line carries.
const MAX_LOGGED_PATH_BYTES: usize = 256;

/// The start of `path`, cut at a character boundary: a client chooses the path, and every log
/// line of its request carries it.
fn logged_path(path: &str) -> &str {
    let mut cut = path.len().min(MAX_LOGGED_PATH_BYTES);
    while !path.is_char_boundary(cut) {
        cut -= 1;
    }
    &path[..cut]
}

/// Text a client chose, made safe for a log line: every control character (C0, DEL and C1,
/// NEL U+0085 among them) and the Unicode line and paragraph separators U+2028 and U+2029 are
/// written as `\u{…}` escapes, so no tool that splits lines on one of them sees a line the
/// client forged. JSON logs need this too: serde_json leaves U+0085, U+2028 and U+2029 raw.
fn escaped_for_log(text: &str) -> std::borrow::Cow<'_, str> {
    let breaks = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !text.contains(breaks) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if breaks(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The span of one request: every log line inside carries its request id. The query string is
/// left out (it is not part of the API, and could carry anything), and the path is cut to
/// [`MAX_LOGGED_PATH_BYTES`] and escaped ([`escaped_for_log`]). The request id needs no
/// escaping: only a plain short token is kept ([`drop_unfit_request_id`]).
pub(crate) fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %escaped_for_log(logged_path(request.uri().path())),
        request_id = %request_id,
    )
}

const REQUEST_ID: &str = "x-request-id";

/// The longest client-supplied request id that is kept.
const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a client's request id is kept: one header of at most [`MAX_REQUEST_ID_LEN`]
/// characters of `[A-Za-z0-9._:-]`, which is safe in logs, JSON and headers alike.
fn request_id_is_fit(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Generated request ids: random UUIDs (version 4) from the thread's CSPRNG, which the
/// operating system seeds; tower-http's `MakeRequestUuid` asks the operating system for every
/// id, a system call per request.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct MakeRequestId;

impl tower_http::request_id::MakeRequestId for MakeRequestId {
    fn make_request_id<B>(
        &mut self,
        _request: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let value = HeaderValue::from_str(id.as_hyphenated().encode_lower(&mut [0; 36])).ok()?;
        Some(tower_http::request_id::RequestId::new(value))
    }
}

/// Removes a client's `x-request-id` unless it is fit, so that one is generated instead.
pub(crate) async fn drop_unfit_request_id(
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers_mut();
    let mut ids = headers.get_all(REQUEST_ID).iter();
    let fit = match (ids.next(), ids.next()) {
        (Some(id), None) => request_id_is_fit(id.as_bytes()),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !fit {
        tracing::debug!("replacing a client request id that is not a short plain token");
        headers.remove(REQUEST_ID);
    }
    next.run(request).await
}

/// Every error answer in the contract's shape, with the request id: [`ApiError`] bodies carry
/// it themselves, and the responses axum and tower-http make (404, 405, 413, 408, …) get their
/// body replaced by one, keeping their headers (`Allow`); the status becomes the code's, since
/// one code has one status (axum's 415 or 422 is `invalid_request`, so 400).
pub(super) async fn error_envelope(request: Request, next: axum::middleware::Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    with_request_id(request_id, async move {
        let response = next.run(request).await;
        let status = response.status();
        if !(status.is_client_error() || status.is_server_error())
            || response.extensions().get::<Enveloped>().is_some()
        {
            return response;
        }
        let error = match status {
            StatusCode::NOT_FOUND => ApiError::not_found(),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::method_not_allowed(),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(),
            StatusCode::REQUEST_TIMEOUT => ApiError::request_timeout(),
            s if s.is_client_error() => ApiError::invalid_request("request refused"),
            _ => ApiError::internal(),
        };
        if error.status() != status {
            tracing::debug!(%status, code = error.code.as_str(), "the HTTP stack refused the request");
        }
        let (mut parts, _) = response.into_parts();
        parts.status = error.status();
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        parts
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let body = serde_json::to_vec(&error.body()).unwrap_or_default();
        Response::from_parts(parts, axum::body::Body::from(body))
    })
    .await
}

/// Counts the request against its client IP's rate limit.
pub(super) async fn limit_per_ip(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    count_against_ip(&state, &request).await?;
    Ok(next.run(request).await)
}

/// Counts one request against its client IP's rate limit: 429 `rate_limited` once it is spent.
/// A request without `ConnectInfo` (in-process, not from a listener) is not counted.
pub(super) fn count_against_ip<'a>(
    state: &'a AppState,
    request: &Request,
) -> impl Future<Output = Result<(), ApiError>> + Send + use<'a> {
    // Read before the future: a request (its body) is not `Sync`, so the future cannot hold it.
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| state.limits.client(info.0.ip(), request.headers()));
    async move {
        if let Some(client) = client {
            state.limits.check_ip(client).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    #[test]
    fn generated_request_ids_are_distinct_random_uuids() {
        use tower_http::request_id::MakeRequestId as _;
        let request = Request::new(Body::empty());
        let mut make = MakeRequestId;
        let ids: std::collections::HashSet<String> = (0..64)
            .map(|_| {
                let id = make.make_request_id(&request).expect("an id");
                let text = id.header_value().to_str().unwrap().to_owned();
                let uuid = uuid::Uuid::parse_str(&text).expect("a UUID");
                assert_eq!(uuid.get_version(), Some(uuid::Version::Random), "{text}");
                assert_eq!(text.len(), 36, "{text}");
                text
            })
            .collect();
        assert_eq!(ids.len(), 64);
    }

    /// axum's own extractors answer 415 for a wrong Content-Type and 422 for JSON of the wrong
    /// shape; under the one table both are `invalid_request`, which is 400.
    #[tokio::test]
    async fn refusals_of_the_http_stack_get_the_status_of_their_code() {
        let router = axum::Router::new()
            .route(
                "/",
                axum::routing::post(|_: axum::Json<Vec<u8>>| async { "accepted" }),
            )
            .layer(axum::middleware::from_fn(error_envelope));
        for (content_type, body, what) in [
            ("text/plain", "[1]", "a wrong Content-Type"),
            ("application/json", "{\"a\":1}", "JSON of the wrong shape"),
        ] {
            let request = Request::post("/")
                .header(CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
            let body = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"]["code"], "invalid_request", "{what}");
        }
    }

    #[test]
    fn line_breaks_and_control_characters_are_escaped_for_logs() {
        assert_eq!(escaped_for_log("/v1/me"), "/v1/me");
        assert_eq!(escaped_for_log("/é/日本"), "/é/日本");
        assert_eq!(
            escaped_for_log("/a\u{85}b\u{2028}c\u{2029}d\ne\rf\u{1b}[31mg\u{7f}h\u{9b}i"),
            "/a\\u{85}b\\u{2028}c\\u{2029}d\\u{a}e\\u{d}f\\u{1b}[31mg\\u{7f}h\\u{9b}i"
        );
    }

    #[test]
    fn a_logged_path_is_cut_at_a_character_boundary() {
        assert_eq!(logged_path("/v1/me"), "/v1/me");
        let long = format!("/{}", "é".repeat(300));
        let cut = logged_path(&long);
        assert!(cut.len() <= MAX_LOGGED_PATH_BYTES && cut.len() >= MAX_LOGGED_PATH_BYTES - 1);
        assert!(long.starts_with(cut));
    }
}
