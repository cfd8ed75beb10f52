//! Against the simulator: the happy path and WeChat's real rules end to end.

use super::*;
use wxlink_wechat_sim::{Fault, FaultTarget, UnionidPolicy};

#[tokio::test]
async fn login_then_code_reuse_then_consumed_by_retry() {
    let sim = simulator(UnionidPolicy::Always).await;
    let client = client(&sim.base_url());
    let secret = AppSecret::new(SECRET);

    let login = sim.login(APPID, "o-sim", Some("u-sim")).expect("login");
    let session = client
        .code2session(APPID, &secret, &login.code)
        .await
        .expect("a session");
    assert_eq!(session.openid, "o-sim");
    assert_eq!(session.unionid.as_deref(), Some("u-sim"));
    assert_eq!(session.session_key.expose_secret(), login.session_key);

    // WeChat's single use: the same code again is the user's problem.
    let error = client
        .code2session(APPID, &secret, &login.code)
        .await
        .expect_err("reused");
    assert!(matches!(error, Error::CodeUsed), "{error:?}");

    // -1 that consumed the code, then the retry meets 40163: upstream's fault.
    let login = sim.login(APPID, "o-sim", None).expect("login");
    sim.queue_faults(
        FaultTarget::code(&login.code),
        [Fault::SystemBusy { consume_code: true }],
    )
    .expect("fault");
    let error = client
        .code2session(APPID, &secret, &login.code)
        .await
        .expect_err("consumed");
    assert_no_secret(&error);
    assert!(
        matches!(error, Error::CodeConsumedByRetry { errcode: 40163 }),
        "{error:?}"
    );
    assert_eq!(sim.code2session_calls_for(APPID), 4);

    // A wrong secret is a configuration error, and never echoed.
    let login = sim.login(APPID, "o-sim", None).expect("login");
    let error = client
        .code2session(APPID, &AppSecret::new("wrong-secret"), &login.code)
        .await
        .expect_err("bad secret");
    assert_bad_secret(&error);
}

#[tokio::test]
async fn unbound_app_gets_no_unionid() {
    let sim = simulator(UnionidPolicy::Never).await;
    let login = sim.login(APPID, "o-1", Some("u-1")).expect("login");
    let session = client(&sim.base_url())
        .code2session(APPID, &AppSecret::new(SECRET), &login.code)
        .await
        .expect("a session");
    assert_eq!(session.unionid, None);
}
