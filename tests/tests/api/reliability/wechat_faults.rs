//! WeChat failing end to end, beyond `errors/upstream.rs` (which maps each fault once): WeChat
//! unreachable (a closed port), and every fault on every try (sticky) for many requests at
//! once — each answered per the contract, so no request holds a worker past the time budget,
//! while clean logins and `/healthz` go on. And the logs of all of it (at debug level) hold no
//! secret.
//!
//! No answer is timed. A slow WeChat here answers only after [`NEVER_MS`], past the test
//! client's 30 s give-up, so a 504 at all shows `timeout_ms` cut the call.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;
use wxlink_wechat_sim::{CHECK_SESSION_PATH, Fault, FaultTarget};

use super::{Tally, ms};
use crate::helpers::{
    APP_A, APP_B, Api, Backend, LoginResponse, Options, Reply, TestApp, assert_no_secrets_in_logs,
    free_port, send, signed_body, unsigned_body,
};

/// `[wechat] timeout_ms` in these tests.
const TIMEOUT_MS: u64 = 1000;
/// The simulator's longest delay: longer than the test client waits for wxlink's answer.
const NEVER_MS: u64 = 60_000;

/// A request, what it must answer (`"200"` or `"<status> <code>"`), and a name.
struct Case {
    what: String,
    expect: &'static str,
    request: reqwest::RequestBuilder,
}

/// Send every case at once; fail unless each answers what it must.
async fn run_all(cases: Vec<Case>) -> Vec<(String, Reply)> {
    let mut tasks = JoinSet::new();
    for case in cases {
        tasks.spawn(async move {
            let reply = send(case.request, &case.what).await;
            (case.what, case.expect, reply)
        });
    }
    let mut tally = Tally::default();
    let mut slowest = Duration::ZERO;
    let mut answers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (what, expect, reply) = done.expect("a request");
        tally.record(&what, &reply, &[expect]);
        let got = super::outcome(&reply);
        assert_eq!(got, expect, "{what}: {}", reply.body);
        slowest = slowest.max(reply.elapsed);
        answers.push((what, reply));
    }
    tally.assert_only_allowed("WeChat faults");
    eprintln!(
        "wechat faults: {:?}; slowest answer {} ms (timeout_ms {TIMEOUT_MS})",
        tally.counts,
        ms(slowest)
    );
    answers
}

fn login_case(app: &TestApp, what: String, expect: &'static str, appid: &str, code: &str) -> Case {
    Case {
        what,
        expect,
        request: app
            .client
            .post(format!("{}/v1/wechat/login", app.address))
            .json(&json!({"appid": appid, "code": code})),
    }
}

fn user_info_case(
    app: &TestApp,
    what: &str,
    expect: &'static str,
    token: &str,
    body: &Value,
) -> Case {
    Case {
        what: what.to_owned(),
        expect,
        request: app
            .client
            .post(format!("{}/v1/wechat/user-info", app.address))
            .bearer_auth(token)
            .json(body),
    }
}

/// The data key and the app secrets, for the log scan.
fn config_secrets(app: &TestApp) -> Vec<(&'static str, String)> {
    let data_key = std::fs::read_to_string(app.dir().join("wxlink.key")).expect("data key");
    let mut secrets = vec![("the data key", data_key.trim().to_owned())];
    secrets.extend(app.secrets.values().map(|s| ("an app secret", s.clone())));
    secrets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_wechat_is_upstream_error_within_the_budget() {
    // Nothing listens there: every connection is refused.
    let closed = format!("http://127.0.0.1:{}", free_port().expect("a free port"));
    let mut app = TestApp::spawn(
        Backend::Sqlite,
        Options::default()
            .wechat_api_base(&closed)
            .timeout_ms(TIMEOUT_MS)
            .log("debug"),
    )
    .await;
    let mut secrets = config_secrets(&app);
    let mut cases = Vec::new();
    for i in 0..8 {
        let appid = if i % 2 == 0 { APP_A } else { APP_B };
        let wx = app.wx_login(appid, &format!("far-{i}"), Some(&format!("far-union-{i}")));
        secrets.push(("a code", wx.code.clone()));
        cases.push(login_case(
            &app,
            format!("login {i} while WeChat refuses connections"),
            "502 upstream_error",
            appid,
            &wx.code,
        ));
    }
    cases.push(Case {
        what: "/healthz while WeChat is unreachable".to_owned(),
        expect: "200",
        request: app.client.get(format!("{}/healthz", app.address)),
    });
    run_all(cases).await;

    app.stop();
    let logs = app.stderr();
    assert!(
        logs.contains("jscode2session"),
        "the calls were logged (debug), so the scan below searched them:\n{logs}"
    );
    assert_no_secrets_in_logs(&logs, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_wechat_faults_under_load_answer_within_the_budget() {
    // Many user-info requests of one session at once: more than its failed-decryption budget.
    let mut app = TestApp::spawn(
        Backend::Sqlite,
        Options::default()
            .timeout_ms(TIMEOUT_MS)
            .log("debug")
            .security_toml(
                "max_failed_decrypts_per_session = 100
max_failed_decrypts_per_identity_per_day = 100
",
            ),
    )
    .await;
    let mut secrets = config_secrets(&app);
    let (wx, owner) = app.login_full(APP_B, "ivy-in-b", Some("ivy-union")).await;
    secrets.push(("a session_key", wx.session_key));
    secrets.push(("a token", owner.token.clone()));
    let (wx, provisional) = app.login_full(APP_A, "ivy-in-a", Some("ivy-union")).await;
    secrets.push(("a session_key", wx.session_key));
    secrets.push(("a token", provisional.token.clone()));
    let owner_before = app.me_ok(&owner.token).await;
    let provisional_before = app.me_ok(&provisional.token).await;

    // Every try of these codes fails the same way.
    let faults: [(&str, Fault, &'static str); 5] = [
        (
            "connection dropped",
            Fault::DropConnection,
            "502 upstream_error",
        ),
        ("plain-text 500", Fault::Http500, "502 upstream_error"),
        ("HTML 502", Fault::NonJson502, "502 upstream_error"),
        (
            "-1 on every try",
            Fault::SystemBusy {
                consume_code: false,
            },
            "502 upstream_error",
        ),
        (
            "no answer in time",
            Fault::Delay { ms: NEVER_MS },
            "504 upstream_timeout",
        ),
    ];
    let mut cases = Vec::new();
    for (name, fault, expect) in &faults {
        for i in 0..4 {
            let wx = app.wx_login(
                APP_B,
                &format!("ivy-{i}-in-b"),
                Some(&format!("ivy-union-{i}")),
            );
            app.sim
                .sticky_fault(FaultTarget::code(&wx.code), fault.clone())
                .expect("sticky fault");
            secrets.push(("a session_key", wx.session_key));
            secrets.push(("a code", wx.code.clone()));
            cases.push(login_case(
                &app,
                format!("login {i}: {name}"),
                expect,
                APP_B,
                &wx.code,
            ));
        }
    }
    // The refreshing code of user-info meets the same faults.
    for (name, fault, expect) in &faults {
        let relogin = app.wx_login(APP_A, "ivy-in-a", None);
        app.sim
            .sticky_fault(FaultTarget::code(&relogin.code), fault.clone())
            .expect("sticky fault");
        let info = app.wx_user_info(APP_A, "ivy-in-a");
        secrets.push(("a session_key", relogin.session_key));
        secrets.push(("a code", relogin.code.clone()));
        secrets.push(("encrypted_data", info.encrypted_data.clone()));
        let mut body = signed_body(&info);
        body["code"] = json!(relogin.code);
        cases.push(user_info_case(
            &app,
            &format!("user-info refresh: {name}"),
            expect,
            &provisional.token,
            &body,
        ));
    }
    // Data under a rotated key while checksession never answers in time: still decrypt_failed.
    app.sim
        .sticky_fault(
            FaultTarget::any().at_path(CHECK_SESSION_PATH),
            Fault::Delay { ms: NEVER_MS },
        )
        .expect("sticky fault");
    let rotated = app.wx_login(APP_A, "ivy-in-a", None);
    secrets.push(("a session_key", rotated.session_key));
    let stale = app.wx_user_info(APP_A, "ivy-in-a");
    secrets.push(("encrypted_data", stale.encrypted_data.clone()));
    cases.push(user_info_case(
        &app,
        "stale data while checksession is slow",
        "422 decrypt_failed",
        &provisional.token,
        &unsigned_body(&stale),
    ));
    // Meanwhile clean logins and the health check are served.
    for i in 0..4 {
        let wx = app.wx_login(
            APP_B,
            &format!("calm-{i}-in-b"),
            Some(&format!("calm-union-{i}")),
        );
        secrets.push(("a session_key", wx.session_key));
        cases.push(login_case(
            &app,
            format!("clean login {i}"),
            "200",
            APP_B,
            &wx.code,
        ));
    }
    cases.push(Case {
        what: "/healthz".to_owned(),
        expect: "200",
        request: app.client.get(format!("{}/healthz", app.address)),
    });

    let answers = run_all(cases).await;
    for (what, reply) in &answers {
        if what.starts_with("clean login") {
            secrets.push(("a token", LoginResponse::parse(reply).token));
        }
    }
    // Refused requests changed nothing.
    assert_eq!(app.me_ok(&owner.token).await, owner_before);
    assert_eq!(app.me_ok(&provisional.token).await, provisional_before);
    app.snapshot().assert_consistent("after the faults");
    app.sim.clear_faults();

    // Still serving: the provisional user links with a fresh code.
    let relogin = app.wx_login(APP_A, "ivy-in-a", None);
    secrets.push(("a session_key", relogin.session_key));
    let mut body = signed_body(&app.wx_user_info(APP_A, "ivy-in-a"));
    body["code"] = json!(relogin.code);
    let linked = app.user_info_ok(&provisional.token, &body).await;
    assert!(
        linked.merged && linked.user_id == owner.user_id,
        "{linked:?}"
    );

    app.stop();
    let logs = app.stderr();
    assert!(
        logs.contains("jscode2session") && logs.contains("checksession"),
        "the calls were logged (debug), so the scan below searched them:\n{logs}"
    );
    assert_no_secrets_in_logs(&logs, &secrets);
}
