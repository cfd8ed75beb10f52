//! Child processes (the `wxlink` binary, bash, curl): a clean environment, collected output,
//! bounded waits, free ports and readiness.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{POLL, PROCESS_LIMIT};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// The `wxlink` binary: `WXLINK_BIN`, else `<workspace>/target/debug/wxlink`.
pub fn wxlink_bin() -> PathBuf {
    let path = std::env::var_os("WXLINK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug/wxlink"));
    assert!(
        path.is_file(),
        "no wxlink binary at {}: build it first: cargo build -p wxlink-api (cargo xtask test does)",
        path.display()
    );
    path
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

/// A child process whose stdout and stderr are collected by threads, killed on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    stdout_lines: mpsc::Receiver<String>,
    drains: Vec<JoinHandle<()>>,
    label: String,
}

fn locked(buffer: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    buffer.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Proc {
    /// Start `cmd` (its stdout and stderr must be piped).
    pub fn spawn(mut cmd: Command, label: &str) -> Self {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} ({:?}): {e}", cmd.get_program()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, stdout_lines) = mpsc::channel();
        let echo = std::env::var_os("TEST_LOG").is_some();
        let mut drains = Vec::new();
        if let Some(out) = child.stdout.take() {
            drains.push(drain(out, Arc::clone(&stdout), Some(tx), None));
        }
        if let Some(err) = child.stderr.take() {
            let echo = echo.then(|| label.to_owned());
            drains.push(drain(err, Arc::clone(&stderr), None, echo));
        }
        Self {
            child,
            stdout,
            stderr,
            stdout_lines,
            drains,
            label: label.to_owned(),
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        locked(&self.stderr).clone()
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        locked(&self.stdout).clone()
    }

    /// Its exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The next stdout line, waiting at most until `deadline`.
    pub fn next_stdout_line(&self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.stdout_lines.recv_timeout(left).ok()
    }

    /// Wait (bounded) for the process to exit on its own, then for its output to be read.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_exit() {
                self.join_drains();
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "{} did not exit within {limit:?}; stderr:\n{}",
                    self.label,
                    self.stderr()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL, reap, and read the rest of its output.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_drains();
    }

    fn join_drains(&mut self) {
        for drain in self.drains.drain(..) {
            let _ = drain.join();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn drain(
    stream: impl Read + Send + 'static,
    buffer: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
    echo: Option<String>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            if let Some(label) = &echo {
                eprint!("[{label}] {text}");
            }
            locked(&buffer).push_str(&text);
            if let Some(lines) = &lines {
                let _ = lines.send(text.trim_end_matches(['\r', '\n']).to_owned());
            }
        }
    })
}

/// A port that was free a moment ago and that no other test of this binary was given.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a free port")
            .port();
        if GIVEN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port)
        {
            return port;
        }
    }
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
    let deadline = Instant::now() + PROCESS_LIMIT;
    loop {
        if let Some(status) = proc.try_exit() {
            proc.join_drains();
            return Err(format!(
                "wxlink exited ({status}) before it was ready; stderr:\n{}",
                proc.stderr()
            ));
        }
        let healthy = client
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
        if healthy && listens_on(proc.id(), port) != Some(false) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "wxlink did not answer /healthz within {PROCESS_LIMIT:?}; stderr:\n{}",
                proc.stderr()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A TOML basic string.
pub fn toml_str(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
