//! `/openapi.json`: the served document is the committed `docs/openapi.json`, with the
//! configured appids, and lists only the routes this configuration mounts.

use crate::helpers::{Api, Backend, Options, TestApp};

on_both_backends!(the_served_openapi_document_is_the_committed_one);

async fn the_served_openapi_document_is_the_committed_one(backend: Backend) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openapi.json exists"))
            .expect("docs/openapi.json is JSON");

    // With service tokens and signed access tokens every route is mounted: the served
    // document is the committed one.
    let token = "svc-token-for-the-docs-0123456789";
    let options = Options::default()
        .extra_toml(&format!("[internal]\ntokens = [\"{token}\"]\n"))
        .signed_tokens("");
    let app = TestApp::spawn(backend.clone(), options).await;
    let mut served = app.get("/openapi.json", None).await.ok_json(200, "openapi");
    // The configured appids are the login's `enum`; the rest is the committed document.
    let appid = served
        .pointer_mut("/components/schemas/LoginRequest/properties/appid")
        .and_then(|v| v.as_object_mut())
        .expect("the login's appid is documented");
    let mut configured: Vec<&str> = app.secrets.keys().map(String::as_str).collect();
    configured.sort_unstable();
    assert_eq!(appid.remove("enum"), Some(serde_json::json!(configured)));
    assert_eq!(served, committed);

    // Without them the internal routes and the signed tokens' routes answer 404, and the
    // document does not list them.
    let app = TestApp::spawn(backend, Options::default()).await;
    let served = app.get("/openapi.json", None).await.ok_json(200, "openapi");
    assert_eq!(served["openapi"], "3.1.0");
    let listed = |doc: &serde_json::Value| -> Vec<String> {
        doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .cloned()
            .collect()
    };
    let public: Vec<String> = listed(&committed)
        .into_iter()
        .filter(|p| !p.starts_with("/internal/"))
        .filter(|p| !p.starts_with("/.well-known/") && p != "/v1/token/refresh")
        .collect();
    assert_eq!(listed(&served), public);
    let reply = app.get("/internal/v1/events", Some(token)).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    for path in [
        "/v1/wechat/login",
        "/v1/wechat/user-info",
        "/v1/me",
        "/v1/logout",
    ] {
        assert!(served["paths"][path].is_object(), "{path} is documented");
    }
}
