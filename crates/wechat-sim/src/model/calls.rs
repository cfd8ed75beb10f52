//! Call counters per endpoint.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Calls of one simulated WeChat endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointCalls {
    /// All calls.
    pub total: u64,
    /// Calls per appid: the `appid` parameter as sent (even an unregistered one; empty when
    /// missing), or for calls authenticated by an access_token the token's app (empty for an
    /// unknown token).
    pub by_appid: BTreeMap<String, u64>,
}

/// Call counters, keyed by endpoint path (e.g.
/// [`CODE2SESSION_PATH`](super::CODE2SESSION_PATH)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallCounts {
    /// Per endpoint path.
    pub endpoints: BTreeMap<String, EndpointCalls>,
}

impl CallCounts {
    /// All calls of an endpoint.
    pub fn total(&self, path: &str) -> u64 {
        self.endpoints.get(path).map_or(0, |e| e.total)
    }

    /// Calls of an endpoint for one appid.
    pub fn for_app(&self, path: &str, appid: &str) -> u64 {
        self.endpoints
            .get(path)
            .and_then(|e| e.by_appid.get(appid))
            .copied()
            .unwrap_or(0)
    }
}
