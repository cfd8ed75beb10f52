//! What every request handler shares.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wxlink_domain::{Accounts, AppId, AppKind, Clock, Service};
use wxlink_persistence::Store;

use crate::adapters::CryptoOpener;
use crate::http::clients::Clients;
use crate::limits::RateLimits;
use crate::wechat::WeChatAdapter;

/// The use cases wired to their production adapters.
pub type WxlinkService = Service<Store, WeChatAdapter, CryptoOpener>;

/// The account life-cycle use cases (no WeChat needed): the HTTP API and the command line share
/// them.
pub type WxlinkAccounts = Accounts<Store>;

/// Shared state of the HTTP layer.
#[derive(Debug)]
pub struct AppState {
    /// The use cases.
    pub service: WxlinkService,
    /// Cancellation, support's repairs, introspection.
    pub accounts: WxlinkAccounts,
    /// The store, for health checks.
    pub store: Store,
    /// The configured apps and their kinds.
    pub apps: HashMap<AppId, AppKind>,
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
    /// Flood protection, shared with the WeChat adapter.
    pub limits: Arc<RateLimits>,
    /// A request that takes longer gets 408 `request_timeout`.
    pub request_timeout: Duration,
    /// Who may call the internal API, and what each client may do.
    pub clients: Clients,
    /// The `iss` of introspection answers.
    pub issuer: String,
    /// Whether `/metrics` has a listener of its own (`[metrics] bind`), so the public one has
    /// none.
    pub metrics_apart: bool,
    /// With `[tokens] format = "jwt"`: the signing keys.
    pub tokens: Option<Arc<crate::tokens::JwtTokens>>,
    /// The time every part of the service reads (the use cases hold the same clock).
    pub clock: Arc<dyn Clock>,
}
