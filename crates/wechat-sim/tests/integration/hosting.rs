//! Hosting: under a prefix, on a given listener, shutdown, and the binary.

use super::*;

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
