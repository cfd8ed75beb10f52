//! The checks that make typed values of the settings, each parsed once by its owner's rules;
//! the message of a refusal names the key.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use wxlink_domain::{AppId, AppKind};
use wxlink_persistence::DatabaseTarget;

use super::{
    ConfigError, DataKeys, InternalSettings, RateLimitSettings, Settings, TokenFormat, invalid,
};
use crate::http::clients::ClientConfig;

/// The issuer that introspection names (`iss`) when `[tokens] issuer` is not set (opaque
/// tokens need none); with it, introspection and the signed tokens name the same issuer.
pub const ISSUER: &str = "wxlink";

/// The shortest webhook secret or service token accepted: guessing one must not be practical.
pub const MIN_SHARED_SECRET_CHARS: usize = 16;

/// Refuse a shared secret shorter than [`MIN_SHARED_SECRET_CHARS`] (an empty list entry such as
/// `WXLINK__INTERNAL__TOKENS=a,,b` included), naming its key.
fn require_long_secret(key: String, secret: &SecretString) -> Result<(), ConfigError> {
    let chars = secret.expose_secret().chars().count();
    if chars == 0 {
        return Err(invalid(key, "is empty"));
    }
    if chars < MIN_SHARED_SECRET_CHARS {
        return Err(invalid(
            key,
            format!("must be at least {MIN_SHARED_SECRET_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The longest client name accepted.
pub const MAX_CLIENT_NAME_CHARS: usize = 64;

/// The prefix of the names [`InternalSettings::tokens`]' clients get, which named clients
/// cannot take.
const LEGACY_PREFIX: &str = "legacy-";

impl InternalSettings {
    /// Every client, the legacy tokens' included, validated: names of 1 to
    /// [`MAX_CLIENT_NAME_CHARS`] characters of `[a-z0-9_-]` (environment variables lose case),
    /// long tokens that no two clients share, known scopes.
    fn validated_clients(&self) -> Result<Vec<ClientConfig>, ConfigError> {
        use crate::http::clients::Scope;
        let mut clients = Vec::new();
        for (index, token) in self.tokens.iter().enumerate() {
            require_long_secret(format!("internal.tokens[{index}]"), token)?;
            clients.push((
                format!("internal.tokens[{index}]"),
                ClientConfig {
                    name: format!("{LEGACY_PREFIX}{}", index + 1),
                    token: token.clone(),
                    scopes: Scope::ALL.into_iter().collect(),
                    named: false,
                },
            ));
        }
        for (name, client) in &self.clients {
            let key = format!("internal.clients.{name}");
            let fits = (1..=MAX_CLIENT_NAME_CHARS).contains(&name.chars().count())
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !fits {
                return Err(invalid(
                    key,
                    format!(
                        "a client name has 1 to {MAX_CLIENT_NAME_CHARS} characters of a-z, 0-9, \
                         `_` and `-`"
                    ),
                ));
            }
            if name.starts_with(LEGACY_PREFIX) {
                return Err(invalid(
                    key,
                    format!("`{LEGACY_PREFIX}…` names the tokens of internal.tokens"),
                ));
            }
            let token = client
                .token
                .clone()
                .ok_or_else(|| invalid(format!("{key}.token"), "is missing"))?;
            require_long_secret(format!("{key}.token"), &token)?;
            let scopes = client
                .scopes
                .iter()
                .enumerate()
                .map(|(i, scope)| {
                    Scope::parse(scope).ok_or_else(|| {
                        let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                        invalid(
                            format!("{key}.scopes[{i}]"),
                            format!(
                                "unknown scope {scope:?}; the scopes are {}",
                                known.join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<std::collections::BTreeSet<_>, _>>()?;
            if scopes.is_empty() {
                return Err(invalid(
                    format!("{key}.scopes"),
                    "grants nothing: list the client's scopes",
                ));
            }
            clients.push((
                format!("{key}.token"),
                ClientConfig {
                    name: name.clone(),
                    token,
                    scopes,
                    named: true,
                },
            ));
        }
        // A shared token would make one client act as the other.
        for (i, (key, client)) in clients.iter().enumerate() {
            if let Some((other, _)) = clients[..i]
                .iter()
                .find(|(_, c)| c.token.expose_secret() == client.token.expose_secret())
            {
                return Err(invalid(key, format!("is the same token as {other}")));
            }
        }
        Ok(clients.into_iter().map(|(_, client)| client).collect())
    }
}

impl RateLimitSettings {
    /// The trusted proxy networks, parsed; the message names the entry that is not a network.
    pub fn proxy_networks(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        if self.trust_x_forwarded_for.is_some() {
            return Err(invalid(
                "rate_limit.trust_x_forwarded_for",
                "was replaced by rate_limit.trusted_proxies, a list of the proxies' networks \
                 (e.g. [\"127.0.0.1/32\"])",
            ));
        }
        self.trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, net)| {
                let net = net.trim();
                net.parse::<ipnet::IpNet>()
                    .or_else(|_| net.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| {
                        invalid(
                            format!("rate_limit.trusted_proxies[{i}]"),
                            format!("{net:?} is not an IP network such as 10.0.0.0/8"),
                        )
                    })
            })
            .collect()
    }
}

/// What [`Settings::validate`] makes of the settings: each value parsed once, typed.
#[derive(Debug)]
pub struct Validated {
    /// The configured apps.
    pub apps: Vec<App>,
    /// The internal API's clients: `internal.clients`, then `internal.tokens` as `legacy-N`.
    pub clients: Vec<ClientConfig>,
    /// The `iss` that token introspection answers (see [`ISSUER`]).
    pub issuer: String,
    /// `database.url`, parsed by the store's rules.
    pub database: DatabaseTarget,
    /// `security.data_key` and `security.previous_data_keys`, decoded.
    pub data_keys: DataKeys,
    /// `wechat.api_base` (a `Url`) and `wechat.timeout_ms`, as the WeChat client takes them.
    pub wechat: wxlink_wechat_client::ClientConfig,
    /// `server.header_read_timeout_ms`.
    pub header_read_timeout: Duration,
    /// `server.request_timeout_ms`.
    pub request_timeout: Duration,
    /// `server.write_timeout_ms`.
    pub write_timeout: Duration,
    /// `server.shutdown_grace_ms`.
    pub shutdown_grace: Duration,
    /// `session.ttl_secs`.
    pub session_ttl: Duration,
    /// `session.purge_interval_secs`.
    pub purge_interval: Duration,
}

/// One configured app, validated.
#[derive(Debug, Clone)]
pub struct App {
    /// Its appid.
    pub appid: AppId,
    /// Its secret.
    pub secret: SecretString,
    /// Its kind.
    pub kind: AppKind,
}

impl Settings {
    /// Check every value and return the configured apps.
    ///
    /// Shared secrets that a caller presents (webhook secrets, service tokens) must have at
    /// least [`MIN_SHARED_SECRET_CHARS`] characters; an empty one is refused, not skipped.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        if self.server.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes", "must be positive"));
        }
        for (key, value) in [
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            ("server.request_timeout_ms", self.server.request_timeout_ms),
            ("server.write_timeout_ms", self.server.write_timeout_ms),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be positive"));
            }
        }
        if self.server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be positive"));
        }
        self.rate_limit.proxy_networks()?;
        for (key, value) in [
            ("console.idle_timeout_secs", self.console.idle_timeout_secs),
            ("console.max_session_secs", self.console.max_session_secs),
            (
                "console.lock_after_failures",
                u64::from(self.console.lock_after_failures),
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be positive"));
            }
        }
        // Housekeeping deletes operator sessions idle for a day.
        if self.console.idle_timeout_secs > 86_400 {
            return Err(invalid(
                "console.idle_timeout_secs",
                "must be at most 86400 (a day)",
            ));
        }
        // Port 0 twice is two free ports, not one address.
        if self.console.bind.is_some()
            && self.console.bind == Some(self.server.bind)
            && self.server.bind.port() != 0
        {
            return Err(invalid(
                "console.bind",
                "must differ from server.bind: the console has a listener of its own",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be positive"));
        }
        // The store's and the client's own parsers, so nothing is checked by two sets of rules.
        let database = DatabaseTarget::parse(&self.database.url)
            .map_err(|e| invalid("database.url", e.to_string()))?;
        let data_keys = DataKeys::parse(&self.security, database.backend())?;
        if self.wechat.timeout_ms == 0 {
            return Err(invalid("wechat.timeout_ms", "must be positive"));
        }
        let wechat = wxlink_wechat_client::ClientConfig::builder()
            .api_base(self.wechat.api_base.clone())
            .timeout(Duration::from_millis(self.wechat.timeout_ms))
            .build()
            .map_err(|e| invalid("wechat.api_base", e.to_string()))?;
        // A budget of 0 would refuse every user-info request, the honest first one too.
        if self.security.max_failed_decrypts_per_session == 0 {
            return Err(invalid(
                "security.max_failed_decrypts_per_session",
                "must be positive",
            ));
        }
        if self.security.max_failed_decrypts_per_identity_per_day == 0 {
            return Err(invalid(
                "security.max_failed_decrypts_per_identity_per_day",
                "must be positive",
            ));
        }
        if self.session.ttl_secs == 0 {
            return Err(invalid("session.ttl_secs", "must be positive"));
        }
        if self.session.purge_interval_secs == 0 {
            return Err(invalid("session.purge_interval_secs", "must be positive"));
        }
        for (name, hook) in &self.webhooks {
            if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
                return Err(invalid(
                    format!("webhooks.{name}.url"),
                    "must be an http(s) URL",
                ));
            }
            require_long_secret(format!("webhooks.{name}.secret"), &hook.secret)?;
        }
        let clients = self.internal.validated_clients()?;
        self.validate_tokens()?;
        if self.apps.is_empty() {
            return Err(invalid(
                "apps",
                "configure at least one [apps.<appid>] table",
            ));
        }
        // Environment variable names lose their case (WXLINK__APPS__WXABC…__SECRET becomes
        // apps.wxabc…), so tables whose appids differ only in case are one app: the file's
        // spelling wins, and each key is taken from whichever table sets it.
        let mut merged: BTreeMap<String, (String, Option<SecretString>, Option<AppKind>)> =
            BTreeMap::new();
        for (appid, app) in &self.apps {
            let entry = merged
                .entry(appid.to_ascii_lowercase())
                .or_insert_with(|| (appid.clone(), None, None));
            if appid.bytes().any(|b| b.is_ascii_uppercase()) {
                entry.0.clone_from(appid);
            }
            if app.secret.is_some() {
                entry.1.clone_from(&app.secret);
            }
            entry.2 = entry.2.or(app.kind);
        }
        let apps = merged
            .into_values()
            .map(|(appid, secret, kind)| {
                let key = format!("apps.{appid}");
                let appid = AppId::parse(appid).map_err(|e| invalid(&key, e.to_string()))?;
                let secret = secret
                    .filter(|s| !s.expose_secret().is_empty())
                    .ok_or_else(|| invalid(format!("{key}.secret"), "is missing"))?;
                Ok(App {
                    appid,
                    secret,
                    kind: kind.unwrap_or_default(),
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Validated {
            apps,
            clients,
            issuer: if self.tokens.issuer.is_empty() {
                ISSUER.to_owned()
            } else {
                self.tokens.issuer.clone()
            },
            database,
            data_keys,
            wechat,
            header_read_timeout: Duration::from_millis(self.server.header_read_timeout_ms),
            request_timeout: Duration::from_millis(self.server.request_timeout_ms),
            write_timeout: Duration::from_millis(self.server.write_timeout_ms),
            shutdown_grace: Duration::from_millis(self.server.shutdown_grace_ms),
            session_ttl: Duration::from_secs(self.session.ttl_secs),
            purge_interval: Duration::from_secs(self.session.purge_interval_secs),
        })
    }

    fn validate_tokens(&self) -> Result<(), ConfigError> {
        let tokens = &self.tokens;
        if tokens.format == TokenFormat::Opaque {
            return Ok(());
        }
        let issuer = url::Url::parse(&tokens.issuer).map_err(|e| {
            invalid(
                "tokens.issuer",
                format!("must be the service's https URL: {e}"),
            )
        })?;
        if !matches!(issuer.scheme(), "https" | "http")
            || issuer.query().is_some()
            || issuer.fragment().is_some()
        {
            return Err(invalid(
                "tokens.issuer",
                "must be an http(s) URL without query or fragment (OpenID Connect Discovery §3)",
            ));
        }
        for (key, value) in [
            ("tokens.access_ttl_secs", tokens.access_ttl_secs),
            ("tokens.key_rotation_secs", tokens.key_rotation_secs),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be positive"));
            }
        }
        if tokens.access_ttl_secs > self.session.ttl_secs {
            return Err(invalid(
                "tokens.access_ttl_secs",
                "must not exceed session.ttl_secs (the refresh token's lifetime)",
            ));
        }
        if tokens.key_publish_secs >= tokens.key_rotation_secs {
            return Err(invalid(
                "tokens.key_publish_secs",
                "must be shorter than tokens.key_rotation_secs",
            ));
        }
        Ok(())
    }
}
