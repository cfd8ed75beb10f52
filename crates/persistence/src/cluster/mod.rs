//! What the adapters share across nodes, apart from the store's core: the cluster's access
//! token (`access_tokens`), webhook cursors (`webhooks`), the event feed (`feed`), rate-limit
//! windows (`rate_limits`), data keys and the keyring check (`data_keys`), JWT signing keys
//! (`signing_keys`), the internal API's lookups, purging and re-sealing (`admin`), and the
//! support console's reads (`console`). Each runs on [`Store`](crate::Store)'s transactions.

pub(crate) mod access_tokens;
pub(crate) mod admin;
pub(crate) mod console;
pub(crate) mod data_keys;
pub(crate) mod feed;
pub(crate) mod rate_limits;
pub(crate) mod signing_keys;
pub(crate) mod webhooks;
