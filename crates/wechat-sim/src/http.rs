//! The HTTP face of a [`Sim`]: WeChat's endpoints (in `wechat`) and the `/__sim/` control API.

mod wechat;

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{
    AccessTokenStatus, AppRegistration, CGI_USER_INFO_PATH, CHECK_SESSION_PATH, CODE2SESSION_PATH,
    CallCounts, FaultRule, GET_ACCESS_TOKEN_PATH, Login, OAUTH_ACCESS_TOKEN_PATH, OAuthCode,
    OAuthScope, PHONE_NUMBER_PATH, PhoneCode, SNS_USERINFO_PATH, STABLE_TOKEN_PATH, SimError,
    UserInfo, UserInfoRequest,
};
use crate::sim::Sim;

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
            .route(CODE2SESSION_PATH, get(wechat::jscode2session))
            .route(OAUTH_ACCESS_TOKEN_PATH, get(wechat::oauth_access_token))
            .route(SNS_USERINFO_PATH, get(wechat::sns_userinfo))
            .route(
                STABLE_TOKEN_PATH,
                post(wechat::stable_token).get(wechat::require_post),
            )
            .route(GET_ACCESS_TOKEN_PATH, get(wechat::classic_token))
            .route(CGI_USER_INFO_PATH, get(wechat::follower_info))
            .route(
                PHONE_NUMBER_PATH,
                post(wechat::phone_number).get(wechat::require_post),
            )
            .route(CHECK_SESSION_PATH, get(wechat::check_session))
            .route("/__sim/apps", post(register_app))
            .route("/__sim/login", post(login))
            .route("/__sim/oauth-authorize", post(oauth_authorize))
            .route("/__sim/oauth-snapshot-visit", post(oauth_snapshot_visit))
            .route("/__sim/phone-code", post(phone_code))
            .route("/__sim/access-token", get(access_token_status))
            .route("/__sim/access-token/expire", post(expire_access_token))
            .route("/__sim/access-token/revoke", post(revoke_access_token))
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
            Self::NoSession { .. } | Self::WrongAppKind { .. } => StatusCode::CONFLICT,
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
    sim.register_app_with(app.clone())?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "appid": app.appid,
            "unionid_policy": app.unionid_policy,
            "kind": app.kind,
            "unionid_in_exchange": app.unionid_in_exchange,
        })),
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

#[derive(Deserialize)]
struct OAuthAuthorizeRequest {
    appid: String,
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
    scope: OAuthScope,
}

async fn oauth_authorize(
    State(sim): State<Sim>,
    ControlJson(request): ControlJson<OAuthAuthorizeRequest>,
) -> Result<Json<OAuthCode>, SimError> {
    Ok(Json(sim.oauth_authorize(
        &request.appid,
        request.openid.as_deref(),
        request.unionid.as_deref(),
        request.scope,
    )?))
}

#[derive(Deserialize)]
struct SnapshotVisitRequest {
    appid: String,
}

async fn oauth_snapshot_visit(
    State(sim): State<Sim>,
    ControlJson(request): ControlJson<SnapshotVisitRequest>,
) -> Result<Json<OAuthCode>, SimError> {
    Ok(Json(sim.oauth_snapshot_visit(&request.appid)?))
}

/// A country code may be sent as `"86"` or `86`.
#[derive(Deserialize)]
#[serde(untagged)]
enum CountryCode {
    Text(String),
    Number(u64),
}

#[derive(Deserialize)]
struct PhoneCodeRequest {
    appid: String,
    openid: String,
    phone_number: String,
    #[serde(default)]
    country_code: Option<CountryCode>,
}

async fn phone_code(
    State(sim): State<Sim>,
    ControlJson(request): ControlJson<PhoneCodeRequest>,
) -> Result<Json<PhoneCode>, SimError> {
    let country_code = request.country_code.map(|code| match code {
        CountryCode::Text(text) => text,
        CountryCode::Number(number) => number.to_string(),
    });
    Ok(Json(sim.phone_code(
        &request.appid,
        &request.openid,
        &request.phone_number,
        country_code.as_deref(),
    )?))
}

#[derive(Deserialize)]
struct AppidRequest {
    appid: String,
}

async fn access_token_status(
    State(sim): State<Sim>,
    query: Result<Query<AppidRequest>, QueryRejection>,
) -> Result<Json<AccessTokenStatus>, SimError> {
    let Ok(Query(request)) = query else {
        return Err(SimError::InvalidInput("the query needs an appid".into()));
    };
    Ok(Json(sim.access_token_status(&request.appid)?))
}

async fn expire_access_token(
    State(sim): State<Sim>,
    ControlJson(request): ControlJson<AppidRequest>,
) -> Result<Json<Value>, SimError> {
    sim.expire_access_token(&request.appid)?;
    Ok(ok())
}

async fn revoke_access_token(
    State(sim): State<Sim>,
    ControlJson(request): ControlJson<AppidRequest>,
) -> Result<Json<Value>, SimError> {
    sim.revoke_access_token(&request.appid)?;
    Ok(ok())
}

#[derive(Deserialize, Serialize)]
struct FollowRequest {
    appid: String,
    openid: String,
    #[serde(default = "yes")]
    following: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unionid: Option<String>,
}

fn yes() -> bool {
    true
}

async fn follow(
    State(sim): State<Sim>,
    ControlJson(request): ControlJson<FollowRequest>,
) -> Result<Json<FollowRequest>, SimError> {
    sim.with_state(|s| {
        s.set_following(
            &request.appid,
            &request.openid,
            request.following,
            request.unionid.as_deref(),
        )
    })?;
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
