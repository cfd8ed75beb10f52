//! In-process contract tests: `wxlink_api::Application` built from a configuration file, its
//! router driven with `tower::ServiceExt::oneshot`, against an in-process WeChat simulator.
//!
//! This is the fast level: no process to start, no port to wait for.
//! What needs a real process (kill -9, restarts, several nodes, start-up and configuration
//! errors, the process's logs, the HTTP stack's own parsing) stays in the black-box tests of
//! `tests/tests/api/`.
//! Every scenario runs on SQLite and on PostgreSQL through `on_both_backends!`, and every
//! [`helpers::TestApp`] checks the database invariants when it is dropped.

#[macro_use]
extern crate wxlink_tests;

mod app_kinds;
mod cancellation;
mod concurrency;
mod console;
mod errors;
mod forgery;
mod helpers;
mod internal;
mod linking;
mod openapi;
mod oracle;
mod proxies;
mod scopes;
mod secrets;
mod signed_tokens;
mod stale_key;
mod support;
mod wechat_token;
