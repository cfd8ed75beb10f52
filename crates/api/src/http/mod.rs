//! The HTTP API: routes, request parsing at the edge, and the contract's JSON shapes.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::state::AppState;
use error::ApiError;
use handlers::{
    cancel_account, healthz, login, logout, me, phone_number, prometheus_metrics, user_info,
};
use middleware::{drop_unfit_request_id, error_envelope, limit_per_ip, request_span};

pub(crate) mod clients;
pub(crate) mod error;
pub(crate) mod handlers;
pub(crate) mod internal;
pub(crate) mod middleware;
pub(crate) mod openapi;
pub(crate) mod tokens;
pub(crate) mod wire;

/// Every route of the public API.
pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.max_body_bytes;
    // On the method handlers only, so a wrong method is a 405 and costs no quota.
    let per_ip = axum::middleware::from_fn_with_state(Arc::clone(&state), limit_per_ip);
    let routes = Router::new()
        .route("/v1/wechat/login", post(login).route_layer(per_ip.clone()))
        .route(
            "/v1/wechat/user-info",
            post(user_info).route_layer(per_ip.clone()),
        )
        .route(
            "/v1/wechat/phone-number",
            post(phone_number).route_layer(per_ip.clone()),
        )
        // Every route that authenticates a bearer token or writes is limited too: a client
        // must not try tokens, or cancel and log out, at the database's pace.
        .route(
            "/v1/me",
            get(me).delete(cancel_account).route_layer(per_ip.clone()),
        )
        .route("/v1/logout", post(logout).route_layer(per_ip.clone()))
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(crate::http::openapi::openapi_document))
        .merge(tokens::router(&state, per_ip))
        .merge(crate::http::internal::router(Arc::clone(&state)));
    // With `[metrics] bind`, only the metrics listener serves them (`metrics_router`).
    let routes = if state.metrics_apart {
        routes
    } else {
        routes.route("/metrics", get(prometheus_metrics))
    };
    routes
        .fallback(|| async { ApiError::not_found() })
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.request_timeout,
        ))
        // Outside the limit layer, so its 413 gets the contract's shape too.
        .layer(axum::middleware::from_fn(error_envelope))
        // Outside the envelope, so it counts the status the client gets.
        .layer(axum::middleware::from_fn(crate::metrics::track_requests))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                ),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            middleware::MakeRequestId,
        ))
        // Outermost: a client's id that is not a plain short token is replaced before it can
        // reach a log line, an error body or a response header.
        .layer(axum::middleware::from_fn(drop_unfit_request_id))
        .with_state(state)
}

/// The metrics listener's routes (`[metrics] bind`): `GET /metrics` and nothing else, every
/// other answer in the contract's error shape.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(prometheus_metrics))
        .fallback(|| async { ApiError::not_found() })
        .layer(axum::middleware::from_fn(error_envelope))
        .with_state(state)
}
