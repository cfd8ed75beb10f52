//! `TestApp`: one `wxlink serve` process per test, on a free port, with its own database (a
//! SQLite file in a temp dir, or a fresh PostgreSQL database), its own data key and its own
//! in-process WeChat simulator; typed request helpers over a reqwest client with timeouts.
//!
//! Nothing here sleeps to synchronise: readiness, exits and log lines are waited for with
//! bounded polls.

mod answers;
mod app;
mod database;
mod logs;
mod process;
mod snapshot;
mod user_data;

pub use answers::*;
pub use app::*;
pub use database::*;
pub use logs::*;
pub use process::*;
pub use snapshot::*;
pub use user_data::*;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A mini program that is not bound to the Open Platform in the default options: code2Session
/// never tells the unionid.
pub const APP_A: &str = "wxa1b2c3d4e5f60001";
/// A bound mini program in the default options: code2Session tells the unionid.
pub const APP_B: &str = "wxb1b2c3d4e5f60002";
/// A third app, for tests that configure their own set.
pub const APP_C: &str = "wxc1b2c3d4e5f60003";
/// Well-formed, never configured.
pub const UNCONFIGURED_APP: &str = "wx0000000000000000";

/// How long a process may take to answer `/healthz` or to exit.
pub const PROCESS_LIMIT: Duration = Duration::from_secs(20);
/// How often bounded polls look again.
pub const POLL: Duration = Duration::from_millis(20);

/// A name no other test of this run (or of a concurrent run) uses.
pub fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}{:x}{:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
