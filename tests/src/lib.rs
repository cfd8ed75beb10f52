//! Test support shared by wxlink's tests, `cargo xtask` and the benchmark: a throwaway
//! PostgreSQL cluster, the Python venv with wechatpy, bounded child processes, free ports and
//! wxlink's configuration file; and for both test levels of the service (the black-box tests here
//! and the in-process ones of `wxlink-api`) the typed API client ([`client::Api`]), its answers,
//! user data, databases and the database invariants every committed state keeps.
//! The black-box tests themselves live in `tests/tests/`.
//! The `service` feature (on by default) holds what only the service's tests use; `cargo xtask`
//! builds without it.
//!
//! ```no_run
//! let cluster = wxlink_tests::pg::Cluster::start()?;
//! println!("connect to {}", cluster.url());
//! # Ok::<(), String>(())
//! ```

/// Turns `async fn name(backend: Backend)` scenarios of the calling module into one test per
/// backend: `sqlite::name` and `postgres::name`. Attributes before a name (e.g. `#[ignore]`)
/// go to both tests. The PostgreSQL ones need `WXLINK_TEST_DATABASE_URL` (see
/// [`database::Backend::postgres`]); the calling crate needs tokio. The persistence tests, the
/// contract tests and the black-box tests all use this one.
#[cfg(feature = "database")]
#[macro_export]
macro_rules! on_both_backends {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::database::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let test = concat!(module_path!(), "::", stringify!($name));
                    if let Some(backend) = $crate::database::Backend::postgres(test) {
                        super::$name(backend).await;
                    }
                }
            )+
        }
    };
}

#[cfg(feature = "service")]
pub mod answers;
#[cfg(feature = "service")]
pub mod client;
pub mod config;
#[cfg(feature = "database")]
pub mod database;
#[cfg(feature = "service")]
pub mod internal_api;
#[cfg(feature = "service")]
pub mod options;
pub mod pg;
pub mod process;
#[cfg(feature = "database")]
pub mod snapshot;
#[cfg(feature = "service")]
pub mod user_data;
pub mod venv;
pub mod wait;

#[cfg(feature = "async")]
pub use wait::eventually;
pub use wait::{TimedOut, eventually_blocking};

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Runs a command to completion within `limit`, killing it after.
///
/// # Errors
///
/// When it cannot start, fails, or takes longer than `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration, what: &str) -> Result<(), String> {
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    match eventually_blocking(limit, || child.try_wait().transpose()) {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{what} failed ({status})")),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("{what} took longer than {limit:?}"))
        }
    }
}

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

/// Now, in Unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
