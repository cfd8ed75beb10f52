//! Reliability (issue 5): one truth under many nodes, a database that goes away and comes back,
//! a SQLite file locked by someone else, SIGKILL under load, and WeChat failing in every way
//! it can — each answered by the contract's errors in bounded time, never a 500, and nothing
//! half-written.
//!
//! The tests print what they measured (`--nocapture` shows it): counts of contention answers,
//! how long 503s took, how long recovery took.

mod data_keys;
mod database_down;
mod kill9;
mod multi_node;
mod sqlite_locked;
mod wechat_faults;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;
use wxlink_tests::pg::Cluster;
use wxlink_wechat_sim::Sim;

use crate::helpers::{Reply, TestApp, assert_error_shape, error_code, try_send};

/// `"<status> <code>"` of an answer, e.g. `200` or `503 database_contention`.
fn outcome(reply: &Reply) -> String {
    if reply.status == 200 {
        "200".to_owned()
    } else {
        format!(
            "{} {}",
            reply.status,
            error_code(reply).unwrap_or_else(|| "<no error code>".to_owned())
        )
    }
}

/// Counts of answers by outcome; anything not allowed (a 500, a wrong shape, an error the
/// scenario cannot cause) is kept to fail the test with.
#[derive(Debug, Default)]
struct Tally {
    counts: BTreeMap<String, usize>,
    unexpected: Vec<String>,
}

impl Tally {
    /// Count `reply`; `allowed` are the error outcomes (`"503 database_contention"`) this
    /// scenario may answer besides 200. An allowed error must have the contract's shape.
    #[track_caller]
    fn record(&mut self, what: &str, reply: &Reply, allowed: &[&str]) {
        let key = outcome(reply);
        *self.counts.entry(key.clone()).or_default() += 1;
        if reply.status == 200 {
            return;
        }
        if allowed.contains(&key.as_str()) {
            assert_error_shape(reply, what);
        } else {
            self.unexpected
                .push(format!("{what}: {} {}", reply.status, reply.body));
        }
    }

    fn count(&self, key: &str) -> usize {
        self.counts.get(key).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.counts.values().sum()
    }

    #[track_caller]
    fn assert_only_allowed(&self, what: &str) {
        assert!(
            self.unexpected.is_empty(),
            "{what}: {} answer(s) neither 200 nor an allowed contract error (counts {:?}):\n{:#?}",
            self.unexpected.len(),
            self.counts,
            self.unexpected
        );
    }
}

/// A private PostgreSQL cluster for tests that stop and start the server; `None` (with a skip
/// line) when PostgreSQL is not installed, unless `WXLINK_REQUIRE_POSTGRES=1`.
async fn private_cluster(test: &str) -> Option<Cluster> {
    match tokio::task::spawn_blocking(Cluster::start)
        .await
        .expect("the cluster task")
    {
        Ok(cluster) => Some(cluster),
        Err(why) if std::env::var("WXLINK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("WXLINK_REQUIRE_POSTGRES=1 but no private PostgreSQL for {test}: {why}")
        }
        Err(why) => {
            eprintln!("skipped: {test} (no private PostgreSQL: {why})");
            None
        }
    }
}

/// Who a load client logs in at its n-th login: (appid, openid, unionid WeChat knows).
type Plan = Arc<dyn Fn(usize, usize) -> (&'static str, String, Option<String>) + Send + Sync>;

/// One login a load client sent, and what came back (`Err`: no HTTP answer).
#[derive(Debug, Clone)]
struct Attempt {
    appid: &'static str,
    openid: String,
    sent: Instant,
    result: Result<Reply, String>,
}

impl Attempt {
    /// When the answer (or the transport failure) came.
    fn finished(&self) -> Instant {
        match &self.result {
            Ok(reply) => self.sent + reply.elapsed,
            // A failure is only known when recorded; `sent` bounds it from below.
            Err(_) => self.sent,
        }
    }

    fn ok(&self) -> Option<&Reply> {
        self.result.as_ref().ok().filter(|r| r.status == 200)
    }
}

/// Clients logging in continuously (`wx.login`, then `POST /v1/wechat/login`), each one
/// request at a time, until told to stop; every attempt is recorded.
struct Load {
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    tasks: JoinSet<()>,
}

impl Load {
    /// Start `clients` clients against `app`'s main process. With `end_on_transport_error` a
    /// client stops at its first request without an HTTP answer (the process is gone).
    fn start(app: &TestApp, clients: usize, plan: Plan, end_on_transport_error: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = JoinSet::new();
        for client in 0..clients {
            let sim: Sim = app.sim.sim().clone();
            let http = app.client.clone();
            let url = format!("{}/v1/wechat/login", app.address);
            let (stop, attempts, plan) = (stop.clone(), attempts.clone(), plan.clone());
            tasks.spawn(async move {
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (appid, openid, unionid) = plan(client, n);
                    let wx = sim
                        .login(appid, &openid, unionid.as_deref())
                        .expect("simulated wx.login");
                    let request = http
                        .post(&url)
                        .json(&json!({"appid": appid, "code": wx.code}));
                    let sent = Instant::now();
                    let result = try_send(request).await;
                    let gone = result.is_err();
                    attempts
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Attempt {
                            appid,
                            openid,
                            sent,
                            result,
                        });
                    if gone && end_on_transport_error {
                        break;
                    }
                }
            });
        }
        Self {
            stop,
            attempts,
            tasks,
        }
    }

    /// Every attempt recorded so far.
    fn attempts(&self) -> Vec<Attempt> {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Poll (bounded by `limit`) until `done` holds for the attempts so far; fails the test
    /// otherwise.
    async fn wait_until(&self, what: &str, limit: Duration, done: impl Fn(&[Attempt]) -> bool) {
        let waited =
            wxlink_tests::eventually(limit, async || done(&self.attempts()).then_some(())).await;
        if let Err(e) = waited {
            panic!(
                "{what}: {e}; outcomes so far: {:?}",
                summary(&self.attempts())
            );
        }
    }

    /// Stop every client, wait for them (each finishes the request it is in), and return
    /// every attempt.
    async fn stop(mut self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(done) = self.tasks.join_next().await {
            done.expect("a load client");
        }
        self.attempts()
    }
}

/// Counts of attempts by outcome.
fn summary(attempts: &[Attempt]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for attempt in attempts {
        let key = match &attempt.result {
            Ok(reply) => outcome(reply),
            Err(_) => "no answer".to_owned(),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// Milliseconds, for reports.
fn ms(d: Duration) -> u128 {
    d.as_millis()
}
