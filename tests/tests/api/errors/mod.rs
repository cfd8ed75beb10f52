//! Every row of the contract's error table that a client can cause, each with the exact
//! status, code and body shape: those that need a real process or HTTP stack (the others are in
//! `crates/api/tests/contract/errors/`).

mod requests;
mod tokens;
mod upstream;

/// The token with its last character replaced by another URL-safe one.
pub(crate) fn flip_last(token: &str) -> String {
    let mut text = token.to_owned();
    let last = text.pop().unwrap_or('A');
    text.push(if last == 'A' { 'B' } else { 'A' });
    text
}
