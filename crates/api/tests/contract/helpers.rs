//! `TestApp`: one in-process wxlink with its own simulator, database (the one harness's: a copy
//! of a migrated SQLite file, or of a migrated PostgreSQL template) and data key; typed request helpers that answer with the
//! black-box tests' [`Reply`], so that a test reads the same at both levels.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request};
use tower::ServiceExt as _;
use wxlink_api::Application;
use wxlink_api::config::Settings;
use wxlink_tests::database::TestDatabase;
use wxlink_wechat_sim::SimHandle;

pub use wxlink_tests::answers::*;
pub use wxlink_tests::client::Api;
pub use wxlink_tests::database::Backend;

pub use wxlink_tests::options::{APP_A, APP_B, APP_C, Options, UNCONFIGURED_APP};
pub use wxlink_tests::snapshot::Snapshot;
pub use wxlink_tests::user_data::*;

/// How long one request may take before the test fails.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// The largest answer a test reads.
const MAX_ANSWER_BYTES: usize = 1 << 22;

/// One wxlink built in-process; its database invariants are checked on drop, then the database
/// is dropped.
#[derive(Debug)]
pub struct TestApp {
    /// The simulated WeChat wxlink talks to.
    pub sim: Arc<SimHandle>,
    /// App secrets by appid.
    pub secrets: BTreeMap<String, String>,
    /// Which backend this is.
    pub backend: Backend,
    client: Client,
    /// The support console's routes.
    pub console: axum::Router,
    // Holds the store (and a port-0 listener that is never served) for the router.
    _app: Application,
    database: TestDatabase,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// Start the simulator, create the database and build wxlink from the configuration file
    /// the black-box tests would write.
    pub async fn spawn(backend: Backend, options: Options) -> Self {
        let secrets = options.new_secrets();
        let sim = options.simulator(&secrets).await;
        let dir = tempfile::tempdir().expect("create a temp dir");
        let database = backend.database();
        let api_base = options
            .wechat_api_base
            .clone()
            .unwrap_or_else(|| sim.base_url());
        let data_key = wxlink_crypto::DataKey::generate();
        let data_key = (
            secrecy::ExposeSecret::expose_secret(&data_key.to_base64()).to_owned(),
            Vec::new(),
        );
        let toml = options.toml(
            "127.0.0.1:0",
            database.url(),
            &api_base,
            &secrets,
            Some(&data_key),
        );
        let config = dir.path().join("wxlink.toml");
        std::fs::write(&config, toml.to_string()).expect("write the config");
        // The caller's WXLINK__ variables must not change what the test configured.
        let settings = Settings::load_with_env(Some(&config), Some(Default::default()))
            .unwrap_or_else(|e| panic!("the test's configuration is refused: {e}"));
        let app = Application::builder(settings, dir.path().join("wxlink.key"))
            .clock(std::sync::Arc::new(WorldClock(sim.clone())))
            .build()
            .await
            .unwrap_or_else(|e| panic!("wxlink does not start on {}: {e}", backend.name()));
        let sim = Arc::new(sim);
        Self {
            client: Client {
                router: app.router(),
                sim: Arc::clone(&sim),
            },
            sim,
            secrets,
            backend,
            console: app.console_router(),
            _app: app,
            database,
            _dir: dir,
        }
    }

    /// wxlink's store, for what operators do at the command line (the console's operators).
    pub fn store(&self) -> &wxlink_persistence::Store {
        self._app.store()
    }

    /// What the database holds now, read directly (not through wxlink).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::load(&self.database)
    }

    /// Everything the database holds, as bytes to search (see
    /// [`wxlink_tests::snapshot::stored_bytes`]).
    pub fn stored_bytes(&self) -> Vec<u8> {
        wxlink_tests::snapshot::stored_bytes(&self.database)
    }
}

impl Api for TestApp {
    fn sim(&self) -> &SimHandle {
        &self.sim
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        self.client
            .call(method, path, token, content_type, body)
            .await
    }
}

impl TestApp {
    /// Any request with any `Authorization` header (HTTP Basic, a wrong scheme), from a
    /// loopback client as the real server would see it; the answer is read whole.
    pub async fn call_authorized(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let headers: Vec<(&str, HeaderValue)> = authorization
            .map(|a| {
                (
                    "authorization",
                    HeaderValue::from_str(a).expect("a header value"),
                )
            })
            .into_iter()
            .collect();
        self.call_with_headers(method, path, &headers, content_type, body)
            .await
    }

    /// Any request with these headers (`x-forwarded-for` as a proxy sends it, bytes that are
    /// not ASCII), from a loopback client as the real server would see it.
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, HeaderValue)],
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        self.client
            .call_with_headers(method, path, headers, content_type, body)
            .await
    }

    /// A client of this wxlink that a spawned task can own, for requests sent at once.
    pub fn client(&self) -> Client {
        self.client.clone()
    }
}

/// The router and the simulator as a task can own them: the same requests as [`TestApp`]'s.
#[derive(Debug, Clone)]
pub struct Client {
    router: axum::Router,
    sim: Arc<SimHandle>,
}

impl Client {
    /// Any request with these headers (`x-forwarded-for` as a proxy sends it, bytes that are
    /// not ASCII), from a loopback client as the real server would see it.
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, HeaderValue)],
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = Request::builder().method(method.clone()).uri(path);
        for (name, value) in headers {
            request = request.header(*name, value.clone());
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let length = body.as_ref().map_or(0, Vec::len);
        if body.is_some() {
            request = request.header("content-length", length);
        }
        let mut request = request
            .body(Body::from(body.unwrap_or_default()))
            .unwrap_or_else(|e| panic!("{method} {path}: not a request: {e}"));
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000))));
        let started = Instant::now();
        let response = tokio::time::timeout(REQUEST_LIMIT, self.router.clone().oneshot(request))
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no answer within {REQUEST_LIMIT:?}"))
            .unwrap_or_else(|e| match e {});
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: cannot read the body: {e}"));
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            elapsed: started.elapsed(),
        }
    }
}

/// wxlink's clock in these tests is the simulator's: one time for the whole world, the wall
/// clock until a test moves it ([`TestApp::advance_clock`]), so what WeChat stamps (codes,
/// watermarks, access tokens) and what wxlink checks it against stay in step.
#[derive(Debug)]
struct WorldClock(wxlink_wechat_sim::Sim);

impl wxlink_domain::Clock for WorldClock {
    fn now(&self) -> wxlink_domain::UnixTime {
        self.0.now_unix()
    }
}

impl TestApp {
    /// Let `by` pass for wxlink and WeChat at once, instead of waiting for it: sessions, tokens,
    /// codes and the console's sessions age by that much.
    pub fn advance_clock(&self, by: Duration) {
        self.sim.advance_clock(by);
    }

    /// The time as wxlink sees it.
    pub fn now(&self) -> i64 {
        self.sim.now_unix()
    }
}

impl Api for Client {
    fn sim(&self) -> &SimHandle {
        &self.sim
    }

    /// Any request, from a loopback client as the real server would see it; the answer is
    /// read whole.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let headers: Vec<(&str, HeaderValue)> = token
            .map(|token| {
                let bearer = format!("Bearer {token}");
                (
                    "authorization",
                    HeaderValue::from_str(&bearer).expect("a header value"),
                )
            })
            .into_iter()
            .collect();
        self.call_with_headers(method, path, &headers, content_type, body)
            .await
    }
}

impl Drop for TestApp {
    /// Every test leaves a database that keeps the linking rules' invariants, whatever it did;
    /// a test that is already failing is not buried under a second panic.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.snapshot()
                .assert_consistent(&format!("at the end of the test ({})", self.backend.name()));
        }
    }
}
