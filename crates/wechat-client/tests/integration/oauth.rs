//! The OAuth code exchange and `sns/userinfo`.

use super::*;
use wxlink_wechat_client::{OAuthAccessToken, RefreshToken, SnsUserInfo, UserAccessToken};
use wxlink_wechat_sim::{
    AppKind, AppRegistration, Fault, FaultTarget, OAuthScope, SimHandle, Simulator, UnionidPolicy,
};

const OAUTH_CODE: &str = "oauth-code+with/special=chars";
const USER_TOKEN: &str = "USER-ACCESS-TOKEN-0123456789";
const REFRESH: &str = "REFRESH-TOKEN-9876543210";

const GRANT: &str = r#"{"access_token":"USER-ACCESS-TOKEN-0123456789","expires_in":7200,
    "refresh_token":"REFRESH-TOKEN-9876543210","openid":"o-oa","scope":"snsapi_userinfo",
    "unionid":"u-1","is_snapshotuser":0}"#;

async fn exchange(client: &WeChatClient) -> Result<OAuthAccessToken, Error> {
    client
        .oauth2_access_token(APPID, &AppSecret::new(SECRET), OAUTH_CODE)
        .await
        .inspect_err(|e| assert_none_of(e, &[SECRET, OAUTH_CODE]))
}

async fn userinfo(client: &WeChatClient, openid: &str) -> Result<SnsUserInfo, Error> {
    client
        .sns_userinfo(&UserAccessToken::new(USER_TOKEN), openid)
        .await
        .inspect_err(|e| assert_none_of(e, &[USER_TOKEN]))
}

#[tokio::test]
async fn exchange_request_and_answer_shapes() {
    let fake = FakeServer::always(Reply::text(GRANT)).await;
    let grant = exchange(&client(&fake.base_url)).await.expect("a grant");
    assert_eq!(grant.access_token.expose_secret(), USER_TOKEN);
    assert_eq!(grant.refresh_token.expose_secret(), REFRESH);
    assert_eq!(grant.expires_in, 7200);
    assert_eq!(grant.openid, "o-oa");
    assert_eq!(grant.scope, "snsapi_userinfo");
    assert_eq!(grant.unionid.as_deref(), Some("u-1"));
    assert!(!grant.is_snapshot_user);

    let recorded = fake.recorded();
    assert_eq!(recorded.len(), 1);
    let request = &recorded[0];
    assert_eq!(request.method, Method::GET);
    assert_eq!(request.path(), "/sns/oauth2/access_token");
    assert_eq!(
        request.query(),
        [
            ("appid", APPID),
            ("secret", SECRET),
            ("code", OAUTH_CODE),
            ("grant_type", "authorization_code"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );

    let debug = format!("{grant:?}");
    for secret in [USER_TOKEN, REFRESH] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(
        debug.contains("UserAccessToken([redacted])") && debug.contains("RefreshToken([redacted])")
    );
    assert!(debug.contains("o-oa") && debug.contains("u-1"), "{debug}");
}

#[tokio::test]
async fn a_snapshot_page_user_is_reported() {
    let fake = FakeServer::always(Reply::text(
        r#"{"access_token":"t","expires_in":7200,"refresh_token":"r","openid":"o","scope":"snsapi_base","is_snapshotuser":1}"#,
    ))
    .await;
    let grant = exchange(&client(&fake.base_url)).await.expect("a grant");
    assert!(grant.is_snapshot_user);
}

#[tokio::test]
async fn exchange_without_unionid_or_optional_fields() {
    let fake = FakeServer::always(Reply::text(
        r#"{"access_token":"t","expires_in":7200,"refresh_token":"r","openid":"o","scope":"snsapi_base","unionid":""}"#,
    ))
    .await;
    let grant = exchange(&client(&fake.base_url)).await.expect("a grant");
    assert_eq!(grant.unionid, None);
    assert!(!grant.is_snapshot_user);

    for body in [
        r#"{"expires_in":7200,"refresh_token":"r","openid":"o"}"#,
        r#"{"access_token":"t","expires_in":7200,"openid":"o"}"#,
        r#"{"access_token":"t","refresh_token":"r","openid":"o"}"#,
        r#"{"access_token":"t","expires_in":7200,"refresh_token":"r","openid":""}"#,
        r#"{"access_token":"t","expires_in":"7200","refresh_token":"r","openid":"o"}"#,
    ] {
        let fake = FakeServer::always(Reply::text(body)).await;
        let error = exchange(&client(&fake.base_url)).await.expect_err(body);
        assert!(
            matches!(error, Error::UnexpectedAnswer { .. }),
            "{body}: {error:?}"
        );
    }
}

#[tokio::test]
async fn exchange_errcodes_and_no_retry_of_a_code() {
    type Check = fn(&Error) -> bool;
    let cases: [(i64, Check); 8] = [
        (40029, |e| matches!(e, Error::InvalidCode)),
        (40163, |e| matches!(e, Error::CodeUsed)),
        (40125, |e| {
            matches!(e, Error::InvalidCredential { errcode: 40125, .. })
        }),
        (40013, |e| {
            matches!(e, Error::InvalidCredential { errcode: 40013, .. })
        }),
        (40001, |e| {
            matches!(e, Error::InvalidCredential { errcode: 40001, .. })
        }),
        (45011, |e| matches!(e, Error::RateLimited)),
        (-1, |e| matches!(e, Error::SystemBusy)),
        (40030, |e| matches!(e, Error::Api { errcode: 40030, .. })),
    ];
    for (errcode, check) in cases {
        let fake = FakeServer::start(vec![Reply::errcode(errcode, "m")], Reply::text(GRANT)).await;
        let error = exchange(&client(&fake.base_url))
            .await
            .expect_err("refused");
        assert!(check(&error), "{errcode}: {error:?}");
        assert!(!error.is_access_token_invalid());
        assert_eq!(
            fake.calls(),
            1,
            "errcode {errcode}: a code is never sent twice"
        );
    }

    // A connection that died after sending may have spent the code: not retried either.
    let (base_url, accepted) = closing_server().await;
    let error = exchange(&client(&base_url)).await.expect_err("closed");
    assert!(
        matches!(&error, Error::Transport(t) if !t.is_connect()),
        "{error:?}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // A gateway page echoing the query keeps neither secret nor code.
    let fake = FakeServer::always(Reply::text("<p>{uri}</p>").with_status(502)).await;
    let error = exchange(&client(&fake.base_url)).await.expect_err("502");
    assert!(
        matches!(&error, Error::Http { status: 502, body } if body.contains("[redacted]")),
        "{error:?}"
    );
}

#[tokio::test]
async fn userinfo_request_and_answer_shapes() {
    let fake = FakeServer::always(Reply::text(
        r#"{"openid":"o-oa","nickname":"微信用户","sex":0,"province":"","city":"","country":"",
            "headimgurl":"https://thirdwx.qlogo.cn/x/132","privilege":[],"unionid":"u-1"}"#,
    ))
    .await;
    let info = userinfo(&client(&fake.base_url), "o-oa")
        .await
        .expect("a profile");
    assert_eq!(info.openid, "o-oa");
    assert_eq!(info.unionid.as_deref(), Some("u-1"));
    assert_eq!(info.nickname.as_deref(), Some("微信用户"));
    assert_eq!(info.sex, Some(0));
    assert!(info.privilege.is_empty());
    let request = &fake.recorded()[0];
    assert_eq!(request.path(), "/sns/userinfo");
    assert_eq!(
        request.query(),
        [
            ("access_token", USER_TOKEN),
            ("openid", "o-oa"),
            ("lang", "zh_CN")
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );

    let fake = FakeServer::always(Reply::text(r#"{"openid":"o-oa","unionid":""}"#)).await;
    let info = userinfo(&client(&fake.base_url), "o-oa")
        .await
        .expect("a profile");
    assert_eq!(info.unionid, None);
    assert_eq!(info.nickname, None);

    let fake = FakeServer::always(Reply::text(r#"{"openid":"o-someone-else"}"#)).await;
    let error = userinfo(&client(&fake.base_url), "o-oa")
        .await
        .expect_err("another user");
    assert!(matches!(error, Error::UnexpectedAnswer { .. }), "{error:?}");
}

#[tokio::test]
async fn userinfo_errcodes() {
    let fake = FakeServer::always(Reply::errcode(48001, "api unauthorized")).await;
    let error = userinfo(&client(&fake.base_url), "o")
        .await
        .expect_err("base scope");
    assert!(matches!(error, Error::ScopeUnauthorized), "{error:?}");
    assert_eq!(error.errcode(), Some(48001));
    for errcode in [40001, 40014, 42001] {
        let fake = FakeServer::always(Reply::errcode(errcode, "token")).await;
        let error = userinfo(&client(&fake.base_url), "o")
            .await
            .expect_err("token");
        assert!(
            matches!(error, Error::AccessTokenInvalid { errcode: e, .. } if e == errcode),
            "{error:?}"
        );
        assert!(error.is_access_token_invalid());
        assert_eq!(fake.calls(), 1);
    }
}

#[tokio::test]
async fn userinfo_is_idempotent_so_it_is_retried() {
    let fake = FakeServer::start(
        vec![Reply::errcode(-1, "system error")],
        Reply::text(r#"{"openid":"o"}"#),
    )
    .await;
    userinfo(&client(&fake.base_url), "o")
        .await
        .expect("a profile");
    assert_eq!(fake.calls(), 2);

    let (base_url, accepted) = closing_server().await;
    let error = userinfo(&client(&base_url), "o").await.expect_err("closed");
    assert!(matches!(&error, Error::Transport(_)), "{error:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "one call and two retries"
    );
}

#[test]
fn user_token_types_are_redacted() {
    assert_eq!(
        format!("{:?}", UserAccessToken::new(USER_TOKEN)),
        "UserAccessToken([redacted])"
    );
    assert_eq!(
        format!("{:?}", RefreshToken::new(REFRESH)),
        "RefreshToken([redacted])"
    );
}

mod against_the_simulator {
    use super::*;

    const OA: &str = "wx_official_account";
    const OA_SECRET: &str = "official-account-secret";

    async fn sim(unionid_in_exchange: bool) -> SimHandle {
        Simulator::builder()
            .app_with(
                AppRegistration::new(OA, OA_SECRET, UnionidPolicy::Always)
                    .with_kind(AppKind::OfficialAccount)
                    .with_unionid_in_exchange(unionid_in_exchange),
            )
            .start()
            .await
            .expect("simulator")
    }

    /// `o-oa` consents to `scope` (WeChat knowing its `unionid` or not): the grant's code.
    fn consent(sim: &SimHandle, unionid: Option<&str>, scope: OAuthScope) -> String {
        sim.oauth_authorize(OA, Some("o-oa"), unionid, scope)
            .expect("consent")
            .code
    }

    /// The exchange of a consent's code, which must succeed.
    async fn exchange_ok(client: &WeChatClient, code: &str) -> OAuthAccessToken {
        client
            .oauth2_access_token(OA, &AppSecret::new(OA_SECRET), code)
            .await
            .expect("a grant")
    }

    #[tokio::test]
    async fn userinfo_fills_in_a_unionid_the_exchange_lacks() {
        let sim = sim(false).await;
        let client = client(&sim.base_url());
        let code = consent(&sim, Some("u-1"), OAuthScope::SnsapiUserinfo);
        let token = exchange_ok(&client, &code).await;
        assert_eq!(token.openid, "o-oa");
        assert_eq!(token.scope, "snsapi_userinfo");
        assert_eq!(token.unionid, None);
        assert_eq!(token.expires_in, 7200);
        assert!(!token.is_snapshot_user);
        let info = client
            .sns_userinfo(&token.access_token, &token.openid)
            .await
            .expect("a profile");
        assert_eq!(info.unionid.as_deref(), Some("u-1"));

        let error = client
            .oauth2_access_token(OA, &AppSecret::new(OA_SECRET), &code)
            .await
            .expect_err("reused");
        assert!(matches!(error, Error::CodeUsed), "{error:?}");
        let calls = sim.calls();
        assert_eq!(
            calls.for_app(wxlink_wechat_sim::OAUTH_ACCESS_TOKEN_PATH, OA),
            2
        );
        assert_eq!(calls.for_app(wxlink_wechat_sim::SNS_USERINFO_PATH, OA), 1);
    }

    #[tokio::test]
    async fn base_scope_and_expired_user_tokens() {
        let sim = sim(true).await;
        let client = client(&sim.base_url());
        let code = consent(&sim, Some("u-1"), OAuthScope::SnsapiBase);
        let token = exchange_ok(&client, &code).await;
        assert_eq!(token.unionid, None);
        let error = client
            .sns_userinfo(&token.access_token, "o-oa")
            .await
            .expect_err("base scope");
        assert!(matches!(error, Error::ScopeUnauthorized), "{error:?}");

        let code = consent(&sim, None, OAuthScope::SnsapiUserinfo);
        let token = exchange_ok(&client, &code).await;
        assert_eq!(token.unionid.as_deref(), Some("u-1"));
        sim.advance_clock(Duration::from_secs(7200));
        let error = client
            .sns_userinfo(&token.access_token, "o-oa")
            .await
            .expect_err("expired");
        assert!(
            matches!(error, Error::AccessTokenInvalid { errcode: 42001, .. }),
            "{error:?}"
        );
        assert_none_of(&error, &[token.access_token.expose_secret()]);

        let error = client
            .oauth2_access_token(OA, &AppSecret::new("wrong"), "whatever")
            .await
            .expect_err("bad secret");
        assert_bad_secret(&error);
    }

    #[tokio::test]
    async fn system_busy_that_spent_the_code_is_not_retried() {
        let sim = sim(true).await;
        let client = client(&sim.base_url());
        let code = consent(&sim, None, OAuthScope::SnsapiUserinfo);
        sim.queue_faults(
            FaultTarget::code(&code),
            [Fault::SystemBusy { consume_code: true }],
        )
        .expect("fault");
        let error = client
            .oauth2_access_token(OA, &AppSecret::new(OA_SECRET), &code)
            .await
            .expect_err("busy");
        assert!(matches!(error, Error::SystemBusy), "{error:?}");
        assert!(error.is_retryable());
        assert_eq!(
            sim.calls()
                .for_app(wxlink_wechat_sim::OAUTH_ACCESS_TOKEN_PATH, OA),
            1
        );

        // userinfo is retried through -1.
        let code = consent(&sim, None, OAuthScope::SnsapiUserinfo);
        let token = exchange_ok(&client, &code).await;
        sim.queue_faults(
            FaultTarget::app(OA).at_path(wxlink_wechat_sim::SNS_USERINFO_PATH),
            [Fault::SystemBusy {
                consume_code: false,
            }],
        )
        .expect("fault");
        client
            .sns_userinfo(&token.access_token, "o-oa")
            .await
            .expect("retried");
        assert_eq!(
            sim.calls()
                .for_app(wxlink_wechat_sim::SNS_USERINFO_PATH, OA),
            2
        );
    }
}
