//! Mini program calls with the app's access_token: the phone number exchange and
//! checkSessionKey.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use wxlink_wechat_sim::{
    AppKind, AppRegistration, CHECK_SESSION_PATH, Fault, FaultTarget, PHONE_NUMBER_PATH,
    STABLE_TOKEN_PATH, SimError, SimHandle, UnionidPolicy,
};

use super::{
    APPID, Exchange, SECRET, check_session, control, sim_with_app, wechat_get, wechat_post,
};

async fn app_token(sim: &SimHandle, appid: &str, secret: &str) -> String {
    let body = json!({"grant_type": "client_credential", "appid": appid, "secret": secret});
    let answer = wechat_post(&sim.base_url(), STABLE_TOKEN_PATH, &[], body.to_string()).await;
    answer.str("access_token").expect("a token").to_owned()
}

async fn phone_number(sim: &SimHandle, token: &str, body: Value) -> Exchange {
    wechat_post(
        &sim.base_url(),
        PHONE_NUMBER_PATH,
        &[("access_token", token)],
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn phone_number_has_wechats_shape() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let token = app_token(&sim, APPID, SECRET).await;
    let code = sim
        .phone_code(APPID, "o-1", "13800138000", None)
        .expect("code");
    assert_eq!(code.expires_in, 300);
    let answer = phone_number(&sim, &token, json!({"code": code.code, "openid": "o-1"})).await;
    assert_eq!(answer.status, 200);
    assert!(answer.content_type.starts_with("application/json"));
    assert_eq!(answer.errcode(), Some(0));
    assert_eq!(answer.errmsg(), "ok");
    let info = &answer.body["phone_info"];
    assert_eq!(info["phoneNumber"], json!("13800138000"));
    assert_eq!(info["purePhoneNumber"], json!("13800138000"));
    assert!(
        info["countryCode"].is_number(),
        "a number, as in WeChat's example"
    );
    assert_eq!(info["countryCode"], json!(86));
    assert_eq!(info["watermark"]["appid"], json!(APPID));
    let timestamp = info["watermark"]["timestamp"].as_i64().expect("timestamp");
    assert!((timestamp - sim.now_unix()).abs() <= 1);
    let keys: BTreeSet<&str> = info
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["phoneNumber", "purePhoneNumber", "countryCode", "watermark"])
    );

    let again = phone_number(&sim, &token, json!({"code": code.code})).await;
    assert_eq!(
        again.errcode(),
        Some(40029),
        "a used code is an invalid code"
    );
    assert!(again.errmsg().starts_with("invalid code, rid: "));
}

#[tokio::test]
async fn phone_number_errors() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let token = app_token(&sim, APPID, SECRET).await;
    let code = sim
        .phone_code(APPID, "o-1", "6505550100", Some("1"))
        .expect("code")
        .code;
    let mismatch = phone_number(&sim, &token, json!({"code": code, "openid": "o-2"})).await;
    assert_eq!(mismatch.errcode(), Some(40003));
    assert!(mismatch.errmsg().starts_with("invalid openid"));
    assert_eq!(
        phone_number(&sim, &token, json!({"code": "nope"}))
            .await
            .errcode(),
        Some(40029)
    );
    assert_eq!(
        phone_number(&sim, &token, json!({})).await.errcode(),
        Some(41008)
    );
    assert_eq!(
        phone_number(&sim, &token, json!({"code": 5}))
            .await
            .errcode(),
        Some(47001)
    );
    let not_json = wechat_post(
        &sim.base_url(),
        PHONE_NUMBER_PATH,
        &[("access_token", &token)],
        "code",
    )
    .await;
    assert_eq!(not_json.errcode(), Some(47001));
    assert_eq!(
        phone_number(&sim, "not-a-token", json!({"code": code}))
            .await
            .errcode(),
        Some(40001)
    );
    let missing = wechat_post(
        &sim.base_url(),
        PHONE_NUMBER_PATH,
        &[],
        json!({"code": code}).to_string(),
    )
    .await;
    assert_eq!(missing.errcode(), Some(41001));
    let get = wechat_get(
        &sim.base_url(),
        PHONE_NUMBER_PATH,
        &[("access_token", &token)],
    )
    .await;
    assert_eq!(get.errcode(), Some(43002));

    // None of that spent the code: a foreign number keeps its country code.
    let answer = phone_number(&sim, &token, json!({"code": code, "openid": "o-1"})).await;
    assert_eq!(
        answer.body["phone_info"]["phoneNumber"],
        json!("+16505550100")
    );
    assert_eq!(
        answer.body["phone_info"]["purePhoneNumber"],
        json!("6505550100")
    );
    assert_eq!(answer.body["phone_info"]["countryCode"], json!(1));

    // An expired token, and a token of an app that is not a mini program.
    let code = sim
        .phone_code(APPID, "o-1", "13800138000", None)
        .expect("code")
        .code;
    sim.expire_access_token(APPID).expect("expire");
    assert_eq!(
        phone_number(&sim, &token, json!({"code": code}))
            .await
            .errcode(),
        Some(42001)
    );
    sim.register_app_with(
        AppRegistration::new("wxoa", "s", UnionidPolicy::Always)
            .with_kind(AppKind::OfficialAccount),
    )
    .expect("register");
    let oa_token = app_token(&sim, "wxoa", "s").await;
    assert_eq!(
        phone_number(&sim, &oa_token, json!({"code": code}))
            .await
            .errcode(),
        Some(48001)
    );
    assert!(matches!(
        sim.phone_code("wxoa", "o", "13800138000", None),
        Err(SimError::WrongAppKind { .. })
    ));
    assert!(matches!(
        sim.phone_code(APPID, "o", "+8613800138000", None),
        Err(SimError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn phone_code_over_http_and_faults() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let base = sim.base_url();
    let token = app_token(&sim, APPID, SECRET).await;
    let (status, body) = control(
        Method::POST,
        format!("{base}/__sim/phone-code"),
        Some(json!({"appid": APPID, "openid": "o-h", "phone_number": "13800138000", "country_code": 86})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], json!(300));
    let code = body["code"].as_str().expect("code").to_owned();

    sim.queue_faults(
        FaultTarget::code(&code),
        [Fault::SystemBusy { consume_code: true }],
    )
    .expect("fault");
    assert_eq!(
        phone_number(&sim, &token, json!({"code": code}))
            .await
            .errcode(),
        Some(-1)
    );
    assert_eq!(
        phone_number(&sim, &token, json!({"code": code}))
            .await
            .errcode(),
        Some(40029),
        "the -1 spent the code"
    );

    let (_, body) = control(
        Method::POST,
        format!("{base}/__sim/phone-code"),
        Some(json!({"appid": APPID, "openid": "o-h", "phone_number": "13800138000", "country_code": "852"})),
    )
    .await;
    let code = body["code"].as_str().expect("code").to_owned();
    sim.queue_faults(
        FaultTarget::app(APPID),
        [Fault::RateLimited, Fault::Http500],
    )
    .expect("fault");
    assert_eq!(
        phone_number(&sim, &token, json!({"code": code}))
            .await
            .errcode(),
        Some(45011)
    );
    assert_eq!(
        phone_number(&sim, &token, json!({"code": code}))
            .await
            .status,
        500
    );
    let answer = phone_number(&sim, &token, json!({"code": code})).await;
    assert_eq!(answer.body["phone_info"]["countryCode"], json!(852));
    assert_eq!(sim.calls().for_app(PHONE_NUMBER_PATH, APPID), 5);

    let (status, body) = control(
        Method::POST,
        format!("{base}/__sim/phone-code"),
        Some(json!({"appid": APPID, "openid": "o-h", "phone_number": "138-0013"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn checksession_tells_a_stale_key() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let token = app_token(&sim, APPID, SECRET).await;
    let first = sim.login(APPID, "o-1", None).expect("login");
    let valid = check_session(&sim, &token, "o-1", &first.session_key, "hmac_sha256").await;
    assert!(valid.content_type.starts_with("application/json"));
    assert_eq!(valid.body, json!({"errcode": 0, "errmsg": "ok"}));

    // Every wx.login rotates the key: the stored one is now stale.
    let second = sim.login(APPID, "o-1", None).expect("login");
    let stale = check_session(&sim, &token, "o-1", &first.session_key, "hmac_sha256").await;
    assert_eq!(stale.errcode(), Some(87009));
    assert!(stale.errmsg().starts_with("invalid signature"));
    let current = check_session(&sim, &token, "o-1", &second.session_key, "hmac_sha256").await;
    assert_eq!(current.errcode(), Some(0));

    let method = check_session(&sim, &token, "o-1", &second.session_key, "md5").await;
    assert_eq!(method.errcode(), Some(87008));
    let nobody = check_session(&sim, &token, "nobody", &second.session_key, "hmac_sha256").await;
    assert_eq!(nobody.errcode(), Some(40003));
    let bad_token = check_session(&sim, "nope", "o-1", &second.session_key, "hmac_sha256").await;
    assert_eq!(bad_token.errcode(), Some(40001));
    let unsigned = wechat_get(
        &sim.base_url(),
        CHECK_SESSION_PATH,
        &[
            ("access_token", &token),
            ("openid", "o-1"),
            ("sig_method", "hmac_sha256"),
        ],
    )
    .await;
    assert_eq!(unsigned.errcode(), Some(87009));

    sim.queue_faults(
        FaultTarget::app(APPID).at_path(CHECK_SESSION_PATH),
        [
            Fault::SystemBusy {
                consume_code: false,
            },
            Fault::DropConnection,
        ],
    )
    .expect("faults");
    assert_eq!(
        check_session(&sim, &token, "o-1", &second.session_key, "hmac_sha256")
            .await
            .errcode(),
        Some(-1)
    );
    let signature = wxlink_crypto::check_session_signature(&second.session_key);
    let dropped = reqwest::Client::new()
        .get(format!("{}{CHECK_SESSION_PATH}", sim.base_url()))
        .query(&[
            ("access_token", token.as_str()),
            ("openid", "o-1"),
            ("signature", &signature),
            ("sig_method", "hmac_sha256"),
        ])
        .send()
        .await;
    assert!(dropped.is_err());
    assert_eq!(sim.calls().for_app(CHECK_SESSION_PATH, APPID), 8);
    assert_eq!(sim.calls().for_app(CHECK_SESSION_PATH, ""), 1);
}
