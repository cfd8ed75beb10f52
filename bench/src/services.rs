//! The services under test (wxlink, the wechatpy peer) and the simulated WeChat they log in
//! against.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use rand::Rng as _;
use wxlink_tests::config::WxlinkToml;
use wxlink_wechat_sim::{SimHandle, Simulator, UnionidPolicy};

use crate::db::Db;
use crate::procs::{self, Proc};
use crate::{APPID, Ctx, SECRET, peer};

/// Which service a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Wxlink,
    Peer,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Wxlink => "wxlink",
            Service::Peer => "peer",
        }
    }
}

/// A simulated WeChat that knows the benchmark's app.
pub async fn start_sim() -> Result<SimHandle, String> {
    Simulator::builder()
        .app(APPID, SECRET, UnionidPolicy::Always)
        .start()
        .await
        .map_err(|e| format!("simulator: {e}"))
}

/// A running service under test.
#[derive(Debug)]
pub struct Running {
    pub guard: Proc,
    pub addr: SocketAddr,
}

pub async fn start_service(
    ctx: &Ctx,
    service: Service,
    name: &str,
    db: &Db,
    api_base: &str,
) -> Result<Running, String> {
    match service {
        Service::Wxlink => start_wxlink(ctx, name, db, api_base).await,
        Service::Peer => peer::start_peer(ctx, name, db, api_base).await,
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
pub fn clean_env(cmd: &mut Command) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
