//! What SDKs call by default: the classic getAccessToken (`GET /cgi-bin/token`), its tokens at
//! the endpoints that take one, and an official account's `GET /cgi-bin/user/info`.

use std::time::Duration;

use serde_json::json;
use wxlink_wechat_sim::{
    AppKind, AppRegistration, CGI_USER_INFO_PATH, GET_ACCESS_TOKEN_PATH, PHONE_NUMBER_PATH,
    SimHandle, Simulator, UnionidPolicy,
};

use super::{
    APPID, Exchange, SECRET, check_session, control, sim_with_app, wechat_get, wechat_post,
};

const OA: &str = "wx_oa_classic";
const OA_SECRET: &str = "oa-secret";

async fn get_token(sim: &SimHandle, appid: &str, secret: &str, grant_type: &str) -> Exchange {
    wechat_get(
        &sim.base_url(),
        GET_ACCESS_TOKEN_PATH,
        &[
            ("grant_type", grant_type),
            ("appid", appid),
            ("secret", secret),
        ],
    )
    .await
}

async fn classic_token(sim: &SimHandle, appid: &str, secret: &str) -> String {
    let answer = get_token(sim, appid, secret, "client_credential").await;
    assert_eq!(answer.status, 200);
    assert!(answer.content_type.starts_with("application/json"));
    assert_eq!(answer.errcode(), None, "{:?}", answer.body);
    answer.str("access_token").expect("a token").to_owned()
}

async fn user_info(sim: &SimHandle, token: &str, openid: &str) -> Exchange {
    wechat_get(
        &sim.base_url(),
        CGI_USER_INFO_PATH,
        &[
            ("access_token", token),
            ("openid", openid),
            ("lang", "zh_CN"),
        ],
    )
    .await
}

async fn sim_with_official_account(policy: UnionidPolicy) -> SimHandle {
    Simulator::builder()
        .app_with(AppRegistration::new(OA, OA_SECRET, policy).with_kind(AppKind::OfficialAccount))
        .start()
        .await
        .expect("simulator starts")
}

#[tokio::test]
async fn classic_token_works_at_checksession_and_phone_number() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let answer = get_token(&sim, APPID, SECRET, "client_credential").await;
    let object = answer.body.as_object().expect("an object");
    assert_eq!(
        object.len(),
        2,
        "only access_token and expires_in: {object:?}"
    );
    assert_eq!(answer.body["expires_in"], json!(7200));
    let token = answer.str("access_token").expect("a token").to_owned();

    let login = sim.login(APPID, "o-c", None).expect("login");
    let answer = check_session(&sim, &token, "o-c", &login.session_key, "hmac_sha256").await;
    assert_eq!(answer.errcode(), Some(0), "{:?}", answer.body);

    let phone = sim
        .phone_code(APPID, "o-c", "13800138000", None)
        .expect("phone code");
    let answer = wechat_post(
        &sim.base_url(),
        PHONE_NUMBER_PATH,
        &[("access_token", &token)],
        json!({ "code": phone.code }).to_string(),
    )
    .await;
    assert_eq!(answer.errcode(), Some(0), "{:?}", answer.body);
    assert_eq!(answer.body["phone_info"]["purePhoneNumber"], "13800138000");
    assert_eq!(sim.calls().total(GET_ACCESS_TOKEN_PATH), 1);
}

#[tokio::test]
async fn a_new_classic_token_replaces_the_old_one_after_five_minutes() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let login = sim.login(APPID, "o-r", None).expect("login");
    let first = classic_token(&sim, APPID, SECRET).await;
    let second = classic_token(&sim, APPID, SECRET).await;
    assert_ne!(first, second, "every call issues a new token");
    let answer = check_session(&sim, &first, "o-r", &login.session_key, "hmac_sha256").await;
    assert_eq!(
        answer.errcode(),
        Some(0),
        "the old token works five more minutes"
    );
    sim.advance_clock(Duration::from_secs(301));
    let answer = check_session(&sim, &first, "o-r", &login.session_key, "hmac_sha256").await;
    assert_eq!(answer.errcode(), Some(40001), "{:?}", answer.body);
    assert!(
        answer.errmsg().contains("not latest"),
        "{}",
        answer.errmsg()
    );
    let answer = check_session(&sim, &second, "o-r", &login.session_key, "hmac_sha256").await;
    assert_eq!(answer.errcode(), Some(0));
    sim.advance_clock(Duration::from_secs(7200));
    let answer = check_session(&sim, &second, "o-r", &login.session_key, "hmac_sha256").await;
    assert_eq!(answer.errcode(), Some(42001), "{:?}", answer.body);
}

#[tokio::test]
async fn classic_token_errcodes() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let cases = [
        ("", SECRET, "client_credential", 41002),
        ("wx_unknown", SECRET, "client_credential", 40013),
        (APPID, "", "client_credential", 41004),
        (APPID, "wrong-secret", "client_credential", 40001),
        (APPID, SECRET, "authorization_code", 40002),
    ];
    for (appid, secret, grant_type, errcode) in cases {
        let answer = get_token(&sim, appid, secret, grant_type).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.errcode(),
            Some(errcode),
            "{appid} {secret} {grant_type}"
        );
        assert!(answer.body.get("access_token").is_none());
    }
    assert_eq!(sim.calls().total(GET_ACCESS_TOKEN_PATH), 5);
    assert!(
        sim.access_token_status(APPID)
            .expect("status")
            .access_token
            .is_none()
    );
}

#[tokio::test]
async fn user_info_tells_a_followers_unionid() {
    let sim = sim_with_official_account(UnionidPolicy::Always).await;
    sim.follow_with_unionid(OA, "o-fan", "u-fan")
        .expect("follow");
    sim.set_following(OA, "o-gone", false)
        .expect("a known non-follower");
    let token = classic_token(&sim, OA, OA_SECRET).await;

    let answer = user_info(&sim, &token, "o-fan").await;
    assert!(answer.content_type.starts_with("application/json"));
    assert_eq!(answer.body["subscribe"], 1, "{:?}", answer.body);
    assert_eq!(answer.str("openid"), Some("o-fan"));
    assert_eq!(answer.str("unionid"), Some("u-fan"));
    assert!(
        answer.body.get("nickname").is_none(),
        "not since 2021-12-27"
    );

    let answer = user_info(&sim, &token, "o-gone").await;
    assert_eq!(answer.body, json!({ "subscribe": 0, "openid": "o-gone" }));
    assert_eq!(
        user_info(&sim, &token, "o-nobody").await.errcode(),
        Some(40003)
    );
    assert_eq!(user_info(&sim, "", "o-fan").await.errcode(), Some(41001));
    assert_eq!(
        user_info(&sim, "forged", "o-fan").await.errcode(),
        Some(40001)
    );
    sim.expire_access_token(OA).expect("expire");
    assert_eq!(
        user_info(&sim, &token, "o-fan").await.errcode(),
        Some(42001)
    );
}

#[tokio::test]
async fn user_info_over_the_control_api_and_unbound_accounts() {
    let sim = sim_with_official_account(UnionidPolicy::Never).await;
    let (status, body) = control(
        reqwest::Method::POST,
        format!("{}/__sim/follow", sim.base_url()),
        Some(json!({ "appid": OA, "openid": "o-fan", "unionid": "u-fan" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unionid"], "u-fan");
    let token = classic_token(&sim, OA, OA_SECRET).await;
    let answer = user_info(&sim, &token, "o-fan").await;
    assert_eq!(answer.body["subscribe"], 1);
    assert!(answer.body.get("unionid").is_none(), "an unbound account");

    // A mini program's token is not an official account's.
    sim.register_app(APPID, SECRET, UnionidPolicy::Always)
        .expect("register");
    sim.follow(APPID, "o-mini").expect("follow");
    let mini = classic_token(&sim, APPID, SECRET).await;
    assert_eq!(
        user_info(&sim, &mini, "o-mini").await.errcode(),
        Some(48001)
    );
}
