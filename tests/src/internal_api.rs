//! The internal API for other teams as tests call it: a service token, and a merge that makes
//! every event kind.

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
