//! The simulator as a client sees it: over HTTP with reqwest, against a started simulator.
//!
//! This file holds code2Session, faults, counters, user info, the control API and hosting;
//! the modules hold the other endpoints.

mod classic;
mod mini_program;
mod oauth;
mod tokens;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wxlink_wechat_sim::{
    CODE2SESSION_PATH, Fault, FaultTarget, Sim, SimError, SimHandle, Simulator, UnionidPolicy,
    UserInfoRequest,
};

const APPID: &str = "wx4f4bc4dec97d474b";
const SECRET: &str = "app-secret-1";

async fn sim_with_app(policy: UnionidPolicy) -> SimHandle {
    let sim = Simulator::builder()
        .app(APPID, SECRET, policy)
        .start()
        .await
        .expect("simulator starts");
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    sim
}

struct Exchange {
    status: u16,
    content_type: String,
    body: Value,
}

impl Exchange {
    fn errcode(&self) -> Option<i64> {
        self.body.get("errcode").and_then(Value::as_i64)
    }

    fn errmsg(&self) -> &str {
        self.body
            .get("errmsg")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn str(&self, field: &str) -> Option<&str> {
        self.body.get(field).and_then(Value::as_str)
    }
}

async fn code2session_at(base_url: &str, appid: &str, secret: &str, code: &str) -> Exchange {
    let response = reqwest::Client::new()
        .get(format!("{base_url}{CODE2SESSION_PATH}"))
        .query(&[
            ("appid", appid),
            ("secret", secret),
            ("js_code", code),
            ("grant_type", "authorization_code"),
        ])
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Exchange {
        status,
        content_type,
        body,
    }
}

async fn code2session(sim: &SimHandle, code: &str) -> Exchange {
    code2session_at(&sim.base_url(), APPID, SECRET, code).await
}

async fn exchange_of(response: reqwest::Response) -> Exchange {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Exchange {
        status,
        content_type,
        body,
    }
}

/// A GET of a WeChat endpoint with these query pairs.
async fn wechat_get(base_url: &str, path: &str, query: &[(&str, &str)]) -> Exchange {
    let response = reqwest::Client::new()
        .get(format!("{base_url}{path}"))
        .query(query)
        .send()
        .await
        .expect("an answer");
    exchange_of(response).await
}

/// A POST of a WeChat endpoint with these query pairs and this raw body.
async fn wechat_post(
    base_url: &str,
    path: &str,
    query: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Exchange {
    let response = reqwest::Client::new()
        .post(format!("{base_url}{path}"))
        .query(query)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("an answer");
    exchange_of(response).await
}

// --- code2Session ------------------------------------------------------------------------------

#[tokio::test]
async fn success_is_text_plain_json_without_errcode() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let login = sim.login(APPID, "o-1", Some("u-1")).expect("login");
    let answer = code2session(&sim, &login.code).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "text/plain");
    assert_eq!(
        answer.body,
        json!({"openid": "o-1", "session_key": login.session_key, "unionid": "u-1"})
    );
    assert_eq!(login.expires_in, 300);
}

#[tokio::test]
async fn errors_are_text_plain_json_with_wechat_messages() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let answer = code2session(&sim, "no-such-code").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "text/plain");
    assert_eq!(answer.errcode(), Some(40029));
    assert!(
        answer.errmsg().starts_with("invalid code, rid: "),
        "{}",
        answer.errmsg()
    );
}

#[tokio::test]
async fn a_code_works_once() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let login = sim.login(APPID, "o-1", None).expect("login");
    assert!(
        code2session(&sim, &login.code)
            .await
            .str("openid")
            .is_some()
    );
    let again = code2session(&sim, &login.code).await;
    assert_eq!(again.errcode(), Some(40163));
    assert!(again.errmsg().starts_with("code been used, rid: "));
}

#[tokio::test]
async fn a_code_expires_after_five_minutes_of_sim_clock() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let early = sim.login(APPID, "o-1", None).expect("login");
    let late = sim.login(APPID, "o-2", None).expect("login");
    sim.advance_clock(Duration::from_secs(290));
    assert!(
        code2session(&sim, &early.code)
            .await
            .str("openid")
            .is_some()
    );
    sim.advance_clock(Duration::from_secs(20));
    assert_eq!(code2session(&sim, &late.code).await.errcode(), Some(40029));
}

#[tokio::test]
async fn login_rotates_the_session_key() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let first = sim.login(APPID, "o-1", None).expect("login");
    let second = sim.login(APPID, "o-1", None).expect("login");
    assert_ne!(first.session_key, second.session_key);
    assert_ne!(first.code, second.code);
    for key in [&first.session_key, &second.session_key] {
        assert_eq!(key.len(), 24, "base64 of 16 bytes");
    }
    // code2Session gives the user's current key, whichever code is exchanged.
    let answer = code2session(&sim, &second.code).await;
    assert_eq!(answer.str("session_key"), Some(second.session_key.as_str()));
    // Data from getUserInfo is under the new key; the old key cannot read it.
    let info = sim.user_info(APPID, "o-1").expect("user info");
    assert!(
        wxlink_crypto::decrypt_user_data(&second.session_key, &info.iv, &info.encrypted_data)
            .is_ok()
    );
    assert!(
        wxlink_crypto::decrypt_user_data(&first.session_key, &info.iv, &info.encrypted_data)
            .is_err()
    );
}

#[tokio::test]
async fn unionid_policies() {
    let sim = Simulator::builder()
        .app("wxalways", "s", UnionidPolicy::Always)
        .app("wxnever", "s", UnionidPolicy::Never)
        .app("wxfollow", "s", UnionidPolicy::WhenFollowing)
        .start()
        .await
        .expect("start");
    let base = sim.base_url();
    let unionid_of = |appid: &'static str| {
        let base = base.clone();
        let sim = sim.sim().clone();
        async move {
            let login = sim.login(appid, "o-1", Some("u-1")).expect("login");
            code2session_at(&base, appid, "s", &login.code)
                .await
                .str("unionid")
                .map(str::to_owned)
        }
    };
    assert_eq!(unionid_of("wxalways").await.as_deref(), Some("u-1"));
    assert_eq!(unionid_of("wxnever").await, None);
    assert_eq!(unionid_of("wxfollow").await, None);
    sim.follow("wxfollow", "o-1").expect("follow");
    assert_eq!(unionid_of("wxfollow").await.as_deref(), Some("u-1"));
    sim.set_following("wxfollow", "o-1", false)
        .expect("unfollow");
    assert_eq!(unionid_of("wxfollow").await, None);

    // A user without a unionid never gets one, and a later login keeps an existing one.
    let login = sim.login("wxalways", "o-2", None).expect("login");
    let answer = code2session_at(&base, "wxalways", "s", &login.code).await;
    assert!(answer.body.get("unionid").is_none());
    let login = sim.login("wxalways", "o-1", None).expect("login");
    let answer = code2session_at(&base, "wxalways", "s", &login.code).await;
    assert_eq!(answer.str("unionid"), Some("u-1"));
}

#[tokio::test]
async fn checks_credentials_grant_type_and_code() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let base = sim.base_url();
    let login = sim.login(APPID, "o-1", None).expect("login");

    let wrong_secret = code2session_at(&base, APPID, "nope", &login.code).await;
    assert_eq!(wrong_secret.errcode(), Some(40125));
    assert!(wrong_secret.errmsg().starts_with("invalid appsecret"));
    let unknown_app = code2session_at(&base, "wxunknown", SECRET, &login.code).await;
    assert_eq!(unknown_app.errcode(), Some(40013));
    let missing_code = code2session_at(&base, APPID, SECRET, "").await;
    assert_eq!(missing_code.errcode(), Some(41008));

    sim.register_app("wxother", "s2", UnionidPolicy::Always)
        .expect("register");
    let foreign = code2session_at(&base, "wxother", "s2", &login.code).await;
    assert_eq!(foreign.errcode(), Some(40029), "a code belongs to its app");

    let client = reqwest::Client::new();
    let no_grant = client
        .get(format!(
            "{base}/sns/jscode2session?appid={APPID}&secret={SECRET}&js_code={}",
            login.code
        ))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("body");
    assert!(no_grant.contains("40002"), "{no_grant}");

    // The failed calls did not burn the code.
    assert!(
        code2session(&sim, &login.code)
            .await
            .str("openid")
            .is_some()
    );

    // Malformed queries get an errcode, never a crash.
    for query in ["%zz%ff", "appid", "&&&", "appid=%FF%FE"] {
        let text = client
            .get(format!("{base}/sns/jscode2session?{query}"))
            .send()
            .await
            .expect("answer")
            .text()
            .await
            .expect("body");
        let body: Value = serde_json::from_str(&text).expect("json");
        assert!(body.get("errcode").is_some(), "{query}: {text}");
    }
    let huge = "a".repeat(5_000);
    let answer = code2session_at(&base, &huge, &huge, &huge).await;
    assert_eq!(answer.errcode(), Some(40013));
}

// --- faults ------------------------------------------------------------------------------------

#[tokio::test]
async fn queued_faults_play_in_order_then_normal_answers_resume() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    sim.queue_faults(
        FaultTarget::app(APPID),
        [
            Fault::SystemBusy {
                consume_code: false,
            },
            Fault::RateLimited,
            Fault::HighRisk,
            Fault::InvalidCredential,
            Fault::Errcode {
                errcode: 61000,
                errmsg: "custom".into(),
            },
        ],
    )
    .expect("faults");
    let login = sim.login(APPID, "o-1", None).expect("login");
    let mut seen = Vec::new();
    for _ in 0..5 {
        let answer = code2session(&sim, &login.code).await;
        assert_eq!(answer.content_type, "text/plain");
        seen.push(answer.errcode());
    }
    assert_eq!(
        seen,
        [Some(-1), Some(45011), Some(40226), Some(40125), Some(61000)]
    );
    // None of those consumed the code.
    assert!(
        code2session(&sim, &login.code)
            .await
            .str("openid")
            .is_some()
    );
}

#[tokio::test]
async fn system_busy_can_consume_the_code() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let login = sim.login(APPID, "o-1", None).expect("login");
    sim.queue_faults(
        FaultTarget::code(&login.code),
        [Fault::SystemBusy { consume_code: true }],
    )
    .expect("fault");
    let first = code2session(&sim, &login.code).await;
    assert_eq!(first.errcode(), Some(-1));
    assert!(first.errmsg().starts_with("system error"));
    let retry = code2session(&sim, &login.code).await;
    assert_eq!(
        retry.errcode(),
        Some(40163),
        "the retry meets a consumed code"
    );
}

#[tokio::test]
async fn code_targeted_faults_leave_other_codes_alone() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let hit = sim.login(APPID, "o-1", None).expect("login");
    let spared = sim.login(APPID, "o-2", None).expect("login");
    sim.queue_faults(FaultTarget::code(&hit.code), [Fault::HighRisk])
        .expect("fault");
    assert!(
        code2session(&sim, &spared.code)
            .await
            .str("openid")
            .is_some()
    );
    assert_eq!(code2session(&sim, &hit.code).await.errcode(), Some(40226));
}

#[tokio::test]
async fn sticky_faults_last_until_cleared() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    sim.sticky_fault(FaultTarget::any(), Fault::RateLimited)
        .expect("fault");
    for _ in 0..3 {
        assert_eq!(code2session(&sim, "x").await.errcode(), Some(45011));
    }
    sim.clear_faults();
    assert_eq!(code2session(&sim, "x").await.errcode(), Some(40029));
}

#[tokio::test]
async fn http_level_faults() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    sim.queue_faults(FaultTarget::any(), [Fault::NonJson502, Fault::Http500])
        .expect("faults");
    let gateway = code2session(&sim, "x").await;
    assert_eq!(gateway.status, 502);
    assert_eq!(gateway.content_type, "text/html");
    assert!(matches!(&gateway.body, Value::String(html) if html.contains("502 Bad Gateway")));
    let internal = code2session(&sim, "x").await;
    assert_eq!(internal.status, 500);
    assert!(matches!(internal.body, Value::String(_)));
}

#[tokio::test]
async fn delay_then_a_normal_answer() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let login = sim.login(APPID, "o-1", None).expect("login");
    sim.queue_faults(FaultTarget::any(), [Fault::Delay { ms: 300 }])
        .expect("fault");
    let started = Instant::now();
    let answer = code2session(&sim, &login.code).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(answer.str("openid"), Some("o-1"));
}

#[tokio::test]
async fn dropped_connection_gives_no_answer() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let login = sim.login(APPID, "o-1", None).expect("login");
    sim.queue_faults(FaultTarget::any(), [Fault::DropConnection])
        .expect("fault");
    let result = reqwest::Client::new()
        .get(format!("{}{CODE2SESSION_PATH}", sim.base_url()))
        .query(&[
            ("appid", APPID),
            ("secret", SECRET),
            ("js_code", &login.code),
            ("grant_type", "authorization_code"),
        ])
        .send()
        .await;
    let error = result.expect_err("no response head");
    assert!(error.status().is_none(), "{error:?}");
    // The simulator keeps serving, and the dropped call did not consume the code.
    assert_eq!(
        code2session(&sim, &login.code).await.str("openid"),
        Some("o-1")
    );
}

#[tokio::test]
async fn fault_rules_are_validated() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    assert!(matches!(
        sim.queue_faults(FaultTarget::any(), []),
        Err(SimError::InvalidInput(_))
    ));
    assert!(matches!(
        sim.queue_faults(FaultTarget::any(), [Fault::Delay { ms: 600_000 }]),
        Err(SimError::InvalidInput(_))
    ));
}

// --- counters ----------------------------------------------------------------------------------

#[tokio::test]
async fn calls_are_counted_per_endpoint_and_appid() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let base = sim.base_url();
    code2session(&sim, "a").await;
    code2session(&sim, "b").await;
    code2session_at(&base, "wxother", "s", "c").await;
    assert_eq!(sim.code2session_calls(), 3);
    assert_eq!(sim.code2session_calls_for(APPID), 2);
    assert_eq!(sim.code2session_calls_for("wxother"), 1);
    let calls = sim.calls();
    assert_eq!(calls.total(CODE2SESSION_PATH), 3);
    sim.reset_calls();
    assert_eq!(sim.code2session_calls(), 0);
}

// --- user info ---------------------------------------------------------------------------------

#[tokio::test]
async fn user_info_decrypts_with_the_current_key() {
    let sim = sim_with_app(UnionidPolicy::Never).await;
    let login = sim.login(APPID, "o-1", Some("u-1")).expect("login");
    let info = sim.user_info(APPID, "o-1").expect("user info");

    let data = wxlink_crypto::decrypt_user_data(&login.session_key, &info.iv, &info.encrypted_data)
        .expect("decrypts");
    assert_eq!(data.open_id, "o-1");
    // getUserInfo carries the unionid even where code2Session's policy withholds it.
    assert_eq!(data.union_id.as_deref(), Some("u-1"));
    assert_eq!(data.watermark.appid, APPID);
    assert!((data.watermark.timestamp - sim.now_unix()).abs() <= 1);
    assert_eq!(data.nick_name.as_deref(), Some("微信用户"));
    assert!(wxlink_crypto::verify_raw_data_signature(
        &info.raw_data,
        &login.session_key,
        &info.signature
    ));
    let raw: Value = serde_json::from_str(&info.raw_data).expect("raw_data is JSON");
    assert!(raw.get("openId").is_none() && raw.get("unionId").is_none());
    assert_eq!(raw.get("nickName"), Some(&json!("微信用户")));
}

#[tokio::test]
async fn user_profile_has_no_unionid_and_options_apply() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let login = sim.login(APPID, "o-1", Some("u-1")).expect("login");
    let mut request = UserInfoRequest::new(APPID, "o-1").without_unionid();
    request.nick_name = Some("Alice".into());
    request.watermark_appid = Some("wxsomeoneelse".into());
    request.watermark_timestamp = Some(1_477_314_187);
    let info = sim.user_info_with(&request).expect("user info");
    let data = wxlink_crypto::decrypt_user_data(&login.session_key, &info.iv, &info.encrypted_data)
        .expect("decrypts");
    assert_eq!(data.union_id, None);
    assert_eq!(data.nick_name.as_deref(), Some("Alice"));
    assert_eq!(data.watermark.appid, "wxsomeoneelse");
    assert_eq!(data.watermark.timestamp, 1_477_314_187);
}

#[tokio::test]
async fn user_info_needs_a_logged_in_user() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    assert!(matches!(
        sim.user_info(APPID, "nobody"),
        Err(SimError::UnknownUser { .. })
    ));
    sim.follow(APPID, "follower").expect("follow");
    assert!(matches!(
        sim.user_info(APPID, "follower"),
        Err(SimError::NoSession { .. })
    ));
    assert!(matches!(
        sim.user_info("wxunknown", "o"),
        Err(SimError::UnknownApp(_))
    ));
    assert!(matches!(
        sim.login("wxunknown", "o", None),
        Err(SimError::UnknownApp(_))
    ));
}

// --- the HTTP control API ----------------------------------------------------------------------

async fn control(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

#[tokio::test]
async fn the_whole_flow_over_http() {
    use reqwest::Method;
    let sim = Simulator::start().await.expect("start");
    let base = sim.base_url();
    let sim_url = |path: &str| format!("{base}/__sim/{path}");

    let (status, body) = control(
        Method::POST,
        sim_url("apps"),
        Some(json!({"appid": "wxhttp", "secret": "s", "unionid_policy": "when_following"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({
            "appid": "wxhttp",
            "unionid_policy": "when_following",
            "kind": "mini_program",
            "unionid_in_exchange": true,
        })
    );

    let (status, follow) = control(
        Method::POST,
        sim_url("follow"),
        Some(json!({"appid": "wxhttp", "openid": "o-h"})),
    )
    .await;
    assert_eq!(status, 200, "{follow}");
    assert_eq!(follow["following"], json!(true));

    let (status, login) = control(
        Method::POST,
        sim_url("login"),
        Some(json!({"appid": "wxhttp", "openid": "o-h", "unionid": "u-h"})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let code = login["code"].as_str().expect("code").to_owned();
    let session_key = login["session_key"].as_str().expect("key").to_owned();
    assert_eq!(login["openid"], json!("o-h"));
    assert_eq!(login["expires_in"], json!(300));

    // A login without an openid makes a new user.
    let (_, generated) = control(
        Method::POST,
        sim_url("login"),
        Some(json!({"appid": "wxhttp"})),
    )
    .await;
    let generated_openid = generated["openid"].as_str().expect("openid");
    assert_eq!(generated_openid.len(), 28);
    assert_ne!(generated_openid, "o-h");

    let answer = code2session_at(&base, "wxhttp", "s", &code).await;
    assert_eq!(answer.str("unionid"), Some("u-h"));
    assert_eq!(answer.str("session_key"), Some(session_key.as_str()));

    let (status, info) = control(
        Method::POST,
        sim_url("user-info"),
        Some(json!({"appid": "wxhttp", "openid": "o-h", "include_unionid": false})),
    )
    .await;
    assert_eq!(status, 200, "{info}");
    let data = wxlink_crypto::decrypt_user_data(
        &session_key,
        info["iv"].as_str().expect("iv"),
        info["encrypted_data"].as_str().expect("data"),
    )
    .expect("decrypts");
    assert_eq!(data.union_id, None);
    assert_eq!(
        info["signature"].as_str(),
        Some(
            wxlink_crypto::raw_data_signature(
                info["raw_data"].as_str().expect("raw"),
                &session_key
            )
            .as_str()
        )
    );

    let (status, _) = control(
        Method::POST,
        sim_url("faults"),
        Some(json!({"appid": "wxhttp", "faults": [{"kind": "system_busy", "consume_code": true}, {"kind": "non_json_502"}], "sticky": false})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        code2session_at(&base, "wxhttp", "s", "x").await.errcode(),
        Some(-1)
    );
    assert_eq!(code2session_at(&base, "wxhttp", "s", "x").await.status, 502);
    let (status, _) = control(
        Method::POST,
        sim_url("faults"),
        Some(json!({"faults": [{"kind": "rate_limited"}], "sticky": true})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        code2session_at(&base, "wxhttp", "s", "x").await.errcode(),
        Some(45011)
    );
    let (status, _) = control(Method::DELETE, sim_url("faults"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        code2session_at(&base, "wxhttp", "s", "x").await.errcode(),
        Some(40029)
    );

    let (status, calls) = control(Method::GET, sim_url("calls"), None).await;
    assert_eq!(status, 200);
    assert_eq!(calls[CODE2SESSION_PATH]["total"], json!(5));
    assert_eq!(calls[CODE2SESSION_PATH]["by_appid"]["wxhttp"], json!(5));
    control(Method::DELETE, sim_url("calls"), None).await;
    let (_, calls) = control(Method::GET, sim_url("calls"), None).await;
    assert_eq!(calls, json!({}));

    let (status, before) = control(Method::GET, sim_url("clock"), None).await;
    assert_eq!(status, 200);
    let (_, login) = control(
        Method::POST,
        sim_url("login"),
        Some(json!({"appid": "wxhttp", "openid": "o-h"})),
    )
    .await;
    let (status, after) = control(
        Method::POST,
        sim_url("clock"),
        Some(json!({"advance_secs": 301})),
    )
    .await;
    assert_eq!(status, 200);
    let advanced = after["now"].as_i64().expect("now") - before["now"].as_i64().expect("now");
    assert!((301..=303).contains(&advanced), "{advanced}");
    let code = login["code"].as_str().expect("code");
    assert_eq!(
        code2session_at(&base, "wxhttp", "s", code).await.errcode(),
        Some(40029)
    );
}

#[tokio::test]
async fn control_errors_are_json() {
    use reqwest::Method;
    let sim = Simulator::start().await.expect("start");
    let base = sim.base_url();

    let (status, body) = control(
        Method::POST,
        format!("{base}/__sim/login"),
        Some(json!({"appid": "wxnope"})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], json!("unknown_app"));

    let response = reqwest::Client::new()
        .post(format!("{base}/__sim/apps"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], json!("invalid_request"));

    let (status, body) = control(
        Method::POST,
        format!("{base}/__sim/apps"),
        Some(json!({"appid": "bad appid!", "secret": "s"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], json!("invalid_request"));

    let (status, body) = control(
        Method::POST,
        format!("{base}/__sim/faults"),
        Some(json!({"faults": [{"kind": "meteor_strike"}]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = control(Method::GET, format!("{base}/__sim/nothing"), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], json!("not_found"));

    let response = reqwest::Client::new()
        .post(format!("{base}/__sim/apps"))
        .header("content-type", "application/json")
        .body(vec![b' '; 100 * 1024])
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 413);
}

// --- hosting -----------------------------------------------------------------------------------

#[tokio::test]
async fn the_router_mounts_under_a_prefix() {
    let sim = Simulator::builder()
        .app(APPID, SECRET, UnionidPolicy::Always)
        .build()
        .expect("build");
    let host = axum::Router::new().nest("/wechat", sim.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, host).await;
    });
    let login = sim.login(APPID, "o-1", None).expect("login");
    let answer =
        code2session_at(&format!("http://{addr}/wechat"), APPID, SECRET, &login.code).await;
    assert_eq!(answer.str("openid"), Some("o-1"));
}

#[tokio::test]
async fn serves_on_a_given_listener_and_shares_a_sim() {
    let sim = Sim::new();
    sim.register_app(APPID, SECRET, UnionidPolicy::Always)
        .expect("register");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = Simulator::builder()
        .sim(sim.clone())
        .serve(listener)
        .await
        .expect("serve");
    assert_eq!(handle.addr(), addr);
    let login = sim.login(APPID, "o-1", None).expect("login");
    assert_eq!(
        code2session(&handle, &login.code).await.str("openid"),
        Some("o-1")
    );
    assert_eq!(sim.code2session_calls(), 1);
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let sim = Simulator::start().await.expect("start");
    let base = sim.base_url();
    sim.shutdown().await;
    let result = reqwest::Client::new()
        .get(format!("{base}/__sim/clock"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(result.is_err());
}

#[tokio::test]
async fn the_binary_prints_its_base_url_and_serves() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxlink-wechat-sim"));
    cmd.args([
        "--bind",
        "127.0.0.1:0",
        "--app",
        "wxbin:s:never",
        "--app",
        "wxbinoa:s:2:official_account",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // The guard kills the simulator on drop, also when an assertion below fails.
    let mut child = wxlink_tests::process::Proc::spawn(cmd, "wxlink-wechat-sim");
    let first_line = child
        .next_stdout_line(std::time::Instant::now() + std::time::Duration::from_secs(30))
        .expect("the simulator prints its base URL");
    let base = first_line.trim().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let (status, login) = control(
        reqwest::Method::POST,
        format!("{base}/__sim/login"),
        Some(json!({"appid": "wxbin", "openid": "o-b", "unionid": "u-b"})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let answer = code2session_at(&base, "wxbin", "s", login["code"].as_str().expect("code")).await;
    assert_eq!(answer.str("openid"), Some("o-b"));
    assert!(answer.body.get("unionid").is_none(), "policy never");

    let (status, grant) = control(
        reqwest::Method::POST,
        format!("{base}/__sim/oauth-authorize"),
        Some(json!({"appid": "wxbinoa", "openid": "o-oa", "unionid": "u-b", "scope": "snsapi_userinfo"})),
    )
    .await;
    assert_eq!(status, 200, "{grant}");
    let code = grant["code"].as_str().expect("code");
    let answer = wechat_get(
        &base,
        wxlink_wechat_sim::OAUTH_ACCESS_TOKEN_PATH,
        &[
            ("appid", "wxbinoa"),
            ("secret", "s:2"),
            ("code", code),
            ("grant_type", "authorization_code"),
        ],
    )
    .await;
    assert_eq!(answer.str("unionid"), Some("u-b"), "{:?}", answer.body);

    child.kill();
}
