//! Python venvs, one helper for everything here that runs Python: the wechatpy venv of the peer
//! of `cargo xtask bench` and of the test that drives the simulator with wechatpy
//! ([`REQUIREMENTS`]), and schemathesis for `cargo xtask schemathesis`.
//!
//! A venv is created with `python3 -m venv`, filled from a pinned requirements file, and reused
//! as long as it holds exactly those requirements.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::run_bounded;

/// The pinned requirements of the wechatpy venv, relative to the workspace root.
pub const REQUIREMENTS: &str = "bench/peer/requirements.txt";

/// The venv's python, after creating `venv` with `python` and installing the wechatpy
/// requirements of the workspace at `root`, unless it already holds exactly those.
///
/// # Errors
///
/// As [`ensure_with`].
pub fn ensure(root: &Path, venv: &Path, python: &str) -> Result<PathBuf, String> {
    ensure_with(&root.join(REQUIREMENTS), venv, python)
}

/// The wechatpy venv's python for a test binary (`target/bench/venv`, the benchmark's, made
/// with `WXLINK_BENCH_PYTHON` or `python3`), or `None` after a loud SKIP line naming `test`
/// when it cannot be made outside CI and outside `cargo xtask test` (which sets
/// `WXLINK_REQUIRE_WECHATPY`); there it panics.
pub fn for_test(test: &str) -> Option<PathBuf> {
    use std::io::Write as _;
    let python = std::env::var("WXLINK_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    // The test binary is target/<profile>/deps/<name>.
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("a test binary lives in target/<profile>/deps");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root");
    match ensure(root, &target.join("bench").join("venv"), &python) {
        Ok(python) => Some(python),
        Err(e)
            if std::env::var_os("CI").is_none()
                && std::env::var_os("WXLINK_REQUIRE_WECHATPY").is_none() =>
        {
            // Written to stderr directly: libtest captures `eprintln!` of a passing test.
            let _ = writeln!(std::io::stderr(), "SKIP {test}: no Python venv: {e}");
            None
        }
        Err(e) => panic!(
            "CI and cargo xtask test must run {test} (WXLINK_REQUIRE_WECHATPY), but the venv \
             cannot be made: {e}"
        ),
    }
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
