//! Child processes (the `wxlink` binary, bash, curl): a clean environment and readiness; the
//! guard and free ports are `wxlink_tests::process`'s.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub use wxlink_tests::config::toml_str;
pub use wxlink_tests::process::{Proc, free_port};

use super::PROCESS_LIMIT;

/// The `wxlink` binary: `WXLINK_BIN`, else the one beside this test's profile.
pub fn wxlink_bin() -> PathBuf {
    wxlink_tests::process::built_binary("wxlink", "WXLINK_BIN")
}

/// A command whose environment holds no `WXLINK__…` override and no proxy of the caller's
/// (the service and curl must talk to loopback directly), with piped output.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let Some(name) = key.to_str() else { continue };
        if name.starts_with("WXLINK__") || name.to_ascii_lowercase().ends_with("_proxy") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// `wxlink` with a clean environment and `WXLINK_LOG=info`.
pub fn wxlink_command() -> Command {
    let mut cmd = clean_command(wxlink_bin());
    cmd.env("WXLINK_LOG", "info");
    cmd
}

/// Whether process `pid` holds the listening socket of 127.0.0.1:`port` (`None`: cannot
/// tell, e.g. no /proc). Guards against polling another test's server that took the port.
fn listens_on(pid: u32, port: u16) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let suffix = format!(":{port:04X}");
    let inodes: BTreeSet<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(3) == Some(&"0A");
            (listening && fields.get(1).is_some_and(|a| a.ends_with(&suffix)))
                .then(|| fields.get(9).map(|s| format!("socket:[{s}]")))
                .flatten()
        })
        .collect();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(fds.filter_map(Result::ok).any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.contains(target.to_string_lossy().as_ref()))
    }))
}

/// A reqwest client for loopback: no proxy, bounded connect and total time.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the HTTP client")
}

/// Poll `GET {base}/healthz` until it answers 200 from `proc` itself, or fail (process
/// exited, or no answer within [`PROCESS_LIMIT`]).
pub async fn wait_until_ready(
    proc: &mut Proc,
    client: &reqwest::Client,
    base: &str,
    port: u16,
) -> Result<(), String> {
    let ready = wxlink_tests::eventually(PROCESS_LIMIT, async || {
        if let Some(status) = proc.try_exit() {
            proc.join_drains();
            return Some(Err(format!(
                "wxlink exited ({status}) before it was ready; stderr:\n{}",
                proc.stderr()
            )));
        }
        let healthy = client
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
        (healthy && listens_on(proc.id(), port) != Some(false)).then_some(Ok(()))
    })
    .await;
    ready.unwrap_or_else(|_| {
        Err(format!(
            "wxlink did not answer /healthz within {PROCESS_LIMIT:?}; stderr:\n{}",
            proc.stderr()
        ))
    })
}
