//! Every row of the contract's error table that a client can cause, each with the exact
//! status, code and body shape.

mod requests;
mod tokens;
mod upstream;
mod user_data;

use serde_json::Value;

pub(crate) fn json_bytes(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// The token with its last character replaced by another URL-safe one.
pub(crate) fn flip_last(token: &str) -> String {
    let mut text = token.to_owned();
    let last = text.pop().unwrap_or('A');
    text.push(if last == 'A' { 'B' } else { 'A' });
    text
}

/// Standard base64 with padding.
pub(crate) fn base64_standard(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
