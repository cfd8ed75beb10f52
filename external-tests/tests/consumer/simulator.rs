//! `wxlink-wechat-sim` driven in-process, over its HTTP control API, and mounted in an app of
//! our own.

use std::time::Duration;

use serde_json::{Value, json};
use wxlink_wechat_sim::{
    AppKind, AppRegistration, CODE_TTL_SECS, CODE2SESSION_PATH, OAuthScope, STABLE_TOKEN_PATH, Sim,
    SimError, Simulator, UnionidPolicy,
};

use super::{MINI, MINI_SECRET, OA, UNBOUND, simulator};

async fn get_json(url: &str) -> Value {
    let text = reqwest::get(url)
        .await
        .expect("the simulator answers")
        .text()
        .await
        .expect("a body");
    serde_json::from_str(&text).expect("JSON, whatever the content type")
}

fn code2session_url(base: &str, appid: &str, secret: &str, code: &str) -> String {
    format!(
        "{base}{CODE2SESSION_PATH}?appid={appid}&secret={secret}&js_code={code}\
         &grant_type=authorization_code"
    )
}

#[tokio::test]
async fn code2session_over_http_as_wechat_answers_it() {
    let sim = simulator().await;
    let login = sim.login(MINI, "o-1", Some("u-1")).expect("wx.login");
    assert_eq!(login.openid, "o-1");
    assert_eq!(login.expires_in, CODE_TTL_SECS);
    let url = code2session_url(&sim.base_url(), MINI, MINI_SECRET, &login.code);

    let answer = reqwest::get(&url).await.expect("answers");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/plain"[..])
    );
    let body: Value = serde_json::from_str(&answer.text().await.expect("body")).expect("JSON");
    assert_eq!(
        body,
        json!({"openid": "o-1", "session_key": login.session_key, "unionid": "u-1"})
    );
    assert_eq!(get_json(&url).await["errcode"], 40163);
    let wrong_secret = code2session_url(&sim.base_url(), MINI, "nope", "x");
    assert_eq!(get_json(&wrong_secret).await["errcode"], 40125);
    assert_eq!(sim.code2session_calls(), 3);
    assert_eq!(sim.code2session_calls_for(MINI), 3);
    assert_eq!(sim.calls().total(CODE2SESSION_PATH), 3);

    // Codes expire after five minutes on the simulator's clock.
    let login = sim.login(MINI, "o-1", None).expect("wx.login");
    let before = sim.now_unix();
    sim.advance_clock(Duration::from_secs(CODE_TTL_SECS + 1));
    assert!(sim.now_unix() > before);
    let url = code2session_url(&sim.base_url(), MINI, MINI_SECRET, &login.code);
    assert_eq!(get_json(&url).await["errcode"], 40029);

    // The unbound mini program never tells the unionid.
    let login = sim.login(UNBOUND, "o-2", Some("u-2")).expect("wx.login");
    let url = code2session_url(&sim.base_url(), UNBOUND, "unbound-secret", &login.code);
    let body = get_json(&url).await;
    assert_eq!(body["openid"], "o-2");
    assert!(body.get("unionid").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn the_control_api_over_http() {
    let sim = Simulator::start().await.expect("starts");
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let request = http.post(format!("{base}{path}")).json(&body);
        async move {
            let answer = request.send().await.expect("answers");
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.expect("JSON"))
        }
    };

    let (status, app) = post(
        "/__sim/apps",
        json!({"appid": "wx_http", "secret": "s", "unionid_policy": "never"}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(app["unionid_policy"], "never");
    assert_eq!(app["kind"], "mini_program");

    let (status, login) = post("/__sim/login", json!({"appid": "wx_http", "openid": "o"})).await;
    assert_eq!(status, 200);
    let code = login["code"].as_str().expect("a code");
    let body = get_json(&code2session_url(&base, "wx_http", "s", code)).await;
    assert_eq!(body["openid"], "o");
    assert_eq!(body["session_key"], login["session_key"]);

    let (status, error) = post("/__sim/login", json!({"appid": "wx_missing"})).await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], "unknown_app");
    let (status, error) = post(
        "/__sim/oauth-authorize",
        json!({"appid": "wx_http", "scope": "snsapi_base"}),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(error["error"]["code"], "wrong_app_kind");

    let calls: Value = http
        .get(format!("{base}/__sim/calls"))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(calls[CODE2SESSION_PATH]["total"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn mounted_in_our_own_axum_app() {
    let sim = Sim::new();
    sim.register_app(MINI, MINI_SECRET, UnionidPolicy::Always)
        .expect("registers");
    let app = axum::Router::new().nest("/wechat", sim.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("an address");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let login = sim.login(MINI, "o-mounted", None).expect("wx.login");
    let base = format!("http://{addr}/wechat");
    let body = get_json(&code2session_url(&base, MINI, MINI_SECRET, &login.code)).await;
    assert_eq!(body["openid"], "o-mounted");
    server.abort();
}

#[tokio::test]
async fn stable_token_over_http() {
    let sim = simulator().await;
    let http = reqwest::Client::new();
    let url = format!("{}{STABLE_TOKEN_PATH}", sim.base_url());
    let body = json!({"grant_type": "client_credential", "appid": MINI, "secret": MINI_SECRET});
    let first: Value = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    let second: Value = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(first["access_token"], second["access_token"]);
    assert_eq!(first["expires_in"], 7200);
    let status = sim.access_token_status(MINI).expect("known app");
    assert_eq!(
        status.access_token.as_deref(),
        first["access_token"].as_str()
    );
    assert_eq!(sim.stable_token_calls_for(MINI), 2);
    sim.shutdown().await;
}

#[test]
fn control_errors_are_typed() {
    let sim = Sim::new();
    assert!(matches!(
        sim.login("wx_none", "o", None),
        Err(SimError::UnknownApp(appid)) if appid == "wx_none"
    ));
    assert!(matches!(
        sim.register_app("", "s", UnionidPolicy::Always),
        Err(SimError::InvalidInput(_))
    ));
    sim.register_app_with(
        AppRegistration::new("wx_site", "s", UnionidPolicy::Always).with_kind(AppKind::Website),
    )
    .expect("registers");
    let error = sim
        .login("wx_site", "o", None)
        .expect_err("websites have no wx.login");
    assert!(matches!(
        error,
        SimError::WrongAppKind {
            kind: AppKind::Website,
            ..
        }
    ));
    assert_eq!(error.code(), "wrong_app_kind");
    assert!(matches!(
        sim.oauth_authorize("wx_site", None, None, OAuthScope::SnsapiBase),
        Err(SimError::WrongAppKind { .. })
    ));
    sim.oauth_authorize("wx_site", None, None, OAuthScope::SnsapiLogin)
        .expect("websites grant snsapi_login");

    sim.register_app(MINI, MINI_SECRET, UnionidPolicy::Always)
        .expect("registers");
    assert!(matches!(
        sim.user_info(MINI, "o-never-logged-in"),
        Err(SimError::UnknownUser { .. } | SimError::NoSession { .. })
    ));
    assert!(matches!(
        sim.phone_code(MINI, "o", "not digits", None),
        Err(SimError::InvalidInput(_))
    ));
    assert!(matches!(
        sim.phone_code(OA, "o", "13800138000", None),
        Err(SimError::UnknownApp(_))
    ));
}

#[tokio::test]
async fn a_port_in_use_is_a_bind_error() {
    let first = Simulator::start().await.expect("starts");
    let taken = first.addr();
    let error = Simulator::builder()
        .bind(taken)
        .start()
        .await
        .expect_err("the port is taken");
    assert!(matches!(error, SimError::Bind { addr, .. } if addr == taken));
    first.shutdown().await;
}
