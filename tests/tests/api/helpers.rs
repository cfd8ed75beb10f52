//! `TestApp`: one `wxlink serve` process per test, on a free port, with its own database (a
//! SQLite file in a temp dir, or a fresh PostgreSQL database), its own data key and its own
//! in-process WeChat simulator; typed request helpers over a reqwest client with timeouts.
//!
//! Nothing here sleeps to synchronise: readiness, exits and log lines are waited for with
//! bounded polls.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::{Map, Value, json};
use wxlink_wechat_sim::{Login, SimHandle, Simulator, UnionidPolicy, UserInfo};

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

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

/// The database a scenario runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file in the test's temp dir.
    Sqlite,
    /// A fresh database on the server `admin_url` points at, dropped at the end.
    Postgres {
        /// `postgres://…/postgres` from `WXLINK_TEST_DATABASE_URL`.
        admin_url: String,
    },
}

impl Backend {
    /// The PostgreSQL backend, or `None` (with a skip line) when `WXLINK_TEST_DATABASE_URL` is
    /// absent. Under `WXLINK_REQUIRE_POSTGRES=1` an absent URL fails the test instead.
    pub fn postgres(test: &str) -> Option<Self> {
        match std::env::var("WXLINK_TEST_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Some(Self::Postgres {
                admin_url: url.trim().to_owned(),
            }),
            _ if std::env::var("WXLINK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => panic!(
                "WXLINK_REQUIRE_POSTGRES=1 but WXLINK_TEST_DATABASE_URL is not set: \
                 cannot run {test} on PostgreSQL"
            ),
            _ => {
                eprintln!("skipped: {test} on PostgreSQL (set WXLINK_TEST_DATABASE_URL to run it)");
                None
            }
        }
    }

    /// `sqlite` or `postgres`, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }
}

/// A database of its own on the PostgreSQL server, dropped (`WITH (FORCE)`) on drop.
#[derive(Debug)]
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn create(admin_url: &str) -> Self {
        let name = format!("wxlink_bb_{}", unique());
        let mut conn = PgConnection::establish(admin_url)
            .unwrap_or_else(|e| panic!("cannot connect to {admin_url}: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        Self {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

/// `url` with its database (the path) replaced by `name`, keeping any query string.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{name}{query}")
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

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// TestApp
// ---------------------------------------------------------------------------------------------

/// How a test wants its wxlink configured.
#[derive(Debug, Clone)]
pub struct Options {
    /// The apps, configured in wxlink and registered in the simulator with their policy.
    pub apps: Vec<(String, UnionidPolicy)>,
    /// `[session] ttl_secs`
    pub ttl_secs: Option<u64>,
    /// `[wechat] timeout_ms`
    pub timeout_ms: Option<u64>,
    /// `[server] max_body_bytes`
    pub max_body_bytes: Option<usize>,
    /// `WXLINK_LOG`
    pub log_filter: String,
}

impl Default for Options {
    /// [`APP_A`] (never tells the unionid at login) and [`APP_B`] (always does).
    fn default() -> Self {
        Self {
            apps: vec![
                (APP_A.to_owned(), UnionidPolicy::Never),
                (APP_B.to_owned(), UnionidPolicy::Always),
            ],
            ttl_secs: None,
            timeout_ms: None,
            max_body_bytes: None,
            log_filter: "info".to_owned(),
        }
    }
}

impl Options {
    /// Replace the apps.
    pub fn apps(mut self, apps: &[(&str, UnionidPolicy)]) -> Self {
        self.apps = apps.iter().map(|(a, p)| ((*a).to_owned(), *p)).collect();
        self
    }

    /// `[session] ttl_secs`
    pub fn ttl_secs(mut self, secs: u64) -> Self {
        self.ttl_secs = Some(secs);
        self
    }

    /// `[wechat] timeout_ms`
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// `[server] max_body_bytes`
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = Some(bytes);
        self
    }

    /// `WXLINK_LOG`
    pub fn log(mut self, filter: &str) -> Self {
        filter.clone_into(&mut self.log_filter);
        self
    }
}

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
    earlier_stderr: String,
    config_path: PathBuf,
    database_url: String,
    _database: Option<PgDatabase>,
    dir: tempfile::TempDir,
}

impl TestApp {
    /// Start the simulator, create the database, write the config and start wxlink on a free
    /// port; returns once `/healthz` answers.
    pub async fn spawn(backend: Backend, options: Options) -> Self {
        let secrets: BTreeMap<String, String> = options
            .apps
            .iter()
            .map(|(appid, _)| (appid.clone(), format!("app-secret-{}", unique())))
            .collect();
        let sim = options
            .apps
            .iter()
            .fold(Simulator::builder(), |builder, (appid, policy)| {
                builder.app(appid.clone(), secrets[appid].clone(), *policy)
            })
            .start()
            .await
            .expect("start the WeChat simulator");
        let dir = tempfile::tempdir().expect("create a temp dir");
        let (database_url, database) = match &backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("wxlink.db").display()),
                None,
            ),
            Backend::Postgres { admin_url } => {
                let db = PgDatabase::create(admin_url);
                (db.url.clone(), Some(db))
            }
        };
        let mut app = Self {
            address: String::new(),
            client: http_client(),
            sim,
            secrets,
            backend,
            options,
            process: None,
            earlier_stderr: String::new(),
            config_path: dir.path().join("wxlink.toml"),
            database_url,
            _database: database,
            dir,
        };
        app.start_process().await;
        app
    }

    fn config_toml(&self, port: u16) -> String {
        let o = &self.options;
        let mut toml = format!("[server]\nbind = \"127.0.0.1:{port}\"\n");
        if let Some(bytes) = o.max_body_bytes {
            toml.push_str(&format!("max_body_bytes = {bytes}\n"));
        }
        toml.push_str(&format!(
            "\n[database]\nurl = {}\nmax_connections = 8\n",
            toml_str(&self.database_url)
        ));
        toml.push_str(&format!(
            "\n[wechat]\napi_base = {}\n",
            toml_str(&self.sim.base_url())
        ));
        if let Some(ms) = o.timeout_ms {
            toml.push_str(&format!("timeout_ms = {ms}\n"));
        }
        if let Some(secs) = o.ttl_secs {
            toml.push_str(&format!("\n[session]\nttl_secs = {secs}\n"));
        }
        for (appid, secret) in &self.secrets {
            toml.push_str(&format!(
                "\n[apps.{appid}]\nsecret = {}\n",
                toml_str(secret)
            ));
        }
        toml
    }

    async fn start_process(&mut self) {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            std::fs::write(&self.config_path, self.config_toml(port)).expect("write the config");
            let mut cmd = wxlink_command();
            cmd.arg("serve")
                .arg("--config")
                .arg(&self.config_path)
                .env("WXLINK_LOG", &self.options.log_filter)
                .current_dir(self.dir.path());
            let mut proc = Proc::spawn(cmd, &format!("wxlink {}", self.backend.name()));
            let address = format!("http://127.0.0.1:{port}");
            match wait_until_ready(&mut proc, &self.client, &address, port).await {
                Ok(()) => {
                    self.address = address;
                    self.process = Some(proc);
                    return;
                }
                // Another process took the port between our probe and wxlink's bind.
                Err(why) if why.contains("cannot listen on") && attempt < ATTEMPTS => {
                    self.earlier_stderr.push_str(&proc.stderr());
                }
                Err(why) => {
                    proc.kill();
                    panic!("{why}");
                }
            }
        }
    }

    /// SIGKILL the process (no graceful shutdown) and start a new one on the same database,
    /// data key file and config (on a new port).
    pub async fn kill_and_restart(&mut self) {
        self.stop();
        self.start_process().await;
    }

    /// SIGKILL the process and keep its whole stderr for [`TestApp::stderr`].
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.process.take() {
            proc.kill();
            self.earlier_stderr.push_str(&proc.stderr());
        }
    }

    /// Everything every wxlink process of this app wrote to stderr (complete after
    /// [`TestApp::stop`]).
    pub fn stderr(&self) -> String {
        let mut all = self.earlier_stderr.clone();
        if let Some(proc) = &self.process {
            all.push_str(&proc.stderr());
        }
        all
    }

    /// Poll (bounded) until the stderr contains `needle`.
    pub async fn wait_for_stderr(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            tokio::time::sleep(POLL).await;
        }
        self.stderr().contains(needle)
    }

    /// The temp dir holding the config, the data key file and the SQLite database.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    // --- raw HTTP ---------------------------------------------------------------------------

    /// Any request; the answer is read whole.
    pub async fn call(
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

    /// `GET path`
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(reqwest::Method::GET, path, token, None, None)
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.post_raw(
            path,
            token,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// `POST path` with any bytes.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> Reply {
        self.call(
            reqwest::Method::POST,
            path,
            token,
            content_type,
            Some(body.into()),
        )
        .await
    }

    // --- the API, typed ---------------------------------------------------------------------

    /// `POST /v1/wechat/login` with a code.
    pub async fn login_with_code(&self, appid: &str, code: &str) -> Reply {
        self.post_json(
            "/v1/wechat/login",
            None,
            &json!({"appid": appid, "code": code}),
        )
        .await
    }

    /// What `wx.login` does on the phone: a fresh code, and a new session key for the user.
    pub fn wx_login(&self, appid: &str, openid: &str, unionid: Option<&str>) -> Login {
        self.sim
            .login(appid, openid, unionid)
            .unwrap_or_else(|e| panic!("simulated wx.login for {appid}/{openid}: {e}"))
    }

    /// `wx.login` then `POST /v1/wechat/login`, which must succeed.
    pub async fn login(&self, appid: &str, openid: &str, unionid: Option<&str>) -> LoginResponse {
        self.login_full(appid, openid, unionid).await.1
    }

    /// As [`TestApp::login`], also giving what `wx.login` produced (its session key).
    pub async fn login_full(
        &self,
        appid: &str,
        openid: &str,
        unionid: Option<&str>,
    ) -> (Login, LoginResponse) {
        let wx = self.wx_login(appid, openid, unionid);
        let reply = self.login_with_code(appid, &wx.code).await;
        (wx, LoginResponse::parse(&reply))
    }

    /// What `wx.getUserInfo` gives the mini program, under the user's current session key.
    pub fn wx_user_info(&self, appid: &str, openid: &str) -> UserInfo {
        self.sim
            .user_info(appid, openid)
            .unwrap_or_else(|e| panic!("simulated wx.getUserInfo for {appid}/{openid}: {e}"))
    }

    /// `POST /v1/wechat/user-info`
    pub async fn user_info(&self, token: &str, body: &Value) -> Reply {
        self.post_json("/v1/wechat/user-info", Some(token), body)
            .await
    }

    /// `POST /v1/wechat/user-info`, which must succeed.
    pub async fn user_info_ok(&self, token: &str, body: &Value) -> UserInfoResponse {
        UserInfoResponse::parse(&self.user_info(token, body).await)
    }

    /// `GET /v1/me`
    pub async fn me(&self, token: &str) -> Reply {
        self.get("/v1/me", Some(token)).await
    }

    /// `GET /v1/me`, which must succeed.
    pub async fn me_ok(&self, token: &str) -> Me {
        Me::parse(&self.me(token).await)
    }

    /// `POST /v1/logout`
    pub async fn logout(&self, token: &str) -> Reply {
        self.call(reqwest::Method::POST, "/v1/logout", Some(token), None, None)
            .await
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
    let started = Instant::now();
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("{what}: cannot read the body: {e}"));
    Reply {
        status,
        headers,
        body,
        elapsed: started.elapsed(),
    }
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

/// A whole HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub body: String,
    /// From sending to the end of the body.
    pub elapsed: Duration,
}

impl Reply {
    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {} {}", self.status, self.body))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Fail unless the status is `status` and the body is JSON.
    #[track_caller]
    pub fn ok_json(&self, status: u16, what: &str) -> Value {
        assert_eq!(
            self.status, status,
            "{what}: expected {status}, got {} {}",
            self.status, self.body
        );
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{what}: Content-Type {:?}",
            self.header("content-type")
        );
        self.json()
    }
}

/// Fail unless `reply` is exactly `{"error":{"code":code,"message":<non-empty>}}` with
/// `status` and `Content-Type: application/json`; returns the message.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str, what: &str) -> String {
    assert_eq!(
        (reply.status, error_code(reply).as_deref()),
        (status, Some(code)),
        "{what}: expected {status} {code}, got {} {}",
        reply.status,
        reply.body
    );
    assert_error_shape(reply, what)
}

/// Fail unless `reply` has the contract's error shape; returns the message.
#[track_caller]
pub fn assert_error_shape(reply: &Reply, what: &str) -> String {
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: error Content-Type is {content_type:?}, body {}",
        reply.body
    );
    let value = reply.json();
    let outer = exact_object(&value, &["error"], what);
    let inner = exact_object(&outer["error"], &["code", "message"], what);
    assert!(
        inner["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: error code is not a non-empty string: {value}"
    );
    let message = inner["message"].as_str().unwrap_or_default();
    assert!(
        !message.trim().is_empty(),
        "{what}: error message is not a non-empty string: {value}"
    );
    message.to_owned()
}

/// The `error.code` of an answer, if it has one.
pub fn error_code(reply: &Reply) -> Option<String> {
    let value: Value = serde_json::from_str(&reply.body).ok()?;
    value["error"]["code"].as_str().map(str::to_owned)
}

/// `value` as an object with exactly `keys`.
#[track_caller]
pub fn exact_object<'a>(value: &'a Value, keys: &[&str], what: &str) -> &'a Map<String, Value> {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not a JSON object: {value}"));
    let found: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(found, expected, "{what}: fields of {value}");
    object
}

#[track_caller]
fn string_field(object: &Map<String, Value>, key: &str) -> String {
    object[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {object:?}"))
        .to_owned()
}

#[track_caller]
fn bool_field(object: &Map<String, Value>, key: &str) -> bool {
    object[key]
        .as_bool()
        .unwrap_or_else(|| panic!("{key} is not a bool in {object:?}"))
}

/// A 200 from `/v1/wechat/login`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResponse {
    /// The bearer token.
    pub token: String,
    /// `Bearer`
    pub token_type: String,
    /// Seconds.
    pub expires_in: u64,
    /// Opaque user id.
    pub user_id: String,
    /// Whether the user has a unionid.
    pub unionid_linked: bool,
    /// `!unionid_linked`
    pub needs_user_info: bool,
}

impl LoginResponse {
    /// Parse a login answer, which must be a 200 with exactly the contract's fields.
    #[track_caller]
    pub fn parse(reply: &Reply) -> Self {
        let value = reply.ok_json(200, "login");
        let o = exact_object(
            &value,
            &[
                "token",
                "token_type",
                "expires_in",
                "user_id",
                "unionid_linked",
                "needs_user_info",
            ],
            "login",
        );
        let login = Self {
            token: string_field(o, "token"),
            token_type: string_field(o, "token_type"),
            expires_in: o["expires_in"]
                .as_u64()
                .unwrap_or_else(|| panic!("expires_in is not a number: {value}")),
            user_id: string_field(o, "user_id"),
            unionid_linked: bool_field(o, "unionid_linked"),
            needs_user_info: bool_field(o, "needs_user_info"),
        };
        assert_eq!(login.token_type, "Bearer", "{value}");
        assert_eq!(login.needs_user_info, !login.unionid_linked, "{value}");
        assert!(!login.user_id.is_empty(), "{value}");
        login
    }
}

/// A 200 from `/v1/wechat/user-info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfoResponse {
    /// Who the user is now.
    pub user_id: String,
    /// Whether the user has a unionid.
    pub unionid_linked: bool,
    /// Whether this call merged the session's user into the unionid's owner.
    pub merged: bool,
}

impl UserInfoResponse {
    /// Parse a user-info answer, which must be a 200 with exactly the contract's fields.
    #[track_caller]
    pub fn parse(reply: &Reply) -> Self {
        let value = reply.ok_json(200, "user-info");
        let o = exact_object(
            &value,
            &["user_id", "unionid_linked", "merged"],
            "user-info",
        );
        Self {
            user_id: string_field(o, "user_id"),
            unionid_linked: bool_field(o, "unionid_linked"),
            merged: bool_field(o, "merged"),
        }
    }
}

/// A 200 from `/v1/me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// Who the user is.
    pub user_id: String,
    /// Whether the user has a unionid.
    pub unionid_linked: bool,
    /// (appid, openid), sorted.
    pub identities: Vec<(String, String)>,
}

impl Me {
    /// Parse a `/v1/me` answer, which must be a 200 with exactly the contract's fields.
    #[track_caller]
    pub fn parse(reply: &Reply) -> Self {
        let value = reply.ok_json(200, "me");
        let o = exact_object(&value, &["user_id", "unionid_linked", "identities"], "me");
        let mut identities: Vec<(String, String)> = o["identities"]
            .as_array()
            .unwrap_or_else(|| panic!("identities is not an array: {value}"))
            .iter()
            .map(|identity| {
                let i = exact_object(identity, &["appid", "openid"], "me identity");
                (string_field(i, "appid"), string_field(i, "openid"))
            })
            .collect();
        identities.sort();
        Self {
            user_id: string_field(o, "user_id"),
            unionid_linked: bool_field(o, "unionid_linked"),
            identities,
        }
    }
}

/// Sorted (appid, openid) pairs, to compare with [`Me::identities`].
pub fn identities(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = pairs
        .iter()
        .map(|(a, o)| ((*a).to_owned(), (*o).to_owned()))
        .collect();
    all.sort();
    all
}

// ---------------------------------------------------------------------------------------------
// User data
// ---------------------------------------------------------------------------------------------

/// The request body a mini program sends with `wx.getUserInfo`'s answer (all four fields).
pub fn signed_body(info: &UserInfo) -> Value {
    json!({
        "encrypted_data": info.encrypted_data,
        "iv": info.iv,
        "raw_data": info.raw_data,
        "signature": info.signature,
    })
}

/// Only `encrypted_data` and `iv`.
pub fn unsigned_body(info: &UserInfo) -> Value {
    json!({"encrypted_data": info.encrypted_data, "iv": info.iv})
}

/// The iv of forged data: base64 of `0123456789abcdef`.
pub const FORGED_IV: &str = "MDEyMzQ1Njc4OWFiY2RlZg==";

/// `plaintext` encrypted under `session_key` as WeChat would, as a request body.
pub fn forged_body(session_key: &str, plaintext: &[u8]) -> Value {
    let encrypted = wxlink_crypto::encrypt(session_key, FORGED_IV, plaintext)
        .expect("encrypt forged user data");
    json!({"encrypted_data": encrypted, "iv": FORGED_IV})
}

/// The JSON `wx.getUserInfo` encrypts.
pub fn user_plaintext(
    openid: &str,
    unionid: Option<&str>,
    watermark_appid: &str,
    timestamp: i64,
) -> Vec<u8> {
    let mut data = json!({
        "openId": openid,
        "nickName": "forger",
        "gender": 0,
        "language": "",
        "city": "",
        "province": "",
        "country": "",
        "avatarUrl": "",
        "watermark": {"appid": watermark_appid, "timestamp": timestamp},
    });
    if let Some(unionid) = unionid {
        data["unionId"] = json!(unionid);
    }
    data.to_string().into_bytes()
}

/// Now, in Unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
