//! The client and the machinery every call shares: one HTTP exchange, the bounded retry loop
//! around it, and the reading of WeChat's `errcode`/`errmsg` envelope.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument as _;
use url::Url;

use crate::endpoint::Endpoint;
use crate::error::{CODE_USED, INVALID_CODE, TransportError};
use crate::{ClientConfig, Error};

/// The most of a body that is read; WeChat's answers are a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most of a body that is kept in an error for diagnosis.
const KEPT_BODY_BYTES: usize = 1024;
/// How a redacted value appears in logs and kept bodies.
const REDACTED: &str = "[redacted]";
/// Query parameters whose values never reach a log.
const SECRET_PARAMS: [&str; 6] = [
    "secret",
    "js_code",
    "code",
    "access_token",
    "refresh_token",
    "signature",
];

/// An async client for WeChat's server API.
///
/// Cloning is cheap: clones share one connection pool and configuration.
#[derive(Clone, Debug)]
pub struct WeChatClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
}

/// One call to make: where, with what, and which values must never be shown.
pub(crate) struct Call<'a> {
    pub(crate) endpoint: Endpoint,
    /// The query string, in order.
    pub(crate) query: Vec<(&'static str, &'a str)>,
    /// A JSON body: the call is then a POST.
    pub(crate) body: Option<Value>,
    /// Values to scrub from any body kept in an error (the query's secrets and any other).
    pub(crate) secrets: Vec<&'a str>,
    /// The appid, for logs.
    pub(crate) appid: Option<&'a str>,
}

impl WeChatClient {
    /// Creates a client.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the HTTP client cannot be set up (e.g. no TLS backend).
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("wxlink-wechat-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout())
            // No timeout per request: `execute` bounds the whole call, retries included, with
            // one timer.
            .build()
            .map_err(|e| Error::InvalidConfig(format!("cannot build the http client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner { http, config }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Makes a call within the configured time budget, retrying as the endpoint allows, and
    /// reads WeChat's JSON object into `T` once its errcode is 0 (or one the endpoint answers
    /// with).
    pub(crate) async fn execute<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, Error> {
        let deadline = Instant::now() + self.inner.config.timeout();
        let name = call.endpoint.name();
        let span = tracing::debug_span!("wechat", call = name, appid = call.appid.unwrap_or(""));
        let run = self.execute_with_retries(&call, deadline);
        match tokio::time::timeout_at(deadline, run.instrument(span)).await {
            Ok(result) => result,
            Err(_elapsed) => {
                tracing::warn!(call = name, appid = call.appid.unwrap_or(""), "timed out");
                Err(Error::Timeout)
            }
        }
    }

    async fn execute_with_retries<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        deadline: Instant,
    ) -> Result<T, Error> {
        let endpoint_url = self.endpoint(call.endpoint.path());
        let mut url = endpoint_url.clone();
        if !call.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &call.query {
                pairs.append_pair(name, value);
            }
        }
        let body = call.body.as_ref().map(Value::to_string);
        let endpoint = call.endpoint;

        let mut delays = backoff(&self.inner.config);
        let mut attempt: u32 = 0;
        // Whether an earlier attempt may have reached WeChat (and spent a code).
        let mut reached_wechat = false;
        loop {
            // The redacted URL is only built when debug logging is on (tracing evaluates an
            // event's fields only when it is enabled).
            tracing::debug!(url = %redacted_url(&endpoint_url, &call.query), attempt, "calling wechat");
            let error = match self.attempt(call, url.clone(), body.clone()).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let error = match error {
                // Our own earlier attempt may have reached WeChat, which spends the code.
                Error::InvalidCode | Error::CodeUsed
                    if reached_wechat && endpoint.spends_code() =>
                {
                    let errcode = if matches!(error, Error::CodeUsed) {
                        CODE_USED
                    } else {
                        INVALID_CODE
                    };
                    tracing::warn!(errcode, attempt, "a retry met a spent code");
                    Error::CodeConsumedByRetry { errcode }
                }
                other => other,
            };
            let (may_retry, reached) = match &error {
                Error::SystemBusy => (endpoint.retries_system_busy(), true),
                Error::Transport(transport) if transport.is_connect() => (true, false),
                Error::Transport(_) => (endpoint.retries_after_sending(), true),
                _ => (false, true),
            };
            reached_wechat |= reached;
            let delay = match delays.next() {
                Some(delay) if may_retry => delay,
                // Not retried, or `max_retries` reached.
                _ => {
                    log_failure(endpoint, &error, attempt);
                    return Err(error);
                }
            };
            if Instant::now() + delay >= deadline {
                tracing::warn!(error = %error, attempt, "no time left to retry");
                return Err(error);
            }
            tracing::info!(error = %error, attempt, ?delay, "retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One HTTP exchange, from connecting to the end of the body; the call's deadline bounds it.
    async fn attempt<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        url: Url,
        body: Option<String>,
    ) -> Result<T, Error> {
        let request = match body {
            Some(body) => self
                .inner
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body),
            None => self.inner.http.get(url),
        };
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let body = read_capped(response, MAX_BODY_BYTES).await?;
        interpret(status, &body, &call.secrets, call.endpoint)
    }

    /// `api_base` with `segments` appended to its path.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.config.api_base().clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }
}

/// The waits before a call's retries, `max_retries` of them: `backoff_base`, doubling with each
/// retry; with jitter, "equal jitter": between half and all of that.
fn backoff(config: &ClientConfig) -> impl Iterator<Item = Duration> + use<> {
    let doubling = ExponentialBuilder::new()
        .without_max_delay()
        .with_max_times(config.max_retries() as usize);
    let base = config.backoff_base();
    if config.jitter() {
        // backon's jitter adds up to one delay more: from half the nominal delay to all of it.
        doubling.with_min_delay(base / 2).with_jitter().build()
    } else {
        doubling.with_min_delay(base).build()
    }
}

fn transport_error(error: reqwest::Error) -> Error {
    if error.is_timeout() {
        Error::Timeout
    } else {
        Error::Transport(TransportError::new(error))
    }
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if body.len() >= cap {
            break;
        }
    }
    Ok(body)
}

/// Reads WeChat's envelope: the body is JSON whatever the `Content-Type`, a missing `errcode`
/// counts as 0, and a non-zero errcode is mapped by the endpoint even on a non-2xx status.
fn interpret<T: DeserializeOwned>(
    status: u16,
    body: &[u8],
    secrets: &[&str],
    endpoint: Endpoint,
) -> Result<T, Error> {
    let success = (200..300).contains(&status);
    let http_error = || Error::Http {
        status,
        body: kept_body(body, secrets),
    };
    let envelope = match Envelope::read(body) {
        Some(envelope) => envelope,
        None => match serde_json::from_slice::<Value>(body) {
            Err(_) if success => {
                return Err(Error::NotJson {
                    status,
                    body: kept_body(body, secrets),
                });
            }
            Err(_) => return Err(http_error()),
            Ok(Value::Object(object)) => Envelope {
                errcode: object.get("errcode").cloned(),
                errmsg: object.get("errmsg").cloned(),
            },
            Ok(_) if success => return Err(unexpected("json that is not an object")),
            Ok(_) => return Err(http_error()),
        },
    };
    let errcode = match &envelope.errcode {
        None | Some(Value::Null) => 0,
        Some(code) => match code.as_i64() {
            Some(code) => code,
            None if success => return Err(unexpected("errcode is not an integer")),
            None => return Err(http_error()),
        },
    };
    if errcode != 0 && !endpoint.answers_with(errcode) {
        let errmsg = envelope
            .errmsg
            .as_ref()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        tracing::debug!(status, errcode, errmsg = %errmsg, "wechat answered an errcode");
        return Err(endpoint.error(errcode, errmsg));
    }
    if !success {
        return Err(http_error());
    }
    // Straight from the bytes into the call's raw shape: no `Value` tree in between.
    serde_json::from_slice(body)
        .map_err(|e| unexpected(&format!("json of an unexpected shape: {e}")))
}

/// The envelope of every answer: WeChat's `errcode` and `errmsg`, the rest skipped unread.
#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(default)]
    errcode: Option<Value>,
    #[serde(default)]
    errmsg: Option<Value>,
}

impl Envelope {
    /// The envelope of a JSON object; `None` for anything else, and for what a struct reads
    /// differently from a map (a repeated key), which the caller then reads as a `Value`.
    fn read(body: &[u8]) -> Option<Envelope> {
        let object = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{');
        if !object {
            return None;
        }
        serde_json::from_slice(body).ok()
    }
}

pub(crate) fn unexpected(reason: &str) -> Error {
    Error::UnexpectedAnswer {
        reason: reason.to_owned(),
    }
}

/// A string field that must be present and not empty.
pub(crate) fn required(value: Option<String>, what: &str) -> Result<String, Error> {
    value
        .filter(|s| !s.is_empty())
        .ok_or_else(|| unexpected(&format!("errcode 0 without {what}")))
}

/// An optional id: WeChat's empty string means "none".
pub(crate) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.is_empty())
}

/// The start of a body, for an error: lossily decoded, cut at a character boundary, with every
/// occurrence of a secret replaced.
fn kept_body(body: &[u8], secrets: &[&str]) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, REDACTED);
        // A server may echo the query string URL-encoded.
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        if encoded != *secret {
            text = text.replace(&encoded, REDACTED);
        }
    }
    if text.len() > KEPT_BODY_BYTES {
        let mut cut = KEPT_BODY_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The request URL as it may be logged: the values of secret parameters are replaced.
fn redacted_url(endpoint: &Url, query: &[(&str, &str)]) -> String {
    let mut logged = endpoint.to_string();
    for (index, (name, value)) in query.iter().enumerate() {
        logged.push(if index == 0 { '?' } else { '&' });
        logged.extend(url::form_urlencoded::byte_serialize(name.as_bytes()));
        logged.push('=');
        if SECRET_PARAMS.contains(name) {
            logged.push_str(REDACTED);
        } else {
            logged.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
        }
    }
    logged
}

fn log_failure(endpoint: Endpoint, error: &Error, attempt: u32) {
    let call = endpoint.name();
    match error {
        Error::InvalidCredential { errcode, errmsg } => tracing::error!(
            call,
            errcode,
            errmsg = %errmsg,
            "wechat rejected the app credentials: check the appid and secret configuration"
        ),
        Error::AccessTokenInvalid { errcode, errmsg } => {
            tracing::info!(call, errcode, errmsg = %errmsg, "wechat refused the access_token");
        }
        Error::InvalidCode | Error::CodeUsed | Error::HighRiskUser | Error::ScopeUnauthorized => {
            tracing::debug!(call, error = %error, "wechat refused the user's grant");
        }
        _ => tracing::warn!(call, error = %error, attempt, "wechat call failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C2S: Endpoint = Endpoint::Code2Session;

    fn config(max_retries: u32, jitter: bool) -> ClientConfig {
        ClientConfig::builder()
            .max_retries(max_retries)
            .backoff_base(Duration::from_millis(50))
            .jitter(jitter)
            .build()
            .expect("a valid configuration")
    }

    #[test]
    fn backoff_doubles_from_the_base_for_max_retries() {
        let exact: Vec<_> = backoff(&config(3, false)).collect();
        let expected = [50, 100, 200].map(Duration::from_millis);
        // backon computes in f32 seconds: a few nanoseconds either way are its rounding.
        let rounding = Duration::from_micros(1);
        assert_eq!(exact.len(), expected.len());
        for (delay, nominal) in exact.iter().zip(expected) {
            assert!(
                delay.abs_diff(nominal) < rounding,
                "{delay:?} is not {nominal:?}"
            );
        }
        let jittered: Vec<_> = backoff(&config(10, true)).collect();
        assert_eq!(jittered.len(), 10);
        let mut nominal = Duration::from_millis(50);
        for delay in jittered {
            assert!(
                delay + rounding >= nominal / 2 && delay <= nominal + rounding,
                "{delay:?} outside [{:?}, {nominal:?}]",
                nominal / 2
            );
            nominal *= 2;
        }
        assert_eq!(backoff(&config(0, true)).count(), 0);
    }

    #[test]
    fn missing_errcode_is_success() {
        let body = br#"{"openid":"o1","session_key":"k"}"#;
        let value = interpret::<Value>(200, body, &[], C2S).expect("a value");
        assert_eq!(value["openid"], "o1");
    }

    #[test]
    fn answers_are_read_straight_into_their_shape_and_envelopes_as_before() {
        #[derive(serde::Deserialize, Debug)]
        struct Shape {
            openid: String,
        }
        let body = br#" {"openid":"o1","session_key":"k","errcode":0}"#;
        let shape = interpret::<Shape>(200, body, &[], C2S).expect("a shape");
        assert_eq!(shape.openid, "o1");
        let error =
            interpret::<Shape>(200, br#"{"session_key":"k"}"#, &[], C2S).expect_err("no openid");
        assert!(matches!(error, Error::UnexpectedAnswer { .. }), "{error:?}");
        // A repeated key is read as a JSON map reads it: the last one counts.
        let body = br#"{"errcode":0,"errcode":40029,"errmsg":"invalid code"}"#;
        let error = interpret::<Shape>(200, body, &[], C2S).expect_err("refused");
        assert!(matches!(error, Error::InvalidCode), "{error:?}");
        let error = interpret::<Shape>(200, b"not json", &[], C2S).expect_err("refused");
        assert!(matches!(error, Error::NotJson { .. }), "{error:?}");
    }

    #[test]
    fn malformed_envelopes_are_unexpected() {
        for body in [&br#"[1,2]"#[..], br#"{"errcode":"x"}"#, br#"7"#] {
            let error = interpret::<Value>(200, body, &[], C2S).expect_err("refused");
            assert!(matches!(error, Error::UnexpectedAnswer { .. }), "{error:?}");
        }
        let error = interpret::<Value>(500, br#"[1]"#, &[], C2S).expect_err("refused");
        assert!(
            matches!(error, Error::Http { status: 500, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn non_2xx_with_errcode_maps_the_errcode() {
        let error = interpret::<Value>(500, br#"{"errcode":-1,"errmsg":"system error"}"#, &[], C2S)
            .expect_err("refused");
        assert!(matches!(error, Error::SystemBusy));
        let error = interpret::<Value>(200, br#"{"errcode":0,"errmsg":"ok"}"#, &[], C2S);
        assert!(error.is_ok());
        let error = interpret::<Value>(503, br#"{"errcode":0,"errmsg":"ok"}"#, &[], C2S);
        assert!(matches!(error, Err(Error::Http { status: 503, .. })));
    }

    #[test]
    fn checksession_answers_with_87009() {
        let body = br#"{"errcode":87009,"errmsg":"invalid signature"}"#;
        let value = interpret::<Value>(200, body, &[], Endpoint::CheckSession).expect("an answer");
        assert_eq!(value["errcode"], 87009);
        let error = interpret::<Value>(200, body, &[], C2S).expect_err("an error elsewhere");
        assert!(matches!(error, Error::Api { errcode: 87009, .. }));
    }

    #[test]
    fn kept_body_is_redacted_and_truncated() {
        let body = "x".repeat(3000) + "s3cret";
        let kept = kept_body(
            format!("s3cret a+b%2F {body}").as_bytes(),
            &["s3cret", "a+b/"],
        );
        assert!(kept.starts_with("[redacted] a+b%2F"), "{kept}");
        assert!(kept.len() <= KEPT_BODY_BYTES + '…'.len_utf8());
        let kept = kept_body(b"code=a%2Bb%2F", &["a+b/"]);
        assert_eq!(kept, "code=[redacted]");
        let multibyte = "é".repeat(1000);
        let kept = kept_body(multibyte.as_bytes(), &[]);
        assert!(kept.ends_with('…'));
    }

    #[test]
    fn logged_url_hides_secrets_codes_and_tokens() {
        let endpoint = Url::parse("https://api.weixin.qq.com/sns/jscode2session").expect("url");
        let query = [
            ("appid", "wx1"),
            ("secret", "s"),
            ("js_code", "c"),
            ("grant_type", "authorization_code"),
        ];
        assert_eq!(
            redacted_url(&endpoint, &query),
            "https://api.weixin.qq.com/sns/jscode2session?appid=wx1&secret=[redacted]\
             &js_code=[redacted]&grant_type=authorization_code"
        );
        let endpoint = Url::parse("https://api.weixin.qq.com/wxa/checksession").expect("url");
        let query = [
            ("access_token", "TOKEN"),
            ("openid", "o+1"),
            ("signature", "abcdef"),
            ("sig_method", "hmac_sha256"),
        ];
        assert_eq!(
            redacted_url(&endpoint, &query),
            "https://api.weixin.qq.com/wxa/checksession?access_token=[redacted]&openid=o%2B1\
             &signature=[redacted]&sig_method=hmac_sha256"
        );
        let endpoint = Url::parse("https://api.weixin.qq.com/cgi-bin/stable_token").expect("url");
        assert_eq!(
            redacted_url(&endpoint, &[]),
            "https://api.weixin.qq.com/cgi-bin/stable_token"
        );
    }
}
