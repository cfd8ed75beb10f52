//! Fault injection: queued and sticky faults, HTTP-level faults, delays, dropped connections.

use super::*;

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
