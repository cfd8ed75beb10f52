//! What the adapters share across nodes, apart from the store's core: the cluster's WeChat
//! access token (`access_tokens`), webhook cursors (`webhooks`), the event feed (`feed`),
//! rate-limit windows (`rate_limits`), the record of data keys and the keyring check
//! (`data_keys`), re-sealing for a key rotation (`resealing`), JWT signing keys
//! (`signing_keys`), health, housekeeping and the internal API's lookups (`admin`), and the
//! support console's operators (`operators`) and page reads (`console`). Each runs on
//! [`Store`](crate::Store)'s transactions.

pub(crate) mod access_tokens;
pub(crate) mod admin;
pub(crate) mod console;
pub(crate) mod data_keys;
pub(crate) mod feed;
pub(crate) mod operators;
pub(crate) mod rate_limits;
pub(crate) mod resealing;
pub(crate) mod signing_keys;
pub(crate) mod webhooks;
