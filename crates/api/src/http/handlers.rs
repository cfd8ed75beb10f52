//! The public routes' handlers and the extractors that parse a request at the edge.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use wxlink_domain::{AppId, AppKind, EncryptedUserData, JsCode, SessionToken, UserInfoSubmission};

use super::error::{ApiError, ErrorCode};
use super::wire::{
    CancelRequest, ErrorBody, Health, Identity, LoginRequest, LoginResponse, MeResponse,
    PhoneNumberRequest, PhoneNumberResponse, UserInfoRequest, UserInfoResponse,
};
use crate::state::AppState;

/// A JSON request body; every failure is a contract error.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::payload_too_large()
        }
        other => ApiError::invalid_request(format!("cannot read the body: {other}")),
    })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid_request(format!("body is not the expected JSON: {e}")))
}

/// A request body that is `application/x-www-form-urlencoded` when its `Content-Type` says
/// so (what OAuth clients send, e.g. RFC 7662 §2.1), otherwise JSON like every other body.
pub(crate) struct FormOrJson<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for FormOrJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let form = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                mime.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        let bytes = read_body(req, state).await?;
        if !form {
            return parse_json(&bytes).map(FormOrJson);
        }
        serde_urlencoded::from_bytes(&bytes)
            .map(FormOrJson)
            .map_err(|e| ApiError::invalid_request(format!("body is not the expected form: {e}")))
    }
}

/// A JSON request body that may be left out: an empty body is `None`.
pub(crate) struct OptionalJsonBody<T>(pub(crate) Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(None));
        }
        parse_json(&bytes).map(|body| OptionalJsonBody(Some(body)))
    }
}

/// The `Authorization` header's scheme and credentials (trimmed), if it has both: the one
/// reading of the header for users' bearer tokens and for the internal API's clients.
pub(crate) fn authorization(headers: &axum::http::HeaderMap) -> Option<(&str, &str)> {
    let (scheme, credentials) = headers.get(AUTHORIZATION)?.to_str().ok()?.split_once(' ')?;
    Some((scheme, credentials.trim()))
}

/// The bearer token of `Authorization: Bearer …`.
pub(crate) struct Bearer(SessionToken);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Err(ApiError::invalid_token(
                "missing Authorization: Bearer token",
            ));
        }
        let token = authorization(&parts.headers)
            .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then_some(token))
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
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownApp, "appid is not configured"))
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
        refresh_token: out.refresh_token.map(|t| t.expose_secret().to_owned()),
        user_id: out.user_id.to_string(),
        unionid_linked: out.unionid_linked,
        // Only a mini program can send encrypted user data; an OAuth login without unionid
        // needs a new authorisation with a scope that reads it.
        needs_user_info: !out.unionid_linked && kind.has_session_key(),
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
        let iv = <[u8; 16]>::try_from(iv)
            .map_err(|_| ApiError::invalid_request("iv must decode to 16 bytes"))?;
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
                ciphertext: data,
                iv,
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
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody),
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
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody),
        (status = 504, description = "`upstream_timeout`", body = ErrorBody)))]
pub(crate) async fn phone_number(
    State(state): State<Arc<AppState>>,
    Bearer(token): Bearer,
    JsonBody(req): JsonBody<PhoneNumberRequest>,
) -> Result<Json<PhoneNumberResponse>, ApiError> {
    let code = parse_code(req.code)?;
    let phone = state.service.attach_phone_number(&token, code).await?;
    Ok(Json(PhoneNumberResponse::from(phone)))
}

/// The user behind the token, with the identities of its apps.
#[utoipa::path(get, path = "/v1/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, body = MeResponse),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody)))]
pub(crate) async fn me(
    State(state): State<Arc<AppState>>,
    Bearer(token): Bearer,
) -> Result<Json<MeResponse>, ApiError> {
    let me = state.service.current_user(&token).await?;
    Ok(Json(MeResponse {
        user_id: me.user_id.to_string(),
        unionid_linked: me.unionid_linked,
        identities: me.identities.iter().map(Identity::from).collect(),
    }))
}

/// Cancel the account (账号注销): every session revoked, every identity released, unionid and
/// phone number erased, stored session_keys deleted. The same WeChat user's next login is a new
/// user. The token alone is not enough: the body carries a fresh code of the WeChat user the
/// token logged in as, and nothing changes unless WeChat says it is that user's.
#[utoipa::path(delete, path = "/v1/me", tag = "users", security(("bearer" = [])),
    request_body(content = CancelRequest, description = "A fresh code of the login's WeChat user; without it the answer is 400 `reauthentication_required`"),
    responses(
        (status = 204, description = "The account is gone; every token of it stops working"),
        (status = 400, description = "`invalid_request`, `reauthentication_required`, `unknown_app`", body = ErrorBody),
        (status = 401, description = "`invalid_token`, `invalid_code`", body = ErrorBody),
        (status = 403, description = "`identity_mismatch`, `user_blocked`, `snapshot_user`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, `upstream_rate_limited`", body = ErrorBody),
        (status = 502, description = "`upstream_error`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody),
        (status = 504, description = "`upstream_timeout`", body = ErrorBody)))]
pub(crate) async fn cancel_account(
    State(state): State<Arc<AppState>>,
    Bearer(token): Bearer,
    OptionalJsonBody(req): OptionalJsonBody<CancelRequest>,
) -> Result<Response, ApiError> {
    let code = req.and_then(|r| r.code).map(parse_code).transpose()?;
    let presence = state.service.prove_presence(&token, code).await?;
    let cancelled = state.accounts.cancel(presence).await?;
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
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody)))]
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
