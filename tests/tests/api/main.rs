//! Black-box tests of the built `wxlink` binary over HTTP, held to `docs/contract.md`.
//!
//! Each test starts its own `wxlink serve` process (a free port, its own database, its own data
//! key file) against its own in-process WeChat simulator; see [`helpers::TestApp`].
//! Every scenario runs on SQLite and on PostgreSQL: `on_both_backends!` turns each scenario
//! function into `…::sqlite::name` and `…::postgres::name` tests. The PostgreSQL ones need
//! `WXLINK_TEST_DATABASE_URL` (a server where the tests may create databases); without it they
//! print a skip line, unless `WXLINK_REQUIRE_POSTGRES=1` makes that a failure.
//!
//! All API tests are modules of this one test binary (one link step). Set `TEST_LOG=1` to see
//! the service's logs as they are written; a failing test prints them anyway.

#[macro_use]
extern crate wxlink_tests;

mod abuse;
mod app_kinds;
mod concurrency;
mod connections;
mod console;
mod durability;
mod errors;
mod helpers;
mod internal;
mod introspection;
mod lifecycle;
mod observability;
mod oracle;
mod reliability;
mod sandbox;
mod secrets;
mod signed_tokens;
mod startup;
