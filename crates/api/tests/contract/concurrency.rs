//! One person is one user under concurrency: simultaneous first logins, simultaneous user
//! data. Several nodes on one database are tested on processes in
//! `tests/tests/api/concurrency.rs`.

use serde_json::{Value, json};
use wxlink_tests::answers::assert_all_ok;
use wxlink_wechat_sim::UnionidPolicy;

use crate::helpers::{
    APP_A, APP_B, APP_C, Api, Backend, LoginResponse, Options, Reply, TestApp, UserInfoResponse,
    identities, signed_body,
};

on_both_backends!(
    concurrent_first_logins_make_one_user,
    concurrent_user_info_makes_one_owner,
);

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
    let mut requests = Vec::new();
    for _ in 0..20 {
        for (appid, openid) in [(APP_A, "zoe-in-a"), (APP_B, "zoe-in-b")] {
            let code = app.wx_login(appid, openid, Some("zoe-union")).code;
            requests.push((
                "/v1/wechat/login",
                None,
                json!({"appid": appid, "code": code}),
            ));
        }
    }
    let answers = all_at_once(&app, requests).await;
    assert_all_ok(&answers, "40 concurrent first logins");
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

/// Sends every `POST path` (with its token and JSON body) at once, each from a task of its own,
/// and waits for all answers, in the order given.
async fn all_at_once(app: &TestApp, requests: Vec<(&str, Option<String>, Value)>) -> Vec<Reply> {
    let requests = requests
        .into_iter()
        .map(|(path, token, body)| {
            let (client, path) = (app.client(), path.to_owned());
            async move { client.post_json(&path, token.as_deref(), &body).await }
        })
        .collect();
    wxlink_tests::answers::all_at_once(requests).await
}

/// Two provisional users of one person send their user data at the same time, ten times
/// each: one becomes the unionid's owner, the other is merged into it exactly once.
async fn concurrent_user_info_makes_one_owner(backend: Backend) {
    // Attempts in flight hold a reservation of the session's failed-decryption budget (5 by
    // default); ten at once on one session need a larger one.
    let app = TestApp::spawn(
        backend,
        Options::default()
            .apps(&[(APP_A, UnionidPolicy::Never), (APP_C, UnionidPolicy::Never)])
            .security_toml("max_failed_decrypts_per_session = 10\n"),
    )
    .await;
    let on_a = app.login(APP_A, "max-in-a", Some("max-union")).await;
    let on_c = app.login(APP_C, "max-in-c", Some("max-union")).await;
    let body_a = signed_body(&app.wx_user_info(APP_A, "max-in-a"));
    let body_c = signed_body(&app.wx_user_info(APP_C, "max-in-c"));
    let mut requests = Vec::new();
    for _ in 0..10 {
        for (token, body) in [(&on_a.token, &body_a), (&on_c.token, &body_c)] {
            requests.push(("/v1/wechat/user-info", Some(token.clone()), body.clone()));
        }
    }
    let answers = all_at_once(&app, requests).await;
    assert_all_ok(&answers, "concurrent user-info");
    let answers: Vec<UserInfoResponse> = answers.iter().map(UserInfoResponse::parse).collect();
    let owners: std::collections::BTreeSet<&str> =
        answers.iter().map(|a| a.user_id.as_str()).collect();
    assert_eq!(owners.len(), 1, "one unionid is one user: {answers:#?}");
    let owner = answers[0].user_id.clone();
    assert!(
        owner == on_a.user_id || owner == on_c.user_id,
        "the owner is one of the two provisional users"
    );
    assert!(answers.iter().all(|a| a.unionid_linked));
    let merges = answers.iter().filter(|a| a.merged).count();
    assert_eq!(merges, 1, "exactly one merge: {answers:#?}");

    let both = identities(&[(APP_A, "max-in-a"), (APP_C, "max-in-c")]);
    for token in [&on_a.token, &on_c.token] {
        let me = app.me_ok(token).await;
        assert_eq!(me.user_id, owner);
        assert_eq!(me.identities, both);
    }
}
