//! One person is one user on several nodes sharing one database (simultaneous first logins and
//! user data on one node are tested in-process in `crates/api/tests/contract/concurrency.rs`).
//! Latency is measured by `cargo xtask bench`, not here.

use serde_json::json;
use wxlink_tests::answers::assert_all_ok;
use wxlink_wechat_sim::UnionidPolicy;

use crate::helpers::{
    APP_A, APP_B, Api, Backend, LoginResponse, Options, Reply, TestApp, identities, send,
};

on_both_backends!(two_nodes_sharing_a_database_make_one_user);

/// Sends every request at once and waits for all answers, in the order given.
async fn all_at_once(requests: Vec<reqwest::RequestBuilder>) -> Vec<Reply> {
    let requests = requests
        .into_iter()
        .map(|request| async move { send(request, "concurrent request").await })
        .collect();
    wxlink_tests::answers::all_at_once(requests).await
}

/// Rule 4 holds across nodes: database constraints, not in-process locks.
async fn two_nodes_sharing_a_database_make_one_user(backend: Backend) {
    let mut app = TestApp::spawn(
        backend,
        Options::default().apps(&[
            (APP_A, UnionidPolicy::Always),
            (APP_B, UnionidPolicy::Always),
        ]),
    )
    .await;
    let second = app.spawn_node().await;
    let mut requests = Vec::new();
    for i in 0..10 {
        for (appid, openid) in [(APP_A, "nia-in-a"), (APP_B, "nia-in-b")] {
            let code = app.wx_login(appid, openid, Some("nia-union")).code;
            let node = if i % 2 == 0 { &app.address } else { &second };
            requests.push(
                app.client
                    .post(format!("{node}/v1/wechat/login"))
                    .json(&json!({"appid": appid, "code": code})),
            );
        }
    }
    let answers = all_at_once(requests).await;
    assert_all_ok(&answers, "logins on two nodes");
    let logins: Vec<LoginResponse> = answers.iter().map(LoginResponse::parse).collect();
    let users: std::collections::BTreeSet<&str> =
        logins.iter().map(|l| l.user_id.as_str()).collect();
    assert_eq!(
        users.len(),
        1,
        "one unionid is one user across nodes: {users:?}"
    );
    let me = app.me_ok(&logins[0].token).await;
    assert_eq!(
        me.identities,
        identities(&[(APP_A, "nia-in-a"), (APP_B, "nia-in-b")])
    );
}
