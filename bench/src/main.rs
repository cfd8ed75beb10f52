//! `wxlink-bench`: the body of `cargo xtask bench`. See docs/performance.md.
//!
//! One run measures, on this machine and in this order: decrypt+verify per call (wxlink-crypto,
//! wechatpy, bare AES), login throughput and latency of wxlink (without and with production
//! limits) and of the wechatpy peer on SQLite and PostgreSQL, the durable-commit floors (SQLite,
//! PostgreSQL) and the upstream floor (the simulator's code2Session alone), p50 login at two
//! user counts, and wxlink's memory idle and at 1,000 open connections. It prints a Markdown table and writes `results.json` and
//! `results.md` under the output directory (default `target/bench/`).
//!
//! Every process it starts runs in its own process group and is stopped by a guard, also on
//! error and on Ctrl-C; the throwaway PostgreSQL is stopped on the way out.

mod db;
mod decrypt;
mod floors;
mod loadgen;
mod login;
mod memory;
mod peer;
mod procs;
mod report;
mod scale;
mod services;
mod stats;
mod syscalls;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::db::Db;
use crate::loadgen::Shape;
use crate::report::Report;
use crate::services::Service;

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
    /// Run only these sections (comma-separated): decrypt, floors, login, limits (wxlink's
    /// login with production rate limits), peer, scale, memory.
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
const SECTIONS: [&str; 7] = [
    "decrypt", "floors", "login", "limits", "peer", "scale", "memory",
];

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
        peer_workers: args.peer_workers.unwrap_or_else(peer::default_peer_workers),
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
        && ["floors", "login", "limits", "peer", "scale"]
            .iter()
            .any(|s| ctx.wants(s));
    // Blocking start and stop; dropped (stopped) after everything else, also on error.
    let cluster = if needs_pg {
        log("starting a throwaway PostgreSQL");
        let cluster = tokio::task::spawn_blocking(wxlink_tests::pg::Cluster::start)
            .await
            .map_err(|e| e.to_string())??;
        let cluster = tokio::task::spawn_blocking(move || {
            if let Err(e) = db::count_statements(&cluster) {
                log(format!("  statements per login not counted: {e}"));
            }
            cluster
        })
        .await
        .map_err(|e| e.to_string())?;
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
        report.decrypt = section(ctx, report, "decrypt", decrypt::section(ctx)).await;
    }
    // Per database, wxlink's run with production limits right after the one without: the
    // ratio of the two is a target, and back to back they share the neighbours' load.
    let runs: Vec<(Service, DbKind)> = [Service::Wxlink, Service::Peer]
        .into_iter()
        .flat_map(|service| {
            kinds.iter().flat_map(move |&kind| match service {
                Service::Wxlink => vec![(Service::Wxlink, kind), (Service::WxlinkLimits, kind)],
                _ => vec![(service, kind)],
            })
        })
        .filter(|(service, _)| {
            ctx.wants(match service {
                Service::Wxlink => "login",
                Service::WxlinkLimits => "limits",
                Service::Peer => "peer",
            })
        })
        .collect();
    for (service, kind) in runs {
        let what = format!("login of {} on {}", service.name(), kind.name());
        if let Some(result) = section(ctx, report, &what, login::run(ctx, service, kind)).await {
            let runs = match service {
                Service::Wxlink => &mut report.wxlink,
                Service::WxlinkLimits => &mut report.wxlink_limits,
                Service::Peer => &mut report.peer,
            };
            runs.set(kind == DbKind::Postgres, result);
        }
    }
    // The floors after the login runs: their tens of thousands of commits leave writeback and a
    // PostgreSQL checkpoint behind, which the login runs paid for when they came first (a full
    // run's logins/s was 15–30 % below the same build's `--only login`, before and after alike).
    if ctx.wants("floors") {
        report.floors = section(ctx, report, "floors", floors::section(ctx, kinds)).await;
    }
    if ctx.wants("scale") {
        for &kind in kinds {
            let what = format!("scale on {}", kind.name());
            let result = section(ctx, report, &what, scale::section(ctx, kind)).await;
            match kind {
                DbKind::Sqlite => report.scale_sqlite = result,
                DbKind::Postgres => report.scale_postgres = result,
            }
        }
    }
    if ctx.wants("memory") {
        log("memory: idle and at 1,000 connections");
        report.memory = section(ctx, report, "memory", memory::section(ctx)).await;
    }
}

// --- the Python peer's venv ---------------------------------------------------------------------

/// The peer's venv at OUT/venv: the workspace's one venv helper (also used by the SDK test).
fn ensure_venv(ctx: &Ctx) -> Result<PathBuf, String> {
    wxlink_tests::venv::ensure(&ctx.root, &ctx.out.join("venv"), &ctx.python)
}

#[cfg(test)]
mod tests {
    use super::*;

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
