//! `user-info` is no decryption oracle: every way data fails to open gets one answer, failed
//! decryptions are budgeted per identity across sessions and cancellations, and data stamped in
//! the future is refused. The padding-oracle attack itself and the per-session budget across a
//! restart are tested on the process in `tests/tests/api/oracle.rs`.

use serde_json::json;

use crate::helpers::{
    APP_A, Api, Backend, FORGED_IV, Options, Reply, TestApp, assert_error, forged_body, now_unix,
    raw_block, unsigned_body, user_plaintext,
};

on_both_backends!(
    every_failure_to_open_user_data_gets_one_answer,
    failed_decryptions_are_budgeted_per_identity_across_sessions,
    cancelling_the_account_does_not_reset_the_identity_budget,
    data_stamped_in_the_future_is_refused,
);

/// What the budget defaults to (`[security] max_failed_decrypts_per_session`).
const SESSION_BUDGET: usize = 5;

/// The request id cut out of a body, so the rest can be compared byte for byte.
fn without_request_id(reply: &Reply) -> String {
    let id = reply.header("x-request-id").expect("an x-request-id");
    reply.body.replace(id, "")
}

/// Bad padding, not UTF-8, not JSON, no openId, a malformed openId: built under the attacker's
/// real session_key, each fails differently inside, and all get the same answer.
async fn every_failure_to_open_user_data_gets_one_answer(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let iv = FORGED_IV;
    let watermark = json!({"appid": APP_A, "timestamp": now_unix()});
    let mut answers = Vec::new();
    // Once without and once with `raw_data` + `signature` (a session each, for the budget):
    // the signature is checked only after every field was read, so it cannot tell a malformed
    // field from the rest either.
    for signed in [false, true] {
        let (wx, login) = app.login_full(APP_A, "mallory", None).await;
        let key = wx.session_key.as_str();
        let encrypted = |plain: &[u8]| wxlink_crypto::encrypt(key, iv, plain).expect("encrypt");
        let kinds: Vec<(&str, String)> = vec![
            ("bad padding", raw_block(key, iv, b"padding is wrong")),
            ("not UTF-8", encrypted(b"\xff\xfe\xfd")),
            ("not JSON", encrypted(b"this is not json")),
            (
                "no openId",
                encrypted(json!({"watermark": watermark}).to_string().as_bytes()),
            ),
            (
                "malformed openId",
                encrypted(
                    json!({"openId": "no spaces allowed", "watermark": watermark})
                        .to_string()
                        .as_bytes(),
                ),
            ),
        ];
        assert!(
            kinds.len() <= SESSION_BUDGET,
            "all within one session's budget"
        );
        for (what, data) in kinds {
            let mut body = json!({"encrypted_data": data, "iv": iv});
            if signed {
                body["raw_data"] = json!("{\"nickName\":\"mallory\"}");
                body["signature"] = json!("0".repeat(40));
            }
            let what = format!("{what}{}", if signed { ", signed" } else { "" });
            let reply = app.user_info(&login.token, &body).await;
            assert_error(&reply, 422, "decrypt_failed", &what);
            answers.push((what, reply));
        }
        assert_eq!(app.me_ok(&login.token).await.identities.len(), 1);
    }
    let (first_what, first) = &answers[0];
    let id_len = |r: &Reply| r.header("x-request-id").map_or(0, str::len);
    // The HTTP stack adds content-length from the body's size; in-process the body is it.
    let length = |r: &Reply| {
        r.header("content-length").map_or(r.body.len(), |l| {
            l.parse::<usize>().expect("a numeric content-length")
        }) - id_len(r)
    };
    for (what, reply) in &answers[1..] {
        assert_eq!(
            without_request_id(reply),
            without_request_id(first),
            "{what} and {first_what} are told apart"
        );
        assert_eq!(reply.status, first.status, "{what}");
        assert_eq!(
            reply.header("content-type"),
            first.header("content-type"),
            "{what}"
        );
        assert_eq!(length(reply), length(first), "{what}");
    }
}

/// Logging in again does not reset the identity's own budget
/// (`max_failed_decrypts_per_identity_per_day`, here 7): WeChat only says a new `wx.login`
/// "may" rotate the session_key.
async fn failed_decryptions_are_budgeted_per_identity_across_sessions(backend: Backend) {
    let app = spend_the_identity_budget_over_three_logins(backend, false).await;
    // Other identities keep their own budget.
    let other = app.login(APP_A, "someone-else", None).await;
    let genuine = app.wx_user_info(APP_A, "someone-else");
    app.user_info_ok(&other.token, &unsigned_body(&genuine))
        .await;
}

/// Cancelling deletes the identity, and the same WeChat user comes back as a new user: the
/// identity's daily budget (here 7) still counts what the cancelled accounts spent, so
/// login, failures, `DELETE /v1/me`, login… is refused at the cap like one long session.
async fn cancelling_the_account_does_not_reset_the_identity_budget(backend: Backend) {
    spend_the_identity_budget_over_three_logins(backend, true).await;
}

/// Three logins of one identity with a daily budget of 7, three failed decryptions each (the
/// account cancelled after each login when `cancel`): the first 7 are `decrypt_failed`, the
/// rest `too_many_attempts`.
async fn spend_the_identity_budget_over_three_logins(backend: Backend, cancel: bool) -> TestApp {
    let options =
        Options::default().security_toml("max_failed_decrypts_per_identity_per_day = 7\n");
    let app = TestApp::spawn(backend, options).await;
    let mut failures = 0;
    for login_number in 1..=3 {
        let (wx, login) = app.login_full(APP_A, "mallory", None).await;
        let garbage = json!({
            "encrypted_data": raw_block(&wx.session_key, FORGED_IV, b"padding is wrong"),
            "iv": FORGED_IV,
        });
        for _ in 0..3 {
            let reply = app.user_info(&login.token, &garbage).await;
            let context = format!("login {login_number}, after {failures} failures");
            if failures < 7 {
                assert_error(&reply, 422, "decrypt_failed", &context);
                failures += 1;
            } else {
                // The identity's daily budget: logging in again cannot help, so the answer
                // does not say to, and tells when the day's window starts again.
                let message = assert_error(&reply, 429, "too_many_attempts", &context);
                assert!(
                    message.contains("daily") && !message.contains("log in again"),
                    "{context}: {message}"
                );
                let retry_after: u64 = reply
                    .header("retry-after")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{context}: no Retry-After: {:?}", reply.headers));
                assert!(
                    (1..=24 * 3600).contains(&retry_after),
                    "{context}: Retry-After {retry_after}"
                );
            }
        }
        if cancel {
            let cancelled = app.cancel(&login.token, APP_A, "mallory").await;
            assert_eq!(cancelled.status, 204, "{}", cancelled.body);
        }
    }
    app
}

/// One watermark check (wxlink-crypto's) bounds both ends: data stamped years ahead does not
/// outlive the age limit, and turning the age limit off does not let it in either.
async fn data_stamped_in_the_future_is_refused(backend: Backend) {
    for max_watermark_age_secs in [None, Some(0)] {
        let options = Options {
            max_watermark_age_secs,
            ..Options::default()
        };
        let app = TestApp::spawn(backend.clone(), options).await;
        let (wx, login) = app
            .login_full(APP_A, "mallory", Some("mallory-union"))
            .await;
        let years_ahead = now_unix() + 5 * 365 * 24 * 3600;
        let body = forged_body(
            &wx.session_key,
            &user_plaintext("mallory", Some("mallory-union"), APP_A, years_ahead),
        );
        let reply = app.user_info(&login.token, &body).await;
        assert_error(
            &reply,
            422,
            "watermark_in_future",
            &format!("stamped five years ahead, max_watermark_age_secs {max_watermark_age_secs:?}"),
        );
        assert!(!app.me_ok(&login.token).await.unionid_linked);
    }
}
