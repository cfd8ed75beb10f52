//! The Python venv with wechatpy, one for everything here that runs Python: the peer of
//! `cargo xtask bench` and the test that drives the simulator with wechatpy.
//!
//! It is created with `python3 -m venv` and filled from `bench/peer/requirements.txt` (pinned),
//! and reused as long as it holds exactly those requirements.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::run_bounded;

/// The pinned requirements, relative to the workspace root.
pub const REQUIREMENTS: &str = "bench/peer/requirements.txt";

/// The venv's python, after creating `venv` with `python` and installing the requirements
/// of the workspace at `root`, unless it already holds exactly those.
///
/// # Errors
///
/// A message naming the step that failed: reading the requirements, `python -m venv` (python
/// missing) or `pip install` (no network, no wheel).
pub fn ensure(root: &Path, venv: &Path, python: &str) -> Result<PathBuf, String> {
    let venv_python = venv.join("bin").join("python");
    let requirements = root.join(REQUIREMENTS);
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("{}: {e}", requirements.display()))?;
    let stamp = venv.join(".wxlink-bench-requirements");
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
            .arg(&requirements),
        Duration::from_secs(600),
        "pip install",
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(venv_python)
}
