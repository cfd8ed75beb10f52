//! `wxlink-wechat-client` against `wxlink-wechat-sim`: every call, and the error variants a
//! caller matches on.

use std::time::Duration;

use wxlink_wechat_client::{
    AccessToken, AppSecret, ClientConfig, DEFAULT_API_BASE, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT,
    Error, SessionKey,
};
use wxlink_wechat_sim::{CODE2SESSION_PATH, Fault, FaultTarget, OAuthScope, PHONE_NUMBER_PATH};

use super::{
    MINI, MINI_SECRET, OA, OA_SECRET, UNBOUND, UNBOUND_SECRET, client_for, client_with, simulator,
};

#[tokio::test]
async fn code2session_and_the_user_data() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let secret = AppSecret::new(MINI_SECRET);

    let login = sim
        .login(MINI, "o-alice", Some("u-alice"))
        .expect("wx.login");
    let session = client
        .code2session(MINI, &secret, &login.code)
        .await
        .expect("exchanges");
    assert_eq!(session.openid, "o-alice");
    assert_eq!(session.unionid.as_deref(), Some("u-alice"));
    assert_eq!(session.session_key.expose_secret(), login.session_key);

    // The session key decrypts what wx.getUserInfo sends, with wxlink-crypto.
    let info = sim.user_info(MINI, "o-alice").expect("user info");
    let key = session.session_key.expose_secret();
    assert!(wxlink_crypto::verify_raw_data_signature(
        &info.raw_data,
        key,
        &info.signature
    ));
    let user =
        wxlink_crypto::decrypt_user_data(key, &info.iv, &info.encrypted_data).expect("decrypts");
    assert_eq!(user.open_id, "o-alice");
    assert_eq!(user.union_id.as_deref(), Some("u-alice"));
    wxlink_crypto::check_watermark(&user.watermark, MINI, sim.now_unix(), Some(60))
        .expect("fresh, for us");

    // The app not bound to an Open Platform account gets no unionid.
    let login = sim
        .login(UNBOUND, "o-bob", Some("u-bob"))
        .expect("wx.login");
    let session = client
        .code2session(UNBOUND, &AppSecret::new(UNBOUND_SECRET), &login.code)
        .await
        .expect("exchanges");
    assert_eq!((session.openid.as_str(), session.unionid), ("o-bob", None));
    sim.shutdown().await;
}

#[tokio::test]
async fn code2session_errors() {
    let sim = simulator().await;
    let client = client_with(&sim, |config| config.max_retries(1));
    let secret = AppSecret::new(MINI_SECRET);

    let login = sim.login(MINI, "o-1", None).expect("wx.login");
    client
        .code2session(MINI, &secret, &login.code)
        .await
        .expect("exchanges");
    let used = client
        .code2session(MINI, &secret, &login.code)
        .await
        .expect_err("a code works once");
    assert!(matches!(used, Error::CodeUsed));
    assert_eq!(used.errcode(), Some(40163));
    assert!(!used.is_retryable());

    let invalid = client
        .code2session(MINI, &secret, "never-issued")
        .await
        .expect_err("unknown code");
    assert!(matches!(invalid, Error::InvalidCode));

    let login = sim.login(MINI, "o-1", None).expect("wx.login");
    let wrong = client
        .code2session(MINI, &AppSecret::new("wrong"), &login.code)
        .await
        .expect_err("wrong secret");
    assert!(matches!(
        wrong,
        Error::InvalidCredential { errcode: 40125, .. }
    ));
    assert!(!format!("{wrong:?} {wrong}").contains("wrong\""));
    let unknown_app = client
        .code2session("wx_nobody", &secret, &login.code)
        .await
        .expect_err("unknown appid");
    assert!(matches!(
        unknown_app,
        Error::InvalidCredential { errcode: 40013, .. }
    ));

    // Faults, queued for this code.
    let fault = async |fault: Fault| {
        let login = sim.login(MINI, "o-1", None).expect("wx.login");
        sim.queue_faults(FaultTarget::code(&login.code), [fault])
            .expect("queued");
        client.code2session(MINI, &secret, &login.code).await
    };
    assert!(matches!(
        fault(Fault::RateLimited).await,
        Err(Error::RateLimited)
    ));
    assert!(matches!(
        fault(Fault::HighRisk).await,
        Err(Error::HighRiskUser)
    ));
    let api = fault(Fault::Errcode {
        errcode: 61_000,
        errmsg: "something new".to_owned(),
    })
    .await
    .expect_err("an errcode");
    assert!(
        matches!(&api, Error::Api { errcode: 61_000, errmsg } if errmsg.contains("something new"))
    );
    assert!(matches!(
        fault(Fault::NonJson502).await,
        Err(Error::Http { status: 502, .. })
    ));
    assert!(matches!(
        fault(Fault::Http500).await,
        Err(Error::Http { status: 500, .. })
    ));
    let dropped = fault(Fault::DropConnection).await.expect_err("no answer");
    assert!(matches!(&dropped, Error::Transport(e) if !e.is_connect()));
    assert!(std::error::Error::source(&dropped).is_some());

    // errcode -1 is retried once (max_retries(1)): the retry succeeds...
    let busy_once = fault(Fault::SystemBusy {
        consume_code: false,
    })
    .await
    .expect("the retry succeeds");
    assert_eq!(busy_once.openid, "o-1");
    // ...unless WeChat spent the code before failing: then the retry meets 40163, which is
    // WeChat's trouble, not the user's bad code.
    let consumed = fault(Fault::SystemBusy { consume_code: true })
        .await
        .expect_err("the code is gone");
    assert!(matches!(
        consumed,
        Error::CodeConsumedByRetry { errcode: 40163 }
    ));
    assert!(consumed.is_retryable());

    // Sticky -1 for the app: still busy after the retries.
    sim.sticky_fault(
        FaultTarget::app(MINI).at_path(CODE2SESSION_PATH),
        Fault::SystemBusy {
            consume_code: false,
        },
    )
    .expect("sticky");
    let login = sim.login(MINI, "o-1", None).expect("wx.login");
    let busy = client
        .code2session(MINI, &secret, &login.code)
        .await
        .expect_err("busy");
    assert!(matches!(busy, Error::SystemBusy));
    assert!(busy.is_retryable());
    assert_eq!(busy.errcode(), Some(-1));
    sim.clear_faults();
    sim.shutdown().await;
}

#[tokio::test]
async fn the_timeout_bounds_the_whole_call() {
    let sim = simulator().await;
    let client = client_with(&sim, |config| config.timeout(Duration::from_millis(300)));
    let login = sim.login(MINI, "o-1", None).expect("wx.login");
    sim.queue_faults(FaultTarget::code(&login.code), [Fault::Delay { ms: 3_000 }])
        .expect("queued");
    let started = std::time::Instant::now();
    let error = client
        .code2session(MINI, &AppSecret::new(MINI_SECRET), &login.code)
        .await
        .expect_err("too slow");
    assert!(matches!(error, Error::Timeout));
    assert!(started.elapsed() < Duration::from_secs(2));
    sim.shutdown().await;
}

#[tokio::test]
async fn oauth_exchange_and_profile() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let secret = AppSecret::new(OA_SECRET);

    let grant = sim
        .oauth_authorize(
            OA,
            Some("o-oa"),
            Some("u-alice"),
            OAuthScope::SnsapiUserinfo,
        )
        .expect("consent");
    let token = client
        .oauth2_access_token(OA, &secret, &grant.code)
        .await
        .expect("exchanges");
    assert_eq!(token.openid, "o-oa");
    assert_eq!(token.scope, "snsapi_userinfo");
    assert_eq!(token.expires_in, 7200);
    assert_eq!(
        token.unionid, None,
        "this account leaves it to sns/userinfo"
    );
    assert_eq!(
        format!("{:?}", token.access_token),
        "UserAccessToken([redacted])"
    );
    assert_eq!(
        format!("{:?}", token.refresh_token),
        "RefreshToken([redacted])"
    );

    let profile = client
        .sns_userinfo(&token.access_token, &token.openid)
        .await
        .expect("profile");
    assert_eq!(profile.openid, "o-oa");
    assert_eq!(profile.unionid.as_deref(), Some("u-alice"));

    let again = client
        .oauth2_access_token(OA, &secret, &grant.code)
        .await
        .expect_err("a code works once");
    assert!(matches!(again, Error::CodeUsed));

    // A wx.login code is not an OAuth code.
    let login = sim.login(MINI, "o-mini", None).expect("wx.login");
    let wrong_kind = client
        .oauth2_access_token(OA, &secret, &login.code)
        .await
        .expect_err("not an OAuth code");
    assert!(matches!(wrong_kind, Error::InvalidCode));

    let base = sim
        .oauth_authorize(OA, None, None, OAuthScope::SnsapiBase)
        .expect("consent");
    let base = client
        .oauth2_access_token(OA, &secret, &base.code)
        .await
        .expect("exchanges");
    let denied = client
        .sns_userinfo(&base.access_token, &base.openid)
        .await
        .expect_err("snsapi_base may not read the profile");
    assert!(matches!(denied, Error::ScopeUnauthorized));
    assert_eq!(denied.errcode(), Some(48001));
    sim.shutdown().await;
}

#[tokio::test]
async fn stable_token_phone_number_and_checksession() {
    let sim = simulator().await;
    let client = client_for(&sim);
    let secret = AppSecret::new(MINI_SECRET);

    let token = client
        .stable_token(MINI, &secret, false)
        .await
        .expect("a token");
    assert!(token.expires_in > 300);
    assert_eq!(
        format!("{:?}", token.access_token),
        "AccessToken([redacted])"
    );
    let same = client
        .stable_token(MINI, &secret, false)
        .await
        .expect("a token");
    assert_eq!(
        same.access_token.expose_secret(),
        token.access_token.expose_secret()
    );
    let wrong = client
        .stable_token(MINI, &AppSecret::new("wrong"), false)
        .await
        .expect_err("wrong secret");
    assert!(matches!(wrong, Error::InvalidCredential { .. }));

    // The phone number, with and without a country code.
    let code = sim
        .phone_code(MINI, "o-phone", "13800138000", None)
        .expect("button");
    let phone = client
        .get_phone_number(&token.access_token, &code.code, Some("o-phone"))
        .await
        .expect("a number");
    assert_eq!(phone.pure_phone_number, "13800138000");
    assert_eq!(phone.country_code, "86");
    assert_eq!(phone.watermark.appid, MINI);
    assert!(
        !format!("{phone:?}").contains("13800138000"),
        "masked in Debug"
    );
    let used = client
        .get_phone_number(&token.access_token, &code.code, None)
        .await
        .expect_err("a phone code works once");
    assert!(matches!(used, Error::InvalidCode));

    let code = sim
        .phone_code(MINI, "o-phone", "4155550100", Some("1"))
        .expect("button");
    let mismatch = client
        .get_phone_number(&token.access_token, &code.code, Some("o-someone-else"))
        .await
        .expect_err("another user's openid");
    assert!(matches!(mismatch, Error::Api { errcode: 40003, .. }));
    let phone = client
        .get_phone_number(&token.access_token, &code.code, None)
        .await
        .expect("the code was not spent by the mismatch");
    assert_eq!(phone.phone_number, "+14155550100");

    // checkSessionKey: current until the next wx.login.
    let login = sim.login(MINI, "o-check", None).expect("wx.login");
    let key = SessionKey::new(login.session_key);
    assert!(
        client
            .check_session_key(&token.access_token, "o-check", &key)
            .await
            .expect("checks")
    );
    sim.login(MINI, "o-check", None).expect("wx.login again");
    assert!(
        !client
            .check_session_key(&token.access_token, "o-check", &key)
            .await
            .expect("checks")
    );

    // A token killed elsewhere: refresh once in normal mode, retry once.
    sim.revoke_access_token(MINI).expect("revoked");
    let code = sim
        .phone_code(MINI, "o-phone", "13800138000", None)
        .expect("button");
    let refused = client
        .get_phone_number(&token.access_token, &code.code, None)
        .await
        .expect_err("revoked");
    assert!(refused.is_access_token_invalid());
    assert!(matches!(
        refused,
        Error::AccessTokenInvalid { errcode: 40001, .. }
    ));
    let fresh = client
        .stable_token(MINI, &secret, false)
        .await
        .expect("the current token");
    assert_ne!(
        fresh.access_token.expose_secret(),
        token.access_token.expose_secret()
    );
    client
        .get_phone_number(&fresh.access_token, &code.code, None)
        .await
        .expect("the retry works, with the same code");

    sim.expire_access_token(MINI).expect("expired");
    let expired = client
        .check_session_key(&fresh.access_token, "o-check", &key)
        .await
        .expect_err("expired");
    assert!(matches!(
        expired,
        Error::AccessTokenInvalid { errcode: 42001, .. }
    ));

    // The phone number endpoint refuses a token it never issued.
    let bogus = client
        .get_phone_number(&AccessToken::new("bogus"), "x", None)
        .await
        .expect_err("unknown token");
    assert!(bogus.is_access_token_invalid());
    assert_eq!(sim.calls().total(PHONE_NUMBER_PATH), 7);
    sim.shutdown().await;
}

#[tokio::test]
async fn configuration_and_secrets() {
    let config = ClientConfig::builder().build().expect("the defaults");
    assert_eq!(
        config.api_base().as_str().trim_end_matches('/'),
        DEFAULT_API_BASE.trim_end_matches('/')
    );
    assert_eq!(config.timeout(), DEFAULT_TIMEOUT);
    assert_eq!(config.max_retries(), DEFAULT_MAX_RETRIES);
    let bad = ClientConfig::builder().api_base("not a url").build();
    assert!(matches!(bad, Err(Error::InvalidConfig(_))));

    let secret = AppSecret::new("s3cr3t-value");
    assert_eq!(format!("{secret:?}"), "AppSecret([redacted])");
    assert_eq!(secret.expose_secret(), "s3cr3t-value");
    assert_eq!(
        format!("{:?}", SessionKey::new("k")),
        "SessionKey([redacted])"
    );

    // Nothing listens here: a connection failure, retried, then reported. (This package uses
    // only what another team has, the published crates, so not wxlink-tests' free_port.)
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = listener.local_addr().expect("an address");
    drop(listener);
    let client = wxlink_wechat_client::WeChatClient::new(
        ClientConfig::builder()
            .api_base(format!("http://{addr}"))
            .backoff_base(Duration::from_millis(1))
            .build()
            .expect("valid"),
    )
    .expect("builds");
    let error = client
        .code2session(MINI, &secret, "code")
        .await
        .expect_err("refused");
    assert!(matches!(&error, Error::Transport(e) if e.is_connect()));
    assert!(error.is_retryable());
    assert!(!format!("{error:?} {error}").contains("s3cr3t-value"));
}
