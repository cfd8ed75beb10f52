//! The linking rules as a client sees them: unionid at login, provisional users, links and
//! merges learned from user data.

use wxlink_wechat_sim::{UnionidPolicy, UserInfoRequest};

use crate::helpers::{
    APP_A, APP_B, APP_C, Api, Backend, Options, TestApp, UserInfoResponse, assert_error,
    identities, signed_body,
};

on_both_backends!(
    unionid_at_login_links_two_apps,
    user_info_links_a_provisional_user,
    provisional_user_merges_into_the_unionid_owner,
    first_provisional_user_to_link_owns_the_unionid,
    login_that_tells_the_unionid_merges_a_provisional_identity,
    tokens_without_session_ids_serve_a_rolling_upgrade,
);

async fn unionid_at_login_links_two_apps(backend: Backend) {
    let app = bound_b_and_c(backend).await;

    let on_b = app.login(APP_B, "alice-in-b", Some("alice-union")).await;
    assert!(on_b.unionid_linked, "{on_b:?}");
    assert!(!on_b.needs_user_info, "{on_b:?}");
    assert_eq!(on_b.expires_in, 604_800, "the default ttl");
    assert!(
        on_b.token.len() == 64
            && on_b
                .token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "a token is 64 URL-safe characters (a session id and 32 random bytes): {:?}",
        on_b.token
    );

    let on_c = app.login(APP_C, "alice-in-c", Some("alice-union")).await;
    assert_eq!(on_c.user_id, on_b.user_id, "one unionid is one user");
    assert!(on_c.unionid_linked && !on_c.needs_user_info, "{on_c:?}");
    assert_ne!(on_c.token, on_b.token, "each login issues a new token");

    for token in [&on_b.token, &on_c.token] {
        let me = app.me_ok(token).await;
        assert_eq!(me.user_id, on_b.user_id);
        assert!(me.unionid_linked);
        assert_eq!(
            me.identities,
            identities(&[(APP_B, "alice-in-b"), (APP_C, "alice-in-c")])
        );
    }

    // A token names its session in its first characters: that name with another secret
    // (the rest of another token) opens nothing.
    let forged = format!("{}{}", &on_b.token[..22], &on_c.token[22..]);
    let refused = app.me(&forged).await;
    assert_error(
        &refused,
        401,
        "invalid_token",
        "a session id with another secret",
    );

    // Logging in again on an app gives a new token for the same user and no new identity.
    let again = app.login(APP_B, "alice-in-b", None).await;
    assert_eq!(again.user_id, on_b.user_id);
    assert!(again.token != on_b.token && again.token != on_c.token);
    assert_eq!(app.me_ok(&again.token).await.identities.len(), 2);

    // Another person stays another user.
    let bob = app.login(APP_B, "bob-in-b", Some("bob-union")).await;
    assert_ne!(bob.user_id, on_b.user_id);
    assert_eq!(
        app.me_ok(&bob.token).await.identities,
        identities(&[(APP_B, "bob-in-b")])
    );
}

async fn user_info_links_a_provisional_user(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;

    let login = app.login(APP_A, "carol-in-a", Some("carol-union")).await;
    assert!(!login.unionid_linked, "{login:?}");
    assert!(login.needs_user_info, "{login:?}");
    let me = app.me_ok(&login.token).await;
    assert_eq!(me.user_id, login.user_id);
    assert!(!me.unionid_linked);
    assert_eq!(me.identities, identities(&[(APP_A, "carol-in-a")]));

    // wx.getUserProfile's data carries no unionId: accepted, links nothing.
    let profile = app
        .sim
        .user_info_with(&UserInfoRequest::new(APP_A, "carol-in-a").without_unionid())
        .expect("simulated wx.getUserProfile");
    let answer = app.user_info_ok(&login.token, &signed_body(&profile)).await;
    assert_eq!(
        answer,
        UserInfoResponse {
            user_id: login.user_id.clone(),
            unionid_linked: false,
            merged: false
        }
    );

    // wx.getUserInfo's data carries the unionId: the provisional user becomes its owner.
    let linked = linked_to(&login.user_id, false);
    assert_eq!(
        app.share_user_info(&login.token, APP_A, "carol-in-a").await,
        linked
    );
    let me = app.me_ok(&login.token).await;
    assert!(me.unionid_linked);
    assert_eq!(me.user_id, login.user_id);
    assert_eq!(me.identities, identities(&[(APP_A, "carol-in-a")]));

    // Sending it again changes nothing.
    assert_eq!(
        app.share_user_info(&login.token, APP_A, "carol-in-a").await,
        linked
    );

    // Later logins land on the linked user: on A (no unionid at login) and on bound B.
    let again = app.login(APP_A, "carol-in-a", None).await;
    assert_eq!(again.user_id, login.user_id);
    assert!(again.unionid_linked && !again.needs_user_info, "{again:?}");
    let on_b = app.login(APP_B, "carol-in-b", Some("carol-union")).await;
    assert_eq!(on_b.user_id, login.user_id);
    assert_eq!(
        app.me_ok(&login.token).await.identities,
        identities(&[(APP_A, "carol-in-a"), (APP_B, "carol-in-b")])
    );
}

async fn provisional_user_merges_into_the_unionid_owner(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;

    // The person first uses bound app B: WeChat tells the unionid, B's user O owns it.
    let owner = app.login(APP_B, "dan-in-b", Some("dan-union")).await;
    assert!(owner.unionid_linked);
    // Then unbound app A: a provisional user P.
    let provisional = app.login(APP_A, "dan-in-a", Some("dan-union")).await;
    assert!(provisional.needs_user_info);
    assert_ne!(provisional.user_id, owner.user_id);

    // A's user data names the unionid: P is merged into O.
    assert_eq!(
        app.share_user_info(&provisional.token, APP_A, "dan-in-a")
            .await,
        linked_to(&owner.user_id, true)
    );

    // P's token acts as O, with both identities; so does O's.
    let both = identities(&[(APP_A, "dan-in-a"), (APP_B, "dan-in-b")]);
    assert_act_as(
        &app,
        [&provisional.token, &owner.token],
        &owner.user_id,
        &both,
    )
    .await;

    // Submitting data again through P's token is no second merge.
    assert_eq!(
        app.share_user_info(&provisional.token, APP_A, "dan-in-a")
            .await,
        linked_to(&owner.user_id, false)
    );

    // A later login on A lands on O.
    let later = app.login(APP_A, "dan-in-a", None).await;
    assert_eq!(later.user_id, owner.user_id);
    assert!(later.unionid_linked && !later.needs_user_info, "{later:?}");
    assert_eq!(app.me_ok(&later.token).await.identities, both);

    // P's old token still works after logging out O's.
    assert_eq!(app.logout(&owner.token).await.status, 204);
    assert_eq!(app.me_ok(&provisional.token).await.user_id, owner.user_id);
}

async fn first_provisional_user_to_link_owns_the_unionid(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        Options::default().apps(&[(APP_A, UnionidPolicy::Never), (APP_C, UnionidPolicy::Never)]),
    )
    .await;
    // One person on two unbound apps: two provisional users.
    let on_a = app.login(APP_A, "eve-in-a", Some("eve-union")).await;
    let on_c = app.login(APP_C, "eve-in-c", Some("eve-union")).await;
    assert!(on_a.needs_user_info && on_c.needs_user_info);
    assert_ne!(on_a.user_id, on_c.user_id);

    // The first to send user data becomes the unionid's owner …
    assert_eq!(
        app.share_user_info(&on_c.token, APP_C, "eve-in-c").await,
        linked_to(&on_c.user_id, false)
    );
    // … and the second is merged into it.
    assert_eq!(
        app.share_user_info(&on_a.token, APP_A, "eve-in-a").await,
        linked_to(&on_c.user_id, true)
    );
    let both = identities(&[(APP_A, "eve-in-a"), (APP_C, "eve-in-c")]);
    assert_act_as(&app, [&on_a.token, &on_c.token], &on_c.user_id, &both).await;
}

/// Rule 1 with rule 3: a known identity whose user is provisional logs in, and this time
/// WeChat tells a unionid that another user owns.
async fn login_that_tells_the_unionid_merges_a_provisional_identity(backend: Backend) {
    let app = bound_b_and_c(backend).await;
    // The WeChat user has no unionid yet: a provisional user on bound app B.
    let provisional = app.login(APP_B, "ray-in-b", None).await;
    assert!(provisional.needs_user_info);
    // The same person is known on C with a unionid.
    let owner = app.login(APP_C, "ray-in-c", Some("ray-union")).await;
    assert!(owner.unionid_linked);
    assert_ne!(owner.user_id, provisional.user_id);

    // Now WeChat tells B's login the unionid: the provisional user is merged into the owner.
    let merged = app.login(APP_B, "ray-in-b", Some("ray-union")).await;
    assert_eq!(merged.user_id, owner.user_id);
    assert!(
        merged.unionid_linked && !merged.needs_user_info,
        "{merged:?}"
    );
    let both = identities(&[(APP_B, "ray-in-b"), (APP_C, "ray-in-c")]);
    for token in [&provisional.token, &owner.token, &merged.token] {
        let me = app.me_ok(token).await;
        assert_eq!(me.user_id, owner.user_id);
        assert_eq!(me.identities, both);
    }
}

/// What sending user data answers when it linked the unionid to `user` (`merged`: the
/// session's user was merged into it).
fn linked_to(user: &str, merged: bool) -> UserInfoResponse {
    UserInfoResponse {
        user_id: user.to_owned(),
        unionid_linked: true,
        merged,
    }
}

/// Each of `tokens` acts as the linked `user`, with `identities`.
async fn assert_act_as(
    app: &TestApp,
    tokens: [&str; 2],
    user: &str,
    identities: &[(String, String)],
) {
    for token in tokens {
        let me = app.me_ok(token).await;
        assert_eq!(me.user_id, user, "{token}");
        assert!(me.unionid_linked, "{token}");
        assert_eq!(me.identities, identities, "{token}");
    }
}

/// wxlink with two bound apps, B and C.
async fn bound_b_and_c(backend: Backend) -> TestApp {
    TestApp::spawn(
        backend,
        Options::default().apps(&[
            (APP_B, UnionidPolicy::Always),
            (APP_C, UnionidPolicy::Always),
        ]),
    )
    .await
}

/// `[session] token_ids = false` (the first roll of an upgrade from a release whose nodes find
/// sessions by the whole token's hash): tokens are the earlier 43 characters, and this release
/// finds them as well as its own.
async fn tokens_without_session_ids_serve_a_rolling_upgrade(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        Options::default().extra_toml("[session]\ntoken_ids = false\n"),
    )
    .await;
    let login = app.login(APP_B, "olga-in-b", Some("olga-union")).await;
    assert_eq!(login.token.len(), 43, "the earlier form: {:?}", login.token);
    assert_eq!(app.me_ok(&login.token).await.user_id, login.user_id);
    assert_eq!(app.logout(&login.token).await.status, 204);
    assert_error(
        &app.me(&login.token).await,
        401,
        "invalid_token",
        "a logged-out token",
    );
}
