//! The cluster-wide access token: several nodes share one and refresh it once
//! (docs/contract.md, "App kinds, phone numbers, access tokens"). The app kinds and phone
//! numbers that need no process are in `crates/api/tests/contract/app_kinds.rs`.

use serde_json::json;

use crate::helpers::{APP_B, Api, Backend, Options, TestApp};

on_both_backends!(two_nodes_share_one_access_token_and_refresh_it_once);

async fn two_nodes_share_one_access_token_and_refresh_it_once(backend: Backend) {
    let mut app = TestApp::spawn(backend, Options::default()).await;
    let second = app.spawn_node().await;
    let nodes = [app.address.clone(), second];
    let login = app.login(APP_B, "mp-kai", Some("kai-union")).await;

    let burst = |round: usize| {
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..24 {
            let code = app.wx_phone_code(APP_B, "mp-kai", &format!("1380000{round}{i:03}"), None);
            let url = format!("{}/v1/wechat/phone-number", nodes[i % 2]);
            let (client, token) = (app.client.clone(), login.token.clone());
            calls.spawn(async move {
                let reply = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"code": code}))
                    .send()
                    .await
                    .expect("wxlink answers");
                (
                    reply.status().as_u16(),
                    reply.text().await.unwrap_or_default(),
                )
            });
        }
        calls
    };

    for (status, body) in burst(1).join_all().await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        app.sim.stable_token_calls_for(APP_B),
        1,
        "one fetch for the whole cluster"
    );

    // WeChat expires the token early: every node meets 42001, exactly one refreshes, and no
    // caller sees the token error.
    app.sim
        .expire_access_token(APP_B)
        .expect("the simulator expires the token");
    for (status, body) in burst(2).join_all().await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        app.sim.stable_token_calls_for(APP_B),
        2,
        "exactly one refresh"
    );
}
