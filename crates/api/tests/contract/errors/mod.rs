//! Rows of the contract's error table that a client can cause, each with the exact status, code
//! and body shape (those that need a real server are in `tests/tests/api/errors/`).

mod requests;
mod tokens;
mod upstream;
mod user_data;

use serde_json::Value;

pub(crate) fn json_bytes(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}
