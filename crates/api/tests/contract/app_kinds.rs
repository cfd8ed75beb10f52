//! Every app kind of one Open Platform account logs in through the same endpoint and lands on
//! the same user; phone numbers (docs/contract.md, "App kinds, phone numbers, access tokens").
//! The access token shared by several nodes is tested on processes in `tests/tests/api/`.

use serde_json::json;
use wxlink_wechat_sim::{AppKind, OAuthScope, SNS_USERINFO_PATH, UnionidPolicy};

use crate::helpers::{
    APP_A, APP_B, Api, Backend, LoginResponse, Options, TestApp, assert_error, identities,
};

const OFFICIAL: &str = "wxc1c2c3d4e5f60003";
const MOBILE: &str = "wxd1d2d3d4e5f60004";

on_both_backends!(
    an_official_account_user_who_later_opens_the_mini_program_is_one_user,
    a_mobile_app_login_with_unionid_joins_the_same_user,
    a_base_scope_login_is_provisional,
    a_snapshot_page_user_is_refused_and_creates_nothing,
    a_phone_number_is_stored_sealed_and_returned,
    oauth_logins_cannot_send_user_info_or_phone_codes,
    sns_userinfo_counts_toward_the_app_limit,
);

fn kinds() -> Options {
    Options::default()
        .apps(&[
            (APP_A, UnionidPolicy::Never),
            (APP_B, UnionidPolicy::Always),
            (OFFICIAL, UnionidPolicy::Always),
            (MOBILE, UnionidPolicy::Always),
        ])
        // The official account's exchange omits the unionid: wxlink must ask sns/userinfo.
        .kind(OFFICIAL, AppKind::OfficialAccount, false)
        .kind(MOBILE, AppKind::MobileApp, true)
}

async fn oauth_login(
    app: &TestApp,
    appid: &str,
    openid: &str,
    unionid: Option<&str>,
    scope: OAuthScope,
) -> LoginResponse {
    let code = app
        .sim
        .oauth_authorize(appid, Some(openid), unionid, scope)
        .expect("the simulator issues an OAuth code")
        .code;
    LoginResponse::parse(&app.login_with_code(appid, &code).await)
}

async fn an_official_account_user_who_later_opens_the_mini_program_is_one_user(backend: Backend) {
    let app = TestApp::spawn(backend, kinds()).await;
    let web = oauth_login(
        &app,
        OFFICIAL,
        "oa-fay",
        Some("fay-union"),
        OAuthScope::SnsapiUserinfo,
    )
    .await;
    assert!(web.unionid_linked && !web.needs_user_info, "{web:?}");

    let mini = app.login(APP_B, "mp-fay", Some("fay-union")).await;
    assert_eq!(mini.user_id, web.user_id);
    assert_eq!(
        app.me_ok(&mini.token).await.identities,
        identities(&[(APP_B, "mp-fay"), (OFFICIAL, "oa-fay")])
    );
    // The exchange had no unionid; wxlink asked sns/userinfo for it.
    assert_eq!(app.sim.calls().total("/sns/userinfo"), 1);
}

async fn a_snapshot_page_user_is_refused_and_creates_nothing(backend: Backend) {
    let app = TestApp::spawn(backend, kinds()).await;
    let visit = app
        .sim
        .oauth_snapshot_visit(OFFICIAL)
        .expect("the simulator issues a snapshot page's code");
    let reply = app.login_with_code(OFFICIAL, &visit.code).await;
    let message = assert_error(
        &reply,
        403,
        "snapshot_user",
        "a snapshot page's virtual user",
    );
    assert!(message.contains("使用完整服务"), "{message}");

    let db = app.snapshot();
    assert!(
        db.users.is_empty() && db.identities.is_empty(),
        "no user or identity for a virtual user: {db:?}"
    );
    assert!(
        db.sessions.is_empty() && db.events.is_empty(),
        "no session or event for a virtual user: {db:?}"
    );
    // The same person, once they open the page for real, logs in as usual.
    let real = oauth_login(&app, OFFICIAL, "oa-gus", None, OAuthScope::SnsapiBase).await;
    assert_eq!(app.snapshot().users.len(), 1, "{real:?}");
}

async fn a_mobile_app_login_with_unionid_joins_the_same_user(backend: Backend) {
    let app = TestApp::spawn(backend, kinds()).await;
    let mini = app.login(APP_B, "mp-gus", Some("gus-union")).await;
    let phone_app = oauth_login(
        &app,
        MOBILE,
        "app-gus",
        Some("gus-union"),
        OAuthScope::SnsapiUserinfo,
    )
    .await;
    assert_eq!(phone_app.user_id, mini.user_id);
    assert!(phone_app.unionid_linked);
    // The unionid came with the exchange: no userinfo call.
    assert_eq!(app.sim.calls().total("/sns/userinfo"), 0);
}

async fn a_base_scope_login_is_provisional(backend: Backend) {
    let app = TestApp::spawn(backend, kinds()).await;
    let web = oauth_login(
        &app,
        OFFICIAL,
        "oa-hal",
        Some("hal-union"),
        OAuthScope::SnsapiBase,
    )
    .await;
    // Not linked, yet an official account cannot send encrypted user data.
    assert!(!web.unionid_linked && !web.needs_user_info, "{web:?}");
    // A later login through a bound mini program does not know this identity: another user,
    // until the person logs in on the official account with consent to read the unionid.
    let mini = app.login(APP_B, "mp-hal", Some("hal-union")).await;
    let again = oauth_login(
        &app,
        OFFICIAL,
        "oa-hal",
        Some("hal-union"),
        OAuthScope::SnsapiUserinfo,
    )
    .await;
    assert_eq!(
        again.user_id, mini.user_id,
        "the provisional user merged into the owner"
    );
    assert_eq!(
        app.me_ok(&web.token).await.user_id,
        mini.user_id,
        "the old token follows the merge"
    );
}

async fn a_phone_number_is_stored_sealed_and_returned(backend: Backend) {
    let app = TestApp::spawn(backend, kinds()).await;
    let login = app.login(APP_B, "mp-ivy", Some("ivy-union")).await;
    let code = app.wx_phone_code(APP_B, "mp-ivy", "13812345678", Some("86"));
    let reply = app.phone_number(&login.token, &code).await;
    assert_eq!(
        reply.ok_json(200, "phone number"),
        json!({"phone_number": "13812345678", "pure_phone_number": "13812345678", "country_code": "86"})
    );
    let stored = app.stored_bytes();
    assert!(
        !stored.windows(11).any(|w| w == b"13812345678"),
        "the phone number is sealed at rest"
    );

    // The code worked once.
    let again = app.phone_number(&login.token, &code).await;
    assert_error(&again, 401, "invalid_code", "a used phone code");
    let no_token = app
        .post_json("/v1/wechat/phone-number", None, &json!({"code": code}))
        .await;
    assert_error(&no_token, 401, "invalid_token", "no token");
    let bad = app
        .post_json(
            "/v1/wechat/phone-number",
            Some(&login.token),
            &json!({"code": 5}),
        )
        .await;
    assert_error(&bad, 400, "invalid_request", "a mistyped code");
}

/// `sns/userinfo` is a call to WeChat like the code exchange, so it spends the app's limit too:
/// past it the login still succeeds (the code is spent) without asking, instead of burning
/// the app's WeChat quota.
async fn sns_userinfo_counts_toward_the_app_limit(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        kinds().extra_toml("[rate_limit]\nper_app_burst = 3\nper_app_per_minute = 1\n"),
    )
    .await;
    // 1 + 1: the exchange and sns/userinfo, which brings the unionid.
    let first = oauth_login(
        &app,
        OFFICIAL,
        "oa-kim",
        Some("kim-union"),
        OAuthScope::SnsapiUserinfo,
    )
    .await;
    assert!(first.unionid_linked, "{first:?}");
    // 3: the exchange; the limit is spent, so no sns/userinfo and no unionid yet.
    let second = oauth_login(
        &app,
        OFFICIAL,
        "oa-lee",
        Some("lee-union"),
        OAuthScope::SnsapiUserinfo,
    )
    .await;
    assert!(!second.unionid_linked, "{second:?}");
    assert_eq!(
        app.sim.calls().total(SNS_USERINFO_PATH),
        1,
        "one sns/userinfo within the limit"
    );
}

async fn oauth_logins_cannot_send_user_info_or_phone_codes(backend: Backend) {
    let app = TestApp::spawn(backend, kinds()).await;
    let web = oauth_login(
        &app,
        OFFICIAL,
        "oa-jo",
        Some("jo-union"),
        OAuthScope::SnsapiUserinfo,
    )
    .await;
    let info = app
        .post_json(
            "/v1/wechat/user-info",
            Some(&web.token),
            &json!({"encrypted_data": "AAAAAAAAAAAAAAAAAAAAAA==", "iv": "AAAAAAAAAAAAAAAAAAAAAA=="}),
        )
        .await;
    assert_error(
        &info,
        400,
        "unsupported_app_kind",
        "user info on an OAuth login",
    );
    let phone = app.phone_number(&web.token, "x").await;
    assert_error(
        &phone,
        400,
        "unsupported_app_kind",
        "a phone code on an OAuth login",
    );
}
