//! Configuration: a TOML file, every key overridable by `WXLINK__SECTION__KEY` environment
//! variables, defaults as the contract gives them, validated before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use wxlink_domain::{AppId, AppKind};
use wxlink_persistence::{Backend, DatabaseTarget};

use crate::http::clients::ClientConfig;

/// Why the configuration was refused; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be read or has unknown or mistyped keys.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A key's value is invalid.
    #[error("configuration: {key}: {message}")]
    Invalid {
        /// The key, e.g. `apps.wx123.secret`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The data key file could not be read or created.
    #[error("configuration: security.data_key: {0}")]
    DataKeyFile(String),
}

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

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The whole configuration, as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[server]`
    pub server: ServerSettings,
    /// `[database]`
    pub database: DatabaseSettings,
    /// `[wechat]`
    pub wechat: WeChatSettings,
    /// `[session]`
    pub session: SessionSettings,
    /// `[security]`
    pub security: SecuritySettings,
    /// `[rate_limit]`
    pub rate_limit: RateLimitSettings,
    /// `[internal]`
    pub internal: InternalSettings,
    /// `[tokens]`
    pub tokens: TokenSettings,
    /// `[webhooks.<name>]`
    pub webhooks: BTreeMap<String, WebhookSettings>,
    /// `[metrics]`
    pub metrics: MetricsSettings,
    /// `[apps.<appid>]`
    pub apps: BTreeMap<String, AppSettings>,
    /// `[console]`
    pub console: ConsoleSettings,
}

/// `[console]`: the support console, on a listener of its own; off unless `bind` is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// Where the console listens, e.g. `127.0.0.1:8081`; none = no console.
    pub bind: Option<SocketAddr>,
    /// An operator's session ends after this long without a request.
    pub idle_timeout_secs: u64,
    /// An operator's session ends this long after sign-in, however busy.
    pub max_session_secs: u64,
    /// Failed sign-ins in a row (per operator, per address) before each further attempt must
    /// wait, twice as long each time.
    pub slow_after_failures: u32,
    /// The first wait after `slow_after_failures`; each further failure doubles it, up to
    /// five minutes (or this, if longer).
    pub slow_down_secs: u32,
    /// Failed sign-ins in a row that lock an operator until `wxlink operator reset-password`;
    /// an address locks for an hour after three times as many.
    pub lock_after_failures: u32,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            bind: None,
            idle_timeout_secs: 1800,
            max_session_secs: 12 * 3600,
            slow_after_failures: 3,
            slow_down_secs: 1,
            lock_after_failures: 10,
        }
    }
}

/// `[metrics]`: where Prometheus scrapes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// A listener of its own for `GET /metrics` (e.g. `127.0.0.1:9090`, reachable only by the
    /// scraper); the public listener then has no `/metrics`. Unset: `/metrics` is served on
    /// the public listener.
    pub bind: Option<SocketAddr>,
}

/// `[tokens]`: what a login's `token` is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// `opaque` (a random session token, checked by wxlink) or `jwt` (a signed access token
    /// that other services verify offline, with a refresh token).
    pub format: TokenFormat,
    /// The `iss` of signed tokens and of introspection answers, and the base of the discovery
    /// document's URLs; required with `jwt` (without it introspection says [`ISSUER`]).
    pub issuer: String,
    /// How long a signed access token lasts; a revoked session's token still verifies
    /// elsewhere this long.
    pub access_ttl_secs: u64,
    /// How often a new signing key takes over.
    pub key_rotation_secs: u64,
    /// How long a new key is published before it signs, so every node and every verifier's
    /// JWKS cache knows it first; nodes re-read the keys at least four times in this span.
    pub key_publish_secs: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            format: TokenFormat::Opaque,
            issuer: String::new(),
            access_ttl_secs: 900,
            key_rotation_secs: 7 * 24 * 3600,
            key_publish_secs: 600,
        }
    }
}

/// `tokens.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    /// Today's random bearer tokens.
    Opaque,
    /// Signed JWT access tokens with refresh tokens.
    Jwt,
}

/// `[internal]`: the API for other teams' services.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternalSettings {
    /// Deprecated: service tokens with every scope (clients `legacy-1`, `legacy-2`, …); use
    /// `clients`. With neither, the internal API is off.
    pub tokens: Vec<SecretString>,
    /// `[internal.clients.<name>]`: the named clients of `/internal/v1/*` and their scopes.
    pub clients: BTreeMap<String, ClientSettings>,
}

/// `[internal.clients.<name>]`: one client of the internal API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSettings {
    /// Its token (better `WXLINK__INTERNAL__CLIENTS__<NAME>__TOKEN`).
    pub token: Option<SecretString>,
    /// Its scopes: a list, or one string of names separated by spaces or commas (as OAuth
    /// writes scopes, and as `WXLINK__INTERNAL__CLIENTS__<NAME>__SCOPES` gives them).
    #[serde(deserialize_with = "scope_names")]
    pub scopes: Vec<String>,
}

/// A list of scope names, or one string of them separated by spaces or commas.
fn scope_names<'de, D: serde::Deserializer<'de>>(names: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        One(String),
        List(Vec<String>),
    }
    Ok(match Names::deserialize(names)? {
        Names::One(text) => text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect(),
        Names::List(list) => list,
    })
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
                        "a client name has 1 to {MAX_CLIENT_NAME_CHARS} characters of a-z, 0-9,                          `_` and `-`"
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

/// `[webhooks.<name>]`: a receiver of the event feed. `Debug` shows the URL without its
/// credentials and query, which may carry the receiver's password or token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where events are POSTed.
    pub url: String,
    /// The HMAC-SHA256 key of the `X-Wxlink-Signature` header.
    pub secret: SecretString,
    /// How often to look for new events when idle.
    #[serde(default = "default_webhook_poll_ms")]
    pub poll_ms: u64,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &wxlink_persistence::redact_url(&self.url))
            .field("secret", &self.secret)
            .field("poll_ms", &self.poll_ms)
            .finish()
    }
}

fn default_webhook_poll_ms() -> u64 {
    1000
}

/// `[rate_limit]`: limits against floods; a rate of 0 turns that limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Master switch.
    pub enabled: bool,
    /// Login and user-info requests per client IP per minute (sustained).
    pub per_ip_per_minute: u32,
    /// How many of them may come at once.
    pub per_ip_burst: u32,
    /// Logins per appid per minute (sustained).
    pub per_app_per_minute: u32,
    /// How many of them may come at once.
    pub per_app_burst: u32,
    /// Clients on loopback (the machine itself, or a local proxy that does not forward the
    /// client address) are not limited per IP, neither in requests nor in connections. A
    /// request through a trusted proxy, and so any address taken from `X-Forwarded-For`, is
    /// never exempt.
    pub exempt_loopback: bool,
    /// Networks of the proxies in front of wxlink (e.g. `"127.0.0.1/32"`, `"10.0.0.0/8"`): when
    /// the peer is one of them, the client is the right-most `X-Forwarded-For` entry that is not.
    pub trusted_proxies: Vec<String>,
    /// The boolean that `trusted_proxies` replaced; kept only to refuse it by name.
    pub trust_x_forwarded_for: Option<serde::de::IgnoredAny>,
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

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_ip_per_minute: 600,
            per_ip_burst: 200,
            per_app_per_minute: 120_000,
            per_app_burst: 10_000,
            exempt_loopback: true,
            trusted_proxies: Vec::new(),
            trust_x_forwarded_for: None,
        }
    }
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace_ms: u64,
    /// How long a client may take to send a request's headers, counted from the moment the
    /// connection waits for a request: it is also the idle timeout of a keep-alive connection.
    pub header_read_timeout_ms: u64,
    /// How long one request may take from its headers to its answer (body upload included).
    pub request_timeout_ms: u64,
    /// Open client connections at most; at the cap wxlink stops accepting until one closes.
    pub max_connections: usize,
    /// How long writing to a client may make no progress (a client that does not read its
    /// answers) before its connection is closed.
    pub write_timeout_ms: u64,
    /// Open connections per client address (IPv4 address, IPv6 /64); 0 = no cap. The peers
    /// exempt from the rate limits (trusted proxies, loopback with `exempt_loopback`) are exempt.
    pub max_connections_per_ip: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 65536,
            shutdown_grace_ms: 10_000,
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_connections: 1024,
            write_timeout_ms: 20_000,
            max_connections_per_ip: 64,
        }
    }
}

/// `[database]`
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://…`; may carry a password, so Debug redacts it.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// Apply migrations at start.
    pub migrate_on_start: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://wxlink.db".into(),
            max_connections: 16,
            migrate_on_start: true,
        }
    }
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &wxlink_persistence::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("migrate_on_start", &self.migrate_on_start)
            .finish()
    }
}

/// `[wechat]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeChatSettings {
    /// WeChat's API base URL; tests point it at a simulator.
    pub api_base: String,
    /// Budget of one upstream call, retries included.
    pub timeout_ms: u64,
    /// How old a watermark may be; 0 = not checked.
    pub max_watermark_age_secs: u64,
}

impl Default for WeChatSettings {
    fn default() -> Self {
        Self {
            api_base: "https://api.weixin.qq.com".into(),
            timeout_ms: 5000,
            max_watermark_age_secs: 600,
        }
    }
}

/// `[session]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Bearer token lifetime.
    pub ttl_secs: u64,
    /// How often expired and revoked sessions are deleted.
    pub purge_interval_secs: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            ttl_secs: 604_800,
            purge_interval_secs: 3600,
        }
    }
}

/// `[security]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    /// Base64 of 32 bytes; seals session_keys at rest.
    pub data_key: Option<SecretString>,
    /// Keys that sealed older data; they still open it until `wxlink rotate-data-key` re-seals.
    pub previous_data_keys: Vec<SecretString>,
    /// Failed decryptions of user data a session may have before `user-info` is refused.
    pub max_failed_decrypts_per_session: u32,
    /// Failed decryptions an (appid, openid) identity may have per day, across its sessions.
    pub max_failed_decrypts_per_identity_per_day: u32,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        let budget = wxlink_domain::DecryptBudget::default();
        Self {
            data_key: None,
            previous_data_keys: Vec::new(),
            max_failed_decrypts_per_session: budget.per_session,
            max_failed_decrypts_per_identity_per_day: budget.per_identity_per_day,
        }
    }
}

/// `[apps.<appid>]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// The app secret.
    pub secret: Option<SecretString>,
    /// What kind of app it is (default: a mini program).
    #[serde(default, deserialize_with = "app_kind")]
    pub kind: Option<AppKind>,
}

/// An app kind by its name, parsed by the domain's one [`AppKind`].
fn app_kind<'de, D: serde::Deserializer<'de>>(names: D) -> Result<Option<AppKind>, D::Error> {
    Option::<String>::deserialize(names)?
        .map(|name| name.parse().map_err(serde::de::Error::custom))
        .transpose()
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
    /// Read `file` (if given) and the `WXLINK__…` environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, None)
    }

    /// Like [`Settings::load`], with the environment given as a map (`None`: the process's).
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<config::Map<String, String>>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(
                config::File::from(file)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("WXLINK")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("security.previous_data_keys")
                    .with_list_parse_key("internal.tokens")
                    .with_list_parse_key("rate_limit.trusted_proxies")
                    .source(env),
            )
            .build()?
            .try_deserialize()?;
        Ok(settings)
    }

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
}

impl Settings {
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

/// The data keys as configured: the current one (none on SQLite means the key file), and the
/// previous ones that still open older data.
pub struct DataKeys {
    current: Option<wxlink_crypto::DataKey>,
    previous: Vec<wxlink_crypto::DataKey>,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeys")
            .field("configured", &self.current.is_some())
            .field("previous", &self.previous.len())
            .finish()
    }
}

impl DataKeys {
    fn parse(security: &SecuritySettings, backend: Backend) -> Result<Self, ConfigError> {
        let parse = |key: &str, value: &SecretString| {
            wxlink_crypto::DataKey::from_base64(value.expose_secret())
                .map_err(|e| invalid(key, e.to_string()))
        };
        let current = match &security.data_key {
            Some(key) => Some(parse("security.data_key", key)?),
            // A key file of its own per node would split a cluster's keyring.
            None if backend == Backend::Postgres => {
                return Err(invalid(
                    "security.data_key",
                    "is required with PostgreSQL: every node of the cluster needs the same \
                     data key; generate one with `wxlink new-data-key` and set \
                     security.data_key (or WXLINK__SECURITY__DATA_KEY) on every node",
                ));
            }
            None => None,
        };
        let previous = security
            .previous_data_keys
            .iter()
            .enumerate()
            .map(|(i, old)| parse(&format!("security.previous_data_keys[{i}]"), old))
            .collect::<Result<_, _>>()?;
        Ok(Self { current, previous })
    }

    /// Whether `security.data_key` is set (not the key file).
    pub fn configured(&self) -> bool {
        self.current.is_some()
    }

    /// The keyring sealing session_keys: the configured data key, or on SQLite the key file
    /// at `key_file`. When that file is absent a new key is made and staged beside it
    /// (mode 0600); it becomes the key file only when [`NewKeyFile::keep`] is called, after
    /// the database accepted the key, so a node refused at start leaves no key file behind.
    ///
    /// # Errors
    /// [`ConfigError::DataKeyFile`] when the key file cannot be read or staged.
    pub fn keyring(
        self,
        key_file: &Path,
    ) -> Result<(wxlink_crypto::Keyring, Option<NewKeyFile>), ConfigError> {
        let (current, staged) = match self.current {
            Some(key) => (key, None),
            None => match read_key_file(key_file)? {
                Some(key) => (key, None),
                None => {
                    let (key, staged) = NewKeyFile::stage(key_file)?;
                    (key, Some(staged))
                }
            },
        };
        let keyring = self
            .previous
            .into_iter()
            .fold(wxlink_crypto::Keyring::new(current), |ring, old| {
                ring.with_old_key(old)
            });
        Ok((keyring, staged))
    }
}

fn key_file_error(path: &Path, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::DataKeyFile(format!("{}: {e}", path.display()))
}

fn read_key_file(path: &Path) -> Result<Option<wxlink_crypto::DataKey>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => wxlink_crypto::DataKey::from_base64(text.trim())
            .map(Some)
            .map_err(|e| key_file_error(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(key_file_error(path, e)),
    }
}

/// A data key made for a key file that did not exist: written and synced to a temporary file
/// beside it, removed on drop unless [`NewKeyFile::keep`] moves it into place.
pub struct NewKeyFile {
    staged: tempfile::NamedTempFile,
    path: PathBuf,
}

impl std::fmt::Debug for NewKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKeyFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl NewKeyFile {
    fn stage(path: &Path) -> Result<(wxlink_crypto::DataKey, Self), ConfigError> {
        use std::io::Write;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| key_file_error(path, e))?;
        // tempfile creates the file with mode 0600.
        let mut staged = tempfile::Builder::new()
            .prefix(".wxlink-key-")
            .tempfile_in(dir)
            .map_err(|e| key_file_error(path, e))?;
        let key = wxlink_crypto::DataKey::generate();
        writeln!(staged, "{}", key.to_base64().expose_secret())
            .and_then(|()| staged.as_file().sync_all())
            .map_err(|e| key_file_error(path, e))?;
        let path = path.to_path_buf();
        Ok((key, Self { staged, path }))
    }

    /// Move the staged key into place (never over a file another process wrote meanwhile) and
    /// return its path.
    ///
    /// # Errors
    /// [`ConfigError::DataKeyFile`] when it cannot be moved.
    pub fn keep(self) -> Result<PathBuf, ConfigError> {
        self.staged
            .persist_noclobber(&self.path)
            .map_err(|e| key_file_error(&self.path, e.error))?;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wxlink.toml");
        std::fs::write(&path, toml).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_with_env(Some(&path), Some(env))
    }

    const APP: &str = "[apps.wx4f4bc4dec97d474b]\nsecret = \"s3cret\"\n";

    #[test]
    fn defaults_are_the_contracts() {
        let settings = load(APP, &[]).unwrap();
        assert_eq!(settings.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.server.max_body_bytes, 65536);
        assert_eq!(settings.database.url, "sqlite://wxlink.db");
        assert_eq!(settings.database.max_connections, 16);
        assert_eq!(settings.wechat.api_base, "https://api.weixin.qq.com");
        assert_eq!(settings.wechat.timeout_ms, 5000);
        assert_eq!(settings.wechat.max_watermark_age_secs, 600);
        assert_eq!(settings.session.ttl_secs, 604_800);
        let apps = settings.validate().unwrap().apps;
        assert_eq!(apps[0].appid.as_str(), "wx4f4bc4dec97d474b");
        assert_eq!(apps[0].kind, AppKind::MiniProgram);
    }

    const TEST_DATA_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    #[test]
    fn postgres_without_a_data_key_is_refused_naming_it() {
        let err = load(
            &format!("[database]\nurl = \"postgres://db/wxlink\"\n{APP}"),
            &[],
        )
        .unwrap()
        .validate()
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("security.data_key") && text.contains("WXLINK__SECURITY__DATA_KEY"),
            "{text}"
        );
    }

    #[test]
    fn environment_overrides_any_key_including_secrets() {
        let settings = load(
            "[apps.wx4f4bc4dec97d474b]\n",
            &[
                ("WXLINK__DATABASE__URL", "postgres://db/wxlink"),
                ("WXLINK__SECURITY__DATA_KEY", TEST_DATA_KEY),
                ("WXLINK__SERVER__MAX_BODY_BYTES", "1024"),
                ("WXLINK__APPS__WX4F4BC4DEC97D474B__SECRET", "from-env"),
            ],
        )
        .unwrap();
        assert_eq!(settings.database.url, "postgres://db/wxlink");
        assert_eq!(settings.server.max_body_bytes, 1024);
        let apps = settings.validate().unwrap().apps;
        assert_eq!(apps[0].secret.expose_secret(), "from-env");
    }

    #[test]
    fn previous_data_keys_come_from_the_environment_as_a_list() {
        let a = wxlink_crypto::DataKey::from_bytes([1; 32]);
        let b = wxlink_crypto::DataKey::from_bytes([2; 32]);
        let current = wxlink_crypto::DataKey::from_bytes([3; 32]);
        let list = format!(
            "{},{}",
            a.to_base64().expose_secret(),
            b.to_base64().expose_secret()
        );
        let settings = load(
            APP,
            &[
                (
                    "WXLINK__SECURITY__DATA_KEY",
                    current.to_base64().expose_secret(),
                ),
                ("WXLINK__SECURITY__PREVIOUS_DATA_KEYS", &list),
            ],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data_keys = settings.validate().unwrap().data_keys;
        let (ring, created) = data_keys.keyring(&dir.path().join("unused.key")).unwrap();
        assert!(created.is_none());
        assert_eq!(ring.current_key_id(), current.id());
        let sealed_under_a = wxlink_crypto::Keyring::new(a).seal(b"k");
        assert_eq!(ring.open(&sealed_under_a).unwrap(), b"k");
    }

    #[test]
    fn an_appid_with_capitals_takes_its_secret_from_the_environment() {
        let settings = load(
            "[apps.wxABCDEF0123456789]\nkind = \"official_account\"\n",
            &[("WXLINK__APPS__WXABCDEF0123456789__SECRET", "from-env")],
        )
        .unwrap();
        let apps = settings.validate().unwrap().apps;
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].appid.as_str(), "wxABCDEF0123456789");
        assert_eq!(apps[0].secret.expose_secret(), "from-env");
        assert_eq!(apps[0].kind, AppKind::OfficialAccount);
    }

    #[test]
    fn every_app_kind_is_configured_by_its_name_and_others_are_refused() {
        for kind in AppKind::ALL {
            let toml = format!(
                "[apps.wxabcdef0123456789]\nsecret = \"s\"\nkind = \"{}\"\n",
                kind.as_str()
            );
            let apps = load(&toml, &[]).unwrap().validate().unwrap().apps;
            assert_eq!(apps[0].kind, kind);
        }
        let err = load(
            "[apps.wxabcdef0123456789]\nsecret = \"s\"\nkind = \"applet\"\n",
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("`applet`"), "{err}");
        assert!(err.to_string().contains("`official_account`"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = load(&format!("[server]\nbnid = \"x\"\n{APP}"), &[]).unwrap_err();
        assert!(err.to_string().contains("bnid"), "{err}");
        let err = load(&format!("[sever]\n{APP}"), &[]).unwrap_err();
        assert!(err.to_string().contains("sever"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_networks_and_the_old_boolean_names_its_successor() {
        let settings = load(
            &format!("[rate_limit]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"fd00::/8\"]\n{APP}"),
            &[],
        )
        .unwrap();
        let nets = settings.rate_limit.proxy_networks().unwrap();
        assert_eq!(nets.len(), 3);
        assert_eq!(nets[0].to_string(), "127.0.0.1/32");
        let from_env = load(
            APP,
            &[(
                "WXLINK__RATE_LIMIT__TRUSTED_PROXIES",
                "10.0.0.0/8,192.168.0.0/16",
            )],
        )
        .unwrap();
        assert_eq!(from_env.rate_limit.proxy_networks().unwrap().len(), 2);
        let err = load(
            &format!("[rate_limit]\ntrusted_proxies = [\"10.0.0.0/33\"]\n{APP}"),
            &[],
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(
            err.to_string().contains("rate_limit.trusted_proxies[0]"),
            "{err}"
        );
        let err = load(
            &format!("[rate_limit]\ntrust_x_forwarded_for = true\n{APP}"),
            &[],
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(
            err.to_string().contains("rate_limit.trusted_proxies"),
            "{err}"
        );
    }

    #[test]
    fn server_timeouts_and_the_connection_cap_must_be_positive() {
        let settings = load(APP, &[]).unwrap();
        assert_eq!(settings.server.header_read_timeout_ms, 10_000);
        assert_eq!(settings.server.request_timeout_ms, 30_000);
        assert_eq!(settings.server.max_connections, 1024);
        assert_eq!(settings.server.write_timeout_ms, 20_000);
        assert_eq!(settings.server.max_connections_per_ip, 64);
        for key in [
            "header_read_timeout_ms",
            "request_timeout_ms",
            "write_timeout_ms",
            "max_connections",
        ] {
            let err = load(&format!("[server]\n{key} = 0\n{APP}"), &[])
                .unwrap()
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains(&format!("server.{key}")), "{err}");
        }
    }

    #[test]
    fn urls_and_durations_are_parsed_once_by_their_owners_rules() {
        let settings = load(
            &format!("[database]\nurl = \"postgres://u:pw@db/wxlink\"\n[wechat]\napi_base = \"http://127.0.0.1:9/wx\"\ntimeout_ms = 1500\n{APP}"),
            &[("WXLINK__SECURITY__DATA_KEY", TEST_DATA_KEY)],
        )
        .unwrap();
        let valid = settings.validate().unwrap();
        assert_eq!(
            valid.database.backend(),
            wxlink_persistence::Backend::Postgres
        );
        assert!(!format!("{valid:?}").contains("pw"), "{valid:?}");
        assert_eq!(valid.wechat.api_base().as_str(), "http://127.0.0.1:9/wx");
        assert_eq!(valid.wechat.timeout(), Duration::from_millis(1500));
        assert_eq!(valid.request_timeout, Duration::from_secs(30));
        // The store's rules, not a prefix check: an in-memory SQLite database is refused here,
        // as Store::connect would refuse it.
        for (toml, key) in [
            ("[database]\nurl = \"sqlite://:memory:\"\n", "database.url"),
            ("[database]\nurl = \"mysql://db\"\n", "database.url"),
            (
                "[wechat]\napi_base = \"http://u:pw@wx\"\n",
                "wechat.api_base",
            ),
            ("[wechat]\napi_base = \"ftp://wx\"\n", "wechat.api_base"),
        ] {
            let err = load(&format!("{toml}{APP}"), &[])
                .unwrap()
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains(key), "{toml}: {err}");
            assert!(!err.to_string().contains("pw"), "{toml}: {err}");
        }
    }

    #[test]
    fn bad_apps_are_refused_by_key() {
        let err = load("[apps.wx123]\nsecret = \"s\"\n", &[])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("apps.wx123"), "{err}");
        let err = load("[apps.wx4f4bc4dec97d474b]\n", &[])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("apps.wx4f4bc4dec97d474b.secret"),
            "{err}"
        );
        let err = load("", &[]).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains("apps"), "{err}");
    }

    #[test]
    fn service_tokens_are_long_and_never_empty() {
        let long = "t".repeat(MIN_SHARED_SECRET_CHARS);
        let refused = |toml: &str, env: &[(&str, &str)], key: &str, what: &str| {
            let err = load(toml, env).unwrap().validate().unwrap_err();
            assert!(
                err.to_string().contains(key) && err.to_string().contains(what),
                "{err}"
            );
        };
        let var = "WXLINK__INTERNAL__TOKENS";
        let two_and_empty = format!("{long},,{long}");
        refused(APP, &[(var, &two_and_empty)], "internal.tokens[1]", "empty");
        refused(APP, &[(var, "")], "internal.tokens[0]", "empty");
        let short = "t".repeat(MIN_SHARED_SECRET_CHARS - 1);
        refused(APP, &[(var, &short)], "internal.tokens[0]", "at least 16");
        let file = format!("{APP}[internal]\ntokens = [\"{long}\", \"\"]\n");
        refused(&file, &[], "internal.tokens[1]", "empty");

        let both = format!("{long},{long}x");
        let settings = load(APP, &[(var, &both)]).unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.internal.tokens.len(), 2);
    }

    #[test]
    fn named_clients_get_their_scopes_and_legacy_tokens_every_scope() {
        use crate::http::clients::Scope;
        let long = "t".repeat(MIN_SHARED_SECRET_CHARS);
        let file = format!(
            "{APP}[internal]\ntokens = [\"{long}-legacy\"]\n\
             [internal.clients.crm]\nscopes = [\"events:read\", \"users:read\"]\n\
             [internal.clients.support_desk]\ntoken = \"{long}-support\"\n\
             scopes = \"support:write users:read,users:phone\"\n"
        );
        // The token from the environment, the scopes from the file; and a whole client from
        // the environment, its scopes as one string.
        let crm_token = format!("{long}-crm");
        let resource_token = format!("{long}-rs");
        let settings = load(
            &file,
            &[
                ("WXLINK__INTERNAL__CLIENTS__CRM__TOKEN", &crm_token),
                ("WXLINK__INTERNAL__CLIENTS__RS__TOKEN", &resource_token),
                ("WXLINK__INTERNAL__CLIENTS__RS__SCOPES", "tokens:introspect"),
            ],
        )
        .unwrap();
        let clients = settings.validate().unwrap().clients;
        let found: Vec<(&str, Vec<&str>, bool)> = clients
            .iter()
            .map(|c| {
                let scopes = c.scopes.iter().map(|s| s.as_str()).collect();
                (c.name.as_str(), scopes, c.named)
            })
            .collect();
        let every: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            found,
            vec![
                ("legacy-1", every, false),
                ("crm", vec!["users:read", "events:read"], true),
                ("rs", vec!["tokens:introspect"], true),
                (
                    "support_desk",
                    vec!["users:read", "users:phone", "support:write"],
                    true
                ),
            ]
        );
        assert_eq!(clients[1].token.expose_secret(), crm_token);
        assert!(!format!("{settings:?}").contains(&long));
    }

    #[test]
    fn a_bad_client_stops_start_up_naming_its_key() {
        let long = "t".repeat(MIN_SHARED_SECRET_CHARS);
        let refused = |clients: &str, key: &str, what: &str| {
            let err = load(&format!("{APP}{clients}"), &[])
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(what), "{clients}: {err}");
            assert!(!err.contains(&long), "{err}");
        };
        refused(
            &format!(
                "[internal.clients.crm]\ntoken = \"{long}\"\nscopes = [\"events:read\", \"users:write\"]\n"
            ),
            "internal.clients.crm.scopes[1]",
            "unknown scope \"users:write\"",
        );
        refused(
            &format!("[internal.clients.crm]\ntoken = \"{long}\"\n"),
            "internal.clients.crm.scopes",
            "grants nothing",
        );
        refused(
            "[internal.clients.crm]\nscopes = [\"events:read\"]\n",
            "internal.clients.crm.token",
            "is missing",
        );
        refused(
            "[internal.clients.crm]\ntoken = \"short\"\nscopes = [\"events:read\"]\n",
            "internal.clients.crm.token",
            "at least 16",
        );
        let name = "n".repeat(MAX_CLIENT_NAME_CHARS + 1);
        for bad in ["CRM", "crm.team", "crm:x", name.as_str()] {
            refused(
                &format!(
                    "[internal.clients.\"{bad}\"]\ntoken = \"{long}\"\nscopes = [\"events:read\"]\n"
                ),
                &format!("internal.clients.{bad}"),
                "characters of a-z",
            );
        }
        refused(
            &format!(
                "[internal.clients.legacy-2]\ntoken = \"{long}\"\nscopes = [\"events:read\"]\n"
            ),
            "internal.clients.legacy-2",
            "internal.tokens",
        );
        refused(
            &format!(
                "[internal]\ntokens = [\"{long}\"]\n[internal.clients.crm]\ntoken = \"{long}\"\n\
                 scopes = [\"events:read\"]\n"
            ),
            "internal.clients.crm.token",
            "same token as internal.tokens[0]",
        );
    }

    #[test]
    fn signed_tokens_need_an_issuer_and_consistent_lifetimes() {
        let refused = |tokens: &str, key: &str| {
            let file = format!("{APP}[tokens]\nformat = \"jwt\"\n{tokens}\n");
            let err = load(&file, &[]).unwrap().validate().unwrap_err();
            assert!(err.to_string().contains(key), "{tokens}: {err}");
        };
        refused("", "tokens.issuer");
        refused("issuer = \"id.example.com\"", "tokens.issuer");
        refused("issuer = \"https://id.example.com/?a=b\"", "tokens.issuer");
        let issuer = "issuer = \"https://id.example.com\"";
        refused(
            &format!("{issuer}\naccess_ttl_secs = 0"),
            "tokens.access_ttl_secs",
        );
        refused(
            &format!("{issuer}\naccess_ttl_secs = 604801"),
            "tokens.access_ttl_secs",
        );
        refused(
            &format!("{issuer}\nkey_rotation_secs = 600\nkey_publish_secs = 600"),
            "tokens.key_publish_secs",
        );
        let paseto = format!("{APP}[tokens]\nformat = \"paseto\"\n");
        assert!(
            load(&paseto, &[]).is_err(),
            "an unknown format stops start-up"
        );

        let env = [
            ("WXLINK__TOKENS__FORMAT", "jwt"),
            ("WXLINK__TOKENS__ISSUER", "https://id.example.com"),
        ];
        let settings = load(APP, &env).unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.tokens.format, TokenFormat::Jwt);
        assert_eq!(settings.tokens.access_ttl_secs, 900);
        // Opaque, the default, needs nothing.
        let settings = load(APP, &[]).unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.tokens.format, TokenFormat::Opaque);
    }

    #[test]
    fn debug_of_settings_shows_no_secret() {
        let settings = load(
            &format!(
                "[security]\ndata_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n{APP}"
            ),
            &[],
        )
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("AAAAAAAA"),
            "{debug}"
        );
    }

    #[test]
    fn a_missing_data_key_is_staged_then_kept_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wxlink.key");
        let settings = load(APP, &[]).unwrap();
        let data_keys = || settings.validate().unwrap().data_keys;

        // Staged and dropped (the database refused it): nothing is left in the directory.
        let (_, staged) = data_keys().keyring(&path).unwrap();
        drop(staged.unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let (ring, staged) = data_keys().keyring(&path).unwrap();
        assert_eq!(staged.unwrap().keep().unwrap(), path);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, staged) = data_keys().keyring(&path).unwrap();
        assert!(staged.is_none());
        assert_eq!(ring.current_key_id(), again.current_key_id());
    }

    #[test]
    fn webhook_urls_are_shown_without_credentials_or_query() {
        let hook = WebhookSettings {
            url: "https://crmuser:hunter2@crm.example/hook?access_token=t0ken".into(),
            secret: SecretString::from("whsec-0123456789abcdef"),
            poll_ms: 1000,
        };
        let shown = format!("{hook:?}");
        for secret in ["crmuser", "hunter2", "t0ken", "whsec-0123456789abcdef"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("https://[redacted]@crm.example/hook?[redacted]"),
            "{shown}"
        );
    }

    #[test]
    fn database_passwords_are_redacted_in_every_url_form() {
        for url in [
            "postgres://wx:hunter2@db:5432/wxlink",
            "postgres://wx:hun/ter2@db/wxlink",
            "postgres://wx:hunter2@db/wxlink?sslmode=require",
            "postgres://db/wxlink?user=wx&password=hunter2",
            "postgres://wx:hun%40ter2@db/wxlink",
            "host=db user=wx password=hunter2",
        ] {
            let settings = DatabaseSettings {
                url: url.into(),
                ..Default::default()
            };
            let shown = format!("{settings:?}");
            assert!(!shown.contains("ter2"), "{shown}");
        }
    }
}
