//! No library code: this package exists for its tests in `tests/consumer/`, which use
//! `wxlink-crypto`, `wxlink-wechat-client` and `wxlink-wechat-sim` the way another team's code
//! would, through their public API only.
