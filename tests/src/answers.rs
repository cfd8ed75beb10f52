//! Whole HTTP answers, the contract's response shapes, and the error-shape assertion.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value};

/// A whole HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body text.
    pub body: String,
    /// From sending to the end of the body.
    pub elapsed: Duration,
}

impl Reply {
    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {} {}", self.status, self.body))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Fail unless the status is `status` and the body is JSON.
    #[track_caller]
    pub fn ok_json(&self, status: u16, what: &str) -> Value {
        assert_eq!(
            self.status, status,
            "{what}: expected {status}, got {} {}",
            self.status, self.body
        );
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{what}: Content-Type {:?}",
            self.header("content-type")
        );
        self.json()
    }
}

/// Fail unless `reply` is exactly `{"error":{"code":code,"message":<non-empty>,"request_id":…}}`
/// with `status` and `Content-Type: application/json`; returns the message.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str, what: &str) -> String {
    assert_eq!(
        (reply.status, error_code(reply).as_deref()),
        (status, Some(code)),
        "{what}: expected {status} {code}, got {} {}",
        reply.status,
        reply.body
    );
    assert_error_shape(reply, what)
}

/// Fail unless `reply` has the contract's error shape; returns the message.
#[track_caller]
pub fn assert_error_shape(reply: &Reply, what: &str) -> String {
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: error Content-Type is {content_type:?}, body {}",
        reply.body
    );
    let value = reply.json();
    let outer = exact_object(&value, &["error"], what);
    let inner = exact_object(&outer["error"], &["code", "message", "request_id"], what);
    // The request id in the body is the one in the `x-request-id` header, so a client's bug
    // report can be found in the logs.
    assert_eq!(
        inner["request_id"].as_str(),
        reply.header("x-request-id"),
        "{what}: request_id differs from the x-request-id header: {value}"
    );
    assert!(
        inner["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: error code is not a non-empty string: {value}"
    );
    let message = inner["message"].as_str().unwrap_or_default();
    assert!(
        !message.trim().is_empty(),
        "{what}: error message is not a non-empty string: {value}"
    );
    message.to_owned()
}

/// The `error.code` of an answer, if it has one.
pub fn error_code(reply: &Reply) -> Option<String> {
    let value: Value = serde_json::from_str(&reply.body).ok()?;
    value["error"]["code"].as_str().map(str::to_owned)
}

/// `value` as an object with exactly `keys`.
#[track_caller]
pub fn exact_object<'a>(value: &'a Value, keys: &[&str], what: &str) -> &'a Map<String, Value> {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not a JSON object: {value}"));
    let found: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(found, expected, "{what}: fields of {value}");
    object
}

#[track_caller]
fn string_field(object: &Map<String, Value>, key: &str) -> String {
    object[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {object:?}"))
        .to_owned()
}

#[track_caller]
fn bool_field(object: &Map<String, Value>, key: &str) -> bool {
    object[key]
        .as_bool()
        .unwrap_or_else(|| panic!("{key} is not a bool in {object:?}"))
}

/// A 200 from `/v1/wechat/login`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResponse {
    /// The bearer token.
    pub token: String,
    /// `Bearer`
    pub token_type: String,
    /// Seconds.
    pub expires_in: u64,
    /// Opaque user id.
    pub user_id: String,
    /// Whether the user has a unionid.
    pub unionid_linked: bool,
    /// `!unionid_linked` for a mini program; never set when linked (an OAuth login cannot send
    /// encrypted data, so it is false there)
    pub needs_user_info: bool,
    /// With `[tokens] format = "jwt"` only.
    pub refresh_token: Option<String>,
}

impl LoginResponse {
    /// Parse a login answer, which must be a 200 with exactly the contract's fields.
    #[track_caller]
    pub fn parse(reply: &Reply) -> Self {
        let value = reply.ok_json(200, "login");
        let mut fields = vec![
            "token",
            "token_type",
            "expires_in",
            "user_id",
            "unionid_linked",
            "needs_user_info",
        ];
        // Signed access tokens come with a refresh token, opaque ones never.
        let signed = value["token"].as_str().is_some_and(|t| t.contains('.'));
        if signed {
            fields.push("refresh_token");
        }
        let o = exact_object(&value, &fields, "login");
        let login = Self {
            token: string_field(o, "token"),
            token_type: string_field(o, "token_type"),
            expires_in: o["expires_in"]
                .as_u64()
                .unwrap_or_else(|| panic!("expires_in is not a number: {value}")),
            user_id: string_field(o, "user_id"),
            unionid_linked: bool_field(o, "unionid_linked"),
            needs_user_info: bool_field(o, "needs_user_info"),
            refresh_token: signed.then(|| string_field(o, "refresh_token")),
        };
        assert_eq!(login.token_type, "Bearer", "{value}");
        assert!(
            !(login.needs_user_info && login.unionid_linked),
            "a linked user needs no user info: {value}"
        );
        assert!(!login.user_id.is_empty(), "{value}");
        login
    }
}

/// A 200 from `/v1/wechat/user-info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfoResponse {
    /// Who the user is now.
    pub user_id: String,
    /// Whether the user has a unionid.
    pub unionid_linked: bool,
    /// Whether this call merged the session's user into the unionid's owner.
    pub merged: bool,
}

impl UserInfoResponse {
    /// Parse a user-info answer, which must be a 200 with exactly the contract's fields.
    #[track_caller]
    pub fn parse(reply: &Reply) -> Self {
        let value = reply.ok_json(200, "user-info");
        let o = exact_object(
            &value,
            &["user_id", "unionid_linked", "merged"],
            "user-info",
        );
        Self {
            user_id: string_field(o, "user_id"),
            unionid_linked: bool_field(o, "unionid_linked"),
            merged: bool_field(o, "merged"),
        }
    }
}

/// A 200 from `/v1/me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// Who the user is.
    pub user_id: String,
    /// Whether the user has a unionid.
    pub unionid_linked: bool,
    /// (appid, openid), sorted.
    pub identities: Vec<(String, String)>,
}

impl Me {
    /// Parse a `/v1/me` answer, which must be a 200 with exactly the contract's fields.
    #[track_caller]
    pub fn parse(reply: &Reply) -> Self {
        let value = reply.ok_json(200, "me");
        let o = exact_object(&value, &["user_id", "unionid_linked", "identities"], "me");
        let mut identities: Vec<(String, String)> = o["identities"]
            .as_array()
            .unwrap_or_else(|| panic!("identities is not an array: {value}"))
            .iter()
            .map(|identity| {
                let i = exact_object(identity, &["appid", "openid"], "me identity");
                (string_field(i, "appid"), string_field(i, "openid"))
            })
            .collect();
        identities.sort();
        Self {
            user_id: string_field(o, "user_id"),
            unionid_linked: bool_field(o, "unionid_linked"),
            identities,
        }
    }
}

/// Sorted (appid, openid) pairs, to compare with [`Me::identities`].
pub fn identities(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = pairs
        .iter()
        .map(|(a, o)| ((*a).to_owned(), (*o).to_owned()))
        .collect();
    all.sort();
    all
}

/// Every answer was 200; otherwise the test fails naming `what` and each other answer.
#[track_caller]
pub fn assert_all_ok(answers: &[Reply], what: &str) {
    let failures: Vec<String> = answers
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| format!("{} {}", r.status, r.body))
        .collect();
    assert!(
        failures.is_empty(),
        "{what}: {} of {} failed: {failures:#?}",
        failures.len(),
        answers.len()
    );
}

/// Runs every request at once, each on a task of its own, and answers their results in the
/// order given.
pub async fn all_at_once<F>(requests: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for (i, request) in requests.into_iter().enumerate() {
        tasks.spawn(async move { (i, request.await) });
    }
    let mut answers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        answers.push(done.expect("the request task"));
    }
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, reply)| reply).collect()
}
