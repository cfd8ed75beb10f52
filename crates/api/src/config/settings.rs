//! What the TOML file and the `WXLINK__…` environment say, section by section, with the
//! contract's defaults; nothing here judges a value (that is `validate`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use secrecy::SecretString;
use serde::Deserialize;
use wxlink_domain::AppKind;

use super::ConfigError;

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
    /// document's URLs; required with `jwt` (without it introspection says [`ISSUER`](super::ISSUER)).
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
    /// Whether new tokens carry their session's time-ordered id (64 characters), which every
    /// node of this release finds in one index range; `false` issues the earlier 43-character
    /// form, which nodes of earlier releases also find: for the first roll of an upgrade.
    pub token_ids: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            ttl_secs: 604_800,
            purge_interval_secs: 3600,
            token_ids: true,
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
