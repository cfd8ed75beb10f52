//! Another process holds the SQLite file's write lock (a backup tool, an operator's `sqlite3`
//! shell left in a transaction): writes answer 503 `database_unavailable` after the busy
//! timeout instead of hanging or failing with 500; reads go on from the WAL beside the writer;
//! once the lock is released, everything works again.
//!
//! What wxlink does while locked (asserted): logins, user-info and logout — writes — answer
//! 503 `database_unavailable` (after SQLite's 5 s `busy_timeout`, then the store's one-timeout
//! retry budget); `/v1/me` and `/healthz` — reads — answer 200. The lock is held until every
//! answer is in, so an answer at all shows the budget cut the wait; no answer is timed (the
//! test client's 30 s timeout is only its give-up).

use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use wxlink_persistence::testing::HeldTransaction;

use super::ms;
use crate::helpers::{
    APP_A, APP_B, Api, Backend, Options, Reply, TestApp, UserInfoResponse, assert_error, send,
    signed_body,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_lock_held_elsewhere_is_503_and_recovers() {
    let app = TestApp::spawn(Backend::Sqlite, Options::default()).await;
    let owner = app.login(APP_B, "lock-in-b", Some("lock-union")).await;
    let provisional = app.login(APP_A, "lock-in-a", Some("lock-union")).await;
    let before = app.me_ok(&owner.token).await;
    let info = signed_body(&app.wx_user_info(APP_A, "lock-in-a"));

    let lock = HeldTransaction::sqlite_write_lock(&app.database().target())
        .unwrap_or_else(|e| panic!("hold the write lock: {e}"));
    let locked_at = Instant::now();

    // Everything at once while the lock is held: new and returning logins, a merge, a
    // logout, and reads.
    let mut requests: Vec<(&'static str, reqwest::RequestBuilder)> = Vec::new();
    let mut refused = Vec::new();
    for (appid, openid, unionid) in [
        (APP_B, "locked-out-1", "locked-out-1-union"),
        (APP_B, "locked-out-2", "locked-out-2-union"),
        (APP_A, "locked-out-3", "locked-out-3-union"),
        (APP_B, "lock-in-b", "lock-union"),
    ] {
        let wx = app.wx_login(appid, openid, Some(unionid));
        requests.push(("login", login_request(&app, appid, &wx.code)));
        refused.push((appid, openid, unionid));
    }
    let url = |path: &str| format!("{}{path}", app.address);
    requests.push((
        "user-info",
        app.client
            .post(url("/v1/wechat/user-info"))
            .bearer_auth(&provisional.token)
            .json(&info),
    ));
    requests.push((
        "logout",
        app.client.post(url("/v1/logout")).bearer_auth(&owner.token),
    ));
    requests.push((
        "me",
        app.client.get(url("/v1/me")).bearer_auth(&owner.token),
    ));
    requests.push(("healthz", app.client.get(url("/healthz"))));
    let answers = all_at_once(requests).await;
    let held_for = locked_at.elapsed();

    let mut slowest = Duration::ZERO;
    for (what, reply) in &answers {
        match *what {
            "me" => assert_eq!(
                crate::helpers::Me::parse(reply),
                before,
                "reads go on beside SQLite's writer"
            ),
            "healthz" => assert_eq!(reply.status, 200, "/healthz reads: {}", reply.body),
            _ => {
                assert_error(
                    reply,
                    503,
                    "database_unavailable",
                    &format!("{what} while locked"),
                );
                slowest = slowest.max(reply.elapsed);
            }
        }
    }
    // Nothing was written meanwhile: read beside the lock.
    let db = app.snapshot();
    for (appid, openid, _) in &refused[..3] {
        assert!(db.identity_rows(appid, openid).is_empty(), "{openid}");
    }
    assert!(db.merged_users().is_empty());
    lock.release().expect("release the write lock");
    eprintln!(
        "sqlite locked: writes answered 503 database_unavailable, the slowest after {} ms \
         (lock held {} ms); /v1/me and /healthz answered 200",
        ms(slowest),
        ms(held_for)
    );

    // Released: the same requests succeed (with new codes: WeChat spent the old ones).
    for (appid, openid, unionid) in &refused {
        let login = app.login(appid, openid, Some(unionid)).await;
        assert_eq!(app.me_ok(&login.token).await.user_id, login.user_id);
    }
    assert_eq!(
        app.me_ok(&owner.token).await,
        before,
        "the refused logout changed nothing"
    );
    let info = signed_body(&app.wx_user_info(APP_A, "lock-in-a"));
    let merged = app.user_info_ok(&provisional.token, &info).await;
    assert_eq!(
        merged,
        UserInfoResponse {
            user_id: owner.user_id.clone(),
            unionid_linked: true,
            merged: true
        }
    );
    assert_eq!(app.logout(&owner.token).await.status, 204);
    app.snapshot().assert_consistent("after the lock");
}

fn login_request(app: &TestApp, appid: &str, code: &str) -> reqwest::RequestBuilder {
    app.client
        .post(format!("{}/v1/wechat/login", app.address))
        .json(&serde_json::json!({"appid": appid, "code": code}))
}

async fn all_at_once(
    requests: Vec<(&'static str, reqwest::RequestBuilder)>,
) -> Vec<(&'static str, Reply)> {
    let mut tasks = JoinSet::new();
    for (what, request) in requests {
        tasks.spawn(async move { (what, send(request, what).await) });
    }
    let mut answers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        answers.push(done.expect("a request"));
    }
    answers
}
