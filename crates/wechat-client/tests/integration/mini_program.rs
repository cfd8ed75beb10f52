//! Mini program calls with the app's access_token: the phone number and checkSessionKey.

use super::*;
use wxlink_wechat_client::{AccessToken, PhoneInfo};
use wxlink_wechat_sim::{
    CHECK_SESSION_PATH, Fault, FaultTarget, PHONE_NUMBER_PATH, SimHandle, UnionidPolicy,
};

const TOKEN: &str = "APP-ACCESS-TOKEN-0123456789abcdef";
const PHONE_CODE: &str = "phone-code+with/special=chars";
const KEY: &str = "o0q0otL8aEzpcZL/FT9WsQ==";

async fn phone(client: &WeChatClient, openid: Option<&str>) -> Result<PhoneInfo, Error> {
    client
        .get_phone_number(&AccessToken::new(TOKEN), PHONE_CODE, openid)
        .await
        .inspect_err(|e| assert_none_of(e, &[TOKEN, PHONE_CODE]))
}

async fn check(client: &WeChatClient) -> Result<bool, Error> {
    let signature = wxlink_crypto::check_session_signature(KEY);
    client
        .check_session_key(&AccessToken::new(TOKEN), "o-1", &SessionKey::new(KEY))
        .await
        .inspect_err(|e| assert_none_of(e, &[TOKEN, KEY, &signature]))
}

fn phone_answer(country_code: &str) -> String {
    format!(
        r#"{{"errcode":0,"errmsg":"ok","phone_info":{{"phoneNumber":"13800138000",
        "purePhoneNumber":"13800138000","countryCode":{country_code},
        "watermark":{{"timestamp":1637744274,"appid":"{APPID}"}}}}}}"#
    )
}

#[tokio::test]
async fn phone_number_request_and_lenient_country_code() {
    for country_code in ["86", "\"86\""] {
        let fake = FakeServer::always(
            Reply::text(&phone_answer(country_code)).with_content_type("application/json"),
        )
        .await;
        let info = phone(&client(&fake.base_url), Some("o-1"))
            .await
            .expect("a number");
        assert_eq!(info.phone_number, "13800138000");
        assert_eq!(info.pure_phone_number, "13800138000");
        assert_eq!(info.country_code, "86", "{country_code}");
        assert_eq!(info.watermark.appid, APPID);
        assert_eq!(info.watermark.timestamp, 1_637_744_274);
        let debug = format!("{info:?}");
        assert!(
            !debug.contains("13800138000") && debug.contains("138****8000"),
            "{debug}"
        );

        let request = &fake.recorded()[0];
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.path(), "/wxa/business/getuserphonenumber");
        assert_eq!(
            request.query(),
            [("access_token".to_owned(), TOKEN.to_owned())]
        );
        assert_eq!(
            request.json(),
            serde_json::json!({"code": PHONE_CODE, "openid": "o-1"})
        );
    }
    let fake = FakeServer::always(Reply::text(&phone_answer("86"))).await;
    phone(&client(&fake.base_url), None)
        .await
        .expect("a number");
    assert_eq!(
        fake.recorded()[0].json(),
        serde_json::json!({"code": PHONE_CODE})
    );
}

#[tokio::test]
async fn phone_number_errors() {
    type Check = fn(&Error) -> bool;
    let cases: [(i64, Check); 7] = [
        (40029, |e| matches!(e, Error::InvalidCode)),
        (45011, |e| matches!(e, Error::RateLimited)),
        (40013, |e| matches!(e, Error::InvalidCredential { .. })),
        (40001, |e| e.is_access_token_invalid()),
        (40014, |e| e.is_access_token_invalid()),
        (42001, |e| e.is_access_token_invalid()),
        (-1, |e| matches!(e, Error::SystemBusy)),
    ];
    for (errcode, check) in cases {
        let fake = FakeServer::start(
            vec![Reply::errcode(errcode, "m")],
            Reply::text(&phone_answer("86")),
        )
        .await;
        let error = phone(&client(&fake.base_url), None)
            .await
            .expect_err("refused");
        assert!(check(&error), "{errcode}: {error:?}");
        assert_eq!(
            fake.calls(),
            1,
            "errcode {errcode}: a phone code is never sent twice"
        );
    }
    for body in [
        r#"{"errcode":0,"errmsg":"ok"}"#,
        r#"{"errcode":0,"phone_info":{"purePhoneNumber":"1","countryCode":86}}"#,
        r#"{"errcode":0,"phone_info":{"phoneNumber":"1","purePhoneNumber":"1","countryCode":[86]}}"#,
    ] {
        let fake = FakeServer::always(Reply::text(body)).await;
        let error = phone(&client(&fake.base_url), None).await.expect_err(body);
        assert!(
            matches!(error, Error::UnexpectedAnswer { .. }),
            "{body}: {error:?}"
        );
    }
    let fake = FakeServer::always(Reply::text("<p>{uri} {body}</p>").with_status(502)).await;
    let error = phone(&client(&fake.base_url), None).await.expect_err("502");
    assert!(
        matches!(error, Error::Http { status: 502, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn check_session_key_request_and_answers() {
    let fake = FakeServer::always(Reply::text(r#"{"errcode":0,"errmsg":"ok"}"#)).await;
    assert!(check(&client(&fake.base_url)).await.expect("an answer"));
    let request = &fake.recorded()[0];
    assert_eq!(request.method, Method::GET);
    assert_eq!(request.path(), "/wxa/checksession");
    let signature = wxlink_crypto::check_session_signature(KEY);
    assert_eq!(signature.len(), 64);
    assert_eq!(
        request.query(),
        [
            ("access_token", TOKEN),
            ("openid", "o-1"),
            ("signature", signature.as_str()),
            ("sig_method", "hmac_sha256"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );

    let fake = FakeServer::always(Reply::errcode(87009, "invalid signature")).await;
    assert!(!check(&client(&fake.base_url)).await.expect("an answer"));
    let fake = FakeServer::always(Reply::errcode(87008, "invalid sig_method")).await;
    let error = check(&client(&fake.base_url)).await.expect_err("refused");
    assert!(
        matches!(error, Error::Api { errcode: 87008, .. }),
        "{error:?}"
    );
    let fake = FakeServer::always(Reply::errcode(42001, "access_token expired")).await;
    let error = check(&client(&fake.base_url)).await.expect_err("refused");
    assert!(
        matches!(error, Error::AccessTokenInvalid { errcode: 42001, .. }),
        "{error:?}"
    );

    // Idempotent: -1 is retried.
    let fake = FakeServer::start(
        vec![Reply::errcode(-1, "system error")],
        Reply::errcode(87009, "invalid signature"),
    )
    .await;
    assert!(!check(&client(&fake.base_url)).await.expect("an answer"));
    assert_eq!(fake.calls(), 2);
}

mod against_the_simulator {
    use super::*;

    async fn sim_and_token() -> (SimHandle, WeChatClient, AccessToken) {
        let sim = simulator(UnionidPolicy::Always).await;
        let client = client(&sim.base_url());
        let token = client
            .stable_token(APPID, &AppSecret::new(SECRET), false)
            .await
            .expect("a token")
            .access_token;
        (sim, client, token)
    }

    #[tokio::test]
    async fn phone_number_once() {
        let (sim, client, token) = sim_and_token().await;
        let code = sim
            .phone_code(APPID, "o-1", "13800138000", None)
            .expect("code")
            .code;
        let info = client
            .get_phone_number(&token, &code, Some("o-1"))
            .await
            .expect("a number");
        assert_eq!(info.pure_phone_number, "13800138000");
        assert_eq!(info.country_code, "86", "the simulator sends a number");
        assert_eq!(info.watermark.appid, APPID);
        let error = client
            .get_phone_number(&token, &code, None)
            .await
            .expect_err("used");
        assert!(matches!(error, Error::InvalidCode), "{error:?}");

        let code = sim
            .phone_code(APPID, "o-1", "6505550100", Some("1"))
            .expect("code")
            .code;
        let error = client
            .get_phone_number(&token, &code, Some("o-2"))
            .await
            .expect_err("another user");
        assert!(
            matches!(error, Error::Api { errcode: 40003, .. }),
            "{error:?}"
        );
        sim.queue_faults(
            FaultTarget::code(&code),
            [Fault::SystemBusy { consume_code: true }],
        )
        .expect("fault");
        let error = client
            .get_phone_number(&token, &code, None)
            .await
            .expect_err("busy");
        assert!(matches!(error, Error::SystemBusy), "{error:?}");
        assert_eq!(
            sim.calls().for_app(PHONE_NUMBER_PATH, APPID),
            4,
            "-1 was not retried"
        );
    }

    #[tokio::test]
    async fn a_stale_session_key_is_told() {
        let (sim, client, token) = sim_and_token().await;
        let first = sim.login(APPID, "o-1", None).expect("login");
        let session = client
            .code2session(APPID, &AppSecret::new(SECRET), &first.code)
            .await
            .expect("a session");
        assert!(
            client
                .check_session_key(&token, "o-1", &session.session_key)
                .await
                .expect("an answer")
        );
        sim.login(APPID, "o-1", None)
            .expect("the user logs in again");
        assert!(
            !client
                .check_session_key(&token, "o-1", &session.session_key)
                .await
                .expect("an answer")
        );

        sim.queue_faults(
            FaultTarget::app(APPID).at_path(CHECK_SESSION_PATH),
            [
                Fault::SystemBusy {
                    consume_code: false,
                },
                Fault::RateLimited,
            ],
        )
        .expect("faults");
        let error = client
            .check_session_key(&token, "o-1", &session.session_key)
            .await
            .expect_err("rate limited after a retried -1");
        assert!(matches!(error, Error::RateLimited), "{error:?}");
        assert_eq!(sim.calls().for_app(CHECK_SESSION_PATH, APPID), 4);
    }
}
