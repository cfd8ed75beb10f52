//! `TestApp`: one `wxlink serve` process per test, on a free port, with its own database (a
//! SQLite file in a temp dir, or a fresh PostgreSQL database), its own data key and its own
//! in-process WeChat simulator; typed request helpers over a reqwest client with timeouts.
//!
//! Nothing here sleeps to synchronise: readiness, exits and log lines are waited for with
//! bounded polls.

mod app;
mod logs;
mod process;

pub use app::*;
pub use logs::*;
pub use process::*;
pub use wxlink_tests::answers::*;
pub use wxlink_tests::client::Api;
pub use wxlink_tests::database::*;
pub use wxlink_tests::options::{APP_A, APP_B, APP_C, Options};
pub use wxlink_tests::snapshot::*;
pub use wxlink_tests::user_data::*;

use std::time::Duration;

/// How long a process may take to answer `/healthz` or to exit.
pub const PROCESS_LIMIT: Duration = Duration::from_secs(20);
