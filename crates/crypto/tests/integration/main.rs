//! Tests of `wxlink-crypto` through its public API only, as another crate would use it.

mod open_data;
mod props;
mod seal;
mod signature;
mod vectors;
mod watermark;
