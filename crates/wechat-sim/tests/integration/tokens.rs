//! getStableAccessToken: normal mode with its five-minute handover, forced refreshes and their
//! limits, the access_token check of the other endpoints, and the token controls.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wxlink_wechat_sim::{
    CHECK_SESSION_PATH, CODE2SESSION_PATH, Fault, FaultTarget, STABLE_TOKEN_PATH, SimError,
    SimHandle, UnionidPolicy,
};

use super::{APPID, Exchange, SECRET, control, sim_with_app, wechat_get, wechat_post};

/// `expires_in` counts whole seconds down on a clock that also moves in real time.
fn assert_close(expires_in: u64, expected: u64) {
    assert!(
        (expected - 2..=expected).contains(&expires_in),
        "expires_in {expires_in}, expected about {expected}"
    );
}

async fn stable_token(sim: &SimHandle, force_refresh: bool) -> Exchange {
    let body = json!({
        "grant_type": "client_credential",
        "appid": APPID,
        "secret": SECRET,
        "force_refresh": force_refresh,
    });
    wechat_post(&sim.base_url(), STABLE_TOKEN_PATH, &[], body.to_string()).await
}

async fn token(sim: &SimHandle, force_refresh: bool) -> (String, u64) {
    let answer = stable_token(sim, force_refresh).await;
    let token = answer.str("access_token").expect("a token");
    let expires_in = answer.body["expires_in"].as_u64().expect("expires_in");
    (token.to_owned(), expires_in)
}

/// The errcode checksession gives for this token (0 when the token works).
async fn token_errcode(sim: &SimHandle, token: &str) -> Option<i64> {
    let login = sim.login(APPID, "o-token", None).expect("login");
    let signature = wxlink_crypto::check_session_signature(&login.session_key);
    wechat_get(
        &sim.base_url(),
        CHECK_SESSION_PATH,
        &[
            ("access_token", token),
            ("openid", "o-token"),
            ("signature", &signature),
            ("sig_method", "hmac_sha256"),
        ],
    )
    .await
    .errcode()
}

#[tokio::test]
async fn normal_mode_hands_out_the_same_token() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let answer = stable_token(&sim, false).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.content_type.starts_with("application/json"),
        "{}",
        answer.content_type
    );
    let object = answer.body.as_object().expect("an object");
    assert_eq!(object.len(), 2, "{object:?}");
    assert_close(
        answer.body["expires_in"].as_u64().expect("expires_in"),
        7200,
    );
    let first = answer.str("access_token").expect("token").to_owned();
    assert!(first.len() >= 100 && first.len() <= 512);

    sim.advance_clock(Duration::from_secs(1000));
    let (same, expires_in) = token(&sim, false).await;
    assert_eq!(same, first);
    assert_close(expires_in, 6200);
    assert_eq!(token_errcode(&sim, &first).await, Some(0));
    assert_eq!(sim.stable_token_calls(), 2);
    assert_eq!(sim.stable_token_calls_for(APPID), 2);
}

#[tokio::test]
async fn renewal_keeps_the_old_token_for_its_last_five_minutes() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let (old, _) = token(&sim, false).await;
    sim.advance_clock(Duration::from_secs(7000));
    let (new, expires_in) = token(&sim, false).await;
    assert_ne!(new, old);
    // Issued as if five minutes before the old expiry.
    assert_close(expires_in, 7100);
    let status = sim.access_token_status(APPID).expect("status");
    assert_eq!(status.access_token.as_deref(), Some(new.as_str()));
    assert_eq!(status.previous_access_token.as_deref(), Some(old.as_str()));
    assert_eq!(
        token_errcode(&sim, &old).await,
        Some(0),
        "both work during the handover"
    );
    assert_eq!(token_errcode(&sim, &new).await, Some(0));
    sim.advance_clock(Duration::from_secs(200));
    assert_eq!(token_errcode(&sim, &old).await, Some(42001));
    assert_eq!(token_errcode(&sim, &new).await, Some(0));
    assert_eq!(token(&sim, false).await.0, new);
    assert_eq!(
        sim.access_token_status(APPID)
            .expect("status")
            .previous_access_token,
        None
    );

    // Every token handed out has more than five minutes left.
    for _ in 0..40 {
        sim.advance_clock(Duration::from_secs(397));
        assert!(token(&sim, false).await.1 > 300);
    }
}

/// Moves the clock to one minute past midnight Beijing time, so that a test of the daily
/// limit does not cross a day.
fn start_of_beijing_day(sim: &SimHandle) {
    let into_day = (sim.now_unix() + 8 * 3600).rem_euclid(86_400);
    let to_next = u64::try_from(86_400 - into_day + 60).expect("positive");
    sim.advance_clock(Duration::from_secs(to_next));
}

#[tokio::test]
async fn forced_refresh_kills_the_token_within_its_limits() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    start_of_beijing_day(&sim);
    let (first, _) = token(&sim, false).await;
    let (forced, expires_in) = token(&sim, true).await;
    assert_ne!(forced, first);
    assert_close(expires_in, 7200);
    assert_eq!(token_errcode(&sim, &first).await, Some(40001));
    assert_eq!(token(&sim, false).await.0, forced);

    // WeChat: "连续使用该模式时，请保证调用时间隔至少为30s，否则不会刷新".
    sim.advance_clock(Duration::from_secs(29));
    assert_eq!(token(&sim, true).await.0, forced);
    assert_eq!(token_errcode(&sim, &forced).await, Some(0));
    for _ in 1..20 {
        sim.advance_clock(Duration::from_secs(30));
        token(&sim, true).await;
    }
    let status = sim.access_token_status(APPID).expect("status");
    assert_eq!(status.force_refreshes_today, 20);
    assert_eq!(status.force_refresh_calls, 21);
    sim.advance_clock(Duration::from_secs(30));
    let refused = stable_token(&sim, true).await;
    assert_eq!(refused.errcode(), Some(45009));
    assert!(
        refused
            .errmsg()
            .starts_with("reach max api daily quota limit")
    );
    assert_eq!(
        token(&sim, false).await.0,
        status.access_token.expect("current")
    );
    sim.reset_calls();
    assert_eq!(
        sim.access_token_status(APPID)
            .expect("status")
            .force_refresh_calls,
        0
    );
}

#[tokio::test]
async fn request_errors() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let base = sim.base_url();
    let post = |body: Value| {
        let base = base.clone();
        async move { wechat_post(&base, STABLE_TOKEN_PATH, &[], body.to_string()).await }
    };
    let with = |field: &str, value: Value| {
        let mut body = json!({"grant_type": "client_credential", "appid": APPID, "secret": SECRET});
        body[field] = value;
        body
    };
    assert_eq!(
        post(with("secret", json!("wrong"))).await.errcode(),
        Some(40125)
    );
    assert_eq!(
        post(with("appid", json!("wxnope"))).await.errcode(),
        Some(40013)
    );
    assert_eq!(post(with("appid", json!(""))).await.errcode(), Some(41002));
    assert_eq!(
        post(with("secret", Value::Null)).await.errcode(),
        Some(41004)
    );
    assert_eq!(
        post(with("grant_type", json!("authorization_code")))
            .await
            .errcode(),
        Some(40002)
    );
    assert_eq!(
        post(with("force_refresh", json!("yes"))).await.errcode(),
        Some(47001)
    );
    assert_eq!(post(json!([1])).await.errcode(), Some(47001));
    let not_json = wechat_post(&base, STABLE_TOKEN_PATH, &[], "appid=wx").await;
    assert_eq!(not_json.errcode(), Some(47001));
    let get = wechat_get(&base, STABLE_TOKEN_PATH, &[("appid", APPID)]).await;
    assert_eq!(get.errcode(), Some(43002));
    assert!(get.errmsg().starts_with("require POST method"));
    assert_eq!(sim.stable_token_calls(), 9);
}

#[tokio::test]
async fn token_controls() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let base = sim.base_url();
    let (first, _) = token(&sim, false).await;
    sim.expire_access_token(APPID).expect("expire");
    let expired = token_errcode(&sim, &first).await;
    assert_eq!(expired, Some(42001));
    let (second, expires_in) = token(&sim, false).await;
    assert_ne!(second, first);
    assert_close(expires_in, 7200);
    sim.revoke_access_token(APPID).expect("revoke");
    assert_eq!(token_errcode(&sim, &second).await, Some(40001));
    assert!(matches!(
        sim.expire_access_token("wxnope"),
        Err(SimError::UnknownApp(_))
    ));

    // Over HTTP.
    let (third, _) = token(&sim, false).await;
    let (status, body) = control(
        Method::GET,
        format!("{base}/__sim/access-token?appid={APPID}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["access_token"], json!(third));
    assert_close(body["expires_in"].as_u64().expect("expires_in"), 7200);
    assert_eq!(body["previous_access_token"], Value::Null);
    assert_eq!(body["force_refreshes_today"], json!(0));
    let (status, _) = control(
        Method::POST,
        format!("{base}/__sim/access-token/revoke"),
        Some(json!({"appid": APPID})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(token_errcode(&sim, &third).await, Some(40001));
    let (fourth, _) = token(&sim, false).await;
    let (status, _) = control(
        Method::POST,
        format!("{base}/__sim/access-token/expire"),
        Some(json!({"appid": APPID})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(token_errcode(&sim, &fourth).await, Some(42001));
    let (_, body) = control(
        Method::GET,
        format!("{base}/__sim/access-token?appid={APPID}"),
        None,
    )
    .await;
    assert_eq!(body["access_token"], Value::Null);
    let (status, body) = control(
        Method::GET,
        format!("{base}/__sim/access-token?appid=wxnope"),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("unknown_app"))
    );
    let (status, _) = control(Method::GET, format!("{base}/__sim/access-token"), None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn faults_play_on_stable_token_by_app_and_path() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    sim.queue_faults(
        FaultTarget::app(APPID).at_path(STABLE_TOKEN_PATH),
        [
            Fault::SystemBusy {
                consume_code: false,
            },
            Fault::RateLimited,
            Fault::NonJson502,
            Fault::Delay { ms: 200 },
        ],
    )
    .expect("faults");
    let login = sim.login(APPID, "o-1", None).expect("login");
    let spared = super::code2session(&sim, &login.code).await;
    assert_eq!(
        spared.str("openid"),
        Some("o-1"),
        "code2Session is not aimed at"
    );
    assert_eq!(stable_token(&sim, false).await.errcode(), Some(-1));
    assert_eq!(stable_token(&sim, false).await.errcode(), Some(45011));
    let gateway = stable_token(&sim, false).await;
    assert_eq!(
        (gateway.status, gateway.content_type.as_str()),
        (502, "text/html")
    );
    let started = std::time::Instant::now();
    assert!(
        stable_token(&sim, false)
            .await
            .str("access_token")
            .is_some()
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(sim.stable_token_calls_for(APPID), 4);
    assert_eq!(sim.calls().total(CODE2SESSION_PATH), 1);
}

#[tokio::test]
async fn fault_rules_over_http_can_name_a_path() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let (status, body) = control(
        Method::POST,
        format!("{}/__sim/faults", sim.base_url()),
        Some(json!({
            "appid": APPID,
            "path": STABLE_TOKEN_PATH,
            "faults": [{"kind": "errcode", "errcode": 40164, "errmsg": "invalid ip"}],
            "sticky": true,
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let login = sim.login(APPID, "o-1", None).expect("login");
    assert_eq!(
        super::code2session(&sim, &login.code).await.str("openid"),
        Some("o-1")
    );
    for _ in 0..2 {
        let refused = stable_token(&sim, false).await;
        assert_eq!(refused.errcode(), Some(40164));
        assert!(refused.content_type.starts_with("application/json"));
    }
    sim.clear_faults();
    assert!(
        stable_token(&sim, false)
            .await
            .str("access_token")
            .is_some()
    );
}
