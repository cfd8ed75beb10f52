//! The OpenAPI 3 document of the whole HTTP API, generated from the handlers and the wire
//! types; served at `/openapi.json` and kept in `docs/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{http, internal, wire};

/// Every route with its method, in one list: the router test checks each exists, and the
/// document test checks the document has exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/v1/wechat/login"),
    ("post", "/v1/wechat/user-info"),
    ("post", "/v1/wechat/phone-number"),
    ("get", "/v1/me"),
    ("delete", "/v1/me"),
    ("post", "/v1/logout"),
    ("get", "/internal/v1/users/{user_id}"),
    ("get", "/internal/v1/users"),
    ("get", "/internal/v1/events"),
    ("post", "/internal/v1/users/{user_id}/revoke-sessions"),
    (
        "delete",
        "/internal/v1/users/{user_id}/identities/{appid}/{openid}",
    ),
    ("post", "/internal/v1/users/{into}/merge"),
    ("post", "/internal/v1/introspect"),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wxlink",
        description = "WeChat login that links every app's identity of one person to one user by UnionID. Errors are `{\"error\": {\"code\", \"message\", \"request_id\"}}`; see docs/contract.md.",
    ),
    paths(
        http::healthz,
        http::prometheus_metrics,
        serve,
        http::login,
        http::user_info,
        http::phone_number,
        http::me,
        http::cancel_account,
        http::logout,
        internal::user_by_id,
        internal::find_user,
        internal::events,
        internal::revoke_sessions,
        internal::unlink_identity,
        internal::merge,
        internal::introspect,
    ),
    components(schemas(
        wire::LoginRequest,
        wire::LoginResponse,
        wire::UserInfoRequest,
        wire::UserInfoResponse,
        wire::PhoneNumberRequest,
        wire::PhoneNumberResponse,
        wire::MeResponse,
        wire::Identity,
        wire::Health,
        wire::ErrorBody,
        wire::ErrorDetail,
        wire::InternalUser,
        wire::FeedEvent,
        wire::EventsPage,
        wire::RevokedSessions,
        wire::MergeRequest,
        wire::IntrospectRequest,
        wire::IntrospectResponse,
    )),
    modifiers(&Security),
    tags(
        (name = "users", description = "What a mini program (or web page, or app) calls"),
        (name = "internal", description = "Other teams' services, with a service token"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("bearer", bearer());
        components.add_security_scheme("service_token", bearer());
    }
}

/// The document as JSON text, stable from run to run (what `docs/openapi.json` holds).
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    // The version is the crate's, so the committed file changes with releases only.
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json()
        .unwrap_or_else(|e| unreachable!("the document serializes: {e}"))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
pub(crate) async fn serve() -> Json<serde_json::Value> {
    Json(serde_json::from_str(&document()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn committed_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
    }

    /// Like rust-analyzer's tidy checks: locally the file is rewritten and the test fails once
    /// so the change gets committed; under CI a stale file only fails.
    #[test]
    fn docs_openapi_json_is_the_generated_document() {
        let generated = document();
        let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
        if committed.trim_end() != generated.trim_end() {
            if std::env::var_os("CI").is_none() {
                std::fs::write(committed_path(), format!("{generated}\n")).unwrap();
            }
            panic!("docs/openapi.json was stale: regenerated it (locally); commit it");
        }
    }

    #[test]
    fn the_document_has_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
    }

    /// Every listed route is served: neither 404 nor 405 from the router itself.
    #[tokio::test]
    async fn every_documented_route_is_routed() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::config::Settings::load_with_env(
            None,
            Some(
                [
                    (
                        "WXLINK__DATABASE__URL".to_owned(),
                        format!("sqlite://{}/t.db", dir.path().display()),
                    ),
                    (
                        "WXLINK__APPS__WX4F4BC4DEC97D474B__SECRET".to_owned(),
                        "s".to_owned(),
                    ),
                    ("WXLINK__SERVER__BIND".to_owned(), "127.0.0.1:0".to_owned()),
                    (
                        "WXLINK__INTERNAL__TOKENS".to_owned(),
                        "svc-token".to_owned(),
                    ),
                ]
                .into(),
            ),
        )
        .unwrap();
        let app = crate::Application::build(settings, dir.path().join("k"))
            .await
            .unwrap();
        for (method, path) in ROUTES {
            let uri = path.replace("{user_id}", "u1");
            let request = axum::http::Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header("authorization", "Bearer svc-token")
                .body(axum::body::Body::empty())
                .unwrap();
            let response = app.router_for_tests().oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let error = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
            let unrouted =
                status == 405 || (status == 404 && error["error"]["message"] == "no such route");
            assert!(!unrouted, "{method} {path} is not routed: {status} {error}");
        }
    }
}
