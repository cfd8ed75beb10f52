//! Many nodes, one truth (PostgreSQL): two `wxlink` processes on one database, 2 × 32
//! concurrent clients logging one person in through three apps, with user data racing the
//! logins; afterwards the database itself is read: one user owns the unionid, every identity
//! is on it, nothing is orphaned, every merge has its event, and every token acts as the
//! survivor.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use wxlink_wechat_sim::UnionidPolicy;

use super::Tally;
use crate::helpers::{
    APP_A, APP_B, APP_C, Api, Backend, LoginResponse, Options, Reply, TestApp, UserInfoResponse,
    identities, send, signed_body,
};

const NODES: usize = 2;
const CLIENTS_PER_NODE: usize = 32;
/// A bound on `503 database_contention` answers: "rare" is at most 1 in 50 requests.
const CONTENTION_PER_REQUESTS: usize = 50;

/// A and its logins never tell the unionid (provisional); B and C always do.
fn three_apps() -> Options {
    Options::default()
        .apps(&[
            (APP_A, UnionidPolicy::Never),
            (APP_B, UnionidPolicy::Always),
            (APP_C, UnionidPolicy::Always),
        ])
        // Every client sends user info for the one person's A identity at once (half of them
        // with one token), and attempts in flight hold a reservation of the session's and the
        // identity's failed-decryption budgets (5 and 20 by default).
        .security_toml(
            "max_failed_decrypts_per_session = 1000\n\
             max_failed_decrypts_per_identity_per_day = 1000\n",
        )
}

/// One person's openid in each app.
fn openid(person: &str, appid: &str) -> String {
    let app = match appid {
        APP_A => "a",
        APP_B => "b",
        _ => "c",
    };
    format!("{person}-in-{app}")
}

/// What one client does, in order.
#[derive(Debug, Clone)]
enum Step {
    /// `POST /v1/wechat/login` with this app's code; for app A the client then sends the
    /// user data with the token it got.
    Login { appid: &'static str, code: String },
    /// `POST /v1/wechat/user-info` with this token.
    UserInfo { token: String },
}

/// What came back for one request.
#[derive(Debug)]
struct Exchange {
    what: String,
    /// A login (else a user-info submission).
    login: bool,
    appid: &'static str,
    reply: Reply,
}

/// Run every client's steps on its node, all clients released at once; every answer is
/// returned. After a 200 login on app A, the client sends `info` with the new token.
async fn race(
    app: &TestApp,
    nodes: &[String],
    plans: Vec<Vec<Step>>,
    info: &Value,
) -> Vec<Exchange> {
    let barrier = Arc::new(Barrier::new(plans.len()));
    let mut tasks = JoinSet::new();
    for (client, steps) in plans.into_iter().enumerate() {
        let node = nodes[client % nodes.len()].clone();
        let http = app.client.clone();
        let info = info.clone();
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            let user_info = |token: &str| {
                http.post(format!("{node}/v1/wechat/user-info"))
                    .bearer_auth(token)
                    .json(&info)
            };
            let mut out = Vec::new();
            barrier.wait().await;
            for step in steps {
                match step {
                    Step::Login { appid, code } => {
                        let request = http
                            .post(format!("{node}/v1/wechat/login"))
                            .json(&json!({"appid": appid, "code": code}));
                        let reply = send(request, "login").await;
                        let token = (reply.status == 200 && appid == APP_A)
                            .then(|| LoginResponse::parse(&reply).token);
                        out.push(Exchange {
                            what: format!("client {client} login on {appid}"),
                            login: true,
                            appid,
                            reply,
                        });
                        if let Some(token) = token {
                            let reply = send(user_info(&token), "user-info").await;
                            out.push(Exchange {
                                what: format!("client {client} user-info after its login"),
                                login: false,
                                appid: APP_A,
                                reply,
                            });
                        }
                    }
                    Step::UserInfo { token } => {
                        let reply = send(user_info(&token), "user-info").await;
                        out.push(Exchange {
                            what: format!("client {client} user-info"),
                            login: false,
                            appid: APP_A,
                            reply,
                        });
                    }
                }
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("a client"));
    }
    all
}

/// Fails on anything but 200 and rare `503 database_contention`; returns the tally.
#[track_caller]
fn tally(exchanges: &[Exchange], what: &str) -> Tally {
    let mut tally = Tally::default();
    for exchange in exchanges {
        tally.record(
            &exchange.what,
            &exchange.reply,
            &["503 database_contention"],
        );
    }
    tally.assert_only_allowed(what);
    let contention = tally.count("503 database_contention");
    let total = tally.total();
    eprintln!(
        "{what}: {total} requests on {NODES} nodes: {:?}; {contention} database_contention",
        tally.counts
    );
    assert!(
        contention * CONTENTION_PER_REQUESTS <= total,
        "{what}: {contention} of {total} requests gave up with database_contention: not rare"
    );
    tally
}

/// Every token acts as `survivor` with all of `all_identities`, asked on both nodes.
async fn assert_tokens_act_as(
    app: &TestApp,
    nodes: &[String],
    tokens: &[String],
    survivor: &str,
    all_identities: &[(String, String)],
) {
    for (i, token) in tokens.iter().enumerate() {
        let request = app
            .client
            .get(format!("{}/v1/me", nodes[i % nodes.len()]))
            .bearer_auth(token);
        let me = crate::helpers::Me::parse(&send(request, "me").await);
        assert_eq!(me.user_id, survivor, "token {i} of {}", tokens.len());
        assert!(me.unionid_linked);
        assert_eq!(me.identities, all_identities);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_nodes_many_clients_one_person_is_one_user() {
    let test = concat!(
        module_path!(),
        "::many_nodes_many_clients_one_person_is_one_user"
    );
    let Some(backend) = Backend::postgres(test) else {
        return;
    };
    let mut app = TestApp::spawn(backend, three_apps()).await;
    let second = app.spawn_node().await;
    let nodes = [app.address.clone(), second];
    let (person, unionid) = ("mia", "mia-union");
    let apps = [APP_A, APP_B, APP_C];

    // Every wx.login first: once wxlink starts exchanging codes, A's session_key no longer
    // rotates, so every A session stores the same (last) key and one user data opens with it.
    let mut plans = Vec::new();
    for client in 0..NODES * CLIENTS_PER_NODE {
        let steps = (0..apps.len())
            .map(|round| {
                let appid = apps[(client + round) % apps.len()];
                let wx = app.wx_login(appid, &openid(person, appid), Some(unionid));
                Step::Login {
                    appid,
                    code: wx.code,
                }
            })
            .collect();
        plans.push(steps);
    }
    let info = signed_body(&app.wx_user_info(APP_A, &openid(person, APP_A)));

    let started = Instant::now();
    let exchanges = race(&app, &nodes, plans, &info).await;
    eprintln!("multi-node race took {} ms", super::ms(started.elapsed()));
    let tally = tally(&exchanges, "one person, 3 apps, 2 nodes × 32 clients");

    // The database: one owner, every identity on it, merged users only with their event.
    let db = app.snapshot();
    db.assert_consistent("after the race");
    let owners = db.owners_of(unionid);
    assert_eq!(owners.len(), 1, "one user owns the unionid: {owners:?}");
    let survivor = owners[0].id.clone();
    for appid in apps {
        let rows = db.identity_rows(appid, &openid(person, appid));
        assert_eq!(rows.len(), 1, "one identity for {appid}: {rows:?}");
        assert_eq!(
            rows[0].user_id, survivor,
            "{appid}'s identity is on the owner"
        );
    }
    let merged = db.merged_users();
    assert!(
        merged.len() <= 1,
        "only A's provisional user can have been merged: {merged:?}"
    );
    assert_eq!(
        db.users.len(),
        1 + merged.len(),
        "no user but the owner and the merged: {:?}",
        db.users
    );
    for user in &merged {
        assert_eq!(user.merged_into.as_deref(), Some(survivor.as_str()));
    }
    assert_eq!(db.events_of("users_merged").len(), merged.len());
    for session in &db.sessions {
        assert_eq!(db.resolve(&session.user_id), survivor, "{session:?}");
    }

    // The answers agree with the database.
    let mut tokens = Vec::new();
    let mut merges = 0;
    for exchange in exchanges.iter().filter(|e| e.reply.status == 200) {
        if exchange.login {
            let login = LoginResponse::parse(&exchange.reply);
            if exchange.appid == APP_A {
                // Before the merge A's logins land on the provisional user.
                assert_eq!(db.resolve(&login.user_id), survivor, "{}", exchange.what);
                if login.user_id != survivor {
                    assert!(login.needs_user_info, "{}: {login:?}", exchange.what);
                }
            } else {
                assert_eq!(login.user_id, survivor, "{}", exchange.what);
                assert!(login.unionid_linked);
            }
            tokens.push(login.token);
        } else {
            let answer = UserInfoResponse::parse(&exchange.reply);
            assert_eq!(answer.user_id, survivor, "{}", exchange.what);
            assert!(answer.unionid_linked);
            merges += usize::from(answer.merged);
        }
    }
    assert_eq!(
        merges,
        merged.len(),
        "each merge is answered `merged: true` exactly once"
    );
    assert_eq!(
        tokens.len()
            + exchanges
                .iter()
                .filter(|e| !e.login && e.reply.status == 200)
                .count(),
        tally.count("200")
    );
    let all = identities(&[
        (APP_A, &openid(person, APP_A)),
        (APP_B, &openid(person, APP_B)),
        (APP_C, &openid(person, APP_C)),
    ]);
    assert_tokens_act_as(&app, &nodes, &tokens, &survivor, &all).await;
    eprintln!(
        "multi-node: {} tokens checked, {} merge(s), {} user(s) in the database",
        tokens.len(),
        merged.len(),
        db.users.len()
    );
}

/// A provisional user P logs in again on many clients and both nodes while its own user data
/// (through its first token and through the new ones) merges it into the owner O: exactly one
/// merge, and every token — P's old one, those issued to P during the race, O's — acts as O.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisional_user_merged_while_it_logs_in_again() {
    let test = concat!(
        module_path!(),
        "::provisional_user_merged_while_it_logs_in_again"
    );
    let Some(backend) = Backend::postgres(test) else {
        return;
    };
    let mut app = TestApp::spawn(backend, three_apps()).await;
    let second = app.spawn_node().await;
    let nodes = [app.address.clone(), second];
    let (person, unionid) = ("noa", "noa-union");
    let (on_a, on_b) = (openid(person, APP_A), openid(person, APP_B));

    let owner = app.login(APP_B, &on_b, Some(unionid)).await;
    assert!(owner.unionid_linked);
    // Every A code first (see above), then P's first login with the first of them.
    let clients = NODES * CLIENTS_PER_NODE;
    let mut codes: Vec<String> = (0..=clients)
        .map(|_| app.wx_login(APP_A, &on_a, Some(unionid)).code)
        .collect();
    let first = codes.remove(0);
    let provisional = LoginResponse::parse(&app.login_with_code(APP_A, &first).await);
    assert!(provisional.needs_user_info);
    assert_ne!(provisional.user_id, owner.user_id);
    let info = signed_body(&app.wx_user_info(APP_A, &on_a));

    // Every client logs in on A again and then sends the data with its new token; every
    // other client then also sends it with P's first token. No data is sent before the first
    // of these logins is answered, so at least that one lands on P; the merge then races the
    // logins still in flight on both nodes.
    let plans: Vec<Vec<Step>> = (0..clients)
        .map(|client| {
            let login = Step::Login {
                appid: APP_A,
                code: codes.pop().expect("a code per login"),
            };
            if client % 2 == 0 {
                vec![login]
            } else {
                vec![
                    login,
                    Step::UserInfo {
                        token: provisional.token.clone(),
                    },
                ]
            }
        })
        .collect();
    let exchanges = race(&app, &nodes, plans, &info).await;
    tally(&exchanges, "a provisional user merged while it logs in");

    let db = app.snapshot();
    db.assert_consistent("after the merge race");
    let merged = db.merged_users();
    assert_eq!(merged.len(), 1, "{merged:?}");
    assert_eq!(merged[0].id, provisional.user_id);
    assert_eq!(
        merged[0].merged_into.as_deref(),
        Some(owner.user_id.as_str())
    );
    let events = db.events_of("users_merged");
    assert_eq!(events.len(), 1, "one users_merged event: {events:?}");
    assert_eq!(events[0].user_id, owner.user_id);
    assert_eq!(
        events[0].other_user_id.as_deref(),
        Some(provisional.user_id.as_str())
    );
    assert_eq!(db.identity_rows(APP_A, &on_a)[0].user_id, owner.user_id);
    assert_eq!(db.owners_of(unionid).len(), 1);

    let mut tokens = vec![owner.token.clone(), provisional.token.clone()];
    let mut merges = 0;
    let mut landed_on_p = 0;
    let both_users: BTreeSet<&str> = [owner.user_id.as_str(), provisional.user_id.as_str()]
        .into_iter()
        .collect();
    for exchange in exchanges.iter().filter(|e| e.reply.status == 200) {
        if !exchange.login {
            let answer = UserInfoResponse::parse(&exchange.reply);
            assert_eq!(answer.user_id, owner.user_id, "{}", exchange.what);
            merges += usize::from(answer.merged);
        } else {
            let login = LoginResponse::parse(&exchange.reply);
            assert!(
                both_users.contains(login.user_id.as_str()),
                "{}: {login:?}",
                exchange.what
            );
            assert_eq!(
                login.unionid_linked,
                login.user_id == owner.user_id,
                "before the merge A's login is P (provisional), after it O: {login:?}"
            );
            landed_on_p += usize::from(login.user_id == provisional.user_id);
            tokens.push(login.token);
        }
    }
    assert_eq!(merges, 1, "exactly one answer says merged");
    assert!(landed_on_p >= 1, "the first login answered lands on P");
    let all = identities(&[(APP_A, &on_a), (APP_B, &on_b)]);
    assert_tokens_act_as(&app, &nodes, &tokens, &owner.user_id, &all).await;

    // And the next login on A lands on O.
    let later = app.login(APP_A, &on_a, None).await;
    assert_eq!(later.user_id, owner.user_id);
    eprintln!(
        "merge race: {landed_on_p} of {} logins on A during the race landed on P before the \
         merge; {} tokens checked, all act as the owner",
        tokens.len() - 2,
        tokens.len() + 1
    );
}
