//! Child processes for tests and the benchmark: a guard that collects their output and kills
//! them on drop, bounded waits, and free loopback ports.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often bounded waits look again.
const POLL: Duration = Duration::from_millis(20);

/// A child process whose stdout and stderr are collected by threads, killed on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    // In a mutex so that a test app holding the guard can be shared between threads.
    stdout_lines: Mutex<mpsc::Receiver<String>>,
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
            stdout_lines: Mutex::new(stdout_lines),
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
        self.stdout_lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_timeout(left)
            .ok()
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

    /// Wait until everything it wrote has been read (after it exited).
    pub fn join_drains(&mut self) {
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

    #[test]
    fn free_ports_are_nonzero_and_never_given_twice() {
        let ports: BTreeSet<u16> = (0..20).map(|_| free_port().expect("a free port")).collect();
        assert_eq!(ports.len(), 20);
        assert!(!ports.contains(&0));
    }
}
