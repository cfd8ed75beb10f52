//! Every row of the contract's error table that a client can cause, each with the exact
//! status, code and body shape: those that need a real process or HTTP stack (the others are in
//! `crates/api/tests/contract/errors/`).

mod requests;
mod upstream;
