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
    /// wxlink as configured for production, but rate limits off.
    Wxlink,
    /// wxlink with production's rate limits on (see [`production_limits`]).
    WxlinkLimits,
    Peer,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Wxlink => "wxlink",
            Service::WxlinkLimits => "limits",
            Service::Peer => "peer",
        }
    }

    /// One of wxlink's runs.
    pub fn is_wxlink(self) -> bool {
        self != Service::Peer
    }
}

/// `[rate_limit]` of the production-limits run: the defaults (limits on, loopback exempt from
/// the per-IP limit), with the per-app cap raised above the load: 1.5× the logins the warm-up
/// and the measured run send (`hits`), nearly all of it as burst (the per-node limiter admits
/// a burst at once, then the per-minute rate). The run so crosses half the cap, where each
/// login past it went to the shared count on PostgreSQL before leases, and never reaches it.
pub fn production_limits(hits: u64) -> (u64, u64) {
    let per_minute = 60;
    let cap = hits.saturating_mul(3) / 2;
    (per_minute, cap.saturating_sub(per_minute).max(1))
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
        Service::Wxlink => start_wxlink(ctx, name, db, api_base, None).await,
        Service::WxlinkLimits => {
            let limits = production_limits(ctx.plan.login_known + ctx.plan.login_total);
            start_wxlink(ctx, name, db, api_base, Some(limits)).await
        }
        Service::Peer => peer::start_peer(ctx, name, db, api_base).await,
    }
}

/// `limits`: the per-app rate and burst of production's limits; none turns rate limits off.
fn wxlink_config(
    port: u16,
    db: &Db,
    api_base: &str,
    data_key: &str,
    limits: Option<(u64, u64)>,
) -> String {
    let toml = WxlinkToml::new(&format!("127.0.0.1:{port}"), &db.wxlink_url(), api_base)
        .value("server", "shutdown_grace_ms", 1000)
        .value("database", "max_connections", 16)
        .string("security", "data_key", data_key);
    let toml = match limits {
        None => toml.value("rate_limit", "enabled", false),
        Some((per_minute, burst)) => toml
            .value("rate_limit", "per_app_per_minute", per_minute)
            .value("rate_limit", "per_app_burst", burst),
    };
    toml.app(APPID, SECRET).to_string()
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

async fn start_wxlink(
    ctx: &Ctx,
    name: &str,
    db: &Db,
    api_base: &str,
    limits: Option<(u64, u64)>,
) -> Result<Running, String> {
    let dir = ctx.run_dir(&format!("wxlink-{name}"))?;
    let port = procs::free_port()?;
    let config = dir.join("wxlink.toml");
    std::fs::write(
        &config,
        wxlink_config(port, db, api_base, data_key(), limits),
    )
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
            None,
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
    fn production_limits_keep_the_defaults_and_raise_the_app_cap_above_the_run() {
        let (per_minute, burst) = production_limits(22_000);
        assert_eq!(per_minute + burst, 33_000);
        let config = wxlink_config(
            4242,
            &Db::Sqlite("/tmp/x.db".into()),
            "http://127.0.0.1:1",
            "a2V5",
            Some((per_minute, burst)),
        );
        assert!(!config.contains("enabled"), "{config}");
        assert!(config.contains("per_app_burst = 32940"), "{config}");
        assert!(!config.contains("per_ip"), "{config}");
    }
}
