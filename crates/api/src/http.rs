//! The HTTP API: routes, request parsing at the edge, and the contract's JSON shapes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use wxlink_domain::{AppId, EncryptedUserData, JsCode, SessionToken, UserInfoSubmission};

use crate::config::AppKind;
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::{
    ErrorBody, Health, Identity, LoginRequest, LoginResponse, MeResponse, PhoneNumberRequest,
    PhoneNumberResponse, UserInfoRequest, UserInfoResponse,
};

/// Every route of the public API.
pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.max_body_bytes;
    // On the method handlers only, so a wrong method is a 405 and costs no quota.
    let per_ip = axum::middleware::from_fn_with_state(Arc::clone(&state), limit_per_ip);
    Router::new()
        .route("/v1/wechat/login", post(login).route_layer(per_ip.clone()))
        .route(
            "/v1/wechat/user-info",
            post(user_info).route_layer(per_ip.clone()),
        )
        .route(
            "/v1/wechat/phone-number",
            post(phone_number).route_layer(per_ip),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus_metrics))
        .route("/openapi.json", get(crate::openapi::serve))
        .route("/v1/me", get(me).delete(cancel_account))
        .route("/v1/logout", post(logout))
        .merge(crate::internal::router(Arc::clone(&state)))
        .fallback(|| async { ApiError::not_found() })
        .layer(axum::middleware::from_fn(crate::metrics::track_requests))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.request_timeout,
        ))
        // Outside the limit layer, so its 413 gets the contract's shape too.
        .layer(axum::middleware::from_fn(error_envelope))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                ),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
        // Outermost: a client's id that is not a plain short token is replaced before it can
        // reach a log line, an error body or a response header.
        .layer(axum::middleware::from_fn(drop_unfit_request_id))
        .with_state(state)
}

/// The span of one request: every log line inside carries its request id. The query string is
/// left out (it is not part of the API, and could carry anything).
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
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

/// Removes a client's `x-request-id` unless it is fit, so that one is generated instead.
async fn drop_unfit_request_id(mut request: Request, next: axum::middleware::Next) -> Response {
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

/// Every error answer in the contract's shape, with the request id: the responses axum and
/// tower-http make themselves (404, 405, 413, …) get it too, keeping their headers (`Allow`).
async fn error_envelope(request: Request, next: axum::middleware::Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Our own error bodies are small; anything else is replaced.
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let mut envelope = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .filter(|v| v.get("error").is_some_and(serde_json::Value::is_object))
        .unwrap_or_else(|| {
            let error = match status {
                StatusCode::NOT_FOUND => ApiError::not_found(),
                StatusCode::METHOD_NOT_ALLOWED => ApiError::method_not_allowed(),
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(),
                StatusCode::REQUEST_TIMEOUT => ApiError::new(
                    status,
                    "request_timeout",
                    "the request took longer than the server allows",
                ),
                s if s.is_client_error() => ApiError::invalid_request("request refused"),
                _ => ApiError::internal(),
            };
            error.body()
        });
    if let (Some(id), Some(error)) = (
        request_id,
        envelope.get_mut("error").and_then(|e| e.as_object_mut()),
    ) {
        error.insert("request_id".into(), id.into());
    }
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, axum::body::Body::from(envelope.to_string()))
}

/// Counts the request against its client IP's rate limit.
async fn limit_per_ip(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    if let Some(peer) = peer {
        state
            .limits
            .check_ip(state.limits.client(peer, request.headers()))
            .await?;
    }
    Ok(next.run(request).await)
}

/// A JSON request body; every failure is a contract error.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(_)
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::payload_too_large()
            }
            other => ApiError::invalid_request(format!("cannot read the body: {other}")),
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid_request(format!("body is not the expected JSON: {e}")))
    }
}

/// The bearer token of `Authorization: Bearer …`.
pub(crate) struct Bearer(SessionToken);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::invalid_token("missing Authorization: Bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| ApiError::invalid_token("Authorization must be `Bearer <token>`"))?;
        SessionToken::parse(token)
            .map(Bearer)
            .map_err(|e| ApiError::invalid_token(e.to_string()))
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(crate) async fn prometheus_metrics(State(state): State<Arc<AppState>>) -> Response {
    let (connections, idle, max) = state.store.pool_state();
    crate::metrics::pool(connections, idle, max);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::handle().render(),
    )
        .into_response()
}

/// Whether the service and its database answer.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses(
    (status = 200, body = Health),
    (status = 503, description = "`database_unavailable`", body = ErrorBody)))]
pub(crate) async fn healthz(State(state): State<Arc<AppState>>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await.map_err(ApiError::from)?;
    Ok(Json(Health { status: "ok" }))
}

fn configured_app(
    apps: &HashMap<AppId, AppKind>,
    appid: String,
) -> Result<(AppId, AppKind), ApiError> {
    AppId::parse(appid)
        .ok()
        .and_then(|a| apps.get(&a).map(|kind| (a, *kind)))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_app",
                "appid is not configured",
            )
        })
}

fn parse_code(code: String) -> Result<JsCode, ApiError> {
    JsCode::parse(code).map_err(|e| ApiError::invalid_request(e.to_string()))
}

/// Log a user in with the code of any app kind; every user gets a token at once.
#[utoipa::path(post, path = "/v1/wechat/login", tag = "users", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, description = "`invalid_request`, `unknown_app`", body = ErrorBody),
        (status = 401, description = "`invalid_code`", body = ErrorBody),
        (status = 403, description = "`user_blocked`, `snapshot_user`", body = ErrorBody),
        (status = 409, description = "`unionid_conflict`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, `upstream_rate_limited`", body = ErrorBody),
        (status = 502, description = "`upstream_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody),
        (status = 504, description = "`upstream_timeout`", body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let (appid, kind) = configured_app(&state.apps, req.appid)?;
    let code = parse_code(req.code)?;
    let out = state.service.login(appid, code).await;
    crate::metrics::login(out.as_ref().map_or("refused", |o| o.outcome.as_str()));
    let out = out?;
    Ok(Json(LoginResponse {
        token: out.token.expose_secret().to_owned(),
        token_type: "Bearer",
        expires_in: out.expires_in,
        user_id: out.user_id.to_string(),
        unionid_linked: out.unionid_linked,
        // Only a mini program can send encrypted user data; an OAuth login without unionid
        // needs a new authorisation with a scope that reads it.
        needs_user_info: !out.unionid_linked && kind == AppKind::MiniProgram,
    }))
}

impl UserInfoRequest {
    /// Check every field before any I/O: base64 that decodes, a 16-byte iv, a signature only
    /// together with its raw data.
    fn into_submission(self) -> Result<UserInfoSubmission, ApiError> {
        let bad = |field: &str, e: wxlink_crypto::Base64Error| {
            ApiError::invalid_request(format!("{field} is not base64: {e}"))
        };
        let data = wxlink_crypto::decode_base64(&self.encrypted_data)
            .map_err(|e| bad("encrypted_data", e))?;
        if data.is_empty() {
            return Err(ApiError::invalid_request("encrypted_data is empty"));
        }
        let iv = wxlink_crypto::decode_base64(&self.iv).map_err(|e| bad("iv", e))?;
        if iv.len() != 16 {
            return Err(ApiError::invalid_request("iv must decode to 16 bytes"));
        }
        let signed_raw_data = match (self.raw_data, self.signature) {
            (Some(raw), Some(sig)) => Some((raw, sig)),
            (None, None) => None,
            _ => {
                return Err(ApiError::invalid_request(
                    "raw_data and signature go together",
                ));
            }
        };
        Ok(UserInfoSubmission {
            data: EncryptedUserData {
                encrypted_data: self.encrypted_data,
                iv: self.iv,
                signed_raw_data,
            },
            code: self.code.map(parse_code).transpose()?,
        })
    }
}

/// Learn the unionid from `wx.getUserInfo`'s encrypted data; link or merge.
#[utoipa::path(post, path = "/v1/wechat/user-info", tag = "users", request_body = UserInfoRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserInfoResponse),
        (status = 400, description = "`invalid_request`, `unsupported_app_kind`", body = ErrorBody),
        (status = 401, description = "`invalid_token`, `invalid_code`", body = ErrorBody),
        (status = 403, description = "`identity_mismatch`, `user_blocked`", body = ErrorBody),
        (status = 409, description = "`unionid_conflict`", body = ErrorBody),
        (status = 422, description = "`decrypt_failed`, `session_key_expired`, `signature_mismatch`, `watermark_mismatch`, `watermark_expired`, `watermark_in_future`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, `too_many_attempts`, `upstream_rate_limited`", body = ErrorBody),
        (status = 502, description = "`upstream_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
        (status = 504, description = "`upstream_timeout`", body = ErrorBody)))]
pub(crate) async fn user_info(
    State(state): State<Arc<AppState>>,
    Bearer(token): Bearer,
    JsonBody(req): JsonBody<UserInfoRequest>,
) -> Result<Json<UserInfoResponse>, ApiError> {
    let submission = req.into_submission()?;
    let out = state.service.submit_user_info(&token, submission).await?;
    Ok(Json(UserInfoResponse {
        user_id: out.user_id.to_string(),
        unionid_linked: out.unionid_linked,
        merged: out.merged,
    }))
}

/// Exchange a `getPhoneNumber` code and keep the number on the user.
#[utoipa::path(post, path = "/v1/wechat/phone-number", tag = "users",
    request_body = PhoneNumberRequest, security(("bearer" = [])),
    responses(
        (status = 200, body = PhoneNumberResponse),
        (status = 400, description = "`invalid_request`, `unsupported_app_kind`", body = ErrorBody),
        (status = 401, description = "`invalid_token`, `invalid_code`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, `upstream_rate_limited`", body = ErrorBody),
        (status = 502, description = "`upstream_error`", body = ErrorBody),
        (status = 504, description = "`upstream_timeout`", body = ErrorBody)))]
pub(crate) async fn phone_number(
    State(state): State<Arc<AppState>>,
    Bearer(token): Bearer,
    JsonBody(req): JsonBody<PhoneNumberRequest>,
) -> Result<Json<PhoneNumberResponse>, ApiError> {
    let code = parse_code(req.code)?;
    let phone = state.service.attach_phone_number(&token, code).await?;
    Ok(Json(PhoneNumberResponse {
        phone_number: phone.phone_number,
        pure_phone_number: phone.pure_phone_number,
        country_code: phone.country_code,
    }))
}

/// The user behind the token, with the identities of its apps.
#[utoipa::path(get, path = "/v1/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, body = MeResponse),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody)))]
pub(crate) async fn me(
    State(state): State<Arc<AppState>>,
    Bearer(token): Bearer,
) -> Result<Json<MeResponse>, ApiError> {
    let me = state.service.current_user(&token).await?;
    Ok(Json(MeResponse {
        user_id: me.user_id.to_string(),
        unionid_linked: me.unionid_linked,
        identities: me
            .identities
            .iter()
            .map(|(appid, openid)| Identity {
                appid: appid.to_string(),
                openid: openid.to_string(),
            })
            .collect(),
    }))
}

/// Cancel the account (账号注销): every session revoked, every identity released, unionid and
/// phone number erased, stored session_keys deleted. The same WeChat user's next login is a new
/// user.
#[utoipa::path(delete, path = "/v1/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 204, description = "The account is gone; every token of it stops working"),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody)))]
pub(crate) async fn cancel_account(
    State(state): State<Arc<AppState>>,
    Bearer(token): Bearer,
) -> Result<Response, ApiError> {
    let cancelled = state.accounts.cancel(&token).await?;
    tracing::info!(
        sessions = cancelled.sessions,
        identities = cancelled.identities,
        "account cancelled"
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Revoke the token.
#[utoipa::path(post, path = "/v1/logout", tag = "users", security(("bearer" = [])),
    responses(
        (status = 204, description = "The token stops working"),
        (status = 401, description = "`invalid_token`", body = ErrorBody)))]
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    Bearer(token): Bearer,
) -> Result<Response, ApiError> {
    state.service.logout(&token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod fuzz {
    //! Request parsing never panics: arbitrary bytes, and JSON objects with arbitrary field
    //! values, go through the same parsing and validation as real requests.
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::{LoginRequest, UserInfoRequest, configured_app, parse_code};

    fn bodies() -> impl Strategy<Value = Vec<u8>> {
        let field = prop_oneof![
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,64}".prop_map(serde_json::Value::from),
            "[A-Za-z0-9+/ =]{0,64}".prop_map(serde_json::Value::from),
        ];
        let object = proptest::collection::btree_map(
            prop_oneof![
                Just("appid".to_string()),
                Just("code".to_string()),
                Just("encrypted_data".to_string()),
                Just("iv".to_string()),
                Just("raw_data".to_string()),
                Just("signature".to_string()),
                ".{0,8}",
            ],
            field,
            0..7,
        )
        .prop_map(|m| serde_json::to_vec(&m).unwrap_or_default());
        prop_oneof![proptest::collection::vec(any::<u8>(), 0..256), object]
    }

    pub(crate) fn fuzz(cases: u32) -> u64 {
        let apps = std::collections::HashMap::new();
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let executed = std::sync::atomic::AtomicU64::new(0);
        runner
            .run(&bodies(), |body| {
                executed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Ok(login) = serde_json::from_slice::<LoginRequest>(&body) {
                    let _ = configured_app(&apps, login.appid);
                    let _ = parse_code(login.code);
                }
                if let Ok(info) = serde_json::from_slice::<UserInfoRequest>(&body) {
                    let _ = info.into_submission();
                }
                Ok(())
            })
            .unwrap_or_else(|failure| panic!("fuzzing found a failure: {failure}"));
        executed.into_inner()
    }

    #[test]
    fn request_parsing_survives_a_small_fuzz_run() {
        assert!(fuzz(2_000) >= 2_000);
    }

    #[test]
    #[ignore = "long: run through `cargo xtask fuzz --cases N`"]
    fn fuzz_request_parsing() {
        let cases: u32 = std::env::var("WXLINK_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let started = std::time::Instant::now();
        let executed = fuzz(cases);
        println!(
            "fuzz request parsing: {executed} executions, 0 panics, {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}
