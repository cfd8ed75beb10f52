//! Start-up: settings in, a bound listener and a running server out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use wxlink_domain::{Clock, DecryptBudget, IdSource, Policy, Service, UnixTime};
use wxlink_persistence::{DatabaseTarget, Store, StoreConfig};
use wxlink_wechat_client::{AppSecret, WeChatClient};

use crate::adapters::{CryptoOpener, RandomIds, SystemClock};
use crate::config::{ConfigError, DataKeys, NewKeyFile, Settings, TokenFormat};
use crate::limits::{ConnectionCap, RateLimits};
use crate::serve::{ServeLimits, serve};
use crate::state::AppState;
use crate::tokens::JwtTokens;
use crate::wechat::access_tokens::AccessTokens;
use crate::wechat::{AppCredentials, WeChatAdapter};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] wxlink_persistence::PersistenceError),
    /// This node's data keys cannot open what the database holds, or lack the cluster's
    /// current key.
    #[error(
        "data keys: {0}; every node needs the cluster's keys: the current one in \
         security.data_key (WXLINK__SECURITY__DATA_KEY), older ones still in use in \
         security.previous_data_keys (WXLINK__SECURITY__PREVIOUS_DATA_KEYS)"
    )]
    Keyring(String),
    /// The JWT signing keys could not be read or made.
    #[error("signing keys: {0}")]
    SigningKeys(String),
    /// The WeChat client could not be built.
    #[error("wechat client: {0}")]
    WeChat(#[from] wxlink_wechat_client::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Open the configured database with this node's keyring, refusing keys that cannot open what
/// the database holds (rather than failing request by request). With [`KeyCheck::Record`] this
/// node's current key is recorded for the others, at the system clock's time (the operator's
/// commands open the store here; an [`Application`] records at its own clock's time); a key
/// file made for this start is put in place before that (a database must never record a key
/// that no file holds) and removed again when the database refuses it, so a refused node leaves
/// no key file behind.
///
/// # Errors
/// [`StartError::Keyring`] for keys the database refuses; the database's and the key file's
/// own errors.
pub async fn open_store(
    database: DatabaseTarget,
    data_keys: DataKeys,
    key_file: &Path,
    pool: StorePool,
) -> Result<Store, StartError> {
    open_store_at(database, data_keys, key_file, pool, SystemClock.now()).await
}

/// [`open_store`], recording the key as seen at `now`.
async fn open_store_at(
    database: DatabaseTarget,
    data_keys: DataKeys,
    key_file: &Path,
    pool: StorePool,
    now: UnixTime,
) -> Result<Store, StartError> {
    let (keyring, new_key_file) = data_keys.keyring(key_file)?;
    if new_key_file.is_some() && pool.key_check == KeyCheck::Verify {
        return Err(StartError::Keyring(format!(
            "no data key: {} does not exist and security.data_key is not set; start `wxlink \
             serve` once to create the key, or configure it",
            key_file.display()
        )));
    }
    let store = Store::connect(
        StoreConfig::new(database, keyring)
            .max_connections(pool.max_connections)
            .migrate_on_start(pool.migrate_on_start),
    )
    .await?;
    let kept = new_key_file.map(NewKeyFile::keep).transpose()?;
    let checked = match pool.key_check {
        KeyCheck::Record => store.check_keyring(now).await,
        KeyCheck::Verify => store.verify_keyring().await,
    };
    let refused = match checked {
        Ok(()) => None,
        Err(wxlink_persistence::PersistenceError::Keyring(problems)) => {
            Some(StartError::Keyring(problems))
        }
        Err(other) => Some(other.into()),
    };
    if let Some(refused) = refused {
        if let Some(path) = &kept
            && let Err(error) = std::fs::remove_file(path)
        {
            tracing::warn!(path = %path.display(), %error, "cannot remove the refused new data key file");
        }
        return Err(refused);
    }
    if let Some(path) = kept {
        tracing::warn!(
            path = %path.display(),
            "no security.data_key configured: created a new data key file; back it up, \
             without it stored session keys cannot be read"
        );
    }
    Ok(store)
}

/// How [`open_store`] opens the store.
#[derive(Debug, Clone, Copy)]
pub struct StorePool {
    /// The pool size.
    pub max_connections: u32,
    /// Whether pending migrations are applied.
    pub migrate_on_start: bool,
    /// What the keyring check may do.
    pub key_check: KeyCheck,
}

/// What the start-up keyring check does besides refusing keys that cannot open the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// A node that serves (or re-seals): record its current key as the cluster's.
    Record,
    /// An operator's command: check only, write nothing.
    Verify,
}

/// A configured, listening wxlink that has not started serving yet.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    /// `[metrics] bind`: the listener that alone serves `/metrics`.
    metrics_listener: Option<TcpListener>,
    router: axum::Router,
    state: Arc<AppState>,
    /// This process's one id among the nodes: lease holders (access tokens, webhooks) use it.
    node: String,
    shutdown_grace: Duration,
    header_read_timeout: Duration,
    write_timeout: Duration,
    max_connections: usize,
    per_ip_connections: ConnectionCap,
    purge_interval: Duration,
    webhooks: Vec<(String, crate::config::WebhookSettings)>,
    /// The support console's router, and its listener when `[console] bind` is set.
    console: axum::Router,
    console_listener: Option<TcpListener>,
    console_connections: ConnectionCap,
}

/// What an [`Application`] is built from: its settings, and the time and ids it uses (the
/// system's, unless a test brings a clock it moves).
#[derive(Debug)]
pub struct ApplicationBuilder {
    settings: Settings,
    key_file: PathBuf,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
}

impl ApplicationBuilder {
    /// The clock every part of the service reads: use cases, sessions, tokens, leases, the
    /// console. Tokio's timers that schedule background jobs stay on tokio's time.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where new tokens and user ids come from.
    #[must_use]
    pub fn ids(mut self, ids: Arc<dyn IdSource>) -> Self {
        self.ids = ids;
        self
    }

    /// Validate settings, open (and migrate) the database, bind the listener.
    ///
    /// # Errors
    /// [`StartError`]: what keeps the service from starting.
    pub async fn build(self) -> Result<Application, StartError> {
        Application::assemble(self.settings, self.key_file, self.clock, self.ids).await
    }
}

impl Application {
    /// Validate settings, open (and migrate) the database, bind the listener, with the system's
    /// clock and ids. `key_file` is where the data key lives when the settings carry none.
    pub async fn build(settings: Settings, key_file: PathBuf) -> Result<Self, StartError> {
        Self::builder(settings, key_file).build().await
    }

    /// An application with the system's clock and ids until told otherwise.
    pub fn builder(settings: Settings, key_file: PathBuf) -> ApplicationBuilder {
        ApplicationBuilder {
            key_file,
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds {
                token_ids: settings.session.token_ids,
            }),
            settings,
        }
    }

    async fn assemble(
        settings: Settings,
        key_file: PathBuf,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
    ) -> Result<Self, StartError> {
        let valid = settings.validate()?;
        let apps = &valid.apps;
        // Install the recorder before anything records.
        crate::metrics::handle();
        tracing::info!(config = ?settings, "effective configuration (secrets redacted)");
        if !settings.internal.tokens.is_empty() {
            tracing::warn!(
                tokens = settings.internal.tokens.len(),
                "internal.tokens is deprecated: each token acts as a client with every scope \
                 (named legacy-1, legacy-2, … in support's events); configure each team as a \
                 named client with only the scopes it needs in [internal.clients.<name>] \
                 (token, scopes) instead"
            );
        }
        let store = open_store_at(
            valid.database,
            valid.data_keys,
            &key_file,
            StorePool {
                max_connections: settings.database.max_connections,
                migrate_on_start: settings.database.migrate_on_start,
                key_check: KeyCheck::Record,
            },
            clock.now(),
        )
        .await?;

        let client = WeChatClient::new(valid.wechat.clone())?;
        let secret = |a: &crate::config::App| AppSecret::new(a.secret.expose_secret());
        let credentials: HashMap<_, _> = apps
            .iter()
            .map(|a| {
                let app = AppCredentials {
                    secret: secret(a),
                    kind: a.kind,
                };
                (a.appid.clone(), app)
            })
            .collect();
        let node = uuid::Uuid::new_v4().simple().to_string();
        let tokens = AccessTokens::new(
            client.clone(),
            store.clone(),
            apps.iter().map(|a| (a.appid.clone(), secret(a))).collect(),
            node.clone(),
            Arc::clone(&clock),
        );
        let policy = Policy {
            session_ttl_secs: valid.session_ttl.as_secs(),
            max_watermark_age_secs: match settings.wechat.max_watermark_age_secs {
                0 => None,
                secs => Some(secs),
            },
            decrypt_budget: DecryptBudget {
                per_session: settings.security.max_failed_decrypts_per_session,
                per_identity_per_day: settings.security.max_failed_decrypts_per_identity_per_day,
            },
        };
        let mut limits = RateLimits::new(&settings.rate_limit);
        if store.backend() == wxlink_persistence::Backend::Postgres {
            // Several nodes may share this database: count across them.
            limits = limits.shared_through(store.clone(), Arc::clone(&clock));
        }
        let limits = Arc::new(limits);
        let mut service = Service::new(
            store.clone(),
            WeChatAdapter::new(client, credentials, tokens, Arc::clone(&limits)),
            CryptoOpener,
            Arc::clone(&clock),
            Arc::clone(&ids),
            policy,
        );
        let mut accounts =
            wxlink_domain::Accounts::new(store.clone(), Arc::clone(&clock), Arc::clone(&ids));
        let signed = match settings.tokens.format {
            TokenFormat::Opaque => None,
            TokenFormat::Jwt => {
                let jwt = JwtTokens::load(store.clone(), &settings.tokens, clock.now())
                    .await
                    .map_err(|e| StartError::SigningKeys(e.to_string()))?;
                service = service.with_access_tokens(jwt.signer());
                accounts = accounts.with_access_tokens(jwt.signer());
                Some(jwt)
            }
        };
        let state = Arc::new(AppState {
            service,
            accounts,
            tokens: signed,
            store: store.clone(),
            apps: apps.iter().map(|a| (a.appid.clone(), a.kind)).collect(),
            max_body_bytes: settings.server.max_body_bytes,
            limits,
            request_timeout: valid.request_timeout,
            clients: crate::http::clients::Clients::new(&valid.clients),
            issuer: valid.issuer,
            metrics_apart: settings.metrics.bind.is_some(),
            clock: Arc::clone(&clock),
        });
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let listener = bind(settings.server.bind).await?;
        let console = crate::console::router(Arc::new(crate::console::ConsoleState::new(
            store.clone(),
            wxlink_domain::Accounts::new(store.clone(), Arc::clone(&clock), ids),
            state.apps.clone(),
            Arc::clone(&state.limits),
            &settings.console,
            Arc::clone(&clock),
        )));
        let console_listener = match settings.console.bind {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let metrics_listener = match settings.metrics.bind {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Self {
            listener,
            metrics_listener,
            router: crate::http::router(Arc::clone(&state)),
            state,
            node,
            shutdown_grace: valid.shutdown_grace,
            header_read_timeout: valid.header_read_timeout,
            write_timeout: valid.write_timeout,
            max_connections: settings.server.max_connections,
            per_ip_connections: ConnectionCap::new(
                settings.server.max_connections_per_ip,
                &settings.rate_limit,
            ),
            purge_interval: valid.purge_interval,
            webhooks: settings.webhooks.into_iter().collect(),
            console,
            console_listener,
            console_connections: ConnectionCap::new(
                settings.server.max_connections_per_ip,
                &settings.rate_limit,
            ),
        })
    }

    /// The address actually bound (port 0 becomes a real port).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address the metrics listener bound, with `[metrics] bind`.
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.metrics_listener.as_ref().map(TcpListener::local_addr)
    }

    /// Every route with its middleware, to drive the service in-process (e.g. with
    /// `tower::ServiceExt::oneshot`) without serving the listener; no background job runs.
    /// A request without `ConnectInfo` is not counted against a client IP's rate limit.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// The store: for operators' tools (the console's operators, the sandbox's demo data).
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// The clock the service reads, for what those tools record.
    pub fn clock(&self) -> &dyn Clock {
        &*self.state.clock
    }

    /// The support console's address, when `[console] bind` is set.
    pub fn console_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.console_listener.as_ref().map(TcpListener::local_addr)
    }

    /// The support console's routes, to drive it in-process like [`Application::router`]
    /// (whether or not `[console] bind` is set).
    pub fn console_router(&self) -> axum::Router {
        self.console.clone()
    }

    /// Serve until SIGTERM or Ctrl-C, then stop accepting and let in-flight requests finish
    /// within the grace period.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let grace = self.shutdown_grace;
        let mut background = vec![tokio::spawn(crate::jobs::housekeeping(
            Arc::clone(&self.state),
            self.purge_interval,
        ))];
        background.push(tokio::spawn(crate::jobs::share_rate_limits(Arc::clone(
            &self.state,
        ))));
        if let Some(listener) = self.metrics_listener {
            let metrics = crate::http::metrics_router(Arc::clone(&self.state));
            background.push(tokio::spawn(async move {
                // Only the scraper connects here; it needs none of the public listener's
                // connection limits, and it stops with the other background tasks.
                if let Err(error) = axum::serve(listener, metrics).await {
                    tracing::error!(%error, "the metrics listener stopped");
                }
            }));
        }
        if let Some(tokens) = &self.state.tokens {
            background.push(tokio::spawn(crate::jobs::signing_keys(
                Arc::clone(tokens),
                Arc::clone(&self.state.clock),
            )));
        }
        for (name, hook) in self.webhooks {
            background.push(tokio::spawn(crate::jobs::webhooks::deliver(
                self.state.store.clone(),
                name,
                hook,
                self.node.clone(),
                Arc::clone(&self.state.clock),
            )));
        }
        // One signal stops both listeners.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let signal = tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        });
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let limits = |per_ip_connections| ServeLimits {
            header_read_timeout: self.header_read_timeout,
            write_timeout: self.write_timeout,
            max_connections: self.max_connections,
            per_ip_connections,
            shutdown_grace: grace,
        };
        let console = self.console_listener.map(|listener| {
            let console_limits = limits(self.console_connections);
            tokio::spawn(serve(
                listener,
                self.console,
                console_limits,
                until_stopped(),
            ))
        });
        let outcome = serve(
            self.listener,
            self.router,
            limits(self.per_ip_connections),
            until_stopped(),
        )
        .await;
        if let Some(console) = console {
            match console.await {
                Ok(Err(error)) => tracing::warn!(%error, "the console's listener failed"),
                Err(error) => tracing::warn!(%error, "the console's listener panicked"),
                Ok(Ok(())) => {}
            }
        }
        signal.abort();
        for task in background {
            task.abort();
        }
        outcome
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
