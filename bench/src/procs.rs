//! Waiting for child processes (wxlink, the gunicorn peer) to serve, and what /proc says about
//! them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use wxlink_tests::process::{Proc, free_port};

use crate::loadgen::{self, Req};

/// Waits until `GET path` on `addr` answers 200, failing early if the child exits.
pub async fn wait_ready(
    child: &mut Proc,
    addr: SocketAddr,
    path: &str,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        child.check_running()?;
        let mut conn = None;
        if let Ok(Ok((status, _))) = tokio::time::timeout(
            Duration::from_secs(2),
            loadgen::send(&mut conn, addr, &Req::get(path)),
        )
        .await
            && status.is_success()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} did not answer {path} within {within:?}; its log ends:\n{}",
                child.label(),
                child.log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A field of /proc/PID/status in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&text, field)
}

/// Reads `Field:   1234 kB` from the text of /proc/PID/status.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim() != field {
            return None;
        }
        let mut parts = value.split_whitespace();
        let number = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") | None => Some(number),
            Some(_) => None,
        }
    })
}

/// The process group of a process, from the text of /proc/PID/stat (the command name in
/// parentheses may itself hold spaces and parentheses, so fields are counted after the last `)`).
pub fn parse_stat_pgrp(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state, ppid, pgrp.
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Linux reports CPU times in /proc in units of `USER_HZ`, which is 100 on every
/// architecture Linux supports for user space.
const USER_HZ: u64 = 100;

/// The fields of /proc/PID/stat after the command name.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().collect())
}

/// (ppid, CPU µs of the process itself, CPU µs of its reaped children) from /proc/PID/stat.
pub fn parse_stat_cpu(stat: &str) -> Option<(u32, u64, u64)> {
    let f = stat_fields(stat)?;
    let ticks = |i: usize| f.get(i)?.parse::<u64>().ok();
    // After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime cutime cstime.
    let ppid = f.get(1)?.parse().ok()?;
    let own = ticks(11)? + ticks(12)?;
    let children = ticks(13)? + ticks(14)?;
    Some((
        ppid,
        own * 1_000_000 / USER_HZ,
        children * 1_000_000 / USER_HZ,
    ))
}

/// Every process in /proc with the text of its stat file.
fn all_stats() -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, stat))
        })
        .collect()
}

/// The parent of a process.
pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&stat).map(|(ppid, _, _)| ppid)
}

/// CPU time (user + system, µs) of every process in process group `pgid`, with their reaped
/// children: a service and all its workers.
pub fn group_cpu_us(pgid: u32) -> Option<u64> {
    sum_cpu(|pid, stat| pid == pgid || parse_stat_pgrp(stat) == Some(pgid))
}

/// CPU time (user + system, µs) of `root`, its direct children and its reaped children: a
/// PostgreSQL postmaster and its backends.
pub fn tree_cpu_us(root: u32) -> Option<u64> {
    sum_cpu(|pid, stat| {
        pid == root || parse_stat_cpu(stat).is_some_and(|(ppid, _, _)| ppid == root)
    })
}

fn sum_cpu(pick: impl Fn(u32, &str) -> bool) -> Option<u64> {
    let mut total = None;
    for (pid, stat) in all_stats() {
        if pick(pid, &stat)
            && let Some((_, own, children)) = parse_stat_cpu(&stat)
        {
            *total.get_or_insert(0) += own + children;
        }
    }
    total
}

/// CPU time (user + system, µs) of this process: the load generator and the simulator.
pub fn own_cpu_us() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat_cpu(&stat).map(|(_, own, _)| own)
}

/// The summed VmRSS (KiB) of every process in process group `pgid` (a gunicorn master and its
/// workers).
pub fn group_rss_kib(pgid: u32) -> Option<u64> {
    let mut total = 0;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if parse_stat_pgrp(&stat) == Some(pgid)
            && let Some(kib) = status_kib(pid, "VmRSS")
        {
            total += kib;
            found = true;
        }
    }
    found.then_some(total)
}

/// The 1-minute load average and the number of CPUs, for the report.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\twxlink\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t  612344 kB\nVmHWM:\t   24880 kB\nVmRSS:\t   12345 kB\nThreads:\t5\n";

    #[test]
    fn status_fields_are_read_in_kib() {
        assert_eq!(parse_status_kib(STATUS, "VmRSS"), Some(12345));
        assert_eq!(parse_status_kib(STATUS, "VmHWM"), Some(24880));
        assert_eq!(parse_status_kib(STATUS, "Threads"), Some(5));
        assert_eq!(parse_status_kib(STATUS, "VmSwap"), None);
        assert_eq!(parse_status_kib("VmRSS: lots kB\n", "VmRSS"), None);
        assert_eq!(parse_status_kib("VmRSS: 12 MB\n", "VmRSS"), None);
    }

    #[test]
    fn the_process_group_is_found_after_the_command_name() {
        let stat = "4242 (gunicorn: worker [app:app]) S 4200 4200 4200 0 -1 4194560 120";
        assert_eq!(parse_stat_pgrp(stat), Some(4200));
        let odd = "7 (a) b (c)) R 1 99 7 0";
        assert_eq!(parse_stat_pgrp(odd), Some(99));
        assert_eq!(parse_stat_pgrp("garbage"), None);
    }

    #[test]
    fn cpu_times_are_read_in_microseconds() {
        let stat = "4242 (wx link) S 4200 4200 4200 0 -1 4194560 120 0 0 0 250 50 7 3 20 0";
        assert_eq!(parse_stat_cpu(stat), Some((4200, 3_000_000, 100_000)));
        assert_eq!(parse_stat_cpu("4242 (x) S 1 1"), None);
    }
}
