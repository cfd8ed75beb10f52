//! The internal API for other teams as tests call it: a legacy service token or named clients
//! with scopes, and a merge that makes every event kind.

use http::Method;
use serde_json::{Value, json};

use crate::answers::{LoginResponse, Reply};
use crate::client::Api;
use crate::options::{APP_A, APP_B, Options};
use crate::user_data::unsigned_body;

/// The service token [`with_tokens`] configures.
pub const SERVICE_TOKEN: &str = "svc-token-for-the-crm-team-0123456789";

/// The default options with [`SERVICE_TOKEN`] allowed on the internal API.
pub fn with_tokens() -> Options {
    Options::default().extra_toml(&format!("[internal]\ntokens = [\"{SERVICE_TOKEN}\"]\n"))
}

/// The token of the test client named `name`: long enough, and with the characters that HTTP
/// Basic must form-urlencode.
pub fn client_token(name: &str) -> String {
    format!("{name}-token+/=%:&-0123456789")
}

/// `[internal.clients.<name>]` tables: each client with [`client_token`] and its scopes.
pub fn clients_toml(clients: &[(&str, &[&str])]) -> String {
    clients
        .iter()
        .map(|(name, scopes)| {
            let scopes: Vec<String> = scopes.iter().map(|s| format!("{s:?}")).collect();
            format!(
                "[internal.clients.{name}]\ntoken = {:?}\nscopes = [{}]\n",
                client_token(name),
                scopes.join(", ")
            )
        })
        .collect()
}

/// The default options with these named clients (see [`clients_toml`]).
pub fn with_clients(clients: &[(&str, &[&str])]) -> Options {
    Options::default().extra_toml(&clients_toml(clients))
}

/// `GET path` with [`SERVICE_TOKEN`].
pub async fn internal(app: &impl Api, path: &str) -> Reply {
    app.get(path, Some(SERVICE_TOKEN)).await
}

/// `POST path` with [`SERVICE_TOKEN`] and a JSON body.
pub async fn internal_post(app: &impl Api, path: &str, body: &Value) -> Reply {
    app.post_json(path, Some(SERVICE_TOKEN), body).await
}

/// `DELETE path` with [`SERVICE_TOKEN`].
pub async fn internal_delete(app: &impl Api, path: &str) -> Reply {
    app.call(Method::DELETE, path, Some(SERVICE_TOKEN), None, None)
        .await
}

/// `POST /internal/v1/introspect` of `token`, which must answer 200.
pub async fn introspect(app: &impl Api, token: &str) -> Value {
    internal_post(app, "/internal/v1/introspect", &json!({ "token": token }))
        .await
        .ok_json(200, "introspect")
}

/// Every event of the feed (the tests make far fewer than a page).
pub async fn events(app: &impl Api) -> Vec<Value> {
    let page = internal(app, "/internal/v1/events?limit=1000")
        .await
        .ok_json(200, "the event feed");
    page["events"].as_array().expect("an events array").clone()
}

/// A provisional user on APP_A (`{person}-a`) merged by its unionid (`{person}-union`) into the
/// owner on APP_B (`{person}-b`): every event kind. Returns (provisional, owner).
pub async fn merged_person(app: &impl Api, person: &str) -> (LoginResponse, LoginResponse) {
    let union = format!("{person}-union");
    let provisional = app.login(APP_A, &format!("{person}-a"), Some(&union)).await;
    let owner = app.login(APP_B, &format!("{person}-b"), Some(&union)).await;
    let info = app.wx_user_info(APP_A, &format!("{person}-a"));
    let merged = app
        .user_info_ok(&provisional.token, &unsigned_body(&info))
        .await;
    assert!(merged.merged, "the provisional user merges into the owner");
    (provisional, owner)
}

/// [`merged_person`] `in`: the user ids (provisional, owner).
pub async fn merge_someone(app: &impl Api) -> (String, String) {
    let (provisional, owner) = merged_person(app, "in").await;
    (provisional.user_id, owner.user_id)
}
