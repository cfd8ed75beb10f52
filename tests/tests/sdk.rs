//! The simulator under an SDK nobody here wrote: wechatpy (from PyPI, in the venv the benchmark
//! uses) drives the `wxlink-wechat-sim` binary through code2Session, a reused code, the classic
//! access token and checkSessionKey, so that "point your SDK at it" is checked, not assumed.
//!
//! Without Python or PyPI the test skips with a loud line, except under CI (`CI` set), where it
//! fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wxlink_tests::process::Proc;

const APPID: &str = "wxsdk0000000000001";
const SECRET: &str = "sdk-secret";
/// A generous bound for one run of the script (it makes nine calls on loopback).
const SCRIPT_LIMIT: Duration = Duration::from_secs(60);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// The target directory's profile folder (`target/debug`), from this test binary's path
/// (`target/debug/deps/sdk-…`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The simulator binary: `WXLINK_SIM_BIN`, else the one beside this test's profile.
fn sim_bin() -> PathBuf {
    let path = std::env::var_os("WXLINK_SIM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| profile_dir().join("wxlink-wechat-sim"));
    assert!(
        path.is_file(),
        "no simulator binary at {}: build it first: cargo build -p wxlink-wechat-sim \
         (cargo xtask test does)",
        path.display()
    );
    path
}

fn venv_python() -> Option<PathBuf> {
    wxlink_tests::venv::for_test("sdk::wechatpy_drives_the_simulator_binary")
}

/// The simulator process (its guard kills it on drop) and the base URL it printed.
struct SimProcess {
    _process: Proc,
    base: String,
}

impl SimProcess {
    fn start() -> Self {
        let mut cmd = Command::new(sim_bin());
        cmd.args(["--bind", "127.0.0.1:0", "--app"])
            .arg(format!("{APPID}:{SECRET}:always"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let process = Proc::spawn(cmd, "wxlink-wechat-sim");
        let base = process
            .next_stdout_line(Instant::now() + Duration::from_secs(30))
            .expect("the simulator prints its base URL")
            .trim()
            .to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Self {
            _process: process,
            base,
        }
    }
}

async fn control(method: reqwest::Method, url: String, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the control API answers");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("a JSON body")
}

/// Runs the wechatpy script against the simulator and returns what it printed.
fn run_script(python: &Path, base: &str, code: &str) -> Value {
    let out = tempfile::NamedTempFile::new().expect("a temp file");
    let err = tempfile::NamedTempFile::new().expect("a temp file");
    let mut cmd = Command::new(python);
    cmd.arg(workspace_root().join("tests/sdk/wechatpy_flow.py"))
        .env("SIM_BASE", base)
        .env("SIM_APPID", APPID)
        .env("SIM_SECRET", SECRET)
        .env("SIM_CODE", code)
        // Loopback must not go through a proxy of the caller's.
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env("NO_PROXY", "*")
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("reopen"))
        .stderr(err.reopen().expect("reopen"));
    let outcome = wxlink_tests::run_bounded(&mut cmd, SCRIPT_LIMIT, "wechatpy_flow.py");
    let stdout = std::fs::read_to_string(out.path()).unwrap_or_default();
    let stderr = std::fs::read_to_string(err.path()).unwrap_or_default();
    if let Err(e) = outcome {
        panic!("{e}\nstdout: {stdout}\nstderr: {stderr}");
    }
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the script printed no JSON ({e}): {stdout}\n{stderr}"))
}

#[tokio::test]
async fn wechatpy_drives_the_simulator_binary() {
    let Some(python) = tokio::task::spawn_blocking(venv_python)
        .await
        .expect("join")
    else {
        return;
    };
    let sim = SimProcess::start();
    let login = control(
        reqwest::Method::POST,
        format!("{}/__sim/login", sim.base),
        Some(json!({ "appid": APPID, "openid": "o-sdk", "unionid": "u-sdk" })),
    )
    .await;
    let code = login["code"].as_str().expect("a code").to_owned();
    let base = sim.base.clone();
    let out = tokio::task::spawn_blocking(move || run_script(&python, &base, &code))
        .await
        .expect("join");

    let session = &out["code2session"];
    assert_eq!(session["openid"], "o-sdk", "{out}");
    assert_eq!(session["session_key"], login["session_key"]);
    assert_eq!(session["unionid"], "u-sdk");
    assert_eq!(
        out["code_reused"]["errcode"], 40163,
        "wechatpy raises WeChatClientException with WeChat's errcode: {out}"
    );
    let first_token = out["token_for_code2session"].as_str().expect("a token");
    let fetched = &out["fetch_access_token"];
    assert_eq!(fetched["expires_in"], 7200);
    assert_ne!(fetched["access_token"].as_str(), Some(first_token));
    assert_eq!(out["checksession"]["result"]["errcode"], 0, "{out}");
    assert_eq!(out["checksession_wrong_key"]["errcode"], 87009, "{out}");
    assert_eq!(
        out["checksession_after_revoke"]["result"]["errcode"], 0,
        "wechatpy renews a revoked token and retries: {out}"
    );
    assert_eq!(out["token_renewed"], true);

    let calls = control(
        reqwest::Method::GET,
        format!("{}/__sim/calls", sim.base),
        None,
    )
    .await;
    let total = |path: &str| calls[path]["total"].as_u64().unwrap_or(0);
    assert_eq!(
        total("/cgi-bin/token"),
        3,
        "first use, fetch, renewal: {calls}"
    );
    assert_eq!(total("/sns/jscode2session"), 2, "{calls}");
    assert_eq!(
        total("/wxa/checksession"),
        4,
        "the 40001 and its retry: {calls}"
    );
}
