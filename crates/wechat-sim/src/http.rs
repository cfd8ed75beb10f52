//! The HTTP face of a [`Sim`]: WeChat's endpoint and the `/__sim/` control API.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{
    AppRegistration, CODE2SESSION_PATH, CallCounts, Fault, FaultRule, Login, SimError, UserInfo,
    UserInfoRequest,
};
use crate::sim::Sim;
use crate::state::{Answer, Code2SessionQuery, MAX_DELAY_MS};

/// Control request bodies are small; anything larger is refused.
const MAX_CONTROL_BODY: usize = 64 * 1024;
/// The furthest one clock advance may go: ten years.
const MAX_ADVANCE_SECS: u64 = 10 * 366 * 24 * 3600;

impl Sim {
    /// The simulator as an axum [`Router`], for a host application to serve or mount.
    ///
    /// Mounted under a prefix (`host.nest("/wechat", sim.router())`), the API base for clients
    /// becomes `http://host/wechat`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(CODE2SESSION_PATH, get(jscode2session))
            .route("/__sim/apps", post(register_app))
            .route("/__sim/login", post(login))
            .route("/__sim/follow", post(follow))
            .route("/__sim/user-info", post(user_info))
            .route("/__sim/faults", post(add_faults).delete(clear_faults))
            .route("/__sim/calls", get(calls).delete(reset_calls))
            .route("/__sim/clock", get(clock).post(advance_clock))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_CONTROL_BODY))
            .with_state(self.clone())
    }
}

// --- WeChat's side -----------------------------------------------------------------------------

async fn jscode2session(
    State(sim): State<Sim>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    // A query WeChat cannot read is answered like a missing parameter, never with a panic.
    let pairs = query.map(|Query(pairs)| pairs).unwrap_or_default();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let query = Code2SessionQuery {
        appid: param("appid"),
        secret: param("secret"),
        js_code: param("js_code"),
        grant_type: param("grant_type"),
    };
    let fault = sim.with_state(|s| {
        s.count_call(CODE2SESSION_PATH, query.appid.as_deref());
        s.take_fault(&query)
    });
    let answer = match fault {
        Some(Fault::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms.min(MAX_DELAY_MS))).await;
            sim.with_state(|s| s.code2session(&query))
        }
        Some(fault) => {
            tracing::debug!(?fault, appid = ?query.appid, "playing a fault");
            sim.with_state(|s| s.fault_answer(&fault, &query))
        }
        None => sim.with_state(|s| s.code2session(&query)),
    };
    if let Answer::Json(value) = &answer {
        tracing::debug!(
            appid = ?query.appid,
            errcode = value.get("errcode").and_then(serde_json::Value::as_i64).unwrap_or(0),
            "code2session answered"
        );
    }
    wechat_response(answer)
}

/// WeChat sends its JSON as `text/plain`.
fn wechat_response(answer: Answer) -> Response {
    match answer {
        Answer::Json(value) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
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

async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/__sim") {
        control_error(StatusCode::NOT_FOUND, "not_found", "no such control route")
    } else {
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain")],
            json!({ "errcode": 40066, "errmsg": "invalid url" }).to_string(),
        )
            .into_response()
    }
}

// --- control API -------------------------------------------------------------------------------

fn control_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::UnknownApp(_) | Self::UnknownUser { .. } => StatusCode::NOT_FOUND,
            Self::NoSession { .. } => StatusCode::CONFLICT,
            Self::InvalidInput(_) => StatusCode::BAD_REQUEST,
            Self::Capacity(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Bind { .. } | Self::Io(_) | Self::Crypto(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        control_error(status, self.code(), &self.to_string())
    }
}

/// A JSON control request body; a body that is not the expected JSON gets a JSON 400 (or 413)
/// naming what is wrong.
struct ControlJson<T>(T);

impl<S, T> FromRequest<S> for ControlJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                let status = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                Err(control_error(
                    status,
                    "invalid_request",
                    &rejection.body_text(),
                ))
            }
        }
    }
}

fn ok() -> Json<Value> {
    Json(json!({ "ok": true }))
}

async fn register_app(
    State(sim): State<Sim>,
    ControlJson(app): ControlJson<AppRegistration>,
) -> Result<impl IntoResponse, SimError> {
    sim.register_app(&app.appid, &app.secret, app.unionid_policy)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "appid": app.appid, "unionid_policy": app.unionid_policy })),
    ))
}

#[derive(Deserialize)]
struct LoginRequest {
    appid: String,
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
}

async fn login(
    State(sim): State<Sim>,
    ControlJson(request): ControlJson<LoginRequest>,
) -> Result<Json<Login>, SimError> {
    let login = match &request.openid {
        Some(openid) => sim.login(&request.appid, openid, request.unionid.as_deref())?,
        None => sim.login_new_user(&request.appid, request.unionid.as_deref())?,
    };
    Ok(Json(login))
}

#[derive(Deserialize, Serialize)]
struct FollowRequest {
    appid: String,
    openid: String,
    #[serde(default = "yes")]
    following: bool,
}

fn yes() -> bool {
    true
}

async fn follow(
    State(sim): State<Sim>,
    ControlJson(request): ControlJson<FollowRequest>,
) -> Result<Json<FollowRequest>, SimError> {
    sim.set_following(&request.appid, &request.openid, request.following)?;
    Ok(Json(request))
}

async fn user_info(
    State(sim): State<Sim>,
    ControlJson(request): ControlJson<UserInfoRequest>,
) -> Result<Json<UserInfo>, SimError> {
    Ok(Json(sim.user_info_with(&request)?))
}

async fn add_faults(
    State(sim): State<Sim>,
    ControlJson(rule): ControlJson<FaultRule>,
) -> Result<impl IntoResponse, SimError> {
    sim.add_fault_rule(rule)?;
    Ok((StatusCode::CREATED, ok()))
}

async fn clear_faults(State(sim): State<Sim>) -> Json<Value> {
    sim.clear_faults();
    ok()
}

async fn calls(State(sim): State<Sim>) -> Json<CallCounts> {
    Json(sim.calls())
}

async fn reset_calls(State(sim): State<Sim>) -> Json<Value> {
    sim.reset_calls();
    ok()
}

#[derive(Deserialize)]
struct AdvanceRequest {
    advance_secs: u64,
}

async fn clock(State(sim): State<Sim>) -> Json<Value> {
    Json(json!({ "now": sim.now_unix() }))
}

async fn advance_clock(
    State(sim): State<Sim>,
    ControlJson(request): ControlJson<AdvanceRequest>,
) -> Result<Json<Value>, SimError> {
    if request.advance_secs > MAX_ADVANCE_SECS {
        return Err(SimError::InvalidInput(
            "advance_secs is at most ten years".into(),
        ));
    }
    sim.advance_clock(Duration::from_secs(request.advance_secs));
    Ok(Json(json!({ "now": sim.now_unix() })))
}
