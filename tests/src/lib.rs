//! Test support shared by wxlink's tests, `cargo xtask` and the benchmark: a throwaway
//! PostgreSQL cluster, the Python venv with wechatpy, bounded child processes, free ports and
//! wxlink's configuration file.
//! The black-box tests themselves live in `tests/tests/`.
//!
//! ```no_run
//! let cluster = wxlink_tests::pg::Cluster::start()?;
//! println!("connect to {}", cluster.url());
//! # Ok::<(), String>(())
//! ```

pub mod config;
pub mod pg;
pub mod process;
pub mod venv;

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs a command to completion within `limit`, killing it after.
///
/// # Errors
///
/// When it cannot start, fails, or takes longer than `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration, what: &str) -> Result<(), String> {
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{what} failed ({status})")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} took longer than {limit:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}
