//! `wxlink-bench`: the body of `cargo xtask bench`. See docs/performance.md.
//!
//! One run measures, on this machine and in this order: decrypt+verify per call (wxlink-crypto,
//! wechatpy, bare AES), the durable-commit floors (SQLite, PostgreSQL), the upstream floor (the
//! simulator's code2Session alone), login throughput and latency of wxlink and of the wechatpy
//! peer on SQLite and PostgreSQL, p50 login at two user counts, and wxlink's memory idle and at
//! 1,000 open connections. It prints a Markdown table and writes `results.json` and
//! `results.md` under the output directory (default `target/bench/`).
//!
//! Every process it starts runs in its own process group and is stopped by a guard, also on
//! error and on Ctrl-C; the throwaway PostgreSQL is stopped on the way out.

mod db;
mod decrypt;
mod loadgen;
mod procs;
mod report;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::Rng as _;
use wxlink_tests::config::WxlinkToml;
use wxlink_wechat_sim::{SimHandle, Simulator, UnionidPolicy};

use crate::db::Db;
use crate::loadgen::{Req, Shape};
use crate::procs::Proc;
use crate::report::{CommitFloors, LoginResult, MemoryResult, PgPerLogin, Report, ScaleResult};
use crate::stats::LoadSummary;

/// The app every run uses: a mini program whose code2Session tells the unionid when the user
/// has one.
const APPID: &str = "wxbench00000000001";
const SECRET: &str = "bench-app-secret";
/// Concurrent clients of every login run.
const CLIENTS: usize = 64;

#[derive(Debug, Parser)]
#[command(
    name = "wxlink-bench",
    about = "wxlink's performance benchmark (run it through `cargo xtask bench`)"
)]
struct Args {
    /// Small counts for a smoke run (under two minutes).
    #[arg(long)]
    quick: bool,
    /// The wxlink binary to measure (a release build).
    #[arg(long, value_name = "PATH")]
    wxlink: PathBuf,
    /// The workspace root (for bench/peer).
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// Where the venv, databases, logs and results go; default ROOT/target/bench.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The Python that creates the peer's venv.
    #[arg(long, default_value = "python3", env = "WXLINK_BENCH_PYTHON")]
    python: String,
    /// Run only these sections (comma-separated): decrypt, floors, login, peer, scale, memory.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Leave PostgreSQL out.
    #[arg(long)]
    no_postgres: bool,
    /// gunicorn worker processes of the peer; default (2 × CPUs) + 1, gunicorn's advice.
    #[arg(long)]
    peer_workers: Option<usize>,
    /// Threads per gunicorn worker: 1 runs sync workers (the default: on this workload they
    /// beat gthread workers in throughput and tail latency), more runs gthread workers.
    #[arg(long, default_value_t = 1)]
    peer_threads: usize,
}

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    login_total: u64,
    login_known: u64,
    peer_total: u64,
    peer_known: u64,
    upstream_total: u64,
    scale_small: u64,
    scale_large: u64,
    scale_total: u64,
    run_cap: Duration,
    /// The whole benchmark stops starting runs after this long (and cuts a run short at it).
    budget: Duration,
    commit_window: Duration,
    decrypt_round: Duration,
    decrypt_rounds: usize,
    python_decrypt_iterations: u64,
    connections: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                login_total: 2_000,
                login_known: 200,
                peer_total: 600,
                peer_known: 100,
                upstream_total: 4_000,
                scale_small: 1_000,
                scale_large: 10_000,
                scale_total: 1_500,
                run_cap: Duration::from_secs(20),
                budget: Duration::from_secs(100),
                commit_window: Duration::from_millis(700),
                decrypt_round: Duration::from_millis(100),
                decrypt_rounds: 5,
                python_decrypt_iterations: 3_000,
                connections: 1_000,
            }
        } else {
            Self {
                login_total: 20_000,
                login_known: 2_000,
                peer_total: 4_000,
                peer_known: 400,
                upstream_total: 40_000,
                scale_small: 1_000,
                scale_large: 1_000_000,
                scale_total: 10_000,
                run_cap: Duration::from_secs(120),
                budget: Duration::from_secs(12 * 60),
                commit_window: Duration::from_secs(3),
                decrypt_round: Duration::from_millis(500),
                decrypt_rounds: 7,
                python_decrypt_iterations: 20_000,
                connections: 1_000,
            }
        }
    }
}

/// What every section needs.
#[derive(Debug)]
struct Ctx {
    plan: Plan,
    wxlink: PathBuf,
    root: PathBuf,
    out: PathBuf,
    /// The admin URL of the throwaway PostgreSQL, when used.
    pg_admin: Option<String>,
    /// The venv's python, once set up.
    venv_python: Option<PathBuf>,
    python: String,
    only: Vec<String>,
    peer_workers: usize,
    peer_threads: usize,
    started: Instant,
}

impl Ctx {
    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }

    /// Time left of the whole run's budget.
    fn time_left(&self) -> Duration {
        (self.started + self.plan.budget).saturating_duration_since(Instant::now())
    }

    /// Fails when the budget is spent, so that no further run starts.
    fn check_time(&self, what: &str) -> Result<(), String> {
        if self.time_left().is_zero() {
            Err(format!(
                "out of time ({:?} budget) before {what}",
                self.plan.budget
            ))
        } else {
            Ok(())
        }
    }

    /// A load run of `total` requests from the clients, capped by the run cap and the budget.
    fn shape(&self, total: u64) -> Shape {
        Shape {
            workers: CLIENTS,
            total,
            time_cap: self.plan.run_cap.min(self.time_left()),
            request_timeout: Duration::from_secs(10),
        }
    }

    fn run_dir(&self, name: &str) -> Result<PathBuf, String> {
        let dir = self.out.join("run").join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("clean {}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        Ok(dir)
    }

    /// A fresh database of `kind` named `name`.
    fn fresh_db(&self, kind: DbKind, name: &str) -> Result<Db, String> {
        match kind {
            DbKind::Sqlite => {
                let dir = self.run_dir(&format!("db-{name}"))?;
                let path = std::path::absolute(dir.join(format!("{name}.db")))
                    .map_err(|e| e.to_string())?;
                Ok(Db::Sqlite(path.to_string_lossy().into_owned()))
            }
            DbKind::Postgres => {
                let admin = self
                    .pg_admin
                    .as_deref()
                    .ok_or("PostgreSQL is not running")?;
                db::fresh_pg_database(admin, &format!("bench_{name}")).map(Db::Postgres)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    fn name(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wxlink-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = run(args) => result,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
        }
    });
    // Whatever is still running in the background (simulators, connections) ends here.
    runtime.shutdown_timeout(Duration::from_secs(3));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wxlink-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn log(message: impl AsRef<str>) {
    eprintln!("bench: {}", message.as_ref());
}

/// The sections `--only` may name.
const SECTIONS: [&str; 6] = ["decrypt", "floors", "login", "peer", "scale", "memory"];

async fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    if let Some(unknown) = args.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
        return Err(format!(
            "--only: no section {unknown:?}; the sections are {}",
            SECTIONS.join(", ")
        ));
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.root.join("target").join("bench"));
    std::fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let out = std::path::absolute(&out).map_err(|e| e.to_string())?;
    let wxlink = std::path::absolute(&args.wxlink).map_err(|e| e.to_string())?;
    if !wxlink.exists() {
        return Err(format!("no wxlink binary at {}", wxlink.display()));
    }
    let mut ctx = Ctx {
        plan: Plan::new(args.quick),
        wxlink,
        root: std::path::absolute(&args.root).map_err(|e| e.to_string())?,
        out,
        pg_admin: None,
        venv_python: None,
        python: args.python.clone(),
        only: args.only.clone(),
        peer_workers: args.peer_workers.unwrap_or_else(default_peer_workers),
        peer_threads: args.peer_threads.max(1),
        started,
    };
    let mut report = Report::new(args.quick, procs::load_average());
    report.environment.peer_server = if ctx.peer_threads > 1 {
        format!(
            "gunicorn, {} gthread workers × {} threads",
            ctx.peer_workers, ctx.peer_threads
        )
    } else {
        format!("gunicorn, {} sync workers", ctx.peer_workers)
    };

    let needs_python = ctx.wants("decrypt") || ctx.wants("peer");
    if needs_python {
        ctx.venv_python = Some(ensure_venv(&ctx)?);
    }
    let needs_pg = !args.no_postgres
        && (ctx.wants("floors") || ctx.wants("login") || ctx.wants("peer") || ctx.wants("scale"));
    // Blocking start and stop; dropped (stopped) after everything else, also on error.
    let cluster = if needs_pg {
        log("starting a throwaway PostgreSQL");
        let cluster = tokio::task::spawn_blocking(wxlink_tests::pg::Cluster::start)
            .await
            .map_err(|e| e.to_string())??;
        ctx.pg_admin = Some(cluster.url());
        Some(cluster)
    } else {
        None
    };
    let kinds: Vec<DbKind> = if ctx.pg_admin.is_some() {
        vec![DbKind::Sqlite, DbKind::Postgres]
    } else {
        vec![DbKind::Sqlite]
    };

    sections(&ctx, &kinds, &mut report).await;
    report.finish(started.elapsed(), procs::load_average());
    if let Some(cluster) = cluster {
        log("stopping PostgreSQL");
        let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
    }

    let markdown = report.markdown();
    println!("{markdown}");
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(ctx.out.join("results.json"), json).map_err(|e| e.to_string())?;
    std::fs::write(ctx.out.join("results.md"), &markdown).map_err(|e| e.to_string())?;
    log(format!(
        "results in {} and results.md ({:.0} s)",
        ctx.out.join("results.json").display(),
        started.elapsed().as_secs_f64()
    ));
    if report.failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} section(s) failed or were skipped: {}",
            report.failures.len(),
            report.failures.join("; ")
        ))
    }
}

/// Runs a section unless the budget is spent; a failure is logged and recorded, and the
/// benchmark goes on with the next section.
async fn section<T>(
    ctx: &Ctx,
    report: &mut Report,
    what: &str,
    run: impl std::future::Future<Output = Result<T, String>>,
) -> Option<T> {
    let outcome = match ctx.check_time(what) {
        Ok(()) => run.await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(value) => Some(value),
        Err(e) => {
            log(format!("{what} failed: {e}"));
            report.failures.push(format!("{what}: {e}"));
            None
        }
    }
}

async fn sections(ctx: &Ctx, kinds: &[DbKind], report: &mut Report) {
    if ctx.wants("decrypt") {
        log("decrypt+verify per call");
        report.decrypt = section(ctx, report, "decrypt", decrypt_section(ctx)).await;
    }
    if ctx.wants("floors") {
        report.floors = section(ctx, report, "floors", floors_section(ctx, kinds)).await;
    }
    for (wanted, service) in [("login", Service::Wxlink), ("peer", Service::Peer)] {
        if !ctx.wants(wanted) {
            continue;
        }
        for &kind in kinds {
            let what = format!("login of {} on {}", service.name(), kind.name());
            if let Some(result) = section(ctx, report, &what, login_run(ctx, service, kind)).await {
                let runs = match service {
                    Service::Wxlink => &mut report.wxlink,
                    Service::Peer => &mut report.peer,
                };
                runs.set(kind == DbKind::Postgres, result);
            }
        }
    }
    if ctx.wants("scale") {
        for &kind in kinds {
            let what = format!("scale on {}", kind.name());
            let result = section(ctx, report, &what, scale_section(ctx, kind)).await;
            match kind {
                DbKind::Sqlite => report.scale_sqlite = result,
                DbKind::Postgres => report.scale_postgres = result,
            }
        }
    }
    if ctx.wants("memory") {
        log("memory: idle and at 1,000 connections");
        report.memory = section(ctx, report, "memory", memory_section(ctx)).await;
    }
}

// --- the Python peer's venv ---------------------------------------------------------------------

/// The peer's venv at OUT/venv: the workspace's one venv helper (also used by the SDK test).
fn ensure_venv(ctx: &Ctx) -> Result<PathBuf, String> {
    wxlink_tests::venv::ensure(&ctx.root, &ctx.out.join("venv"), &ctx.python)
}

// --- decrypt ------------------------------------------------------------------------------------

async fn decrypt_section(ctx: &Ctx) -> Result<report::DecryptFigures, String> {
    let sim = start_sim().await?;
    let openid = "oDecryptBenchUser000000000001";
    let login = sim
        .login(APPID, openid, Some("uDecryptBenchUnion0000000001"))
        .map_err(|e| e.to_string())?;
    let info = sim.user_info(APPID, openid).map_err(|e| e.to_string())?;
    sim.shutdown().await;
    let sample = decrypt::Sample {
        session_key: login.session_key,
        iv: info.iv,
        encrypted_data: info.encrypted_data,
        raw_data: info.raw_data,
        signature: info.signature,
        appid: APPID.to_owned(),
    };
    let ciphertext_bytes = wxlink_crypto::decode_base64(&sample.encrypted_data)
        .map_err(|e| e.to_string())?
        .len();
    let now = unix_now();
    let plan = ctx.plan;
    let rust_sample = sample.clone();
    let rust = tokio::task::spawn_blocking(move || {
        decrypt::measure_rust(&rust_sample, now, plan.decrypt_round, plan.decrypt_rounds)
    })
    .await
    .map_err(|e| e.to_string())??;
    let python = ctx.venv_python.clone().ok_or("no venv")?;
    let script = ctx.root.join("bench").join("peer").join("decrypt_bench.py");
    let wechatpy_ns = tokio::task::spawn_blocking(move || {
        decrypt::measure_wechatpy(
            &python,
            &script,
            &sample,
            plan.python_decrypt_iterations,
            plan.decrypt_rounds,
        )
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(decrypt::DecryptFigures {
        ciphertext_bytes,
        wxlink_ns: rust.wxlink,
        wxlink_decrypt_only_ns: rust.wxlink_decrypt_only,
        lean_ns: rust.lean,
        wechatpy_ns,
        bare_aes_ns: rust.bare_aes,
        bare_aes_json_ns: rust.bare_aes_json,
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// --- floors -------------------------------------------------------------------------------------

async fn floors_section(ctx: &Ctx, kinds: &[DbKind]) -> Result<CommitFloors, String> {
    let mut floors = CommitFloors::default();
    for &kind in kinds {
        let db = ctx.fresh_db(kind, "floor")?;
        // SQLite runs one writer at a time whatever the count; PostgreSQL commits concurrent
        // writers' WAL flushes together (group commit), so more writers help until the disk
        // or the CPUs are saturated.
        let writer_counts: &[usize] = match kind {
            DbKind::Sqlite => &[1, 4],
            DbKind::Postgres => &[1, 16, 64],
        };
        for &writers in writer_counts {
            log(format!(
                "durable-commit floor: {} with {writers} writer(s)",
                kind.name()
            ));
            let db = db.clone();
            let window = ctx.plan.commit_window;
            let run = tokio::task::spawn_blocking(move || {
                db::commit_floor(&db, writers, window, 2_000_000)
            })
            .await
            .map_err(|e| e.to_string())??;
            floors.push(kind == DbKind::Postgres, run);
        }
    }
    log("upstream floor: code2Session against the simulator alone");
    let sim = start_sim().await?;
    let make = fresh_code_requests(&sim, "f", ctx.plan.login_known, |code| {
        Req::get(format!(
            "/sns/jscode2session?appid={APPID}&secret={SECRET}&js_code={code}\
             &grant_type=authorization_code"
        ))
    });
    let outcome = loadgen::run(
        sim.addr(),
        ctx.shape(ctx.plan.upstream_total),
        make,
        loadgen::check_code2session,
    )
    .await;
    sim.shutdown().await;
    floors.upstream = Some(outcome.summary());
    Ok(floors)
}

// --- login runs ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Wxlink,
    Peer,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Wxlink => "wxlink",
            Service::Peer => "peer",
        }
    }
}

async fn start_sim() -> Result<SimHandle, String> {
    Simulator::builder()
        .app(APPID, SECRET, UnionidPolicy::Always)
        .start()
        .await
        .map_err(|e| format!("simulator: {e}"))
}

/// A WeChat-like id: `prefix` and 27 characters that look random (WeChat's ids are random,
/// and sequential ones would pile every insert onto one index page, which makes PostgreSQL's
/// serializable transactions conflict far more than real traffic does).
fn random_looking_id(prefix: char, seed: u64) -> String {
    format!(
        "{prefix}{:016x}{:011x}",
        db::mix(seed),
        db::mix(seed ^ 0x5bd1_e995) >> 20
    )
}

/// The known user number `k`: half of them have a unionid.
fn known_user(k: u64) -> (String, Option<String>) {
    let seed = k.wrapping_mul(4) ^ 0x6b6e_6f77_6e00_0000;
    (
        random_looking_id('o', seed),
        k.is_multiple_of(2)
            .then(|| random_looking_id('u', seed ^ 1)),
    )
}

/// The new user of request `i` in run `tag`: half of them have a unionid.
fn new_user(tag: &str, i: u64) -> (String, Option<String>) {
    let salt = tag.bytes().fold(0x6e65_7700_0000_0000_u64, |acc, b| {
        db::mix(acc ^ u64::from(b))
    });
    let seed = i.wrapping_mul(4) ^ salt;
    (
        random_looking_id('o', seed),
        (i / 2)
            .is_multiple_of(2)
            .then(|| random_looking_id('u', seed ^ 1)),
    )
}

/// Who request `i` of a measured run logs in: even requests a known user (of `known`), odd ones
/// a new user; half of each have a unionid.
fn mixed_user(tag: &str, known: u64, i: u64) -> (String, Option<String>) {
    if i.is_multiple_of(2) {
        known_user((i / 2) % known.max(1))
    } else {
        new_user(tag, i)
    }
}

/// Requests carrying fresh codes of the mixed users, built by `request` from the code.
fn fresh_code_requests(
    sim: &SimHandle,
    tag: &'static str,
    known: u64,
    request: fn(&str) -> Req,
) -> Arc<loadgen::MakeReq> {
    let sim = sim.sim().clone();
    Arc::new(move |i| {
        let (openid, unionid) = mixed_user(tag, known, i);
        let login = sim
            .login(APPID, &openid, unionid.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(request(&login.code))
    })
}

fn login_request(code: &str) -> Req {
    Req::post_json(
        "/v1/wechat/login",
        format!(r#"{{"appid":"{APPID}","code":"{code}"}}"#),
    )
}

/// A running service under test.
struct Running {
    guard: Proc,
    addr: SocketAddr,
}

async fn start_service(
    ctx: &Ctx,
    service: Service,
    name: &str,
    db: &Db,
    api_base: &str,
) -> Result<Running, String> {
    match service {
        Service::Wxlink => start_wxlink(ctx, name, db, api_base).await,
        Service::Peer => start_peer(ctx, name, db, api_base).await,
    }
}

fn wxlink_config(port: u16, db: &Db, api_base: &str, data_key: &str) -> String {
    WxlinkToml::new(&format!("127.0.0.1:{port}"), &db.wxlink_url(), api_base)
        .value("server", "shutdown_grace_ms", 1000)
        .value("database", "max_connections", 16)
        .string("security", "data_key", data_key)
        .value("rate_limit", "enabled", false)
        .app(APPID, SECRET)
        .to_string()
}

/// One data key for the whole run: a database remembers the key it was first served with and
/// refuses a node without it, and every run restarts wxlink on its database.
fn data_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        use base64::Engine as _;
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key);
        base64::engine::general_purpose::STANDARD.encode(key)
    })
}

/// Removes WXLINK__* overrides the caller's environment may carry, so the config file rules.
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WXLINK__") {
            cmd.env_remove(key);
        }
    }
}

async fn start_wxlink(ctx: &Ctx, name: &str, db: &Db, api_base: &str) -> Result<Running, String> {
    let dir = ctx.run_dir(&format!("wxlink-{name}"))?;
    let port = procs::free_port()?;
    let config = dir.join("wxlink.toml");
    std::fs::write(&config, wxlink_config(port, db, api_base, data_key()))
        .map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&ctx.wxlink);
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .current_dir(&dir);
    clean_env(&mut cmd);
    let mut guard = Proc::spawn_group_logged(
        &mut cmd,
        &format!("wxlink ({name})"),
        &dir.join("wxlink.log"),
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    procs::wait_ready(&mut guard, addr, "/healthz", Duration::from_secs(60)).await?;
    Ok(Running { guard, addr })
}

/// gunicorn workers for this machine: (2 × CPUs) + 1, as gunicorn's documentation
/// recommends.
fn default_peer_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from) * 2 + 1
}

async fn start_peer(ctx: &Ctx, name: &str, db: &Db, api_base: &str) -> Result<Running, String> {
    let python = ctx.venv_python.clone().ok_or("no venv")?;
    let dir = ctx.run_dir(&format!("peer-{name}"))?;
    let peer_dir = ctx.root.join("bench").join("peer");
    let port = procs::free_port()?;
    let apps = serde_json::json!({ APPID: SECRET }).to_string();
    let env = [
        ("PEER_WECHAT_API_BASE", api_base.to_owned()),
        ("PEER_DATABASE_URL", db.wxlink_url()),
        ("PEER_APPS", apps),
        // No __pycache__ in the source tree.
        ("PYTHONDONTWRITEBYTECODE", "1".to_owned()),
    ];
    let mut init = Command::new(&python);
    init.arg(peer_dir.join("app.py"))
        .arg("--init-db")
        .envs(env.iter().map(|(k, v)| (k, v)));
    wxlink_tests::run_bounded(&mut init, Duration::from_secs(60), "peer --init-db")?;
    let gunicorn = python.with_file_name("gunicorn");
    let mut cmd = Command::new(gunicorn);
    cmd.arg("app:app")
        .arg("--chdir")
        .arg(&peer_dir)
        .args(["--workers", &ctx.peer_workers.to_string()]);
    if ctx.peer_threads > 1 {
        // gthread workers keep connections alive; sync workers close each one.
        cmd.args(["--worker-class", "gthread"])
            .args(["--threads", &ctx.peer_threads.to_string()]);
    } else {
        cmd.args(["--worker-class", "sync"]);
    }
    cmd.args(["--bind", &format!("127.0.0.1:{port}")])
        .args([
            "--backlog",
            "2048",
            "--keep-alive",
            "5",
            "--graceful-timeout",
            "2",
        ])
        .args(["--log-level", "warning"])
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (k, v)));
    let mut guard = Proc::spawn_group_logged(
        &mut cmd,
        &format!("peer ({name})"),
        &dir.join("gunicorn.log"),
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    procs::wait_ready(&mut guard, addr, "/healthz", Duration::from_secs(60)).await?;
    Ok(Running { guard, addr })
}

async fn login_run(ctx: &Ctx, service: Service, kind: DbKind) -> Result<LoginResult, String> {
    let name = format!("{}-{}", service.name(), kind.name());
    let (total, known) = match service {
        Service::Wxlink => (ctx.plan.login_total, ctx.plan.login_known),
        Service::Peer => (ctx.plan.peer_total, ctx.plan.peer_known),
    };
    log(format!(
        "login: {} on {}, {CLIENTS} clients, {total} requests after {known} warm-up logins",
        service.name(),
        kind.name()
    ));
    let db = ctx.fresh_db(kind, &format!("login_{}", service.name()))?;
    let sim = start_sim().await?;
    let mut running = start_service(ctx, service, &name, &db, &sim.base_url()).await?;

    // Warm-up: the known users log in once (so they exist), not measured.
    let warm_sim = sim.sim().clone();
    let warm: Arc<loadgen::MakeReq> = Arc::new(move |k| {
        let (openid, unionid) = known_user(k);
        let login = warm_sim
            .login(APPID, &openid, unionid.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(login_request(&login.code))
    });
    let warmup = loadgen::run(running.addr, ctx.shape(known), warm, loadgen::check_login).await;
    if warmup.errors > 0 {
        log(format!(
            "  {} of {known} warm-up logins failed, e.g. {:?}",
            warmup.errors,
            warmup.first_errors.first()
        ));
    }
    let tag = match service {
        Service::Wxlink => "w",
        Service::Peer => "p",
    };
    if service == Service::Wxlink {
        // A fresh process for the measured run: its CPU time is then the run's alone, and the
        // warm-up's database connections are closed, so PostgreSQL has counted their commits.
        running.guard.stop(Duration::from_secs(5));
        running = start_service(ctx, service, &name, &db, &sim.base_url()).await?;
    }
    let pg_before = match (&db, service) {
        (Db::Postgres(url), Service::Wxlink) => Some(db::pg_counters(url)?),
        _ => None,
    };
    let cpu_before = procs::group_cpu_us(running.guard.id());
    let make = fresh_code_requests(&sim, tag, known, login_request);
    let outcome = loadgen::run(running.addr, ctx.shape(total), make, loadgen::check_login).await;
    running.guard.check_running()?;
    let cpu_after = procs::group_cpu_us(running.guard.id());
    let logins = outcome.summary().ok.max(1) as f64;
    let cpu_us_per_login = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) as f64 / logins),
        _ => None,
    };
    let (peak_rss_kib, rss_kib) = match service {
        Service::Wxlink => (
            procs::status_kib(running.guard.id(), "VmHWM"),
            procs::status_kib(running.guard.id(), "VmRSS"),
        ),
        Service::Peer => (None, procs::group_rss_kib(running.guard.id())),
    };
    running.guard.stop(Duration::from_secs(5));
    sim.shutdown().await;
    // After the stop: the closed connections have reported their commits.
    let postgres_per_login = match (&db, pg_before) {
        (Db::Postgres(url), Some(before)) => {
            let after = db::pg_counters(url)?;
            let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / logins;
            Some(PgPerLogin {
                commits: per(after.commits, before.commits),
                rollbacks: per(after.rollbacks, before.rollbacks),
                wal_bytes: per(after.wal_bytes, before.wal_bytes),
                server_cpu_us: per(after.server_cpu_us, before.server_cpu_us),
            })
        }
        _ => None,
    };
    let summary = outcome.summary();
    log(format!(
        "  {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, {} errors {:?}, CPU {:.0} µs/login {:?}",
        summary.per_sec,
        summary.p50_ms,
        summary.p99_ms,
        summary.errors,
        summary.first_errors,
        cpu_us_per_login.unwrap_or(f64::NAN),
        postgres_per_login
    ));
    Ok(LoginResult {
        load: summary,
        warmup_errors: warmup.errors,
        peak_rss_kib,
        rss_kib,
        cpu_us_per_login,
        postgres_per_login,
    })
}

// --- scale --------------------------------------------------------------------------------------

async fn scale_section(ctx: &Ctx, kind: DbKind) -> Result<ScaleResult, String> {
    let db = ctx.fresh_db(kind, "scale")?;
    log(format!("scale on {}: migrating", kind.name()));
    let migrate_dir = ctx.run_dir(&format!("migrate-{}", kind.name()))?;
    let mut migrate = Command::new(&ctx.wxlink);
    let migrate_log = std::fs::File::create(migrate_dir.join("migrate.log"))
        .map_err(|e| format!("migrate log: {e}"))?;
    migrate
        .args(["migrate", "--database-url", &db.wxlink_url()])
        .current_dir(&migrate_dir)
        .stdout(std::process::Stdio::null())
        .stderr(migrate_log);
    clean_env(&mut migrate);
    wxlink_tests::run_bounded(&mut migrate, Duration::from_secs(60), "wxlink migrate")?;

    let now = unix_now();
    let mut points = Vec::new();
    let mut seeded = 0;
    for target in [ctx.plan.scale_small, ctx.plan.scale_large] {
        log(format!(
            "scale on {}: seeding users {seeded}..{target}",
            kind.name()
        ));
        let seed_db = db.clone();
        let from = seeded;
        let took =
            tokio::task::spawn_blocking(move || db::seed_users(&seed_db, APPID, from, target, now))
                .await
                .map_err(|e| e.to_string())??;
        log(format!("  seeded in {:.1} s", took.as_secs_f64()));
        seeded = target;
        let load = scale_point(ctx, kind, &db, target).await?;
        points.push(report::ScalePoint {
            users: target,
            seed_s: took.as_secs_f64(),
            load,
        });
    }
    Ok(ScaleResult { points })
}

/// Known-user logins (users drawn at random among the `users` seeded) against a fresh wxlink.
async fn scale_point(ctx: &Ctx, kind: DbKind, db: &Db, users: u64) -> Result<LoadSummary, String> {
    let name = format!("scale-{}-{users}", kind.name());
    let sim = start_sim().await?;
    let mut running = start_service(ctx, Service::Wxlink, &name, db, &sim.base_url()).await?;
    let draw_sim = sim.sim().clone();
    let salt = users;
    let make: Arc<loadgen::MakeReq> = Arc::new(move |i| {
        let n = db::mix(i ^ salt.rotate_left(32)) % users.max(1);
        let (_, openid, unionid) = db::seeded_user(n);
        let login = draw_sim
            .login(APPID, &openid, unionid.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(login_request(&login.code))
    });
    let warm = (ctx.plan.scale_total / 10).max(100);
    let warmup = loadgen::run(
        running.addr,
        ctx.shape(warm),
        Arc::clone(&make),
        loadgen::check_login,
    )
    .await;
    if warmup.errors > 0 {
        log(format!(
            "  {} of {warm} warm-up logins failed, e.g. {:?}",
            warmup.errors,
            warmup.first_errors.first()
        ));
    }
    // Request numbers after the warm-up's, so other users are drawn.
    let offset = warm;
    let measured: Arc<loadgen::MakeReq> = Arc::new(move |i| make(i + offset));
    let outcome = loadgen::run(
        running.addr,
        ctx.shape(ctx.plan.scale_total),
        measured,
        loadgen::check_login,
    )
    .await;
    running.guard.check_running()?;
    running.guard.stop(Duration::from_secs(5));
    sim.shutdown().await;
    let summary = outcome.summary();
    log(format!(
        "  {users} users: {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, {} errors {:?}",
        summary.per_sec, summary.p50_ms, summary.p99_ms, summary.errors, summary.first_errors
    ));
    Ok(summary)
}

// --- memory -------------------------------------------------------------------------------------

async fn memory_section(ctx: &Ctx) -> Result<MemoryResult, String> {
    let db = ctx.fresh_db(DbKind::Sqlite, "memory")?;
    let sim = start_sim().await?;
    let mut running = start_service(ctx, Service::Wxlink, "memory", &db, &sim.base_url()).await?;
    let pid = running.guard.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kib = procs::status_kib(pid, "VmRSS").ok_or("cannot read wxlink's VmRSS")?;

    // Open the connections, 50 at a time; each does one request and stays open.
    let addr = running.addr;
    let mut open = Vec::with_capacity(ctx.plan.connections);
    let mut failed = 0usize;
    let mut first_error = None;
    while open.len() + failed < ctx.plan.connections {
        let batch = (ctx.plan.connections - open.len() - failed).min(50);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..batch {
            tasks.spawn(async move {
                let mut conn = None;
                let answer = tokio::time::timeout(
                    Duration::from_secs(10),
                    loadgen::send(&mut conn, addr, &Req::get("/healthz")),
                )
                .await;
                match answer {
                    Ok(Ok((status, _))) if status.is_success() => conn.ok_or("closed".to_owned()),
                    Ok(Ok((status, _))) => Err(format!("healthz answered {status}")),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("healthz timed out".to_owned()),
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(conn)) => open.push(conn),
                Ok(Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still_open = open.iter().filter(|c| !c.is_closed()).count();
    let connections_kib = procs::status_kib(pid, "VmRSS").ok_or("cannot read wxlink's VmRSS")?;
    drop(open);
    running.guard.check_running()?;
    running.guard.stop(Duration::from_secs(5));
    sim.shutdown().await;
    if let Some(e) = first_error {
        log(format!("  {failed} connections failed, e.g.: {e}"));
    }
    log(format!(
        "  idle {:.1} MiB, {still_open} connections {:.1} MiB",
        idle_kib as f64 / 1024.0,
        connections_kib as f64 / 1024.0
    ));
    Ok(MemoryResult {
        idle_kib,
        connections: still_open,
        connections_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_half_known_half_new_and_half_with_unionid() {
        let users: Vec<_> = (0..1000).map(|i| mixed_user("t", 100, i)).collect();
        let known_ids: std::collections::HashSet<_> = (0..100).map(|k| known_user(k).0).collect();
        let known = users.iter().filter(|(o, _)| known_ids.contains(o)).count();
        let with_unionid = users.iter().filter(|(_, u)| u.is_some()).count();
        assert_eq!(known, 500);
        assert_eq!(with_unionid, 500);
        let new_with_unionid = users
            .iter()
            .filter(|(o, u)| !known_ids.contains(o) && u.is_some())
            .count();
        assert_eq!(new_with_unionid, 250);
        // New users are new: no openid repeats among them, nor across runs.
        let new: std::collections::HashSet<_> = users
            .iter()
            .filter(|(o, _)| !known_ids.contains(o))
            .map(|(o, _)| o.clone())
            .collect();
        assert_eq!(new.len(), 500);
        assert!((0..1000).all(|i| !new.contains(&new_user("u", i).0)));
    }

    #[test]
    fn ids_are_valid_for_wxlink_and_the_simulator() {
        let (openid, unionid) = new_user("w", 123_456);
        for id in [openid, unionid.unwrap_or_default()] {
            assert_eq!(id.len(), 28, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert_eq!(APPID.len(), 18);
        assert!(APPID.starts_with("wx") && APPID.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn the_config_names_every_key_wxlink_needs() {
        let config = wxlink_config(
            4242,
            &Db::Sqlite("/tmp/x.db".into()),
            "http://127.0.0.1:1",
            "a2V5",
        );
        for needle in [
            "bind = \"127.0.0.1:4242\"",
            "url = \"sqlite:///tmp/x.db\"",
            "api_base = \"http://127.0.0.1:1\"",
            "data_key = \"a2V5\"",
            "enabled = false",
            "[apps.wxbench00000000001]",
        ] {
            assert!(config.contains(needle), "{needle} in {config}");
        }
    }

    #[test]
    fn the_cli_parses_quick_and_sections() {
        let args = Args::try_parse_from([
            "wxlink-bench",
            "--quick",
            "--wxlink",
            "target/release/wxlink",
            "--root",
            ".",
            "--only",
            "decrypt,memory",
        ])
        .expect("parses");
        assert!(args.quick);
        assert_eq!(args.only, ["decrypt", "memory"]);
        assert!(Args::try_parse_from(["wxlink-bench", "--quick"]).is_err());
    }
}
