//! `TestApp`: one wxlink with its simulator, database, data key and typed request helpers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wxlink_tests::client::Api;
use wxlink_tests::database::TestDatabase;
use wxlink_tests::options::Options;
use wxlink_wechat_sim::SimHandle;

use super::process::{Proc, free_port, http_client, wait_until_ready, wxlink_command};
use super::{Backend, PROCESS_LIMIT, Reply};

/// One running wxlink with everything it needs; the process is killed on drop and the
/// database dropped after it.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    /// The client used by the helpers.
    pub client: reqwest::Client,
    /// The simulated WeChat wxlink talks to.
    pub sim: SimHandle,
    /// App secrets by appid.
    pub secrets: BTreeMap<String, String>,
    /// Which backend this is.
    pub backend: Backend,
    options: Options,
    process: Option<Proc>,
    nodes: Vec<Proc>,
    earlier_stderr: String,
    /// `[security]` data_key and previous_data_keys for the nodes started next; `None` leaves
    /// the table out (SQLite then uses the key file beside the config).
    data_keys: Option<(String, Vec<String>)>,
    config_path: PathBuf,
    database: TestDatabase,
    dir: tempfile::TempDir,
}

impl TestApp {
    /// Start the simulator, create the database, write the config and start wxlink on a free
    /// port; returns once `/healthz` answers.
    pub async fn spawn(backend: Backend, options: Options) -> Self {
        let secrets = options.new_secrets();
        let sim = options.simulator(&secrets).await;
        let dir = tempfile::tempdir().expect("create a temp dir");
        let database = backend.database();
        // PostgreSQL needs the data key configured (every node the same); it is also written
        // where SQLite keeps it, for the tests that read the key.
        let data_keys = matches!(backend, Backend::Postgres { .. }).then(|| {
            let key = wxlink_crypto::DataKey::generate();
            let key = secrecy::ExposeSecret::expose_secret(&key.to_base64()).to_owned();
            std::fs::write(dir.path().join("wxlink.key"), &key).expect("write the data key");
            (key, Vec::new())
        });
        let mut app = Self {
            address: String::new(),
            client: http_client(),
            sim,
            secrets,
            backend,
            options,
            process: None,
            nodes: Vec::new(),
            earlier_stderr: String::new(),
            data_keys,
            config_path: dir.path().join("wxlink.toml"),
            database,
            dir,
        };
        app.start_process().await;
        app
    }

    fn config_toml(&self, port: u16) -> String {
        let api_base = self
            .options
            .wechat_api_base
            .clone()
            .unwrap_or_else(|| self.sim.base_url());
        self.options
            .toml(
                &format!("127.0.0.1:{port}"),
                self.database.url(),
                &api_base,
                &self.secrets,
                self.data_keys.as_ref(),
            )
            .to_string()
    }

    /// Configure the nodes started (or restarted) from now on with these data keys; `None`
    /// configures none.
    pub fn set_data_keys(&mut self, current: Option<&str>, previous: &[&str]) {
        self.data_keys = current.map(|current| {
            (
                current.to_owned(),
                previous.iter().map(|&k| k.to_owned()).collect(),
            )
        });
    }

    /// Start one more node like [`TestApp::spawn_node`], or the reason it did not start (its
    /// exit status and stderr) when it exits first.
    pub async fn try_spawn_node(&mut self) -> Result<String, String> {
        let config_path = self
            .dir
            .path()
            .join(format!("wxlink-node{}.toml", self.nodes.len() + 2));
        let (address, proc) = self.try_start_node(&config_path).await?;
        self.nodes.push(proc);
        Ok(address)
    }

    /// Start the main process again with the current settings; the other nodes keep running.
    pub async fn restart_main(&mut self) {
        if let Some(mut proc) = self.process.take() {
            proc.kill();
            self.earlier_stderr.push_str(&proc.stderr());
        }
        self.start_process().await;
    }

    /// SIGKILL every node started by [`TestApp::spawn_node`], keeping their stderr.
    pub fn stop_nodes(&mut self) {
        for mut proc in self.nodes.drain(..) {
            proc.kill();
            self.earlier_stderr.push_str(&proc.stderr());
        }
    }

    async fn start_process(&mut self) {
        let config_path = self.config_path.clone();
        let (address, proc) = self.start_node(&config_path).await;
        self.address = address;
        self.process = Some(proc);
    }

    /// Start a wxlink process with the config written to `config_path` (beside which the
    /// data key file is read), on a free port; retried when another process took the port.
    async fn start_node(&mut self, config_path: &Path) -> (String, Proc) {
        self.try_start_node(config_path)
            .await
            .unwrap_or_else(|why| panic!("{why}"))
    }

    async fn try_start_node(&mut self, config_path: &Path) -> Result<(String, Proc), String> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port().expect("a free port");
            std::fs::write(config_path, self.config_toml(port)).expect("write the config");
            let mut cmd = wxlink_command();
            cmd.arg("serve")
                .arg("--config")
                .arg(config_path)
                .env("WXLINK_LOG", &self.options.log_filter)
                .current_dir(self.dir.path());
            let mut proc = Proc::spawn(cmd, &format!("wxlink {}", self.backend.name()));
            let address = format!("http://127.0.0.1:{port}");
            match wait_until_ready(&mut proc, &self.client, &address, port).await {
                Ok(()) => return Ok((address, proc)),
                // Another process took the port between our probe and wxlink's bind.
                Err(why) if why.contains("cannot listen on") && attempt < ATTEMPTS => {
                    self.earlier_stderr.push_str(&proc.stderr());
                }
                Err(why) => {
                    proc.kill();
                    return Err(why);
                }
            }
        }
    }

    /// Start one more wxlink node on the same database, data key and apps; returns its base
    /// URL. It is stopped with the app.
    pub async fn spawn_node(&mut self) -> String {
        let config_path = self
            .dir
            .path()
            .join(format!("wxlink-node{}.toml", self.nodes.len() + 2));
        let (address, proc) = self.start_node(&config_path).await;
        self.nodes.push(proc);
        address
    }

    /// The main process's id.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("a running wxlink").id()
    }

    /// Send SIGTERM to the main process.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}: {status}", self.pid());
    }

    /// Wait (bounded) for the main process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.process
            .as_mut()
            .expect("a running wxlink")
            .wait_exit(limit)
    }

    /// Start the main process again after it stopped (same database, key and config).
    pub async fn restart(&mut self) {
        self.stop();
        self.start_process().await;
    }

    /// Everything the database holds, as bytes to search ([`wxlink_tests::snapshot::stored_bytes`]).
    pub fn stored_bytes(&self) -> Vec<u8> {
        wxlink_tests::snapshot::stored_bytes(&self.database)
    }

    /// SIGKILL the process (no graceful shutdown) and start a new one on the same database,
    /// data key file and config (on a new port).
    pub async fn kill_and_restart(&mut self) {
        self.stop();
        self.start_process().await;
    }

    /// SIGKILL the process and keep its whole stderr for [`TestApp::stderr`].
    pub fn stop(&mut self) {
        for mut proc in self.process.take().into_iter().chain(self.nodes.drain(..)) {
            proc.kill();
            self.earlier_stderr.push_str(&proc.stderr());
        }
    }

    /// Everything every wxlink process of this app wrote to stderr (complete after
    /// [`TestApp::stop`]).
    pub fn stderr(&self) -> String {
        let mut all = self.earlier_stderr.clone();
        for proc in self.process.iter().chain(&self.nodes) {
            all.push_str(&proc.stderr());
        }
        all
    }

    /// Poll (bounded) until the stderr contains `needle`.
    pub async fn wait_for_stderr(&self, needle: &str) -> bool {
        wxlink_tests::eventually(PROCESS_LIMIT, async || {
            self.stderr().contains(needle).then_some(())
        })
        .await
        .is_ok()
    }

    /// The temp dir holding the config and the data key file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration file of the main process (for `wxlink user … --config`).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The app's database.
    pub fn database(&self) -> &TestDatabase {
        &self.database
    }

    /// What the database holds now, read directly (not through wxlink).
    pub fn snapshot(&self) -> super::Snapshot {
        super::Snapshot::load(&self.database)
    }

    // --- raw HTTP ---------------------------------------------------------------------------

    /// Bytes sent over a new TCP connection as they are, and the raw answer, for requests an
    /// HTTP client will not send.
    pub fn raw_http(&self, request: &[u8]) -> String {
        use std::io::{Read, Write};
        let addr = self.address.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream.write_all(request).expect("send the request");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }
}

impl Api for TestApp {
    fn sim(&self) -> &SimHandle {
        &self.sim
    }

    /// Any request; the answer is read whole.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        send(request, &format!("{method} {path}")).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let stderr = self.stderr();
            let mut start = stderr.len().saturating_sub(12_000);
            while !stderr.is_char_boundary(start) {
                start += 1;
            }
            let tail = &stderr[start..];
            eprintln!(
                "--- wxlink stderr ({}, last {} bytes) ---\n{tail}",
                self.backend.name(),
                tail.len()
            );
        }
        // The process is gone; the fields drop next: the database, then the temp dir.
    }
}

/// Send and read the whole answer; transport failures fail the test with what was sent.
pub async fn send(request: reqwest::RequestBuilder, what: &str) -> Reply {
    try_send(request)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Send and read the whole answer; a transport failure (refused, reset, timed out) is an
/// `Err` describing it, for tests where the server may be gone.
pub async fn try_send(request: reqwest::RequestBuilder) -> Result<Reply, String> {
    let started = Instant::now();
    let response = request.send().await.map_err(|e| {
        // The client's timeout is the tests' give-up: say so, reqwest's text does not.
        let why = if e.is_timeout() {
            " (gave up waiting)"
        } else {
            ""
        };
        format!("no answer{why}: {e}")
    })?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .map_err(|e| format!("cannot read the body: {e}"))?;
    Ok(Reply {
        status,
        headers,
        body,
        elapsed: started.elapsed(),
    })
}
