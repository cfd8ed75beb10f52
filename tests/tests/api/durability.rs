//! An acknowledged login survives the process being killed (SIGKILL, no shutdown), and
//! SIGTERM lets in-flight requests finish.

use std::time::Duration;

use serde_json::json;
use wxlink_wechat_sim::{Fault, FaultTarget};

use crate::helpers::{
    APP_A, APP_B, Api, Backend, LoginResponse, Options, TestApp, send, signed_body,
};

on_both_backends!(
    acknowledged_logins_survive_sigkill,
    sigterm_lets_in_flight_requests_finish,
);

async fn acknowledged_logins_survive_sigkill(backend: Backend) {
    let mut app = TestApp::spawn(backend, Options::default()).await;

    let mut acknowledged = Vec::new();
    for i in 0..30 {
        let appid = if i % 3 == 0 { APP_A } else { APP_B };
        let openid = format!("durable-{i}");
        let unionid = format!("durable-union-{i}");
        let login = app.login(appid, &openid, Some(&unionid)).await;
        acknowledged.push((appid, openid, login));
    }
    let key_file = app.dir().join("wxlink.key");
    let data_key = std::fs::read_to_string(&key_file).expect("the data key file");

    app.kill_and_restart().await;

    assert_eq!(
        std::fs::read_to_string(&key_file).expect("the data key file"),
        data_key,
        "a restart reuses the data key file"
    );
    for (appid, openid, login) in &acknowledged {
        let me = app.me_ok(&login.token).await;
        assert_eq!(me.user_id, login.user_id, "{appid}/{openid}");
        assert_eq!(me.unionid_linked, login.unionid_linked, "{appid}/{openid}");
        assert!(
            me.identities
                .contains(&((*appid).to_owned(), openid.clone())),
            "{appid}/{openid}: {me:?}"
        );
    }

    // The stored session_keys survived too (sealed with the same data key): a provisional
    // user's data opens with the key stored before the kill.
    let (appid, openid, login) = &acknowledged[0];
    assert!(login.needs_user_info);
    let info = app.wx_user_info(appid, openid);
    let linked = app.user_info_ok(&login.token, &signed_body(&info)).await;
    assert!(linked.unionid_linked && !linked.merged, "{linked:?}");
    assert_eq!(linked.user_id, login.user_id);
}

async fn sigterm_lets_in_flight_requests_finish(backend: Backend) {
    let mut app = TestApp::spawn(backend, Options::default()).await;

    // A login that is still waiting for WeChat when SIGTERM arrives.
    let wx = app.wx_login(APP_B, "otto-in-b", Some("otto-union"));
    app.sim
        .queue_faults(FaultTarget::code(&wx.code), [Fault::Delay { ms: 1000 }])
        .expect("queue a fault");
    let request = app
        .client
        .post(format!("{}/v1/wechat/login", app.address))
        .json(&json!({"appid": APP_B, "code": wx.code}));
    let in_flight = tokio::spawn(async move { send(request, "in-flight login").await });
    wxlink_tests::eventually(Duration::from_secs(10), async || {
        (app.sim.code2session_calls() > 0).then_some(())
    })
    .await
    .expect("the login reaches WeChat");
    app.terminate();

    let reply = in_flight.await.expect("the login task");
    let login = LoginResponse::parse(&reply);
    let status = app.wait_exit(Duration::from_secs(15));
    assert!(
        status.success(),
        "wxlink exits cleanly after SIGTERM: {status}"
    );

    // What it acknowledged during shutdown was kept.
    app.restart().await;
    assert_eq!(app.me_ok(&login.token).await.user_id, login.user_id);
}
