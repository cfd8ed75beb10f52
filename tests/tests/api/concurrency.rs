//! Concurrent first logins of one person, and login latency (printed, never asserted).

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;
use wxlink_wechat_sim::UnionidPolicy;

use crate::helpers::{APP_A, APP_B, Backend, LoginResponse, Options, TestApp, identities, send};

on_both_backends!(concurrent_first_logins_make_one_user, login_latency);

async fn concurrent_first_logins_make_one_user(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        Options::default().apps(&[
            (APP_A, UnionidPolicy::Always),
            (APP_B, UnionidPolicy::Always),
        ]),
    )
    .await;

    // 20 wx.login codes per app for the same person, all exchanged at once.
    let mut codes = Vec::new();
    for _ in 0..20 {
        codes.push((
            APP_A,
            app.wx_login(APP_A, "zoe-in-a", Some("zoe-union")).code,
        ));
        codes.push((
            APP_B,
            app.wx_login(APP_B, "zoe-in-b", Some("zoe-union")).code,
        ));
    }
    let mut logins = JoinSet::new();
    for (appid, code) in codes {
        let request = app
            .client
            .post(format!("{}/v1/wechat/login", app.address))
            .json(&json!({"appid": appid, "code": code}));
        logins.spawn(async move { send(request, "concurrent login").await });
    }
    let mut answers = Vec::new();
    while let Some(reply) = logins.join_next().await {
        answers.push(reply.expect("the login task"));
    }
    let failures: Vec<String> = answers
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| format!("{} {}", r.status, r.body))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 40 concurrent logins failed: {failures:#?}",
        failures.len()
    );
    let logins: Vec<LoginResponse> = answers.iter().map(LoginResponse::parse).collect();
    let users: std::collections::BTreeSet<&str> =
        logins.iter().map(|l| l.user_id.as_str()).collect();
    assert_eq!(users.len(), 1, "one unionid is one user: {users:?}");
    assert!(logins.iter().all(|l| l.unionid_linked));

    let both = identities(&[(APP_A, "zoe-in-a"), (APP_B, "zoe-in-b")]);
    for login in &logins {
        let me = app.me_ok(&login.token).await;
        assert_eq!(me.user_id, login.user_id);
        assert_eq!(me.identities, both);
    }
}

async fn login_latency(backend: Backend) {
    let name = backend.name();
    let app = TestApp::spawn(backend, Options::default()).await;
    let mut samples = Vec::new();
    for i in 0..50 {
        let openid = format!("latency-{i}");
        let unionid = format!("latency-union-{i}");
        let wx = app.wx_login(APP_B, &openid, Some(&unionid));
        let started = Instant::now();
        let reply = app.login_with_code(APP_B, &wx.code).await;
        samples.push(started.elapsed());
        LoginResponse::parse(&reply);
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p50 = samples[samples.len() / 2];
    let p99 = samples[(samples.len() * 99).div_ceil(100) - 1];
    eprintln!(
        "login latency on {name}: 50 sequential first logins, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(p50),
        ms(p99),
        ms(samples[samples.len() - 1])
    );
}
