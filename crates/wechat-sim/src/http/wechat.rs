//! WeChat's side of the HTTP face: every simulated endpoint, each counted and open to faults.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::model::{
    CGI_USER_INFO_PATH, CHECK_SESSION_PATH, CODE2SESSION_PATH, Fault, GET_ACCESS_TOKEN_PATH,
    OAUTH_ACCESS_TOKEN_PATH, PHONE_NUMBER_PATH, SNS_USERINFO_PATH, STABLE_TOKEN_PATH,
};
use crate::sim::Sim;
use crate::state::{
    self, Answer, CallKey, CheckSessionQuery, Code2SessionQuery, FollowerQuery, MAX_DELAY_MS,
    PhoneNumberBody, StableTokenBody, TokenQuery, UserInfoQuery,
};

/// How `sns/*` answers: JSON as `text/plain`, as code2Session is observed to do.
const TEXT_PLAIN: &str = "text/plain";
/// How `cgi-bin/*` and `wxa/*` answer.
const APPLICATION_JSON: &str = "application/json; encoding=utf-8";

type Pairs = Vec<(String, String)>;

/// The query pairs; a query WeChat cannot read is answered like missing parameters, never with
/// a panic.
fn pairs(query: Result<Query<Pairs>, QueryRejection>) -> Pairs {
    query.map(|Query(pairs)| pairs).unwrap_or_default()
}

fn param(pairs: &Pairs, name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
}

/// Counts the call under `path` and its appid, then plays the first matching fault or, without
/// one (or after a delay), the normal answer.
///
/// `key` names the call's appid and code for counters and fault targets (it may also count
/// more); `normal` is WeChat's rule for the endpoint.
async fn play(
    sim: &Sim,
    path: &'static str,
    content_type: &'static str,
    key: impl FnOnce(&mut state::State) -> (Option<String>, Option<String>),
    normal: impl FnOnce(&mut state::State) -> Answer,
) -> Response {
    let (fault, appid, code) = sim.with_state(|s| {
        let (appid, code) = key(s);
        s.count_call(path, appid.as_deref());
        let fault = s.take_fault(&CallKey {
            path,
            appid: appid.as_deref(),
            code: code.as_deref(),
        });
        (fault, appid, code)
    });
    let answer = match fault {
        Some(Fault::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms.min(MAX_DELAY_MS))).await;
            sim.with_state(normal)
        }
        Some(fault) => {
            tracing::debug!(?fault, path, ?appid, "playing a fault");
            let key = CallKey {
                path,
                appid: appid.as_deref(),
                code: code.as_deref(),
            };
            sim.with_state(|s| s.fault_answer(&fault, &key))
        }
        None => sim.with_state(normal),
    };
    if let Answer::Json(value) = &answer {
        tracing::debug!(
            path,
            ?appid,
            errcode = value
                .get("errcode")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0),
            "answered"
        );
    }
    wechat_response(answer, content_type)
}

/// The query of a code exchange; code2Session names the code `js_code`, the OAuth exchange
/// `code`.
fn exchange_query(query: Result<Query<Pairs>, QueryRejection>, code: &str) -> Code2SessionQuery {
    let pairs = pairs(query);
    Code2SessionQuery {
        appid: param(&pairs, "appid"),
        secret: param(&pairs, "secret"),
        js_code: param(&pairs, code),
        grant_type: param(&pairs, "grant_type"),
    }
}

pub(super) async fn jscode2session(
    State(sim): State<Sim>,
    query: Result<Query<Pairs>, QueryRejection>,
) -> Response {
    let query = exchange_query(query, "js_code");
    let key = (query.appid.clone(), query.js_code.clone());
    play(
        &sim,
        CODE2SESSION_PATH,
        TEXT_PLAIN,
        |_| key,
        |s| s.code2session(&query),
    )
    .await
}

pub(super) async fn oauth_access_token(
    State(sim): State<Sim>,
    query: Result<Query<Pairs>, QueryRejection>,
) -> Response {
    let query = exchange_query(query, "code");
    let key = (query.appid.clone(), query.js_code.clone());
    play(
        &sim,
        OAUTH_ACCESS_TOKEN_PATH,
        TEXT_PLAIN,
        |_| key,
        |s| s.oauth_access_token(&query),
    )
    .await
}

pub(super) async fn sns_userinfo(
    State(sim): State<Sim>,
    query: Result<Query<Pairs>, QueryRejection>,
) -> Response {
    let pairs = pairs(query);
    let query = UserInfoQuery {
        access_token: param(&pairs, "access_token"),
        openid: param(&pairs, "openid"),
    };
    play(
        &sim,
        SNS_USERINFO_PATH,
        TEXT_PLAIN,
        |s| (s.user_token_appid(&query.access_token), None),
        |s| s.sns_userinfo(&query),
    )
    .await
}

pub(super) async fn stable_token(State(sim): State<Sim>, body: Bytes) -> Response {
    let body = stable_token_body(&body);
    let (appid, force) = body
        .as_ref()
        .map(|b| (b.appid.clone(), b.force_refresh))
        .unwrap_or_default();
    play(
        &sim,
        STABLE_TOKEN_PATH,
        APPLICATION_JSON,
        |s| {
            if force {
                s.count_force_refresh_call(appid.as_deref());
            }
            (appid, None)
        },
        |s| match &body {
            Some(body) => s.stable_token(body),
            None => data_format_error(),
        },
    )
    .await
}

pub(super) async fn classic_token(
    State(sim): State<Sim>,
    query: Result<Query<Pairs>, QueryRejection>,
) -> Response {
    let pairs = pairs(query);
    let query = TokenQuery {
        grant_type: param(&pairs, "grant_type"),
        appid: param(&pairs, "appid"),
        secret: param(&pairs, "secret"),
    };
    play(
        &sim,
        GET_ACCESS_TOKEN_PATH,
        APPLICATION_JSON,
        |_| (query.appid.clone(), None),
        |s| s.classic_token(&query),
    )
    .await
}

pub(super) async fn follower_info(
    State(sim): State<Sim>,
    query: Result<Query<Pairs>, QueryRejection>,
) -> Response {
    let pairs = pairs(query);
    let query = FollowerQuery {
        access_token: param(&pairs, "access_token"),
        openid: param(&pairs, "openid"),
    };
    play(
        &sim,
        CGI_USER_INFO_PATH,
        APPLICATION_JSON,
        |s| (s.access_token_appid(&query.access_token), None),
        |s| s.follower_info(&query),
    )
    .await
}

pub(super) async fn phone_number(
    State(sim): State<Sim>,
    query: Result<Query<Pairs>, QueryRejection>,
    body: Bytes,
) -> Response {
    let token = param(&pairs(query), "access_token");
    let body = json_object(&body).and_then(|object| {
        Some(PhoneNumberBody {
            code: string_field(&object, "code").ok()?,
            openid: string_field(&object, "openid").ok()?,
        })
    });
    let code = body.as_ref().and_then(|b| b.code.clone());
    play(
        &sim,
        PHONE_NUMBER_PATH,
        APPLICATION_JSON,
        |s| (s.access_token_appid(&token), code),
        |s| match &body {
            Some(body) => s.phone_number(&token, body),
            None => data_format_error(),
        },
    )
    .await
}

pub(super) async fn check_session(
    State(sim): State<Sim>,
    query: Result<Query<Pairs>, QueryRejection>,
) -> Response {
    let pairs = pairs(query);
    let query = CheckSessionQuery {
        access_token: param(&pairs, "access_token"),
        openid: param(&pairs, "openid"),
        signature: param(&pairs, "signature"),
        sig_method: param(&pairs, "sig_method"),
    };
    play(
        &sim,
        CHECK_SESSION_PATH,
        APPLICATION_JSON,
        |s| (s.access_token_appid(&query.access_token), None),
        |s| s.check_session(&query),
    )
    .await
}

/// A GET on an endpoint that takes only POST: errcode 43002, counted like any call.
pub(super) async fn require_post(State(sim): State<Sim>, uri: axum::http::Uri) -> Response {
    let path = if uri.path().ends_with(STABLE_TOKEN_PATH) {
        STABLE_TOKEN_PATH
    } else {
        PHONE_NUMBER_PATH
    };
    play(
        &sim,
        path,
        APPLICATION_JSON,
        |_| (None, None),
        |_| state::errcode(43002, "require POST method"),
    )
    .await
}

fn data_format_error() -> Answer {
    state::errcode(47001, "data format error")
}

fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

/// A field that is absent or null (`None`), a string, or of a wrong type (`Err`).
fn string_field(object: &Map<String, Value>, name: &str) -> Result<Option<String>, ()> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(()),
    }
}

fn stable_token_body(body: &[u8]) -> Option<StableTokenBody> {
    let object = json_object(body)?;
    let force_refresh = match object.get("force_refresh") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(force)) => *force,
        Some(_) => return None,
    };
    Some(StableTokenBody {
        grant_type: string_field(&object, "grant_type").ok()?,
        appid: string_field(&object, "appid").ok()?,
        secret: string_field(&object, "secret").ok()?,
        force_refresh,
    })
}

/// WeChat's answer: JSON with 200, or a raw failure, or a dropped connection.
fn wechat_response(answer: Answer, content_type: &'static str) -> Response {
    match answer {
        Answer::Json(value) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, content_type)],
            value.to_string(),
        )
            .into_response(),
        Answer::Raw {
            status,
            content_type,
            body,
        } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response(),
        Answer::Drop => Response::new(Body::new(AbortBody)),
    }
}

/// A body that fails at once: the server closes the connection before a byte of the answer
/// is written.
struct AbortBody;

impl hyper::body::Body for AbortBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other(
            "connection dropped by a simulated fault",
        ))))
    }
}
