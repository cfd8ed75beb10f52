//! Forged or misdirected user data is refused, and a refused request changes nothing.

use serde_json::{Value, json};
use wxlink_wechat_sim::UserInfoRequest;

use crate::helpers::{
    APP_A, APP_B, Api, Backend, Options, TestApp, assert_error_shape, error_code, forged_body,
    identities, signed_body, unsigned_body, user_plaintext,
};

on_both_backends!(
    forged_user_data_is_refused_and_changes_nothing,
    watermark_age_check_can_be_disabled,
);

async fn forged_user_data_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend, more_attempts()).await;
    let (wx, victim) = app.login_full(APP_A, "hana-in-a", Some("hana-union")).await;
    let other = app.login(APP_A, "ivan-in-a", Some("ivan-union")).await;
    let victim_before = app.me_ok(&victim.token).await;
    let other_before = app.me_ok(&other.token).await;
    assert!(!victim_before.unionid_linked && !other_before.unionid_linked);

    let with = |request: UserInfoRequest| {
        app.sim
            .user_info_with(&request)
            .expect("simulated wx.getUserInfo")
    };
    let genuine = app.wx_user_info(APP_A, "hana-in-a");
    let mut bad_signature = signed_body(&genuine);
    bad_signature["signature"] = json!("0".repeat(40));
    let mut tampered_raw_data = signed_body(&genuine);
    let changed_raw_data = genuine.raw_data.replacen("\"gender\":0", "\"gender\":1", 1);
    assert_ne!(
        changed_raw_data, genuine.raw_data,
        "the simulator's rawData has a gender"
    );
    tampered_raw_data["raw_data"] = json!(changed_raw_data);
    let others_data = app.wx_user_info(APP_A, "ivan-in-a");

    let cases: Vec<(&str, Value, u16, &[&str])> = vec![
        (
            "watermark of another app",
            signed_body(&with(UserInfoRequest {
                watermark_appid: Some(APP_B.to_owned()),
                ..UserInfoRequest::new(APP_A, "hana-in-a")
            })),
            422,
            &["watermark_mismatch"],
        ),
        (
            "watermark an hour old (max age 600 s)",
            signed_body(&with(UserInfoRequest {
                watermark_timestamp: Some(app.sim.now_unix() - 3600),
                ..UserInfoRequest::new(APP_A, "hana-in-a")
            })),
            422,
            &["watermark_expired"],
        ),
        (
            "forged: watermark 700 s old",
            forged_body(
                &wx.session_key,
                &user_plaintext("hana-in-a", Some("hana-union"), APP_A, app.now() - 700),
            ),
            422,
            &["watermark_expired"],
        ),
        (
            "forged: another app's watermark",
            forged_body(
                &wx.session_key,
                &user_plaintext("hana-in-a", Some("hana-union"), APP_B, app.now()),
            ),
            422,
            &["watermark_mismatch"],
        ),
        (
            "forged: someone else's openId under this session's key",
            forged_body(
                &wx.session_key,
                &user_plaintext("ivan-in-a", Some("ivan-union"), APP_A, app.now()),
            ),
            403,
            &["identity_mismatch"],
        ),
        (
            "signature of zeros",
            bad_signature,
            422,
            &["signature_mismatch"],
        ),
        (
            "raw_data changed after signing",
            tampered_raw_data,
            422,
            &["signature_mismatch"],
        ),
        (
            "another user's data replayed under this session",
            unsigned_body(&others_data),
            0,
            &["decrypt_failed", "identity_mismatch"],
        ),
        (
            "another user's signed data replayed under this session",
            signed_body(&others_data),
            0,
            &["decrypt_failed", "identity_mismatch"],
        ),
    ];

    for (what, body, status, codes) in cases {
        let reply = app.user_info(&victim.token, &body).await;
        assert_error_shape(&reply, what);
        let code = error_code(&reply).unwrap_or_default();
        assert!(
            codes.contains(&code.as_str()),
            "{what}: expected one of {codes:?}, got {} {}",
            reply.status,
            reply.body
        );
        let expected_status = match (status, code.as_str()) {
            (0, "identity_mismatch") | (403, _) => 403,
            _ => 422,
        };
        assert_eq!(reply.status, expected_status, "{what}: {}", reply.body);
        assert_eq!(
            app.me_ok(&victim.token).await,
            victim_before,
            "{what}: the victim changed"
        );
        assert_eq!(
            app.me_ok(&other.token).await,
            other_before,
            "{what}: the other user changed"
        );
    }

    // After all that, the genuine data still links the victim, and only the victim.
    let linked = app
        .user_info_ok(&victim.token, &signed_body(&genuine))
        .await;
    assert!(linked.unionid_linked && !linked.merged, "{linked:?}");
    assert_eq!(linked.user_id, victim.user_id);
    let me = app.me_ok(&victim.token).await;
    assert_eq!(me.identities, identities(&[(APP_A, "hana-in-a")]));
    assert_eq!(app.me_ok(&other.token).await, other_before);
}

/// `max_watermark_age_secs = 0` turns the age check off; the appid is still checked.
async fn watermark_age_check_can_be_disabled(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default().max_watermark_age_secs(0)).await;
    let login = app.login(APP_A, "jade-in-a", Some("jade-union")).await;
    let before = app.me_ok(&login.token).await;
    let with = |request: UserInfoRequest| {
        app.sim
            .user_info_with(&request)
            .expect("simulated wx.getUserInfo")
    };
    let foreign = with(UserInfoRequest {
        watermark_appid: Some(APP_B.to_owned()),
        watermark_timestamp: Some(app.sim.now_unix() - 3600),
        ..UserInfoRequest::new(APP_A, "jade-in-a")
    });
    let reply = app.user_info(&login.token, &signed_body(&foreign)).await;
    crate::helpers::assert_error(&reply, 422, "watermark_mismatch", "foreign, old watermark");
    assert_eq!(app.me_ok(&login.token).await, before);

    let week_old = with(UserInfoRequest {
        watermark_timestamp: Some(app.sim.now_unix() - 7 * 24 * 3600),
        ..UserInfoRequest::new(APP_A, "jade-in-a")
    });
    let linked = app
        .user_info_ok(&login.token, &signed_body(&week_old))
        .await;
    assert!(linked.unionid_linked, "{linked:?}");
}

/// More refusals on one session than its default budget of failed decryptions (5) allows.
fn more_attempts() -> Options {
    Options::default().security_toml("max_failed_decrypts_per_session = 10\n")
}
