//! `cargo xtask`: the project's own tasks, in plain Rust so they run the same on every machine.
//!
//! - `cargo xtask test` is the whole gate: formatting, clippy, docs, and every test suite, with a
//!   throwaway PostgreSQL for the database tests.
//! - `cargo xtask migrate [--database-url URL]` applies the embedded migrations.
//! - `cargo xtask fuzz --cases N` fuzzes the decryptor (N cases) and request parsing (N/10).
//! - `cargo xtask pg` starts a throwaway PostgreSQL and prints its URL until interrupted.
//! - `cargo xtask schemathesis` runs schemathesis (`st run /openapi.json --checks all`, installed
//!   into target/st-venv) against `wxlink serve --sandbox`: anonymous, with a user's and with a
//!   service token (xtask/schemathesis/).
//! - `cargo xtask bench [--quick]` builds release binaries and runs the performance benchmark
//!   (`bench/`, see docs/performance.md): a table on stdout, `target/bench/results.json`.

use wxlink_tests::pg;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "wxlink's development tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// fmt --check, clippy -D warnings, docs, and all tests (SQLite and a throwaway PostgreSQL).
    Test {
        /// Skip fmt, clippy and doc; run the test suites only.
        #[arg(long)]
        tests_only: bool,
        /// Extra arguments passed to `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Apply the embedded migrations to a database.
    Migrate {
        /// Database URL (sqlite://PATH or postgres://…); defaults to the config's.
        #[arg(long, env = "WXLINK__DATABASE__URL")]
        database_url: Option<String>,
        /// Config file to read the database URL from.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Fuzz the decryptor with N cases and request parsing with N/10, in release mode.
    Fuzz {
        /// How many inputs to run through the decryptor.
        #[arg(long, default_value_t = 1_000_000)]
        cases: u32,
    },
    /// Start a throwaway PostgreSQL on loopback and print its URL; stops on Enter or Ctrl-C.
    Pg,
    /// schemathesis against the sandbox: every check of `st run /openapi.json --checks all`,
    /// bounded in examples and time, with schemathesis installed in target/st-venv.
    Schemathesis {
        /// Examples per operation and phase.
        #[arg(long, default_value_t = 30)]
        max_examples: u32,
    },
    /// The performance benchmark: release builds, wxlink against a wechatpy peer (installed in
    /// target/bench/venv), floors, decryption, scale and memory; prints a table and writes
    /// target/bench/results.json (see docs/performance.md).
    Bench {
        /// Small counts: a smoke run of under two minutes.
        #[arg(long)]
        quick: bool,
        /// Extra arguments for wxlink-bench (after `--`), e.g. `-- --only login,peer`.
        #[arg(last = true)]
        bench_args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Test {
            tests_only,
            cargo_args,
        } => test(tests_only, &cargo_args),
        Task::Migrate {
            database_url,
            config,
        } => migrate(database_url, config),
        Task::Fuzz { cases } => fuzz(cases),
        Task::Pg => run_pg(),
        Task::Bench { quick, bench_args } => bench(quick, &bench_args),
        Task::Schemathesis { max_examples } => schemathesis(max_examples),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(project_root());
    cmd
}

fn run(step: &str, cmd: &mut Command) -> Result {
    eprintln!("xtask: {step}");
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

fn test(tests_only: bool, cargo_args: &[String]) -> Result {
    // The tidy tests read `cargo metadata --offline`, which needs every locked package, also
    // those no build on this platform downloads (e.g. a backend crate behind a cfg).
    run("cargo fetch", cargo().args(["fetch", "--locked"]))?;
    if !tests_only {
        run(
            "cargo fmt --check",
            cargo().args(["fmt", "--all", "--", "--check"]),
        )?;
        run(
            "cargo clippy",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
        // A production build without the simulator must stay buildable and clean.
        run(
            "cargo clippy (wxlink-api without the sandbox)",
            cargo().args([
                "clippy",
                "-p",
                "wxlink-api",
                "--no-default-features",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
        run(
            "cargo doc",
            cargo()
                .args(["doc", "--workspace", "--no-deps", "--quiet"])
                .env("RUSTDOCFLAGS", "-D warnings"),
        )?;
        let external = ["--manifest-path", "external-tests/Cargo.toml"];
        run(
            "cargo fmt --check (external-tests)",
            cargo().arg("fmt").args(external).arg("--check"),
        )?;
        run(
            "cargo clippy (external-tests)",
            cargo().arg("clippy").args(external).args([
                "--target-dir",
                "target",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
    }
    // The black-box tests drive the built binaries, so they must exist before they start.
    run(
        "cargo build (wxlink binary)",
        cargo().args(["build", "-p", "wxlink-api", "--bin", "wxlink"]),
    )?;
    run(
        "cargo build (wxlink-wechat-sim binary)",
        cargo().args([
            "build",
            "-p",
            "wxlink-wechat-sim",
            "--bin",
            "wxlink-wechat-sim",
        ]),
    )?;

    let external = std::env::var("WXLINK_TEST_DATABASE_URL").ok();
    let cluster = match external {
        Some(_) => None,
        None => Some(pg::Cluster::start()?),
    };
    let url = match (&cluster, external) {
        (Some(c), _) => c.url(),
        (None, Some(url)) => url,
        (None, None) => unreachable!("either a cluster or an external URL"),
    };
    eprintln!("xtask: PostgreSQL for tests at {url}");
    let mut cmd = cargo();
    cmd.args(["test", "--workspace"])
        .args(cargo_args)
        .env("WXLINK_TEST_DATABASE_URL", &url)
        .env("WXLINK_BIN", project_root().join("target/debug/wxlink"))
        // tests/tests/sdk.rs drives it with wechatpy (in target/bench/venv).
        .env(
            "WXLINK_SIM_BIN",
            target_dir().join("debug/wxlink-wechat-sim"),
        )
        // Database and SDK tests must not silently skip when the gate runs them.
        .env("WXLINK_REQUIRE_POSTGRES", "1")
        .env("WXLINK_REQUIRE_WECHATPY", "1");
    let outcome = run("cargo test", &mut cmd).and_then(|()| {
        // The crates as another team uses them: a package outside the workspace.
        run(
            "external-tests (wxlink crates used from outside)",
            cargo().args([
                "test",
                "--manifest-path",
                "external-tests/Cargo.toml",
                "--target-dir",
                "target",
                "--locked",
            ]),
        )?;
        miniprogram_client_tests()
    });
    drop(cluster);
    outcome
}

/// The JavaScript client of examples/miniprogram under node's test runner, against the sandbox.
fn miniprogram_client_tests() -> Result {
    let mut node = Command::new("node");
    node.args(["--test", "examples/miniprogram/test/"])
        .current_dir(project_root())
        .env("WXLINK_BIN", project_root().join("target/debug/wxlink"));
    match node.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!(
            "node --test examples/miniprogram/test/ failed ({status})"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
            eprintln!("xtask: SKIP examples/miniprogram: node not found");
            Ok(())
        }
        Err(e) => Err(format!("cannot run node for examples/miniprogram: {e}")),
    }
}

fn migrate(database_url: Option<String>, config: Option<PathBuf>) -> Result {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "-p",
        "wxlink-api",
        "--bin",
        "wxlink",
        "--",
        "migrate",
    ]);
    if let Some(url) = database_url {
        cmd.args(["--database-url", &url]);
    }
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    run("wxlink migrate", &mut cmd)
}

fn fuzz(cases: u32) -> Result {
    let targets = [
        (
            "wxlink-crypto",
            &["--test", "fuzz", "fuzz_decryption"][..],
            cases,
        ),
        (
            "wxlink-api",
            &["--lib", "fuzz_request_parsing"][..],
            (cases / 10).max(1),
        ),
    ];
    for (package, filter, n) in targets {
        run(
            &format!("fuzz {package} ({n} cases)"),
            cargo()
                .args(["test", "--release", "-p", package])
                .args(filter)
                .args(["--", "--ignored", "--nocapture", "--test-threads", "1"])
                .env("WXLINK_FUZZ_CASES", n.to_string()),
        )?;
    }
    Ok(())
}

fn run_pg() -> Result {
    let cluster = pg::Cluster::start()?;
    println!("{}", cluster.url());
    eprintln!("xtask: PostgreSQL running; press Enter to stop it");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(cluster);
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                project_root().join(dir)
            }
        })
        .unwrap_or_else(|| project_root().join("target"))
}

/// `cargo` without the variables `cargo run` gave xtask (`CARGO_PKG_*`, `CARGO_MANIFEST_*`,
/// …): build scripts that watch them (ring's does) would otherwise rebuild every time a release
/// build alternates between `cargo xtask bench` and a plain `cargo build --release`.
fn release_cargo() -> Command {
    let mut cmd = cargo();
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("CARGO_PKG_")
            || key_text.starts_with("CARGO_MANIFEST_")
            || key_text.starts_with("CARGO_CRATE_")
            || key_text.starts_with("CARGO_BIN_")
            || key_text == "CARGO_PRIMARY_PACKAGE"
            || key_text == "OUT_DIR"
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// Builds wxlink, makes target/st-venv with xtask/schemathesis/requirements.txt (again when that
/// file changes), and lets xtask/schemathesis/run.py drive the sandbox and the runs.
fn schemathesis(max_examples: u32) -> Result {
    run(
        "cargo build (wxlink)",
        cargo().args(["build", "-p", "wxlink-api", "--bin", "wxlink"]),
    )?;
    let dir = project_root().join("xtask").join("schemathesis");
    let venv = target_dir().join("st-venv");
    let python = wxlink_tests::venv::ensure_with(&dir.join("requirements.txt"), &venv, "python3")?;
    let bin = venv.join("bin");
    run(
        "schemathesis against the sandbox",
        Command::new(python)
            .arg(dir.join("run.py"))
            .arg("--wxlink")
            .arg(target_dir().join("debug").join("wxlink"))
            .arg("--st")
            .arg(bin.join("st"))
            .arg("--max-examples")
            .arg(max_examples.to_string()),
    )
}

fn bench(quick: bool, bench_args: &[String]) -> Result {
    // Two builds, so the measured wxlink is exactly `cargo build --release -p wxlink-api`
    // (features are not unified with the benchmark's).
    run(
        "cargo build --release (wxlink)",
        release_cargo().args(["build", "--release", "-p", "wxlink-api", "--bin", "wxlink"]),
    )?;
    run(
        "cargo build --release (wxlink-bench)",
        release_cargo().args(["build", "--release", "-p", "wxlink-bench"]),
    )?;
    let release = target_dir().join("release");
    let mut cmd = Command::new(release.join("wxlink-bench"));
    cmd.arg("--wxlink")
        .arg(release.join("wxlink"))
        .arg("--root")
        .arg(project_root())
        .arg("--out")
        .arg(target_dir().join("bench"));
    if quick {
        cmd.arg("--quick");
    }
    cmd.args(bench_args);
    run("wxlink-bench", &mut cmd)
}
