//! The internal API for other teams as tests call it: a legacy service token or named clients
//! with scopes, and a merge that makes every event kind.

use crate::answers::Reply;
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

/// A provisional user on APP_A merged into the owner on APP_B: every event kind.
pub async fn merge_someone(app: &impl Api) -> (String, String) {
    let provisional = app.login(APP_A, "in-a", Some("in-union")).await;
    let owner = app.login(APP_B, "in-b", Some("in-union")).await;
    let info = app.wx_user_info(APP_A, "in-a");
    let body = unsigned_body(&info);
    let merged = app.user_info_ok(&provisional.token, &body).await;
    assert!(merged.merged);
    (provisional.user_id, owner.user_id)
}
