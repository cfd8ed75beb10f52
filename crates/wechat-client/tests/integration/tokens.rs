//! stable_token, and what a caller does when WeChat refuses an access_token.

use super::*;
use wxlink_wechat_client::{AccessToken, StableToken};
use wxlink_wechat_sim::{Fault, FaultTarget, STABLE_TOKEN_PATH, UnionidPolicy};

const TOKEN: &str = "ACCESS-TOKEN-abcdefghijklmnopqrstuvwxyz";

async fn stable_token(client: &WeChatClient, force_refresh: bool) -> Result<StableToken, Error> {
    client
        .stable_token(APPID, &AppSecret::new(SECRET), force_refresh)
        .await
        .inspect_err(|e| assert_none_of(e, &[SECRET, TOKEN]))
}

#[tokio::test]
async fn request_is_a_json_post_and_the_answer_is_read() {
    let fake = FakeServer::always(Reply::text(&format!(
        r#"{{"access_token":"{TOKEN}","expires_in":7200}}"#
    )))
    .await;
    let token = stable_token(&client(&fake.base_url), false)
        .await
        .expect("a token");
    assert_eq!(token.access_token.expose_secret(), TOKEN);
    assert_eq!(token.expires_in, 7200);
    let debug = format!("{token:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains("AccessToken([redacted])"), "{debug}");

    stable_token(&client(&fake.base_url), true)
        .await
        .expect("a token");
    let recorded = fake.recorded();
    for (request, force_refresh) in recorded.iter().zip([false, true]) {
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.uri, "/cgi-bin/stable_token", "no query");
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            request.json(),
            serde_json::json!({
                "grant_type": "client_credential",
                "appid": APPID,
                "secret": SECRET,
                "force_refresh": force_refresh,
            })
        );
    }
}

#[tokio::test]
async fn errcodes_of_stable_token() {
    // On stable_token itself, 40001 is a wrong secret, not a token to refresh.
    let fake = FakeServer::always(Reply::errcode(40001, "invalid credential")).await;
    let error = stable_token(&client(&fake.base_url), false)
        .await
        .expect_err("refused");
    assert!(
        matches!(error, Error::InvalidCredential { errcode: 40001, .. }),
        "{error:?}"
    );
    assert!(!error.is_access_token_invalid());
    for (errcode, check) in [
        (
            40125,
            (|e| matches!(e, Error::InvalidCredential { .. })) as fn(&Error) -> bool,
        ),
        (40013, |e| matches!(e, Error::InvalidCredential { .. })),
        (45011, |e| matches!(e, Error::RateLimited)),
        (45009, |e| matches!(e, Error::Api { errcode: 45009, .. })),
    ] {
        let fake = FakeServer::always(Reply::errcode(errcode, "m")).await;
        let error = stable_token(&client(&fake.base_url), true)
            .await
            .expect_err("refused");
        assert!(check(&error), "{errcode}: {error:?}");
        assert_eq!(fake.calls(), 1);
    }
    for body in [
        r#"{"expires_in":7200}"#,
        r#"{"access_token":"t"}"#,
        r#"{"access_token":""}"#,
    ] {
        let fake = FakeServer::always(Reply::text(body)).await;
        let error = stable_token(&client(&fake.base_url), false)
            .await
            .expect_err(body);
        assert!(
            matches!(error, Error::UnexpectedAnswer { .. }),
            "{body}: {error:?}"
        );
    }
    // A gateway echoing the body keeps no secret.
    let fake = FakeServer::always(Reply::text("<pre>{body}</pre>").with_status(502)).await;
    let error = stable_token(&client(&fake.base_url), false)
        .await
        .expect_err("502");
    assert!(
        matches!(&error, Error::Http { body, .. } if body.contains("[redacted]") && body.contains(APPID)),
        "{error:?}"
    );
}

#[tokio::test]
async fn only_normal_mode_is_retried() {
    let fake = FakeServer::start(
        vec![Reply::errcode(-1, "system error")],
        Reply::text(&format!(
            r#"{{"access_token":"{TOKEN}","expires_in":7000}}"#
        )),
    )
    .await;
    let token = stable_token(&client(&fake.base_url), false)
        .await
        .expect("retried");
    assert_eq!(token.expires_in, 7000);
    assert_eq!(fake.calls(), 2);

    // A forced refresh kills everyone's token: it is not sent twice once WeChat may have seen it.
    let fake = FakeServer::start(
        vec![Reply::errcode(-1, "system error")],
        Reply::text(&format!(
            r#"{{"access_token":"{TOKEN}","expires_in":7200}}"#
        )),
    )
    .await;
    let error = stable_token(&client(&fake.base_url), true)
        .await
        .expect_err("busy");
    assert!(matches!(error, Error::SystemBusy), "{error:?}");
    assert_eq!(fake.calls(), 1);
    let (base_url, accepted) = closing_server().await;
    stable_token(&client(&base_url), true)
        .await
        .expect_err("closed");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let (base_url, accepted) = closing_server().await;
    stable_token(&client(&base_url), false)
        .await
        .expect_err("closed");
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[test]
fn access_token_is_redacted() {
    assert_eq!(
        format!("{:?}", AccessToken::new(TOKEN)),
        "AccessToken([redacted])"
    );
}

mod against_the_simulator {
    use super::*;

    #[tokio::test]
    async fn nodes_share_a_token_and_refresh_once_after_a_rival_forced_refresh() {
        let sim = simulator(UnionidPolicy::Always).await;
        let node_a = client(&sim.base_url());
        let node_b = client(&sim.base_url());
        let first = stable_token(&node_a, false).await.expect("a token");
        let same = stable_token(&node_b, false).await.expect("a token");
        assert_eq!(
            first.access_token.expose_secret(),
            same.access_token.expose_secret()
        );
        assert!(first.expires_in > 7100);

        // Someone forces a refresh: node A's token is dead (40001) on a call that takes it.
        stable_token(&node_b, true).await.expect("forced");
        let login = sim.login(APPID, "o-1", None).expect("login");
        let key = wxlink_wechat_client::SessionKey::new(login.session_key);
        let error = node_a
            .check_session_key(&first.access_token, "o-1", &key)
            .await
            .expect_err("dead token");
        assert!(
            matches!(error, Error::AccessTokenInvalid { errcode: 40001, .. }),
            "{error:?}"
        );
        assert!(error.is_access_token_invalid());
        assert_none_of(
            &error,
            &[first.access_token.expose_secret(), key.expose_secret()],
        );

        // Refresh once (normal mode) and retry once.
        let fresh = stable_token(&node_a, false).await.expect("a token");
        assert!(
            node_a
                .check_session_key(&fresh.access_token, "o-1", &key)
                .await
                .expect("valid")
        );

        sim.expire_access_token(APPID).expect("expire");
        let error = node_a
            .check_session_key(&fresh.access_token, "o-1", &key)
            .await
            .expect_err("expired");
        assert!(
            matches!(error, Error::AccessTokenInvalid { errcode: 42001, .. }),
            "{error:?}"
        );
        let status = sim.access_token_status(APPID).expect("status");
        assert_eq!(status.force_refresh_calls, 1);
        assert_eq!(sim.stable_token_calls_for(APPID), 4);
    }

    #[tokio::test]
    async fn faults_and_bad_secrets() {
        let sim = simulator(UnionidPolicy::Always).await;
        let client = client(&sim.base_url());
        sim.queue_faults(
            FaultTarget::app(APPID).at_path(STABLE_TOKEN_PATH),
            [
                Fault::SystemBusy {
                    consume_code: false,
                },
                Fault::NonJson502,
            ],
        )
        .expect("faults");
        // The -1 is retried, and the retry meets the gateway page.
        let error = stable_token(&client, false).await.expect_err("502");
        assert!(
            matches!(error, Error::Http { status: 502, .. }),
            "{error:?}"
        );
        assert_eq!(sim.stable_token_calls(), 2);
        stable_token(&client, false).await.expect("a token");
        assert_eq!(sim.stable_token_calls(), 3);
        let error = client
            .stable_token(APPID, &AppSecret::new("wrong"), false)
            .await
            .expect_err("bad secret");
        assert_bad_secret(&error);
    }
}
