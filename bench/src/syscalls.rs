//! The write system calls of a service over a measured run: `pwrite64` (SQLite's WAL frames and
//! checkpoint copies: a page written to disk is one or two of them) counted by `perf stat` on
//! its tracepoint, and every write-class call (`/proc/PID/io` `syscw`: the WAL, the log file,
//! the sockets) read before and after.
//!
//! `perf stat -p` counts in the kernel, on every thread of the process, threads started later
//! included, so it costs the run nothing measurable; without `perf` (or the right to trace) the
//! `pwrite64` figure is left out and `syscw` still says what the writes cost together.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Serialize;

/// Write system calls per successful login.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WritesPerLogin {
    /// `pwrite64` calls, when `perf` could count them.
    pub pwrite64: Option<f64>,
    /// Every write-class call (`write`, `pwrite64`, `writev`, `sendto`, …).
    pub write_calls: Option<f64>,
}

/// Counting started on one process; [`WriteCounter::finish`] ends it.
pub struct WriteCounter {
    pid: u32,
    perf: Option<(Child, PathBuf)>,
    syscw_before: Option<u64>,
}

impl WriteCounter {
    /// Start counting the writes of `pid`; `perf stat`'s output goes to `dir`.
    pub fn start(pid: u32, dir: &Path) -> Self {
        let out = dir.join("perf-stat-pwrite64.csv");
        let perf = Command::new("perf")
            .args(["stat", "-x", ",", "-e", "syscalls:sys_enter_pwrite64", "-o"])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(|child| (child, out));
        if perf.is_some() {
            // perf attaches to the threads in a few milliseconds; the run starts after.
            std::thread::sleep(Duration::from_millis(300));
        }
        Self {
            pid,
            perf,
            syscw_before: syscw(pid),
        }
    }

    /// Stop counting; the counts ÷ `logins`.
    pub fn finish(self, logins: f64) -> WritesPerLogin {
        let write_calls = syscw(self.pid)
            .zip(self.syscw_before)
            .map(|(after, before)| after.saturating_sub(before) as f64 / logins);
        let pwrite64 = self.perf.and_then(|(mut child, out)| {
            // perf stat writes its counts when interrupted (and then exits with a failure
            // status, so only its output says whether it counted).
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            child.wait().ok()?;
            let text = std::fs::read_to_string(out).ok()?;
            parse_perf_count(&text).map(|n| n as f64 / logins)
        });
        WritesPerLogin {
            pwrite64,
            write_calls,
        }
    }
}

/// The `syscw` line of /proc/PID/io.
fn syscw(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    parse_io_field(&text, "syscw")
}

fn parse_io_field(io: &str, field: &str) -> Option<u64> {
    io.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == field)
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// The count of `perf stat -x ,` output: the first field of the event's line (`<not counted>`
/// and `<not supported>` are no count).
fn parse_perf_count(text: &str) -> Option<u64> {
    text.lines()
        .find(|line| line.contains("sys_enter_pwrite64"))
        .and_then(|line| line.split(',').next())
        .and_then(|count| count.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_stat_csv_gives_the_count() {
        let text = "# started on Mon Dec  7 17:00:00 2026\n\n\
            350,,syscalls:sys_enter_pwrite64,1520371,100.00,,\n";
        assert_eq!(parse_perf_count(text), Some(350));
        let refused = "<not supported>,,syscalls:sys_enter_pwrite64,0,100.00,,\n";
        assert_eq!(parse_perf_count(refused), None);
        assert_eq!(parse_perf_count(""), None);
    }

    #[test]
    fn proc_io_gives_the_write_calls() {
        let io = "rchar: 100\nwchar: 200\nsyscr: 7\nsyscw: 42\nread_bytes: 0\n";
        assert_eq!(parse_io_field(io, "syscw"), Some(42));
        assert_eq!(parse_io_field(io, "cancelled_write_bytes"), None);
    }
}
