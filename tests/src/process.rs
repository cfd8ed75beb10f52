//! Child processes for tests and the benchmark: a guard that collects their output (or logs it
//! to a file) and stops them on drop, bounded waits, and free loopback ports.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A child process whose stdout and stderr are collected by threads, killed on drop; or, from
/// [`Proc::spawn_group_logged`], a process group logging to a file, stopped as a group on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    // In a mutex so that a test app holding the guard can be shared between threads.
    stdout_lines: Mutex<mpsc::Receiver<String>>,
    drains: Vec<JoinHandle<()>>,
    label: String,
    /// The file stdout and stderr go to, if not collected.
    log: Option<PathBuf>,
    /// Whether the child leads a process group of its own, to be stopped as a whole.
    group: bool,
    stopped: bool,
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
            stdout_lines: Mutex::new(stdout_lines),
            drains,
            label: label.to_owned(),
            log: None,
            group: false,
            stopped: false,
        }
    }

    /// Start `cmd` in a new process group, stdin closed, stdout and stderr written to `log`.
    ///
    /// # Errors
    ///
    /// When the log cannot be created or the process cannot start.
    pub fn spawn_group_logged(cmd: &mut Command, label: &str, log: &Path) -> Result<Self, String> {
        let out = File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {label}: {e}"))?;
        // Nothing reads stdout, so no line ever arrives.
        let (_, stdout_lines) = mpsc::channel();
        Ok(Self {
            child,
            stdout: Arc::default(),
            stderr: Arc::default(),
            stdout_lines: Mutex::new(stdout_lines),
            drains: Vec::new(),
            label: label.to_owned(),
            log: Some(log.to_path_buf()),
            group: true,
            stopped: false,
        })
    }

    /// The name it was started under, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The last 15 lines of its log file (empty when it has none), for error messages.
    pub fn log_tail(&self) -> String {
        let text = self
            .log
            .as_ref()
            .and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Fails with the end of its log if it has exited.
    ///
    /// # Errors
    ///
    /// When the process has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.try_exit() {
            Some(status) => Err(format!(
                "{} exited ({status}); its log ({}) ends:\n{}",
                self.label,
                self.log.as_deref().unwrap_or(Path::new("none")).display(),
                self.log_tail()
            )),
            None => Ok(()),
        }
    }

    /// Stops it once: a process group gets SIGTERM, up to `grace` to exit, then SIGKILL (also
    /// when the leader exited, so that no worker lingers); a single process gets SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        if !self.group {
            self.kill();
            return;
        }
        let group = format!("-{}", self.child.id());
        signal_group("TERM", &group);
        if crate::eventually_blocking(grace, || self.try_exit()).is_ok() {
            signal_group("KILL", &group);
            return;
        }
        signal_group("KILL", &group);
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        self.stdout_lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_timeout(left)
            .ok()
    }

    /// Wait (bounded) for the process to exit on its own, then for its output to be read.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        if let Ok(status) = crate::eventually_blocking(limit, || self.try_exit()) {
            self.join_drains();
            return status;
        }
        self.kill();
        panic!(
            "{} did not exit within {limit:?}; stderr:\n{}",
            self.label,
            self.stderr()
        );
    }

    /// SIGKILL, reap, and read the rest of its output.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_drains();
    }

    /// Wait until everything it wrote has been read (after it exited).
    pub fn join_drains(&mut self) {
        for drain in self.drains.drain(..) {
            let _ = drain.join();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.group {
            self.stop(Duration::from_secs(3));
        } else if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a signal to a process group we started (`group` is `-PGID`).
fn signal_group(signal: &str, group: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", group])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
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

/// The target directory's profile folder (`…/debug`) that the running test binary was built
/// into (`…/debug/deps/name-hash`): the one home of "where are the built binaries", right under
/// any `CARGO_TARGET_DIR`.
///
/// # Panics
///
/// When the running executable does not live in `<profile>/deps`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("a test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// A binary of this workspace: the path in `env_var` when it is set, else `name` beside the
/// running test binary (see [`profile_dir`]).
///
/// # Panics
///
/// When there is no file there, with the command that builds it.
pub fn built_binary(name: &str, env_var: &str) -> PathBuf {
    let path = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| profile_dir().join(name));
    assert!(
        path.is_file(),
        "no {name} binary at {}: build it first (`cargo xtask test` does), or set {env_var}",
        path.display()
    );
    path
}

/// A port on 127.0.0.1 that was free a moment ago and that this process gave to no one else.
///
/// # Errors
///
/// When no port can be bound.
pub fn free_port() -> Result<u16, String> {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("bind a free port on 127.0.0.1: {e}"))?
            .port();
        if GIVEN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port)
        {
            return Ok(port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `pid` is gone or a zombie waiting for its new parent to reap it.
    fn dead(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
    }

    #[test]
    fn a_logged_group_is_stopped_whole_and_its_log_is_kept() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("child.log");
        let mut cmd = Command::new("sh");
        // A worker in the background, as gunicorn's are: stopping the leader alone leaves it.
        // (`sleep 60` only keeps it alive; the test waits for its pid, not for time.)
        cmd.args(["-c", "sleep 60 & echo worker $!; wait"]);
        let mut child = Proc::spawn_group_logged(&mut cmd, "sh", &log).expect("starts");
        let worker = crate::eventually_blocking(Duration::from_secs(10), || {
            let tail = child.log_tail();
            tail.strip_prefix("worker ")
                .map(|pid| pid.trim().to_owned())
        })
        .expect("a worker pid in the log");
        child.check_running().expect("running");
        child.stop(Duration::from_secs(3));
        let err = child.check_running().expect_err("stopped");
        assert!(
            err.contains("sh exited") && err.contains(&format!("worker {worker}")),
            "{err}"
        );
        crate::eventually_blocking(Duration::from_secs(5), || dead(&worker).then_some(()))
            .unwrap_or_else(|e| panic!("worker {worker} outlived its group: it {e}"));
    }

    #[test]
    fn free_ports_are_nonzero_and_never_given_twice() {
        let ports: BTreeSet<u16> = (0..20).map(|_| free_port().expect("a free port")).collect();
        assert_eq!(ports.len(), 20);
        assert!(!ports.contains(&0));
    }
}
