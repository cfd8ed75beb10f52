//! SIGKILL under load: 16 clients log in continuously, the process is killed mid-way (no
//! shutdown at all), and a new one on the same database and data key honours every login the
//! dead one acknowledged; the database is consistent.

use std::sync::Arc;
use std::time::Duration;

use super::{Load, summary};
use crate::helpers::{APP_A, APP_B, Api, Backend, LoginResponse, Options, TestApp};

on_both_backends!(acknowledged_logins_survive_sigkill_under_load);

const CLIENTS: usize = 16;
/// Kill once this many logins were acknowledged.
const ACKNOWLEDGED_BEFORE_KILL: usize = 48;

async fn acknowledged_logins_survive_sigkill_under_load(backend: Backend) {
    let name = backend.name();
    let mut app = TestApp::spawn(backend, Options::default()).await;
    let key_file = app.dir().join("wxlink.key");
    let data_key = std::fs::read_to_string(&key_file).expect("the data key file");

    // Every person logs in twice in a row; one in three on A (provisional, never told the
    // unionid), the others on B.
    let plan: super::Plan = Arc::new(|client, n| {
        let person = n / 2;
        let appid = if person % 3 == 0 { APP_A } else { APP_B };
        (
            appid,
            format!("k9-{client}-{person}"),
            Some(format!("k9-union-{client}-{person}")),
        )
    });
    let load = Load::start(&app, CLIENTS, plan, true);
    load.wait_until(
        "acknowledged logins before the kill",
        Duration::from_secs(30),
        |a| a.iter().filter(|a| a.ok().is_some()).count() >= ACKNOWLEDGED_BEFORE_KILL,
    )
    .await;
    app.stop(); // SIGKILL (Child::kill), while the clients keep sending
    let attempts = load.stop().await;

    for attempt in &attempts {
        if let Ok(reply) = &attempt.result {
            assert_eq!(
                reply.status, 200,
                "before the kill every login succeeds: {}",
                reply.body
            );
        }
    }
    app.restart().await;
    assert_eq!(
        std::fs::read_to_string(&key_file).expect("the data key file"),
        data_key,
        "the new process uses the same data key"
    );

    let db = app.snapshot();
    db.assert_consistent("after SIGKILL");
    let mut checked = 0;
    for attempt in &attempts {
        let Some(reply) = attempt.ok() else { continue };
        let login = LoginResponse::parse(reply);
        let me = app.me_ok(&login.token).await;
        assert_eq!(me.user_id, login.user_id, "{}", attempt.openid);
        assert_eq!(
            me.unionid_linked, login.unionid_linked,
            "{}",
            attempt.openid
        );
        assert!(
            me.identities
                .contains(&(attempt.appid.to_owned(), attempt.openid.clone())),
            "{me:?}"
        );
        let rows = db.identity_rows(attempt.appid, &attempt.openid);
        assert_eq!(rows.len(), 1, "{}", attempt.openid);
        assert_eq!(rows[0].user_id, login.user_id);
        checked += 1;
    }
    // The person of the last acknowledged login logs in again on the new process: the same
    // user.
    let last = attempts
        .iter()
        .rev()
        .find(|a| a.ok().is_some())
        .expect("an acknowledged login");
    let again = app.login(last.appid, &last.openid, None).await;
    assert_eq!(
        again.user_id,
        LoginResponse::parse(last.ok().expect("a 200")).user_id
    );
    eprintln!(
        "sigkill under load ({name}): {:?}; {checked} acknowledged tokens checked after restart",
        summary(&attempts)
    );
}
