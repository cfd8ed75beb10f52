//! Python venvs, one helper for everything here that runs Python: the venv of the peer of
//! `cargo xtask bench` and of the tests with SDKs nobody here wrote (wechatpy drives the
//! simulator, authlib introspects tokens: [`REQUIREMENTS`], [`sdk_python`]), and schemathesis
//! for `cargo xtask schemathesis`.
//!
//! A venv is created with `python3 -m venv`, filled from a pinned requirements file, and reused
//! as long as it holds exactly those requirements.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::run_bounded;

/// The pinned requirements of the wechatpy venv, relative to the workspace root.
pub const REQUIREMENTS: &str = "bench/peer/requirements.txt";

/// The python of the venv the SDK tests share with the benchmark (`target/bench/venv`, from
/// [`REQUIREMENTS`]; `WXLINK_BENCH_PYTHON` makes it, default `python3`), for the test named
/// `test`. When it cannot be made the test skips with a loud line and `None`, except under CI
/// (`CI`) and `cargo xtask test` (`WXLINK_REQUIRE_WECHATPY`), where that fails the test.
///
/// # Panics
///
/// When the venv cannot be made and it is required; when the running test binary is not in
/// `target/<profile>/deps`.
pub fn sdk_python(test: &str) -> Option<PathBuf> {
    use std::io::Write as _;
    let python = std::env::var("WXLINK_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root");
    let venv = crate::process::profile_dir()
        .parent()
        .expect("target/<profile> has a parent")
        .join("bench")
        .join("venv");
    match ensure(root, &venv, &python) {
        Ok(python) => Some(python),
        Err(e)
            if std::env::var_os("CI").is_none()
                && std::env::var_os("WXLINK_REQUIRE_WECHATPY").is_none() =>
        {
            // Written to stderr directly: libtest captures `eprintln!` of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "SKIP {test}: no SDK venv (wechatpy, authlib): {e}"
            );
            None
        }
        Err(e) => panic!(
            "CI and cargo xtask test must run {test} (WXLINK_REQUIRE_WECHATPY), but the SDK \
             venv cannot be made: {e}"
        ),
    }
}

/// Runs `tests/sdk/<script>` with the venv's `python` and `env`, within `limit`, and returns
/// the JSON object it printed; loopback goes through no proxy of the caller's.
///
/// # Panics
///
/// When the script fails, takes longer than `limit` or prints no JSON (with its output).
#[cfg(feature = "service")]
pub fn run_sdk_script(
    python: &Path,
    script: &str,
    env: &[(&str, &str)],
    limit: Duration,
) -> serde_json::Value {
    let out = tempfile::NamedTempFile::new().expect("a temp file");
    let err = tempfile::NamedTempFile::new().expect("a temp file");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(python);
    cmd.arg(root.join("sdk").join(script))
        .envs(env.iter().copied())
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env("NO_PROXY", "*")
        .stdin(std::process::Stdio::null())
        .stdout(out.reopen().expect("reopen"))
        .stderr(err.reopen().expect("reopen"));
    let outcome = run_bounded(&mut cmd, limit, script);
    let stdout = std::fs::read_to_string(out.path()).unwrap_or_default();
    let stderr = std::fs::read_to_string(err.path()).unwrap_or_default();
    if let Err(e) = outcome {
        panic!("{e}\nstdout: {stdout}\nstderr: {stderr}");
    }
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}\n{stderr}"))
}

/// The venv's python, after creating `venv` with `python` and installing the wechatpy
/// requirements of the workspace at `root`, unless it already holds exactly those.
///
/// # Errors
///
/// As [`ensure_with`].
pub fn ensure(root: &Path, venv: &Path, python: &str) -> Result<PathBuf, String> {
    ensure_with(&root.join(REQUIREMENTS), venv, python)
}

/// The venv's python, after creating `venv` with `python` and installing `requirements`,
/// unless it already holds exactly those.
///
/// # Errors
///
/// A message naming the step that failed: reading the requirements, `python -m venv` (python
/// missing) or `pip install` (no network, no wheel).
pub fn ensure_with(requirements: &Path, venv: &Path, python: &str) -> Result<PathBuf, String> {
    let venv_python = venv.join("bin").join("python");
    let wanted = std::fs::read_to_string(requirements)
        .map_err(|e| format!("{}: {e}", requirements.display()))?;
    let stamp = venv.join(".wxlink-requirements");
    if venv_python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(venv_python);
    }
    if !venv_python.exists() {
        eprintln!("venv: creating {}", venv.display());
        run_bounded(
            Command::new(python).args(["-m", "venv"]).arg(venv),
            Duration::from_secs(120),
            &format!("{python} -m venv"),
        )?;
    }
    eprintln!("venv: installing {} with pip", requirements.display());
    run_bounded(
        Command::new(&venv_python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                "-r",
            ])
            .arg(requirements),
        Duration::from_secs(600),
        "pip install",
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(venv_python)
}
