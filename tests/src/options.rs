//! The options a test starts its wxlink (in-process or as a process) and simulator with, the
//! apps of the default options, and the configuration file they make.

use std::collections::BTreeMap;

use wxlink_wechat_sim::{AppKind, AppRegistration, SimHandle, Simulator, UnionidPolicy};

use crate::config::{WxlinkToml, toml_str};

/// A mini program that is not bound to the Open Platform in the default options: code2Session
/// never tells the unionid.
pub const APP_A: &str = "wxa1b2c3d4e5f60001";
/// A bound mini program in the default options: code2Session tells the unionid.
pub const APP_B: &str = "wxb1b2c3d4e5f60002";
/// A third app, for tests that configure their own set.
pub const APP_C: &str = "wxc1b2c3d4e5f60003";
/// Well-formed, never configured.
pub const UNCONFIGURED_APP: &str = "wx0000000000000000";

/// The `iss` of [`Options::signed_tokens`].
pub const ISSUER: &str = "https://id.example.com";

/// How a test wants its wxlink configured.
#[derive(Debug, Clone)]
pub struct Options {
    /// The apps, configured in wxlink and registered in the simulator with their policy.
    pub apps: Vec<(String, UnionidPolicy)>,
    /// `[session] ttl_secs`
    pub ttl_secs: Option<u64>,
    /// `[wechat] timeout_ms`
    pub timeout_ms: Option<u64>,
    /// `[wechat] api_base` instead of the simulator's address (e.g. a closed port).
    pub wechat_api_base: Option<String>,
    /// `[server] max_body_bytes`
    pub max_body_bytes: Option<usize>,
    /// `[wechat] max_watermark_age_secs`
    pub max_watermark_age_secs: Option<u64>,
    /// More TOML tables, appended as they are.
    pub extra_toml: String,
    /// More `[server]` keys, appended to that table as they are.
    pub server_toml: String,
    /// More `[security]` keys, appended to that table (which may also carry the data keys).
    pub security_toml: String,
    /// `WXLINK_LOG`
    pub log_filter: String,
    /// Apps that are not mini programs: (appid, kind, unionid in the OAuth exchange).
    pub kinds: Vec<(String, AppKind, bool)>,
}

impl Default for Options {
    /// [`APP_A`] (never tells the unionid at login) and [`APP_B`] (always does).
    fn default() -> Self {
        Self {
            apps: vec![
                (APP_A.to_owned(), UnionidPolicy::Never),
                (APP_B.to_owned(), UnionidPolicy::Always),
            ],
            ttl_secs: None,
            timeout_ms: None,
            wechat_api_base: None,
            max_body_bytes: None,
            max_watermark_age_secs: None,
            extra_toml: String::new(),
            server_toml: String::new(),
            security_toml: String::new(),
            log_filter: "info".to_owned(),
            kinds: Vec::new(),
        }
    }
}

impl Options {
    /// Replace the apps.
    pub fn apps(mut self, apps: &[(&str, UnionidPolicy)]) -> Self {
        self.apps = apps.iter().map(|(a, p)| ((*a).to_owned(), *p)).collect();
        self
    }

    /// `[session] ttl_secs`
    pub fn ttl_secs(mut self, secs: u64) -> Self {
        self.ttl_secs = Some(secs);
        self
    }

    /// `[wechat] timeout_ms`
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// `[wechat] api_base`: somewhere else than the simulator (which still runs, so that
    /// `wx.login` codes can be made).
    pub fn wechat_api_base(mut self, url: &str) -> Self {
        self.wechat_api_base = Some(url.to_owned());
        self
    }

    /// `[server] max_body_bytes`
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = Some(bytes);
        self
    }

    /// `[wechat] max_watermark_age_secs`
    pub fn max_watermark_age_secs(mut self, secs: u64) -> Self {
        self.max_watermark_age_secs = Some(secs);
        self
    }

    /// More `[server]` keys (`key = value` lines).
    pub fn server_toml(mut self, toml: &str) -> Self {
        self.server_toml.push_str(toml);
        self
    }

    /// More `[security]` keys (`key = value` lines).
    pub fn security_toml(mut self, toml: &str) -> Self {
        self.security_toml.push_str(toml);
        self
    }

    /// Append TOML tables to the configuration.
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra_toml.push_str(toml);
        self
    }

    /// `[tokens] format = "jwt"` with [`ISSUER`]; `more` adds keys to that table.
    pub fn signed_tokens(self, more: &str) -> Self {
        self.extra_toml(&format!(
            "[tokens]\nformat = \"jwt\"\nissuer = \"{ISSUER}\"\n{more}\n"
        ))
    }

    /// Make `appid` (one of the apps) an app of `kind`, whose OAuth exchange carries the
    /// unionid or not (then wxlink must ask `sns/userinfo`).
    pub fn kind(mut self, appid: &str, kind: AppKind, unionid_in_exchange: bool) -> Self {
        self.kinds
            .push((appid.to_owned(), kind, unionid_in_exchange));
        self
    }

    /// The kind of `appid` and whether its OAuth exchange carries the unionid, if set.
    pub fn kind_of(&self, appid: &str) -> Option<(AppKind, bool)> {
        self.kinds
            .iter()
            .find(|(a, _, _)| a == appid)
            .map(|(_, kind, exchange)| (*kind, *exchange))
    }

    /// `WXLINK_LOG`
    pub fn log(mut self, filter: &str) -> Self {
        filter.clone_into(&mut self.log_filter);
        self
    }
}

impl Options {
    /// A fresh secret for every app, by appid.
    pub fn new_secrets(&self) -> BTreeMap<String, String> {
        self.apps
            .iter()
            .map(|(appid, _)| (appid.clone(), format!("app-secret-{}", crate::unique())))
            .collect()
    }

    /// Start the in-process simulator with every app registered with its secret, policy and
    /// kind.
    pub async fn simulator(&self, secrets: &BTreeMap<String, String>) -> SimHandle {
        self.apps
            .iter()
            .fold(Simulator::builder(), |builder, (appid, policy)| {
                let (kind, exchange) = self.kind_of(appid).unwrap_or((AppKind::MiniProgram, true));
                builder.app_with(
                    AppRegistration::new(appid.clone(), secrets[appid].clone(), *policy)
                        .with_kind(kind)
                        .with_unionid_in_exchange(exchange),
                )
            })
            .start()
            .await
            .expect("start the WeChat simulator")
    }

    /// The configuration of a wxlink on `bind` with these options: `data_keys` (current and
    /// previous) fill `[security]`, `None` leaves the keys out.
    pub fn toml(
        &self,
        bind: &str,
        database_url: &str,
        wechat_api_base: &str,
        secrets: &BTreeMap<String, String>,
        data_keys: Option<&(String, Vec<String>)>,
    ) -> WxlinkToml {
        let mut toml = WxlinkToml::new(bind, database_url, wechat_api_base);
        if let Some(bytes) = self.max_body_bytes {
            toml = toml.value("server", "max_body_bytes", bytes);
        }
        toml = toml
            .lines("server", &self.server_toml)
            .value("database", "max_connections", 8);
        if let Some(ms) = self.timeout_ms {
            toml = toml.value("wechat", "timeout_ms", ms);
        }
        if let Some(secs) = self.max_watermark_age_secs {
            toml = toml.value("wechat", "max_watermark_age_secs", secs);
        }
        if let Some(secs) = self.ttl_secs {
            toml = toml.value("session", "ttl_secs", secs);
        }
        for (appid, secret) in secrets {
            toml = toml.app(appid, secret);
            if let Some((kind, _)) = self.kind_of(appid) {
                let kind = serde_json::to_value(kind).expect("kinds serialize");
                toml = toml.value(&format!("apps.{appid}"), "kind", kind);
            }
        }
        toml = toml.lines("security", "");
        if let Some((current, previous)) = data_keys {
            let previous: Vec<String> = previous.iter().map(|k| toml_str(k)).collect();
            toml = toml.string("security", "data_key", current).value(
                "security",
                "previous_data_keys",
                format!("[{}]", previous.join(", ")),
            );
        }
        toml.lines("security", &self.security_toml)
            .trailer(&self.extra_toml)
    }
}
