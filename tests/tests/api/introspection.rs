//! Token introspection with a client nobody here wrote: authlib's
//! `OAuth2Session.introspect_token` (from PyPI, in the venv the benchmark and the wechatpy test
//! use) against a running wxlink, as a Python resource server would call it (issue 22 §1).
//! A real process is the point: authlib speaks HTTP to a listener.

use std::time::Duration;

use serde_json::json;
use wxlink_tests::internal_api::{client_token, with_clients};

use crate::helpers::{APP_B, Api, Backend, TestApp};

/// A generous bound for one run of the script (three calls on loopback).
const SCRIPT_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_introspects_tokens_with_http_basic_and_a_form() {
    let test = "api::introspection::authlib_introspects_tokens_with_http_basic_and_a_form";
    let Some(python) = tokio::task::spawn_blocking(move || wxlink_tests::venv::sdk_python(test))
        .await
        .expect("join")
    else {
        return;
    };
    let clients: &[(&str, &[&str])] = &[("resource-server", &["tokens:introspect"])];
    let app = TestApp::spawn(Backend::Sqlite, with_clients(clients)).await;
    let login = app.login(APP_B, "authlib-b", Some("authlib-union")).await;
    let gone = app
        .login(APP_B, "authlib-gone", Some("authlib-gone-union"))
        .await;
    app.logout(&gone.token).await;

    let url = format!("{}/internal/v1/introspect", app.address);
    let secret = client_token("resource-server");
    let env = [
        ("WXLINK_INTROSPECT", url.clone()),
        ("CLIENT_ID", "resource-server".to_owned()),
        ("CLIENT_SECRET", secret),
        ("ACTIVE_TOKEN", login.token.clone()),
        ("INACTIVE_TOKEN", gone.token.clone()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        wxlink_tests::venv::run_sdk_script(&python, "authlib_introspect.py", &env, SCRIPT_LIMIT)
    })
    .await
    .expect("join");

    let active = &out["active"];
    assert_eq!(active["sent_auth_scheme"], "Basic", "{out}");
    assert!(
        active["sent_content_type"]
            .as_str()
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded")),
        "{out}"
    );
    assert_eq!(active["status"], 200, "{out}");
    let body = &active["body"];
    assert_eq!(body["active"], true, "{out}");
    assert_eq!(body["sub"], login.user_id.as_str());
    assert_eq!(body["client_id"], APP_B);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iss"], "wxlink");
    assert_eq!(body["unionid_linked"], true);
    assert_eq!(out["inactive"]["status"], 200, "{out}");
    assert_eq!(out["inactive"]["body"], json!({"active": false}), "{out}");
    assert_eq!(out["wrong_secret"]["status"], 401, "{out}");
    assert_eq!(
        out["wrong_secret"]["body"]["error"]["code"],
        "invalid_token"
    );
}
