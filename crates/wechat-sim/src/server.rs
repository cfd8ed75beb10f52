//! Serving a [`Sim`] over TCP: [`Simulator`], [`SimBuilder`] and the running [`SimHandle`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Deref;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::model::{AppRegistration, SimError, UnionidPolicy};
use crate::sim::Sim;

/// How long [`SimHandle::shutdown`] lets open requests finish before closing them.
const GRACE: Duration = Duration::from_secs(2);

/// Entry point: starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Starts an empty simulator on `127.0.0.1` at a free port, serving in the background.
    ///
    /// # Errors
    ///
    /// [`SimError::Bind`] if no port can be bound.
    pub async fn start() -> Result<SimHandle, SimError> {
        Self::builder().start().await
    }

    /// A builder, to choose the address or register apps before serving.
    pub fn builder() -> SimBuilder {
        SimBuilder::default()
    }
}

/// Configures a simulator before it serves.
#[derive(Debug, Clone)]
pub struct SimBuilder {
    bind: SocketAddr,
    apps: Vec<AppRegistration>,
    sim: Option<Sim>,
}

impl Default for SimBuilder {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            apps: Vec::new(),
            sim: None,
        }
    }
}

impl SimBuilder {
    /// The address to listen on; default `127.0.0.1:0` (a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Registers a mini program before serving.
    pub fn app(
        self,
        appid: impl Into<String>,
        secret: impl Into<String>,
        unionid_policy: UnionidPolicy,
    ) -> Self {
        self.app_with(AppRegistration::new(appid, secret, unionid_policy))
    }

    /// Registers an app of any kind before serving.
    pub fn app_with(mut self, app: AppRegistration) -> Self {
        self.apps.push(app);
        self
    }

    /// Serves an existing [`Sim`] (and its state) instead of a new one.
    pub fn sim(mut self, sim: Sim) -> Self {
        self.sim = Some(sim);
        self
    }

    /// The simulator with its apps registered, without serving it: use [`Sim::router`] to
    /// mount it in a host application.
    ///
    /// # Errors
    ///
    /// The errors of [`Sim::register_app_with`].
    pub fn build(self) -> Result<Sim, SimError> {
        let sim = self.sim.unwrap_or_default();
        for app in self.apps {
            sim.register_app_with(app)?;
        }
        Ok(sim)
    }

    /// Binds the configured address and serves in the background.
    ///
    /// # Errors
    ///
    /// [`SimError::Bind`], or the errors of [`build`](Self::build).
    pub async fn start(self) -> Result<SimHandle, SimError> {
        let addr = self.bind;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        self.serve(listener).await
    }

    /// Serves on a listener the caller bound, in the background.
    ///
    /// # Errors
    ///
    /// [`SimError::Io`] if the listener has no local address, or the errors of
    /// [`build`](Self::build).
    pub async fn serve(self, listener: TcpListener) -> Result<SimHandle, SimError> {
        let addr = listener.local_addr()?;
        let sim = self.build()?;
        let router = sim.router();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(%error, "wechat simulator stopped serving");
            }
        });
        let handle = SimHandle {
            sim,
            addr,
            stop: Some(stop),
            task: Some(task),
        };
        tracing::info!(base_url = %handle.base_url(), "wechat simulator serving");
        Ok(handle)
    }
}

/// A running simulator. It derefs to its [`Sim`], so every control method is available on it.
///
/// Dropping it stops the server; [`shutdown`](Self::shutdown) does so and waits.
#[derive(Debug)]
pub struct SimHandle {
    sim: Sim,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The base URL to give clients as WeChat's API base, e.g. `http://127.0.0.1:41234`
    /// (no trailing slash). A wildcard bind address is reported as the loopback address.
    pub fn base_url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The simulator this server serves.
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    /// Stops accepting connections, lets open requests finish for up to two seconds, then
    /// closes everything.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Deref for SimHandle {
    type Target = Sim;

    fn deref(&self) -> &Sim {
        &self.sim
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
