//! The database goes away under load and comes back (PostgreSQL, a private cluster): requests
//! get 503 `database_unavailable` instead of hanging, `/healthz` says 503, and once the server
//! is back wxlink answers again by itself — no restart — with nothing half-written.
//!
//! No answer is timed: the server stays down until the answers asserted on have arrived, so an
//! answer at all shows the connect timeout cut the wait (the test client's own 30 s timeout is
//! only its give-up). How long a 503 takes is printed; measuring it against the connect timeout
//! is the bench's job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wxlink_wechat_sim::UnionidPolicy;

use super::{Attempt, Load, Tally, ms, private_cluster, summary};
use crate::helpers::{APP_A, APP_B, Api, Backend, LoginResponse, Options, TestApp, assert_error};

const CLIENTS: usize = 8;
/// After the server is back, `/healthz` must be 200 within this.
const RECOVERY_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_is_503_and_recovers_without_restart() {
    let test = concat!(
        module_path!(),
        "::database_outage_is_503_and_recovers_without_restart"
    );
    let Some(cluster) = private_cluster(test).await else {
        return;
    };
    let cluster = Arc::new(cluster);
    let backend = Backend::Postgres {
        admin_url: cluster.url(),
    };
    let app = TestApp::spawn(
        backend,
        Options::default().apps(&[
            (APP_A, UnionidPolicy::Never),
            (APP_B, UnionidPolicy::Always),
        ]),
    )
    .await;

    // Each client logs new people in, one at a time: one in three on A (provisional).
    let plan: super::Plan = Arc::new(|client, n| {
        let appid = if n % 3 == 0 { APP_A } else { APP_B };
        (
            appid,
            format!("down-{client}-{n}"),
            Some(format!("down-union-{client}-{n}")),
        )
    });
    let load = Load::start(&app, CLIENTS, plan, false);
    load.wait_until("logins before the outage", Duration::from_secs(30), |a| {
        a.iter().filter(|a| a.ok().is_some()).count() >= 2 * CLIENTS
    })
    .await;

    // PostgreSQL stops (fast shutdown: open connections are cut) while clients log in.
    let stopping = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .expect("the stop task")
        .expect("stop PostgreSQL");
    let down_at = Instant::now();

    // Still down when the answer comes: only the connect timeout can have ended the wait.
    let health = app.get("/healthz", None).await;
    assert_error(&health, 503, "database_unavailable", "/healthz while down");
    // Every client meets the outage at least once (requests sent after the stop).
    load.wait_until("503s while down", Duration::from_secs(40), |attempts| {
        attempts
            .iter()
            .filter(|a| a.sent >= down_at && a.result.is_ok())
            .count()
            >= CLIENTS
    })
    .await;
    let health_down = app.get("/healthz", None).await;
    assert_error(
        &health_down,
        503,
        "database_unavailable",
        "/healthz still down",
    );

    let starting = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || starting.start_server())
        .await
        .expect("the start task")
        .expect("start PostgreSQL again");
    let up_at = Instant::now();
    let healthy_at = wxlink_tests::eventually(RECOVERY_WITHIN, async || {
        let reply = app.get("/healthz", None).await;
        if reply.status == 200 {
            return Some(Instant::now());
        }
        assert_error(
            &reply,
            503,
            "database_unavailable",
            "/healthz while recovering",
        );
        None
    })
    .await
    .unwrap_or_else(|e| panic!("/healthz still 503 after PostgreSQL came back: it {e}"));
    load.wait_until("logins after recovery", Duration::from_secs(30), |a| {
        a.iter()
            .filter(|a| a.sent >= healthy_at && a.ok().is_some())
            .count()
            >= 2 * CLIENTS
    })
    .await;
    let attempts = load.stop().await;

    // Every login had an answer, 200 or 503 database_unavailable; every one sent and answered
    // while the server was down was a 503, every one sent after /healthz recovered a 200.
    let mut tally = Tally::default();
    let mut unavailable = Vec::new();
    for attempt in &attempts {
        let reply = attempt
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("wxlink kept running, yet a login had no answer: {e}"));
        tally.record("login", reply, &["503 database_unavailable"]);
        if reply.status == 503 {
            unavailable.push(reply.elapsed);
        }
        if attempt.sent >= down_at && attempt.finished() < up_at {
            assert_error(reply, 503, "database_unavailable", "a login while down");
        }
        if attempt.sent >= healthy_at {
            assert_eq!(reply.status, 200, "a login after recovery: {}", reply.body);
        }
    }
    tally.assert_only_allowed("logins through an outage");
    unavailable.sort();
    eprintln!(
        "database outage: {:?}; 503s took {} ms (fastest, in flight at the stop), {} ms \
         (median), {} ms (slowest); /healthz said 503 after {} ms; /healthz 200 again {} ms \
         after PostgreSQL was back (outage {} ms)",
        summary(&attempts),
        ms(unavailable[0]),
        ms(unavailable[unavailable.len() / 2]),
        ms(unavailable[unavailable.len() - 1]),
        ms(health.elapsed),
        ms(healthy_at - up_at),
        ms(up_at - down_at),
    );

    // Nothing half-written: the state is consistent, a 503 sent while down left no trace, and
    // every acknowledged login (before or after the outage) still works.
    let db = app.snapshot();
    db.assert_consistent("after the outage");
    let down_while_sent = |a: &&Attempt| a.sent >= down_at && a.finished() < up_at;
    for attempt in attempts.iter().filter(down_while_sent) {
        assert!(
            db.identity_rows(attempt.appid, &attempt.openid).is_empty(),
            "a login refused while the database was down left an identity: {}",
            attempt.openid
        );
    }
    let mut checked = 0;
    for attempt in &attempts {
        let Some(reply) = attempt.ok() else { continue };
        let login = LoginResponse::parse(reply);
        let me = app.me_ok(&login.token).await;
        assert_eq!(me.user_id, login.user_id, "{}", attempt.openid);
        assert!(
            me.identities
                .contains(&(attempt.appid.to_owned(), attempt.openid.clone())),
            "{me:?}"
        );
        let rows = db.identity_rows(attempt.appid, &attempt.openid);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].user_id, login.user_id);
        checked += 1;
    }
    eprintln!("database outage: {checked} acknowledged tokens checked after recovery");
}

/// docs/operations.md: "When the database does not answer, requests get 503
/// `database_unavailable` within the connect timeout (about 3 s)". With more requests than
/// `[database] max_connections` (8 here), a request waits for one of the store's permits and a
/// pooled connection under one deadline, the connect timeout: every one of them still gets its
/// 503, none hangs or fails otherwise. The server stays down throughout, so an answer at all
/// shows the deadline cut the wait; how long the slowest 503 took is printed, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_503_when_requests_outnumber_connections() {
    let test = concat!(
        module_path!(),
        "::every_request_is_503_when_requests_outnumber_connections"
    );
    let Some(cluster) = private_cluster(test).await else {
        return;
    };
    let cluster = Arc::new(cluster);
    let backend = Backend::Postgres {
        admin_url: cluster.url(),
    };
    let app = TestApp::spawn(backend, Options::default()).await;
    let stopping = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .expect("the stop task")
        .expect("stop PostgreSQL");

    // Three requests per connection, all at once.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let wx = app.wx_login(APP_B, &format!("queue-{i}"), Some(&format!("queue-u-{i}")));
        let request = app
            .client
            .post(format!("{}/v1/wechat/login", app.address))
            .json(&serde_json::json!({"appid": APP_B, "code": wx.code}));
        tasks.spawn(async move { crate::helpers::send(request, "login while down").await });
    }
    tasks.spawn({
        let request = app.client.get(format!("{}/healthz", app.address));
        async move { crate::helpers::send(request, "/healthz while down").await }
    });
    let mut slowest = Duration::ZERO;
    while let Some(done) = tasks.join_next().await {
        let reply = done.expect("a request");
        assert_error(&reply, 503, "database_unavailable", "while down");
        slowest = slowest.max(reply.elapsed);
    }
    eprintln!(
        "25 requests while down: the slowest 503 took {} ms",
        ms(slowest)
    );
}
