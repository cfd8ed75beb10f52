//! `[tokens] format = "jwt"`: the refresh of access tokens, and what other services need to
//! verify them offline (RFC 7517 JWK Set, OpenID Connect Discovery). With opaque tokens these
//! routes answer 404 `not_found` and are left out of `/openapi.json`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use wxlink_domain::SessionToken;

use super::error::ApiError;
use super::handlers::JsonBody;
use super::wire::{ErrorBody, Jwks, OpenIdConfiguration, RefreshRequest, RefreshResponse};
use crate::state::AppState;
use crate::tokens::JwtTokens;

/// The paths that exist only with signed tokens.
pub(crate) const PATHS: &[&str] = &[
    "/v1/token/refresh",
    "/.well-known/jwks.json",
    "/.well-known/openid-configuration",
];
/// Their schemas.
pub(crate) const SCHEMAS: &[&str] = &[
    "RefreshRequest",
    "RefreshResponse",
    "Jwks",
    "Jwk",
    "OpenIdConfiguration",
];

/// The routes of signed tokens; none with opaque tokens (they answer 404 `not_found`).
pub(crate) fn router<L>(state: &AppState, per_ip: L) -> axum::Router<Arc<AppState>>
where
    L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<axum::extract::Request, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Response:
        axum::response::IntoResponse + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
{
    use axum::routing::{get, post};
    if state.tokens.is_none() {
        return axum::Router::new();
    }
    axum::Router::new()
        .route("/v1/token/refresh", post(refresh).route_layer(per_ip))
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
}

/// The signed tokens' keys and issuer; 404 `not_found` when the server issues opaque tokens.
fn jwt_tokens(state: &AppState) -> Result<&Arc<JwtTokens>, ApiError> {
    state.tokens.as_ref().ok_or_else(ApiError::not_found)
}

/// Exchange a refresh token for a new access token and a new refresh token. The presented one
/// stops working; presenting one that was already used revokes its whole session.
#[utoipa::path(post, path = "/v1/token/refresh", tag = "users", request_body = RefreshRequest,
    responses(
        (status = 200, body = RefreshResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 404, description = "`not_found`: the server issues opaque tokens", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody)))]
pub(crate) async fn refresh(
    State(state): State<Arc<AppState>>,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> Result<Json<RefreshResponse>, ApiError> {
    jwt_tokens(&state)?;
    let presented = SessionToken::parse(&req.refresh_token)
        .map_err(|_| ApiError::invalid_token("refresh_token is not a refresh token"))?;
    let out = state.service.refresh(&presented).await?;
    Ok(Json(RefreshResponse {
        token: out.token.expose_secret().to_owned(),
        token_type: "Bearer",
        expires_in: out.expires_in,
        refresh_token: out.refresh_token.expose_secret().to_owned(),
        user_id: out.user_id.to_string(),
        unionid_linked: out.unionid_linked,
    }))
}

/// The public keys that verify access tokens: the current key, its successor before it signs,
/// and retired keys until their last token expires.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations",
    responses(
        (status = 200, body = Jwks, content_type = "application/json"),
        (status = 404, description = "`not_found`: the server issues opaque tokens", body = ErrorBody)))]
pub(crate) async fn jwks(State(state): State<Arc<AppState>>) -> Result<Json<Jwks>, ApiError> {
    let tokens = jwt_tokens(&state)?;
    Ok(Json(Jwks {
        keys: tokens.published_keys(state.clock.now()),
    }))
}

/// Where the keys and introspection are (OpenID Connect Discovery 1.0 §3, the parts a
/// resource server reads).
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "operations",
    responses(
        (status = 200, body = OpenIdConfiguration),
        (status = 404, description = "`not_found`: the server issues opaque tokens", body = ErrorBody)))]
pub(crate) async fn openid_configuration(
    State(state): State<Arc<AppState>>,
) -> Result<Json<OpenIdConfiguration>, ApiError> {
    let tokens = jwt_tokens(&state)?;
    let base = tokens.issuer().trim_end_matches('/');
    Ok(Json(OpenIdConfiguration {
        issuer: tokens.issuer().to_owned(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        introspection_endpoint: format!("{base}/internal/v1/introspect"),
        token_signing_alg_values_supported: vec!["ES256"],
    }))
}
