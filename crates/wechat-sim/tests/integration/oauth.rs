//! The OAuth login of official accounts, mobile apps and websites: the consent control call,
//! `sns/oauth2/access_token` and `sns/userinfo`.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wxlink_wechat_sim::{
    AppKind, AppRegistration, CODE2SESSION_PATH, Fault, FaultTarget, OAUTH_ACCESS_TOKEN_PATH,
    OAuthScope, SNS_USERINFO_PATH, SimError, SimHandle, Simulator, UnionidPolicy,
};

use super::{Exchange, control, wechat_get};

const OA: &str = "wx_official_account";
const APP: &str = "wx_mobile_app";
const WEB: &str = "wx_website";
const MINI: &str = "wx_mini_program";
const SECRET: &str = "oa-secret";

async fn sim() -> SimHandle {
    let app = |appid: &str, kind| {
        AppRegistration::new(appid, SECRET, UnionidPolicy::Always).with_kind(kind)
    };
    Simulator::builder()
        .app_with(app(OA, AppKind::OfficialAccount))
        .app_with(app(APP, AppKind::MobileApp).with_unionid_in_exchange(false))
        .app_with(app(WEB, AppKind::Website))
        .app(MINI, SECRET, UnionidPolicy::Always)
        .start()
        .await
        .expect("simulator starts")
}

async fn exchange(sim: &SimHandle, appid: &str, code: &str) -> Exchange {
    exchange_with(sim, appid, SECRET, code).await
}

async fn exchange_with(sim: &SimHandle, appid: &str, secret: &str, code: &str) -> Exchange {
    wechat_get(
        &sim.base_url(),
        OAUTH_ACCESS_TOKEN_PATH,
        &[
            ("appid", appid),
            ("secret", secret),
            ("code", code),
            ("grant_type", "authorization_code"),
        ],
    )
    .await
}

async fn userinfo(sim: &SimHandle, token: &str, openid: &str) -> Exchange {
    wechat_get(
        &sim.base_url(),
        SNS_USERINFO_PATH,
        &[
            ("access_token", token),
            ("openid", openid),
            ("lang", "zh_CN"),
        ],
    )
    .await
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn official_account_userinfo_grant_has_wechats_shapes() {
    let sim = sim().await;
    let grant = sim
        .oauth_authorize(OA, Some("o-oa"), Some("u-1"), OAuthScope::SnsapiUserinfo)
        .expect("consent");
    assert_eq!(grant.openid, "o-oa");
    assert_eq!(grant.expires_in, 300);
    let answer = exchange(&sim, OA, &grant.code).await;
    assert_eq!(
        (answer.status, answer.content_type.as_str()),
        (200, "text/plain")
    );
    assert_eq!(
        keys(&answer.body),
        BTreeSet::from([
            "access_token",
            "expires_in",
            "refresh_token",
            "openid",
            "scope",
            "unionid",
            "is_snapshotuser"
        ])
    );
    assert_eq!(answer.body["expires_in"], json!(7200));
    assert_eq!(answer.body["is_snapshotuser"], json!(0));
    assert_eq!(answer.str("openid"), Some("o-oa"));
    assert_eq!(answer.str("scope"), Some("snsapi_userinfo"));
    assert_eq!(answer.str("unionid"), Some("u-1"));
    let token = answer.str("access_token").expect("token").to_owned();
    assert_ne!(answer.str("refresh_token"), Some(token.as_str()));

    let profile = userinfo(&sim, &token, "o-oa").await;
    assert_eq!(profile.status, 200);
    assert_eq!(profile.errcode(), None, "{:?}", profile.body);
    assert_eq!(profile.str("openid"), Some("o-oa"));
    assert_eq!(profile.str("unionid"), Some("u-1"));
    assert_eq!(profile.str("nickname"), Some("微信用户"));
    assert_eq!(profile.body["privilege"], json!([]));

    // Single use.
    let again = exchange(&sim, OA, &grant.code).await;
    assert_eq!(again.errcode(), Some(40163));
    assert!(again.errmsg().starts_with("code been used, rid: "));
}

#[tokio::test]
async fn base_scope_gets_neither_unionid_nor_profile() {
    let sim = sim().await;
    let grant = sim
        .oauth_authorize(OA, None, Some("u-1"), OAuthScope::SnsapiBase)
        .expect("consent");
    assert!(grant.openid.starts_with('o') && grant.openid.len() == 28);
    let answer = exchange(&sim, OA, &grant.code).await;
    assert_eq!(answer.str("scope"), Some("snsapi_base"));
    assert!(answer.body.get("unionid").is_none());
    let token = answer.str("access_token").expect("token");
    let profile = userinfo(&sim, token, &grant.openid).await;
    assert_eq!(profile.errcode(), Some(48001));
    assert!(profile.errmsg().starts_with("api unauthorized, rid: "));
}

#[tokio::test]
async fn unionid_in_userinfo_only_when_the_exchange_omits_it() {
    let sim = sim().await;
    let grant = sim
        .oauth_authorize(APP, Some("o-app"), Some("u-2"), OAuthScope::SnsapiUserinfo)
        .expect("consent");
    let answer = exchange(&sim, APP, &grant.code).await;
    assert!(answer.body.get("unionid").is_none(), "{:?}", answer.body);
    let token = answer.str("access_token").expect("token");
    assert_eq!(
        userinfo(&sim, token, "o-app").await.str("unionid"),
        Some("u-2")
    );

    // A website's QR login works the same way; an unbound app never tells the unionid.
    sim.register_app_with(
        AppRegistration::new(WEB, SECRET, UnionidPolicy::Never).with_kind(AppKind::Website),
    )
    .expect("re-register");
    let grant = sim
        .oauth_authorize(WEB, Some("o-web"), Some("u-2"), OAuthScope::SnsapiLogin)
        .expect("consent");
    let answer = exchange(&sim, WEB, &grant.code).await;
    assert_eq!(answer.str("scope"), Some("snsapi_login"));
    assert!(answer.body.get("unionid").is_none());
    let token = answer.str("access_token").expect("token");
    let profile = userinfo(&sim, token, "o-web").await;
    assert_eq!(profile.str("openid"), Some("o-web"));
    assert!(profile.body.get("unionid").is_none());
}

#[tokio::test]
async fn exchange_errors_are_code2sessions() {
    let sim = sim().await;
    let grant = sim
        .oauth_authorize(OA, Some("o-oa"), None, OAuthScope::SnsapiBase)
        .expect("consent");
    assert_eq!(exchange(&sim, OA, "nope").await.errcode(), Some(40029));
    assert_eq!(
        exchange_with(&sim, OA, "wrong", &grant.code)
            .await
            .errcode(),
        Some(40125)
    );
    assert_eq!(
        exchange(&sim, "wxunknown", &grant.code).await.errcode(),
        Some(40013)
    );
    assert_eq!(
        exchange(&sim, WEB, &grant.code).await.errcode(),
        Some(40029),
        "another app's"
    );
    let missing = wechat_get(
        &sim.base_url(),
        OAUTH_ACCESS_TOKEN_PATH,
        &[
            ("appid", OA),
            ("secret", SECRET),
            ("grant_type", "authorization_code"),
        ],
    )
    .await;
    assert_eq!(missing.errcode(), Some(41008));

    // Codes work only where they were made for.
    let login = sim.login(MINI, "o-mini", None).expect("login");
    assert_eq!(
        exchange(&sim, MINI, &login.code).await.errcode(),
        Some(40029)
    );
    let mini_grant = super::code2session_at(&sim.base_url(), OA, SECRET, &grant.code).await;
    assert_eq!(mini_grant.errcode(), Some(40029));

    // The failed calls did not spend the code; five minutes later it is gone.
    let late = sim
        .oauth_authorize(OA, Some("o-late"), None, OAuthScope::SnsapiBase)
        .expect("consent");
    assert!(
        exchange(&sim, OA, &grant.code)
            .await
            .str("access_token")
            .is_some()
    );
    sim.advance_clock(Duration::from_secs(301));
    assert_eq!(exchange(&sim, OA, &late.code).await.errcode(), Some(40029));
}

#[tokio::test]
async fn userinfo_token_errors() {
    let sim = sim().await;
    let grant = sim
        .oauth_authorize(OA, Some("o-oa"), Some("u-1"), OAuthScope::SnsapiUserinfo)
        .expect("consent");
    let answer = exchange(&sim, OA, &grant.code).await;
    let token = answer.str("access_token").expect("token").to_owned();

    let unknown = userinfo(&sim, "not-a-token", "o-oa").await;
    assert_eq!(unknown.errcode(), Some(40001));
    assert!(
        unknown
            .errmsg()
            .starts_with("invalid credential, access_token is invalid or not latest"),
        "{}",
        unknown.errmsg()
    );
    assert_eq!(
        userinfo(&sim, &token, "o-other").await.errcode(),
        Some(40003)
    );
    let missing = wechat_get(&sim.base_url(), SNS_USERINFO_PATH, &[("openid", "o-oa")]).await;
    assert_eq!(missing.errcode(), Some(41001));
    sim.advance_clock(Duration::from_secs(7199));
    assert_eq!(userinfo(&sim, &token, "o-oa").await.errcode(), None);
    sim.advance_clock(Duration::from_secs(1));
    let expired = userinfo(&sim, &token, "o-oa").await;
    assert_eq!(expired.errcode(), Some(42001));
    assert!(expired.errmsg().starts_with("access_token expired"));
}

#[tokio::test]
async fn consent_must_fit_the_kind() {
    let sim = sim().await;
    for (appid, scope) in [
        (MINI, OAuthScope::SnsapiBase),
        (OA, OAuthScope::SnsapiLogin),
        (APP, OAuthScope::SnsapiBase),
        (WEB, OAuthScope::SnsapiUserinfo),
    ] {
        assert!(
            matches!(
                sim.oauth_authorize(appid, None, None, scope),
                Err(SimError::WrongAppKind { .. })
            ),
            "{appid} {scope:?}"
        );
    }
    assert!(matches!(
        sim.login(OA, "o", None),
        Err(SimError::WrongAppKind { .. })
    ));
    assert!(matches!(
        sim.oauth_authorize("wxnope", None, None, OAuthScope::SnsapiBase),
        Err(SimError::UnknownApp(_))
    ));
}

#[tokio::test]
async fn faults_play_on_the_exchange_and_calls_are_counted() {
    let sim = sim().await;
    let grant = sim
        .oauth_authorize(OA, Some("o-oa"), Some("u-1"), OAuthScope::SnsapiUserinfo)
        .expect("consent");
    sim.queue_faults(
        FaultTarget::code(&grant.code),
        [Fault::SystemBusy { consume_code: true }],
    )
    .expect("fault");
    sim.queue_faults(
        FaultTarget::app(OA).at_path(OAUTH_ACCESS_TOKEN_PATH),
        [Fault::RateLimited, Fault::NonJson502],
    )
    .expect("fault");
    let busy = exchange(&sim, OA, &grant.code).await;
    assert_eq!(busy.errcode(), Some(-1));
    assert_eq!(exchange(&sim, OA, &grant.code).await.errcode(), Some(45011));
    assert_eq!(exchange(&sim, OA, &grant.code).await.status, 502);
    assert_eq!(
        exchange(&sim, OA, &grant.code).await.errcode(),
        Some(40163),
        "the -1 spent the code"
    );
    // The path-targeted rule spared code2Session.
    assert_eq!(sim.calls().total(CODE2SESSION_PATH), 0);

    let grant = sim
        .oauth_authorize(OA, Some("o-oa"), None, OAuthScope::SnsapiUserinfo)
        .expect("consent");
    let token = exchange(&sim, OA, &grant.code).await;
    let token = token.str("access_token").expect("token");
    sim.queue_faults(FaultTarget::app(OA), [Fault::Delay { ms: 200 }])
        .expect("fault");
    let started = std::time::Instant::now();
    assert_eq!(
        userinfo(&sim, token, "o-oa").await.str("unionid"),
        Some("u-1")
    );
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "a fault by the token's app"
    );
    userinfo(&sim, "unknown", "o-oa").await;

    let calls = sim.calls();
    assert_eq!(calls.for_app(OAUTH_ACCESS_TOKEN_PATH, OA), 5);
    assert_eq!(calls.for_app(SNS_USERINFO_PATH, OA), 1);
    assert_eq!(calls.for_app(SNS_USERINFO_PATH, ""), 1, "an unknown token");
    let (_, over_http) =
        control(Method::GET, format!("{}/__sim/calls", sim.base_url()), None).await;
    assert_eq!(over_http[OAUTH_ACCESS_TOKEN_PATH]["by_appid"][OA], json!(5));
}

#[tokio::test]
async fn consent_over_http() {
    let sim = Simulator::start().await.expect("start");
    let base = sim.base_url();
    let (status, app) = control(
        Method::POST,
        format!("{base}/__sim/apps"),
        Some(json!({"appid": "wxoa", "secret": "s", "kind": "official_account", "unionid_in_exchange": false})),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["kind"], json!("official_account"));
    assert_eq!(app["unionid_in_exchange"], json!(false));
    assert_eq!(app["unionid_policy"], json!("always"));

    let (status, grant) = control(
        Method::POST,
        format!("{base}/__sim/oauth-authorize"),
        Some(
            json!({"appid": "wxoa", "openid": "o-h", "unionid": "u-h", "scope": "snsapi_userinfo"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{grant}");
    assert_eq!(
        keys(&grant),
        BTreeSet::from(["code", "openid", "scope", "expires_in"])
    );
    assert_eq!(grant["scope"], json!("snsapi_userinfo"));
    assert_eq!(grant["expires_in"], json!(300));
    let code = grant["code"].as_str().expect("code");
    let answer = wechat_get(
        &base,
        OAUTH_ACCESS_TOKEN_PATH,
        &[
            ("appid", "wxoa"),
            ("secret", "s"),
            ("code", code),
            ("grant_type", "authorization_code"),
        ],
    )
    .await;
    assert_eq!(answer.str("openid"), Some("o-h"));
    assert!(answer.body.get("unionid").is_none());

    // A snapshot page's virtual user: a fresh openid, `is_snapshotuser: 1`, no unionid.
    let (status, visit) = control(
        Method::POST,
        format!("{base}/__sim/oauth-snapshot-visit"),
        Some(json!({"appid": "wxoa"})),
    )
    .await;
    assert_eq!(status, 200, "{visit}");
    assert_eq!(visit["scope"], json!("snsapi_base"));
    let answer = wechat_get(
        &base,
        OAUTH_ACCESS_TOKEN_PATH,
        &[
            ("appid", "wxoa"),
            ("secret", "s"),
            ("code", visit["code"].as_str().expect("code")),
            ("grant_type", "authorization_code"),
        ],
    )
    .await;
    assert_eq!(answer.body["is_snapshotuser"], json!(1));
    assert_eq!(answer.str("openid"), visit["openid"].as_str());
    assert!(answer.body.get("unionid").is_none());

    let (status, error) = control(
        Method::POST,
        format!("{base}/__sim/oauth-authorize"),
        Some(json!({"appid": "wxoa", "scope": "snsapi_login"})),
    )
    .await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], json!("wrong_app_kind"));
    let (status, error) = control(
        Method::POST,
        format!("{base}/__sim/oauth-authorize"),
        Some(json!({"appid": "wxoa", "scope": "snsapi_everything"})),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    let (status, error) = control(
        Method::POST,
        format!("{base}/__sim/login"),
        Some(json!({"appid": "wxoa"})),
    )
    .await;
    assert_eq!(status, 409, "{error}");
}
