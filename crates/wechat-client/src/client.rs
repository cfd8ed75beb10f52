//! The client and its code2Session call: one attempt, then the bounded retry loop around it.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use serde::Deserialize;
use tokio::time::Instant;
use tracing::Instrument as _;
use url::Url;

use crate::error::{CODE_USED, INVALID_CODE, TransportError};
use crate::{AppSecret, ClientConfig, Error, SessionKey};

/// The most of a body that is read; WeChat's answers are a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most of a body that is kept in an error for diagnosis.
const KEPT_BODY_BYTES: usize = 1024;
/// How a redacted value appears in logs and kept bodies.
const REDACTED: &str = "[redacted]";

/// The answer of a successful code2Session call.
///
/// Its `Debug` output shows the openid and unionid but not the session key.
#[derive(Clone, Debug)]
pub struct Code2Session {
    /// The user's id in this mini program.
    pub openid: String,
    /// The session key of this login; it decrypts the user's `encryptedData`.
    pub session_key: SessionKey,
    /// The user's id across the apps bound to the same WeChat Open Platform account, when
    /// WeChat returned one. An empty string from WeChat is reported as `None`.
    pub unionid: Option<String>,
}

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
            .timeout(config.timeout())
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

    /// Exchanges a `wx.login` code for the user's openid, session key and (maybe) unionid:
    /// `GET {api_base}/sns/jscode2session?appid=…&secret=…&js_code=…&grant_type=authorization_code`.
    ///
    /// The whole call, retries and backoff included, takes at most the configured timeout.
    /// Errcode -1 and connection failures (before any byte was sent) are retried with
    /// exponential backoff, at most `max_retries` times and never past the time budget; no other
    /// failure is retried, because WeChat consumes a code on first use.
    /// The answer is parsed as JSON whatever its `Content-Type` (WeChat sends `text/plain`).
    ///
    /// # Errors
    ///
    /// See the [crate documentation](crate#errors) for the mapping of errcodes to variants.
    /// A retry that meets 40029 or 40163 returns [`Error::CodeConsumedByRetry`].
    pub async fn code2session(
        &self,
        appid: &str,
        secret: &AppSecret,
        js_code: &str,
    ) -> Result<Code2Session, Error> {
        let deadline = Instant::now() + self.inner.config.timeout();
        let span = tracing::debug_span!("code2session", appid = %appid);
        let call = self.code2session_with_retries(appid, secret, js_code, deadline);
        match tokio::time::timeout_at(deadline, call.instrument(span)).await {
            Ok(result) => result,
            Err(_elapsed) => {
                tracing::warn!(appid = %appid, "code2session timed out");
                Err(Error::Timeout)
            }
        }
    }

    async fn code2session_with_retries(
        &self,
        appid: &str,
        secret: &AppSecret,
        js_code: &str,
        deadline: Instant,
    ) -> Result<Code2Session, Error> {
        let endpoint = self.endpoint(&["sns", "jscode2session"]);
        let mut url = endpoint.clone();
        url.query_pairs_mut()
            .append_pair("appid", appid)
            .append_pair("secret", secret.expose_secret())
            .append_pair("js_code", js_code)
            .append_pair("grant_type", "authorization_code");
        let logged_url = redacted_url(&endpoint, appid);
        let secrets = [secret.expose_secret(), js_code];

        let max_retries = self.inner.config.max_retries();
        let mut attempt: u32 = 0;
        loop {
            tracing::debug!(url = %logged_url, attempt, "calling code2session");
            let remaining = deadline.saturating_duration_since(Instant::now());
            let error = match self.attempt(url.clone(), remaining, &secrets).await {
                Ok(session) => return Ok(session),
                Err(error) => error,
            };
            let error = match error {
                // Our own earlier attempt may have reached WeChat, which burns the code.
                Error::InvalidCode | Error::CodeUsed if attempt > 0 => {
                    let errcode = if matches!(error, Error::CodeUsed) {
                        CODE_USED
                    } else {
                        INVALID_CODE
                    };
                    tracing::warn!(errcode, attempt, "code2session retry met a consumed code");
                    Error::CodeConsumedByRetry { errcode }
                }
                other => other,
            };
            let may_retry = match &error {
                Error::SystemBusy => true,
                Error::Transport(transport) => transport.is_connect(),
                _ => false,
            };
            if !may_retry || attempt >= max_retries {
                log_failure(&error, attempt);
                return Err(error);
            }
            let delay = self.backoff(attempt);
            if Instant::now() + delay >= deadline {
                tracing::warn!(error = %error, attempt, "no time left to retry code2session");
                return Err(error);
            }
            tracing::info!(error = %error, attempt, ?delay, "retrying code2session");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One HTTP exchange, limited to `remaining` from connecting to the end of the body.
    async fn attempt(
        &self,
        url: Url,
        remaining: Duration,
        secrets: &[&str],
    ) -> Result<Code2Session, Error> {
        let response = self
            .inner
            .http
            .get(url)
            .timeout(remaining)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let body = read_capped(response, MAX_BODY_BYTES).await?;
        interpret(status, &body, secrets)
    }

    /// `api_base` with `segments` appended to its path.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.config.api_base().clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let config = &self.inner.config;
        let nominal = config
            .backoff_base()
            .saturating_mul(2_u32.saturating_pow(attempt));
        if config.jitter() && !nominal.is_zero() {
            // "Equal jitter": between half and all of the nominal delay.
            let half = nominal / 2;
            half + rand::rng().random_range(Duration::ZERO..=nominal - half)
        } else {
            nominal
        }
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

/// code2Session's answer; every field is optional because WeChat omits what does not apply.
#[derive(Deserialize)]
struct RawAnswer {
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: Option<String>,
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    session_key: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
}

fn interpret(status: u16, body: &[u8], secrets: &[&str]) -> Result<Code2Session, Error> {
    let success = (200..300).contains(&status);
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => {
            let body = kept_body(body, secrets);
            return Err(if success {
                Error::NotJson { status, body }
            } else {
                Error::Http { status, body }
            });
        }
    };
    let answer = match RawAnswer::deserialize(&value) {
        Ok(answer) => answer,
        Err(e) if success => {
            return Err(Error::UnexpectedAnswer {
                reason: format!("json of an unexpected shape: {e}"),
            });
        }
        Err(_) => {
            return Err(Error::Http {
                status,
                body: kept_body(body, secrets),
            });
        }
    };
    let errcode = answer.errcode.unwrap_or(0);
    if errcode != 0 {
        let errmsg = answer.errmsg.unwrap_or_default();
        tracing::debug!(status, errcode, errmsg = %errmsg, "wechat answered an errcode");
        return Err(Error::from_errcode(errcode, errmsg));
    }
    if !success {
        return Err(Error::Http {
            status,
            body: kept_body(body, secrets),
        });
    }
    let openid = answer.openid.filter(|s| !s.is_empty());
    let session_key = answer.session_key.filter(|s| !s.is_empty());
    match (openid, session_key) {
        (Some(openid), Some(session_key)) => Ok(Code2Session {
            openid,
            session_key: SessionKey::new(session_key),
            unionid: answer.unionid.filter(|s| !s.is_empty()),
        }),
        (None, _) => Err(Error::UnexpectedAnswer {
            reason: "errcode 0 without an openid".into(),
        }),
        (Some(_), None) => Err(Error::UnexpectedAnswer {
            reason: "errcode 0 without a session_key".into(),
        }),
    }
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

/// The request URL as it may be logged: the secret and the js_code are replaced.
fn redacted_url(endpoint: &Url, appid: &str) -> String {
    let appid: String = url::form_urlencoded::byte_serialize(appid.as_bytes()).collect();
    format!(
        "{endpoint}?appid={appid}&secret={REDACTED}&js_code={REDACTED}&grant_type=authorization_code"
    )
}

fn log_failure(error: &Error, attempt: u32) {
    match error {
        Error::InvalidCredential { errcode, errmsg } => tracing::error!(
            errcode,
            errmsg = %errmsg,
            "wechat rejected the app credentials: check the appid and secret configuration"
        ),
        Error::InvalidCode | Error::CodeUsed | Error::HighRiskUser => {
            tracing::debug!(error = %error, "code2session refused the code");
        }
        _ => tracing::warn!(error = %error, attempt, "code2session failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_without_errcode() {
        let body = br#"{"openid":"o1","session_key":"k","unionid":"u1"}"#;
        let session = interpret(200, body, &[]).expect("a session");
        assert_eq!(session.openid, "o1");
        assert_eq!(session.session_key.expose_secret(), "k");
        assert_eq!(session.unionid.as_deref(), Some("u1"));
    }

    #[test]
    fn empty_unionid_is_none() {
        let body = br#"{"errcode":0,"openid":"o1","session_key":"k","unionid":""}"#;
        let session = interpret(200, body, &[]).expect("a session");
        assert_eq!(session.unionid, None);
    }

    #[test]
    fn errcode_zero_without_openid_is_unexpected() {
        for body in [
            &br#"{"errcode":0,"errmsg":"ok"}"#[..],
            br#"{"openid":"","session_key":"k"}"#,
            br#"{"openid":"o","session_key":""}"#,
            br#"[1,2]"#,
            br#"{"errcode":"x"}"#,
        ] {
            let error = interpret(200, body, &[]).expect_err("refused");
            assert!(matches!(error, Error::UnexpectedAnswer { .. }), "{error:?}");
            assert!(!format!("{error:?}").contains("\"k\""));
        }
    }

    #[test]
    fn non_2xx_with_errcode_maps_the_errcode() {
        let error =
            interpret(500, br#"{"errcode":-1,"errmsg":"system error"}"#, &[]).expect_err("refused");
        assert!(matches!(error, Error::SystemBusy));
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
    fn logged_url_hides_secret_and_code() {
        let endpoint = Url::parse("https://api.weixin.qq.com/sns/jscode2session").expect("url");
        assert_eq!(
            redacted_url(&endpoint, "wx1"),
            "https://api.weixin.qq.com/sns/jscode2session?appid=wx1&secret=[redacted]\
             &js_code=[redacted]&grant_type=authorization_code"
        );
    }
}
