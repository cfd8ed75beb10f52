//! The rest of an account's life where a process is the point: cancellations, merges and splits
//! racing on two nodes that must end in one consistent state, the `wxlink user` command line,
//! and the webhooks that carry the events. Cancellation, support's repairs and introspection
//! on one node are in `crates/api/tests/contract/` (`cancellation.rs`, `support.rs`,
//! `internal.rs`).

use serde_json::{Value, json};
use tokio::task::JoinSet;

use wxlink_tests::internal_api::{
    SERVICE_TOKEN, events, internal, internal_post, merged_person, with_tokens,
};

use crate::helpers::{
    APP_A, APP_B, Api, Backend, LoginResponse, PROCESS_LIMIT, Proc, Reply, Snapshot, TestApp,
    assert_error, forged_body, identities, send, unsigned_body, wxlink_command,
};

on_both_backends!(
    a_cancellation_racing_logins_on_two_nodes_leaves_no_live_token_on_the_tombstone,
    a_support_merge_racing_a_unionid_merge_ends_in_one_consistent_state,
    a_split_racing_a_login_of_a_moved_identity_gives_the_session_to_where_the_identity_went,
    a_split_racing_a_merge_of_the_same_user_ends_in_one_order,
    the_command_line_repairs_users_by_the_same_rules_and_asks_first,
    the_command_line_gives_a_locked_out_identity_its_budget_back,
    webhooks_carry_the_life_cycle_events_with_their_detail,
);

/// Logins of one person on two nodes while the person cancels: afterwards no live token acts
/// as the tombstone and no identity is attached to it; each login's token is either revoked or
/// acts as a new user.
async fn a_cancellation_racing_logins_on_two_nodes_leaves_no_live_token_on_the_tombstone(
    backend: Backend,
) {
    const LOGINS: usize = 6;
    let mut app = TestApp::spawn(backend, with_tokens()).await;
    let second = app.spawn_node().await;
    let first = app.address.clone();
    let person = app.login(APP_B, "race-b", Some("race-union")).await;

    let codes: Vec<String> = (0..LOGINS)
        .map(|_| app.wx_login(APP_B, "race-b", Some("race-union")).code)
        .collect();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(LOGINS + 1));
    let mut tasks = JoinSet::new();
    for (i, code) in codes.into_iter().enumerate() {
        let (client, node, barrier) = (
            app.client.clone(),
            if i % 2 == 0 {
                second.clone()
            } else {
                first.clone()
            },
            std::sync::Arc::clone(&barrier),
        );
        tasks.spawn(async move {
            barrier.wait().await;
            let request = client
                .post(format!("{node}/v1/wechat/login"))
                .json(&json!({"appid": APP_B, "code": code}));
            send(request, "a racing login").await
        });
    }
    let cancel = {
        let proof = app.wx_login(APP_B, "race-b", None).code;
        let request = app
            .client
            .delete(format!("{first}/v1/me"))
            .bearer_auth(&person.token)
            .json(&json!({ "code": proof }));
        let barrier = std::sync::Arc::clone(&barrier);
        tokio::spawn(async move {
            barrier.wait().await;
            send(request, "the cancellation").await
        })
    };
    let cancelled = cancel.await.expect("the cancellation task");
    assert_eq!(cancelled.status, 204, "{}", cancelled.body);
    let mut tokens = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.expect("a login task");
        match reply.status {
            200 => tokens.push(LoginResponse::parse(&reply)),
            503 => {
                assert_error(&reply, 503, "database_contention", "a contended login");
            }
            other => panic!("a racing login answered {other} {}", reply.body),
        };
    }
    for login in &tokens {
        let me = app.me(&login.token).await;
        match me.status {
            200 => assert_ne!(
                me.json()["user_id"],
                person.user_id.as_str(),
                "a live token acts as the cancelled user"
            ),
            _ => {
                assert_error(
                    &me,
                    401,
                    "invalid_token",
                    "a login the cancellation revoked",
                );
            }
        }
    }
    let snapshot = app.snapshot();
    snapshot.assert_consistent("after a cancellation racing logins");
    assert!(
        snapshot
            .identities
            .iter()
            .all(|i| i.user_id != person.user_id),
        "an identity is attached to the tombstone"
    );
}

/// Support merges the unionid's owner into a provisional user on one node while that user's
/// data merges it into the owner on another, both released at once: one of them wins, the
/// other is refused or finds nothing to do, and what a user and the feed see agrees with it.
async fn a_support_merge_racing_a_unionid_merge_ends_in_one_consistent_state(backend: Backend) {
    const ROUNDS: usize = 6;
    let mut app = TestApp::spawn(backend, with_tokens()).await;
    let second = app.spawn_node().await;
    let first = app.address.clone();
    for round in 0..ROUNDS {
        let union = format!("mr{round}-union");
        let (open_a, open_b) = (format!("mr{round}-a"), format!("mr{round}-b"));
        let provisional = app.login(APP_A, &open_a, Some(&union)).await;
        let owner = app.login(APP_B, &open_b, Some(&union)).await;
        let info = app.wx_user_info(APP_A, &open_a);
        let by_data = app
            .client
            .post(format!("{first}/v1/wechat/user-info"))
            .bearer_auth(&provisional.token)
            .json(&unsigned_body(&info));
        let by_support = app
            .client
            .post(format!(
                "{second}/internal/v1/users/{}/merge",
                provisional.user_id
            ))
            .bearer_auth(SERVICE_TOKEN)
            .json(&json!({"from": owner.user_id}));
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let [by_data, by_support] = [
            (by_data, "the unionid merge"),
            (by_support, "the support merge"),
        ]
        .map(|(request, what)| {
            let start = std::sync::Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                send(request, what).await
            })
        });
        let (by_data, by_support) = (
            by_data.await.expect("the unionid merge task"),
            by_support.await.expect("the support merge task"),
        );

        assert_eq!(by_data.status, 200, "{}", by_data.body);
        let support_won = match by_support.status {
            200 => {
                assert_eq!(by_support.json()["unionid"], union.as_str());
                true
            }
            _ => {
                assert_error(
                    &by_support,
                    409,
                    "user_merged",
                    "the support merge came second",
                );
                false
            }
        };
        let (survivor, merged) = if support_won {
            (&provisional.user_id, &owner.user_id)
        } else {
            (&owner.user_id, &provisional.user_id)
        };
        assert_eq!(
            by_data.json()["merged"],
            !support_won,
            "round {round}: the data merged only if support did not: {}",
            by_data.body
        );
        // One user: both tokens act as the survivor, which has both identities and the unionid.
        for token in [&provisional.token, &owner.token] {
            let me = app.me_ok(token).await;
            assert_eq!(&me.user_id, survivor, "round {round}");
            assert!(me.unionid_linked);
            assert_eq!(
                me.identities,
                identities(&[(APP_A, &open_a), (APP_B, &open_b)])
            );
        }
        let found = internal(&app, &format!("/internal/v1/users?unionid={union}"))
            .await
            .ok_json(200, "the unionid's owner");
        assert_eq!(&found["user_id"], survivor.as_str());
        // The feed tells one story: one merge, of the loser into the survivor, by the winner.
        let snapshot = app.snapshot();
        let merges: Vec<_> = snapshot
            .events_of("users_merged")
            .into_iter()
            .filter(|e| [&provisional.user_id, &owner.user_id].contains(&&e.user_id))
            .collect();
        assert_eq!(
            merges.len(),
            1,
            "round {round}: exactly one merge: {merges:?}"
        );
        assert_eq!(&merges[0].user_id, survivor);
        assert_eq!(merges[0].other_user_id.as_ref(), Some(merged));
        let detail: Value =
            serde_json::from_str(merges[0].detail.as_deref().expect("a merge's detail"))
                .expect("the detail is JSON");
        assert_eq!(
            detail["by"],
            if support_won { "support" } else { "unionid" },
            "round {round}: {detail}"
        );
        snapshot.assert_consistent("after a support merge raced a unionid merge");
    }
}

/// Person A logs in on the bound app (unionid `{tag}-u`), person B on the other (provisional),
/// and support merges A's user into B's by mistake: B's user holds A's unionid.
async fn wrongly_merged(app: &TestApp, tag: &str) -> (LoginResponse, LoginResponse) {
    let a = app
        .login(APP_B, &format!("{tag}-a"), Some(&format!("{tag}-u")))
        .await;
    let b = app.login(APP_A, &format!("{tag}-b"), None).await;
    internal_post(
        app,
        &format!("/internal/v1/users/{}/merge", b.user_id),
        &json!({"from": a.user_id}),
    )
    .await
    .ok_json(200, "the wrong merge");
    (a, b)
}

/// Send both requests at once, released by a barrier.
async fn race(
    first: (reqwest::RequestBuilder, &'static str),
    second: (reqwest::RequestBuilder, &'static str),
) -> (Reply, Reply) {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let [first, second] = [first, second].map(|(request, what)| {
        let start = std::sync::Arc::clone(&start);
        tokio::spawn(async move {
            start.wait().await;
            send(request, what).await
        })
    });
    (
        first.await.expect("the first request's task"),
        second.await.expect("the second request's task"),
    )
}

/// Every live session acts as the user its identity is on: sessions follow their identity.
fn assert_sessions_follow_their_identities(snapshot: &Snapshot, what: &str) {
    let now = wxlink_tests::now_unix();
    for session in &snapshot.sessions {
        if session.revoked_at.is_some() || session.expires_at <= now {
            continue;
        }
        let on = snapshot.identity_rows(&session.appid, &session.openid);
        let acts_as = snapshot.resolve(&session.user_id);
        assert!(
            on.iter().all(|i| i.user_id == acts_as),
            "{what}: a live session of ({}, {}) acts as {acts_as}, its identity is on {on:?}",
            session.appid,
            session.openid
        );
    }
}

/// Support splits A's identity back out of B's user on one node while A logs in again on the
/// other, both released at once: whichever commits first, A's new session acts as the user
/// A's identity went to, with A's unionid, and B's stays B's.
async fn a_split_racing_a_login_of_a_moved_identity_gives_the_session_to_where_the_identity_went(
    backend: Backend,
) {
    const ROUNDS: usize = 6;
    let mut app = TestApp::spawn(backend, with_tokens()).await;
    let second = app.spawn_node().await;
    let first = app.address.clone();
    for round in 0..ROUNDS {
        let tag = format!("sl{round}");
        let (a, b) = wrongly_merged(&app, &tag).await;
        let wx = app.wx_login(APP_B, &format!("{tag}-a"), Some(&format!("{tag}-u")));
        let split = app
            .client
            .post(format!("{first}/internal/v1/users/{}/split", b.user_id))
            .bearer_auth(SERVICE_TOKEN)
            .json(
                &json!({"identities": [{"appid": APP_B, "openid": format!("{tag}-a")}],
                          "into": a.user_id}),
            );
        let login = app
            .client
            .post(format!("{second}/v1/wechat/login"))
            .json(&json!({"appid": APP_B, "code": wx.code}));
        let (split, login) = race((split, "the split"), (login, "the login")).await;
        assert_eq!(split.status, 200, "round {round}: {}", split.body);
        let login = LoginResponse::parse(&login);
        let me = app.me_ok(&login.token).await;
        assert_eq!(
            me.user_id, a.user_id,
            "round {round}: A's new session is A's"
        );
        assert!(me.unionid_linked, "round {round}");
        assert_eq!(me.identities, identities(&[(APP_B, &format!("{tag}-a"))]));
        assert_eq!(app.me_ok(&a.token).await.user_id, a.user_id);
        let b_now = app.me_ok(&b.token).await;
        assert_eq!(b_now.user_id, b.user_id, "round {round}");
        assert!(
            !b_now.unionid_linked,
            "round {round}: B's user holds no unionid"
        );
        let snapshot = app.snapshot();
        assert_sessions_follow_their_identities(&snapshot, "after a split raced a login");
        snapshot.assert_consistent("after a split raced a login");
    }
}

/// Support splits A back out of B's user on one node while, on the other, B's user is merged
/// into a third user D: one order or the other, never half of each. Split first: A's user is
/// restored with A's unionid and D gets B. Merge first: D has everything, and the split is
/// refused (`user_merged`).
async fn a_split_racing_a_merge_of_the_same_user_ends_in_one_order(backend: Backend) {
    const ROUNDS: usize = 6;
    let mut app = TestApp::spawn(backend, with_tokens()).await;
    let second = app.spawn_node().await;
    let first = app.address.clone();
    for round in 0..ROUNDS {
        let tag = format!("sm{round}");
        let (a, b) = wrongly_merged(&app, &tag).await;
        let d = app.login(APP_A, &format!("{tag}-d"), None).await;
        let split = app
            .client
            .post(format!("{first}/internal/v1/users/{}/split", b.user_id))
            .bearer_auth(SERVICE_TOKEN)
            .json(
                &json!({"identities": [{"appid": APP_B, "openid": format!("{tag}-a")}],
                          "into": a.user_id}),
            );
        let merge = app
            .client
            .post(format!("{second}/internal/v1/users/{}/merge", d.user_id))
            .bearer_auth(SERVICE_TOKEN)
            .json(&json!({"from": b.user_id}));
        let (split, merge) = race((split, "the split"), (merge, "the merge")).await;
        assert_eq!(merge.status, 200, "round {round}: {}", merge.body);
        let split_first = match split.status {
            200 => true,
            _ => {
                assert_error(&split, 409, "user_merged", "the split came second");
                false
            }
        };
        let union = format!("{tag}-u");
        let holder = internal(&app, &format!("/internal/v1/users?unionid={union}"))
            .await
            .ok_json(200, "the unionid's holder");
        let a_now = app.me_ok(&a.token).await;
        let b_now = app.me_ok(&b.token).await;
        assert_eq!(
            b_now.user_id, d.user_id,
            "round {round}: B's user went into D"
        );
        if split_first {
            assert_eq!(holder["user_id"], a.user_id.as_str(), "round {round}");
            assert_eq!(a_now.user_id, a.user_id);
            assert!(!b_now.unionid_linked, "round {round}: D took no unionid");
        } else {
            assert_eq!(holder["user_id"], d.user_id.as_str(), "round {round}");
            assert_eq!(a_now.user_id, d.user_id);
        }
        let snapshot = app.snapshot();
        assert_sessions_follow_their_identities(&snapshot, "after a split raced a merge");
        snapshot.assert_consistent("after a split raced a merge");
    }
}

/// An identity that spent its day's budget of failed decryptions (here 2) is refused on every
/// new session; `wxlink user reset-decrypt-budget` lets it in again.
async fn the_command_line_gives_a_locked_out_identity_its_budget_back(backend: Backend) {
    let options = with_tokens().security_toml("max_failed_decrypts_per_identity_per_day = 2\n");
    let app = TestApp::spawn(backend, options).await;
    let (wx, login) = app.login_full(APP_A, "locked", None).await;
    let not_json = forged_body(&wx.session_key, b"not json at all");
    for attempt in 0..2 {
        let reply = app.user_info(&login.token, &not_json).await;
        assert_error(&reply, 422, "decrypt_failed", &format!("attempt {attempt}"));
    }
    let (wx, login) = app.login_full(APP_A, "locked", None).await;
    let not_json = forged_body(&wx.session_key, b"not json at all");
    let reply = app.user_info(&login.token, &not_json).await;
    assert_error(
        &reply,
        429,
        "too_many_attempts",
        "a new session, the day spent",
    );

    let args = ["reset-decrypt-budget", APP_A, "locked", "--yes", "--json"];
    assert_eq!(
        json_of(&wxlink_user(&app, &args, None)),
        json!({"reset": true})
    );
    let reply = app.user_info(&login.token, &not_json).await;
    assert_error(&reply, 422, "decrypt_failed", "after the reset");
    let untouched = ["reset-decrypt-budget", APP_A, "nobody", "--yes", "--json"];
    assert_eq!(
        json_of(&wxlink_user(&app, &untouched, None)),
        json!({"reset": false}),
        "an identity that spent nothing"
    );
}

/// What one `wxlink user …` run printed.
struct Run {
    success: bool,
    /// The exit status, which tells the category of a failure.
    exit: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `wxlink user ARGS --config <the app's config>`, with `answer` on stdin (none: no input).
fn wxlink_user(app: &TestApp, args: &[&str], answer: Option<&str>) -> Run {
    wxlink_user_with(app, app.config_path(), args, answer)
}

/// [`wxlink_user`] with another configuration file.
fn wxlink_user_with(
    app: &TestApp,
    config: &std::path::Path,
    args: &[&str],
    answer: Option<&str>,
) -> Run {
    let mut cmd = wxlink_command();
    cmd.arg("user")
        .args(args)
        .arg("--config")
        .arg(config)
        .env("WXLINK_LOG", "warn")
        .current_dir(app.dir());
    if let Some(answer) = answer {
        let path = app.dir().join("answer.txt");
        std::fs::write(&path, answer).expect("write the answer");
        cmd.stdin(std::fs::File::open(&path).expect("open the answer"));
    }
    let mut proc = Proc::spawn(cmd, "wxlink user");
    let status = proc.wait_exit(PROCESS_LIMIT);
    Run {
        success: status.success(),
        exit: status.code(),
        stdout: proc.stdout(),
        stderr: proc.stderr(),
    }
}

fn json_of(run: &Run) -> Value {
    assert!(run.success, "wxlink user failed: {}", run.stderr);
    serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", run.stdout))
}

/// The `error.code` of a failed `--json` run's one JSON object.
fn json_error_code(run: &Run) -> String {
    assert!(!run.success, "expected a failure: {}", run.stdout);
    let value: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", run.stdout));
    value["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn the_command_line_repairs_users_by_the_same_rules_and_asks_first(backend: Backend) {
    let app = TestApp::spawn(backend, with_tokens()).await;
    let (provisional, owner) = merged_person(&app, "cli").await;
    let x = owner.user_id.as_str();

    // show --json is what the internal API shows.
    let shown = json_of(&wxlink_user(&app, &["show", x, "--json"], None));
    let by_api = internal(&app, &format!("/internal/v1/users/{x}"))
        .await
        .ok_json(200, "the same user over HTTP");
    assert_eq!(shown, by_api);
    let text = wxlink_user(&app, &["show", x], None);
    assert!(
        text.success && text.stdout.contains("cli-union"),
        "{}",
        text.stdout
    );

    // Unknown and malformed ids fail clearly.
    let unknown = wxlink_user(&app, &["show", "u-nobody"], None);
    assert!(
        !unknown.success && unknown.stderr.contains("no such user"),
        "{}",
        unknown.stderr
    );
    let malformed = wxlink_user(&app, &["revoke-sessions", "bad id!", "--yes"], None);
    assert!(
        !malformed.success && malformed.stderr.contains("user id"),
        "{}",
        malformed.stderr
    );
    // With --json a failure is one JSON object with the contract's code, and each category
    // has its own exit status.
    let unknown = wxlink_user(&app, &["show", "u-nobody", "--json"], None);
    assert_eq!(
        (unknown.exit, json_error_code(&unknown).as_str()),
        (Some(4), "not_found"),
        "{}",
        unknown.stdout
    );
    // Ids and the configuration are checked before the operator is asked: no confirming a
    // command that then fails on a typo.
    let malformed = wxlink_user(&app, &["unlink", x, APP_A, "bad openid!", "--json"], None);
    assert_eq!(
        (malformed.exit, json_error_code(&malformed).as_str()),
        (Some(2), "invalid_request"),
        "{}",
        malformed.stdout
    );
    assert!(!malformed.stderr.contains("[y/N]"), "{}", malformed.stderr);
    let broken = app.dir().join("broken.toml");
    let config = std::fs::read_to_string(app.config_path()).expect("read the config");
    std::fs::write(&broken, format!("{config}\n[bogus]\nkey = 1\n")).expect("write a config");
    let misconfigured = wxlink_user_with(&app, &broken, &["delete", x], None);
    assert_eq!(misconfigured.exit, Some(6), "{}", misconfigured.stderr);
    assert!(
        misconfigured.stderr.contains("bogus") && !misconfigured.stderr.contains("[y/N]"),
        "{}",
        misconfigured.stderr
    );

    // A destructive command without --yes asks; no answer, or not "y", changes nothing.
    let before = app.snapshot();
    for answer in [None, Some("n\n")] {
        let refused = wxlink_user(&app, &["delete", x], answer);
        assert_eq!(refused.exit, Some(3), "{answer:?}: {}", refused.stdout);
        assert!(
            refused.stderr.contains("not confirmed"),
            "{}",
            refused.stderr
        );
    }
    assert_eq!(
        before.users,
        app.snapshot().users,
        "a refused command changes nothing"
    );
    assert_eq!(app.me_ok(&owner.token).await.user_id, x);

    // revoke-sessions, unlink, merge: the same transactions and events as the internal API.
    let revoked = json_of(&wxlink_user(
        &app,
        &["revoke-sessions", x, "--json", "--yes"],
        None,
    ));
    assert_eq!(revoked, json!({"revoked": 2}));
    assert_error(
        &app.me(&owner.token).await,
        401,
        "invalid_token",
        "revoked by the CLI",
    );
    let unlinked = wxlink_user(&app, &["unlink", x, APP_A, "cli-a", "--yes"], None);
    assert!(unlinked.success, "{}", unlinked.stderr);
    let last = wxlink_user(&app, &["unlink", x, APP_B, "cli-b", "--yes"], None);
    assert!(
        !last.success && last.stderr.contains("only identity"),
        "{}",
        last.stderr
    );
    let last = wxlink_user(
        &app,
        &["unlink", x, APP_B, "cli-b", "--yes", "--json"],
        None,
    );
    assert_eq!(
        (last.exit, json_error_code(&last).as_str()),
        (Some(5), "last_identity"),
        "{}",
        last.stdout
    );
    let newcomer = app.login(APP_A, "cli-a", None).await;
    assert_ne!(newcomer.user_id, x);
    let merged = json_of(&wxlink_user(
        &app,
        &["merge", x, &newcomer.user_id, "--json"],
        Some("y\n"),
    ));
    assert_eq!(merged["identities"].as_array().map(Vec::len), Some(2));
    assert_eq!(app.me_ok(&newcomer.token).await.user_id, x);

    // split: the merge undone, by a named operator; the newcomer's session goes with it.
    let identity = format!("{APP_A}/cli-a");
    let bad = wxlink_user(
        &app,
        &[
            "split",
            x,
            &identity,
            "--yes",
            "--json",
            "--actor",
            "al\u{85}ice",
        ],
        None,
    );
    assert_eq!(
        (bad.exit, json_error_code(&bad).as_str()),
        (Some(2), "invalid_request"),
        "a name with a control character: {}",
        bad.stdout
    );
    let split = json_of(&wxlink_user(
        &app,
        &[
            "split",
            x,
            &identity,
            "--into",
            &newcomer.user_id,
            "--yes",
            "--json",
            "--actor",
            "alice",
        ],
        None,
    ));
    assert_eq!(split["user"]["user_id"], newcomer.user_id.as_str());
    assert_eq!(split["user"]["merged_into"], Value::Null);
    assert_eq!(split["remaining"]["user_id"], x);
    assert_eq!(app.me_ok(&newcomer.token).await.user_id, newcomer.user_id);
    let again = wxlink_user(
        &app,
        &[
            "split",
            x,
            &identity,
            "--into",
            &newcomer.user_id,
            "--yes",
            "--json",
        ],
        None,
    );
    assert_eq!(
        (again.exit, json_error_code(&again).as_str()),
        (Some(4), "not_found"),
        "{}",
        again.stdout
    );

    // delete: a cancellation by support.
    let deleted = json_of(&wxlink_user(&app, &["delete", x, "--yes", "--json"], None));
    assert_eq!(
        deleted,
        json!({"deleted": x, "sessions": 0, "identities": 1})
    );
    assert_error(
        &internal(&app, &format!("/internal/v1/users/{x}")).await,
        404,
        "not_found",
        "a deleted user",
    );
    let again = wxlink_user(&app, &["delete", x, "--yes"], None);
    assert!(
        !again.success && again.stderr.contains("no such user"),
        "{}",
        again.stderr
    );
    assert!(provisional.user_id != x);

    let feed = events(&app).await;
    let support: Vec<&str> = feed
        .iter()
        .filter(|e| e["detail"]["by"] == "support")
        .map(|e| e["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        support,
        [
            "sessions_revoked",
            "identity_unlinked",
            "users_merged",
            "identity_unlinked",
            "identity_linked",
            "user_split",
            "identity_unlinked",
            "unionid_released",
            "user_deleted"
        ]
    );
    // Each says who: the operator named with --actor, else the OS user's login name.
    for event in feed.iter().filter(|e| e["detail"]["by"] == "support") {
        let actor = event["detail"]["actor"].as_str().unwrap_or_default();
        assert!(actor.starts_with("cli:") && actor.len() > 4, "{event}");
        if event["kind"] == "user_split" {
            assert_eq!(actor, "cli:alice");
        }
    }
    app.snapshot()
        .assert_consistent("after the command line's repairs");
}

async fn webhooks_carry_the_life_cycle_events_with_their_detail(backend: Backend) {
    let (url, received) = crate::internal::receiver(0).await;
    let options = with_tokens().extra_toml(&format!(
        "[webhooks.crm]\nurl = \"{url}\"\nsecret = \"whsec-lifecycle-0123456789\"\npoll_ms = 20\n"
    ));
    let app = TestApp::spawn(backend, options).await;
    let (_, owner) = merged_person(&app, "hook").await;
    internal_post(
        &app,
        &format!("/internal/v1/users/{}/revoke-sessions", owner.user_id),
        &json!({}),
    )
    .await
    .ok_json(200, "revoke sessions");
    let again = app.login(APP_B, "hook-b", Some("hook-union")).await;
    assert_eq!(app.cancel(&again.token, APP_B, "hook-b").await.status, 204);
    let feed = events(&app).await;
    let kinds: Vec<&str> = feed.iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in [
        "users_merged",
        "sessions_revoked",
        "identity_unlinked",
        "user_deleted",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }

    // Bounded poll until the receiver has every event of the feed, as the feed shows it.
    let delivered = || -> Vec<Value> {
        let all = received.lock().expect("receiver lock");
        let mut events: Vec<Value> = all
            .iter()
            .flat_map(|(_, _, body)| {
                let body: Value = serde_json::from_slice(body).unwrap_or_default();
                body["events"].as_array().cloned().unwrap_or_default()
            })
            .collect();
        events.dedup();
        events
    };
    let _ = wxlink_tests::eventually(std::time::Duration::from_secs(20), async || {
        (delivered().len() >= feed.len()).then_some(())
    })
    .await;
    assert_eq!(
        delivered(),
        feed,
        "the webhook delivers the feed's events, detail and all"
    );
}
