//! What every request handler shares.

use std::collections::HashSet;

use wxlink_domain::{AppId, Service};
use wxlink_persistence::Store;

use crate::adapters::{CryptoOpener, RandomIds, SystemClock, WeChatAdapter};
use crate::limits::RateLimits;

/// The use cases wired to their production adapters.
pub type WxlinkService = Service<Store, WeChatAdapter, CryptoOpener, SystemClock, RandomIds>;

/// Shared state of the HTTP layer.
#[derive(Debug)]
pub struct AppState {
    /// The use cases.
    pub service: WxlinkService,
    /// The store, for health checks.
    pub store: Store,
    /// The configured appids.
    pub apps: HashSet<AppId>,
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
    /// Flood protection.
    pub limits: RateLimits,
}
