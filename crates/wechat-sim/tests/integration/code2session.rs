//! code2Session: its answers, single-use codes, rotation of the session key, unionid
//! policies and WeChat's checks.

use super::*;

#[tokio::test]
async fn success_is_text_plain_json_without_errcode() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let login = sim.login(APPID, "o-1", Some("u-1")).expect("login");
    let answer = code2session(&sim, &login.code).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "text/plain");
    assert_eq!(
        answer.body,
        json!({"openid": "o-1", "session_key": login.session_key, "unionid": "u-1"})
    );
    assert_eq!(login.expires_in, 300);
}

#[tokio::test]
async fn errors_are_text_plain_json_with_wechat_messages() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let answer = code2session(&sim, "no-such-code").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "text/plain");
    assert_eq!(answer.errcode(), Some(40029));
    assert!(
        answer.errmsg().starts_with("invalid code, rid: "),
        "{}",
        answer.errmsg()
    );
}

#[tokio::test]
async fn a_code_works_once() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let login = sim.login(APPID, "o-1", None).expect("login");
    assert!(
        code2session(&sim, &login.code)
            .await
            .str("openid")
            .is_some()
    );
    let again = code2session(&sim, &login.code).await;
    assert_eq!(again.errcode(), Some(40163));
    assert!(again.errmsg().starts_with("code been used, rid: "));
}

#[tokio::test]
async fn a_code_expires_after_five_minutes_of_sim_clock() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let early = sim.login(APPID, "o-1", None).expect("login");
    let late = sim.login(APPID, "o-2", None).expect("login");
    sim.advance_clock(Duration::from_secs(290));
    assert!(
        code2session(&sim, &early.code)
            .await
            .str("openid")
            .is_some()
    );
    sim.advance_clock(Duration::from_secs(20));
    assert_eq!(code2session(&sim, &late.code).await.errcode(), Some(40029));
}

#[tokio::test]
async fn login_rotates_the_session_key() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let first = sim.login(APPID, "o-1", None).expect("login");
    let second = sim.login(APPID, "o-1", None).expect("login");
    assert_ne!(first.session_key, second.session_key);
    assert_ne!(first.code, second.code);
    for key in [&first.session_key, &second.session_key] {
        assert_eq!(key.len(), 24, "base64 of 16 bytes");
    }
    // code2Session gives the user's current key, whichever code is exchanged.
    let answer = code2session(&sim, &second.code).await;
    assert_eq!(answer.str("session_key"), Some(second.session_key.as_str()));
    // Data from getUserInfo is under the new key; the old key cannot read it.
    let info = sim.user_info(APPID, "o-1").expect("user info");
    assert!(
        wxlink_crypto::decrypt_user_data(&second.session_key, &info.iv, &info.encrypted_data)
            .is_ok()
    );
    assert!(
        wxlink_crypto::decrypt_user_data(&first.session_key, &info.iv, &info.encrypted_data)
            .is_err()
    );
}

#[tokio::test]
async fn unionid_policies() {
    let sim = Simulator::builder()
        .app("wxalways", "s", UnionidPolicy::Always)
        .app("wxnever", "s", UnionidPolicy::Never)
        .app("wxfollow", "s", UnionidPolicy::WhenFollowing)
        .start()
        .await
        .expect("start");
    let base = sim.base_url();
    let unionid_of = |appid: &'static str| {
        let base = base.clone();
        let sim = sim.sim().clone();
        async move {
            let login = sim.login(appid, "o-1", Some("u-1")).expect("login");
            code2session_at(&base, appid, "s", &login.code)
                .await
                .str("unionid")
                .map(str::to_owned)
        }
    };
    assert_eq!(unionid_of("wxalways").await.as_deref(), Some("u-1"));
    assert_eq!(unionid_of("wxnever").await, None);
    assert_eq!(unionid_of("wxfollow").await, None);
    sim.follow("wxfollow", "o-1").expect("follow");
    assert_eq!(unionid_of("wxfollow").await.as_deref(), Some("u-1"));
    sim.set_following("wxfollow", "o-1", false)
        .expect("unfollow");
    assert_eq!(unionid_of("wxfollow").await, None);

    // A user without a unionid never gets one, and a later login keeps an existing one.
    let login = sim.login("wxalways", "o-2", None).expect("login");
    let answer = code2session_at(&base, "wxalways", "s", &login.code).await;
    assert!(answer.body.get("unionid").is_none());
    let login = sim.login("wxalways", "o-1", None).expect("login");
    let answer = code2session_at(&base, "wxalways", "s", &login.code).await;
    assert_eq!(answer.str("unionid"), Some("u-1"));
}

#[tokio::test]
async fn checks_credentials_grant_type_and_code() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let base = sim.base_url();
    let login = sim.login(APPID, "o-1", None).expect("login");

    let wrong_secret = code2session_at(&base, APPID, "nope", &login.code).await;
    assert_eq!(wrong_secret.errcode(), Some(40125));
    assert!(wrong_secret.errmsg().starts_with("invalid appsecret"));
    let unknown_app = code2session_at(&base, "wxunknown", SECRET, &login.code).await;
    assert_eq!(unknown_app.errcode(), Some(40013));
    let missing_code = code2session_at(&base, APPID, SECRET, "").await;
    assert_eq!(missing_code.errcode(), Some(41008));

    sim.register_app("wxother", "s2", UnionidPolicy::Always)
        .expect("register");
    let foreign = code2session_at(&base, "wxother", "s2", &login.code).await;
    assert_eq!(foreign.errcode(), Some(40029), "a code belongs to its app");

    let no_grant = wechat_get(
        &base,
        CODE2SESSION_PATH,
        &[
            ("appid", APPID),
            ("secret", SECRET),
            ("js_code", &login.code),
        ],
    )
    .await;
    assert_eq!(no_grant.errcode(), Some(40002), "{:?}", no_grant.body);

    // The failed calls did not burn the code.
    assert!(
        code2session(&sim, &login.code)
            .await
            .str("openid")
            .is_some()
    );

    // Malformed queries get an errcode, never a crash.
    for query in ["%zz%ff", "appid", "&&&", "appid=%FF%FE"] {
        let answer = wechat_get(&base, &format!("{CODE2SESSION_PATH}?{query}"), &[]).await;
        assert!(answer.errcode().is_some(), "{query}: {:?}", answer.body);
    }
    let huge = "a".repeat(5_000);
    let answer = code2session_at(&base, &huge, &huge, &huge).await;
    assert_eq!(answer.errcode(), Some(40013));
}
