//! The wechatpy peer: gunicorn serving bench/peer/app.py on the same database kinds.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::db::Db;
use crate::procs::{self, Proc};
use crate::services::Running;
use crate::{APPID, Ctx, SECRET};

/// gunicorn workers for this machine: (2 × CPUs) + 1, as gunicorn's documentation
/// recommends.
pub fn default_peer_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from) * 2 + 1
}

pub async fn start_peer(ctx: &Ctx, name: &str, db: &Db, api_base: &str) -> Result<Running, String> {
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
