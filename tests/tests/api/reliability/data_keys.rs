//! One keyring for the cluster (issue 13): a node whose data keys cannot open what the
//! database holds refuses to start, naming the settings, instead of failing request by
//! request; and the rotation procedure of `docs/operations.md` works across two nodes.

use serde_json::Value;

use crate::helpers::{
    APP_A, Api, Backend, Options, Reply, TestApp, assert_error, send, signed_body,
};

on_both_backends!(a_session_key_that_cannot_be_opened_breaks_only_what_needs_it);

fn new_key() -> String {
    let key = wxlink_crypto::DataKey::generate();
    secrecy::ExposeSecret::expose_secret(&key.to_base64()).to_owned()
}

fn key_id(key: &str) -> String {
    wxlink_crypto::DataKey::from_base64(key)
        .expect("a data key")
        .id()
        .to_string()
}

/// The refusal names the settings to fix, both spellings.
fn assert_names_the_settings(why: &str) {
    assert!(why.contains("exited"), "it exits instead of serving: {why}");
    assert!(why.contains("security.data_key"), "{why}");
    assert!(why.contains("WXLINK__SECURITY__DATA_KEY"), "{why}");
}

/// `POST /v1/wechat/user-info` on `node`: opens the session_key that login sealed.
async fn user_info_on(app: &TestApp, node: &str, token: &str, openid: &str) -> Reply {
    let body: Value = signed_body(&app.wx_user_info(APP_A, openid));
    send(
        app.client
            .post(format!("{node}/v1/wechat/user-info"))
            .bearer_auth(token)
            .json(&body),
        "user-info",
    )
    .await
}

/// `POST /v1/wechat/phone-number` on `node`: reads the app's shared access token, which
/// whichever node refreshed it sealed.
async fn phone_number_on(app: &TestApp, node: &str, token: &str, openid: &str) -> Reply {
    let code = app.wx_phone_code(APP_A, openid, "13800000002", Some("86"));
    send(
        app.client
            .post(format!("{node}/v1/wechat/phone-number"))
            .bearer_auth(token)
            .json(&serde_json::json!({"code": code})),
        "phone-number",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_data_key_refuses_to_start() {
    let test = concat!(
        module_path!(),
        "::a_node_with_another_data_key_refuses_to_start"
    );
    let Some(backend) = Backend::postgres(test) else {
        return;
    };
    let mut app = TestApp::spawn(backend, Options::default()).await;
    app.login(APP_A, "kim", None).await;
    let cluster_key = std::fs::read_to_string(app.dir().join("wxlink.key")).expect("the key");

    let own_key = new_key();
    app.set_data_keys(Some(&own_key), &[]);
    let why = app
        .try_spawn_node()
        .await
        .expect_err("another key must not start");
    assert_names_the_settings(&why);
    assert!(why.contains(&key_id(&cluster_key)), "{why}");
    assert!(!why.contains(&own_key) && !why.contains(cluster_key.trim()));

    // Without any data key PostgreSQL is refused too, and no key file of its own is made.
    std::fs::remove_file(app.dir().join("wxlink.key")).expect("remove the key file");
    app.set_data_keys(None, &[]);
    let why = app
        .try_spawn_node()
        .await
        .expect_err("no key must not start");
    assert_names_the_settings(&why);
    assert!(
        !app.dir().join("wxlink.key").exists(),
        "no key file on PostgreSQL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_with_a_wrong_key_file_refuses_to_start() {
    let mut app = TestApp::spawn(Backend::Sqlite, Options::default()).await;
    let login = app.login(APP_A, "lee", None).await;
    let key_file = app.dir().join("wxlink.key");
    let right_key = std::fs::read_to_string(&key_file).expect("the key file");
    std::fs::write(&key_file, new_key()).expect("replace the key file");
    let why = app
        .try_spawn_node()
        .await
        .expect_err("a wrong key must not start");
    assert_names_the_settings(&why);
    assert!(why.contains(&key_id(right_key.trim())), "{why}");
    // The running node goes on serving.
    assert_eq!(app.me_ok(&login.token).await.user_id, login.user_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_key_rotation_across_two_nodes() {
    let test = concat!(module_path!(), "::data_key_rotation_across_two_nodes");
    let Some(backend) = Backend::postgres(test) else {
        return;
    };
    let mut app = TestApp::spawn(backend, Options::default()).await;
    let old = std::fs::read_to_string(app.dir().join("wxlink.key")).expect("the key");
    let new = new_key();
    let before = app.login(APP_A, "rot-1", None).await;

    // 1. The new key as a previous key on every node.
    app.set_data_keys(Some(&old), &[&new]);
    app.restart().await;
    let second = app.spawn_node().await;
    // 2. One node makes it current: the other, still sealing under the old key, opens both.
    app.set_data_keys(Some(&new), &[&old]);
    app.restart_main().await;
    let first = app.address.clone();
    let on_new = app.login(APP_A, "rot-2", None).await;
    let wx = app.wx_login(APP_A, "rot-3", None);
    let on_old = send(
        app.client
            .post(format!("{second}/v1/wechat/login"))
            .json(&serde_json::json!({"appid": APP_A, "code": wx.code})),
        "login on the second node",
    )
    .await;
    let on_old = crate::helpers::LoginResponse::parse(&on_old);
    let sessions = [
        (&before.token, "rot-1"),
        (&on_new.token, "rot-2"),
        (&on_old.token, "rot-3"),
    ];
    for (token, openid) in sessions {
        for node in [&first, &second] {
            let reply = user_info_on(&app, node, token, openid).await;
            assert_eq!(reply.status, 200, "{openid} on {node}: {}", reply.body);
            let reply = phone_number_on(&app, node, token, openid).await;
            assert_eq!(reply.status, 200, "{openid} on {node}: {}", reply.body);
        }
    }
    // A node with only the old key cannot start now: the cluster's current key is the new one.
    app.set_data_keys(Some(&old), &[]);
    let why = app.try_spawn_node().await.expect_err("the old key alone");
    assert_names_the_settings(&why);
    assert!(why.contains(&key_id(&new)), "{why}");
    // Nor a straggler that was not switched: it would keep sealing under the old key.
    app.set_data_keys(Some(&old), &[&new]);
    let why = app
        .try_spawn_node()
        .await
        .expect_err("the old key as current");
    assert!(
        why.contains("older than the cluster's current data key"),
        "{why}"
    );

    // 3. Every node on the new key, then re-seal: the old key is retired.
    app.stop_nodes();
    app.set_data_keys(Some(&new), &[&old]);
    let second = app.spawn_node().await;
    let mut rotate = crate::helpers::wxlink_command();
    rotate
        .arg("rotate-data-key")
        .arg("--config")
        .arg(app.dir().join("wxlink.toml"));
    let output = rotate.output().expect("run wxlink rotate-data-key");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("retired data keys") && stdout.contains(&key_id(&old)),
        "{stdout}"
    );

    // Starting with the retired key as current is refused, and does not make it current again.
    app.set_data_keys(Some(&old), &[&new]);
    let why = app
        .try_spawn_node()
        .await
        .expect_err("the retired key as current");
    assert!(why.contains("is retired"), "{why}");

    // 4. A node with only the new key starts and serves every session.
    app.set_data_keys(Some(&new), &[]);
    let only_new = app
        .try_spawn_node()
        .await
        .expect("the new key alone starts");
    for (token, openid) in sessions {
        for node in [&only_new, &second] {
            let reply = user_info_on(&app, node, token, openid).await;
            assert_eq!(reply.status, 200, "{openid} on {node}: {}", reply.body);
            let reply = phone_number_on(&app, node, token, openid).await;
            assert_eq!(reply.status, 200, "{openid} on {node}: {}", reply.body);
        }
    }
}

/// Replace every stored session_key with `sealed`, behind wxlink's back.
fn overwrite_session_keys(database: &wxlink_tests::database::TestDatabase, sealed: &[u8]) {
    let updated = wxlink_persistence::testing::overwrite_session_keys(&database.target(), sealed)
        .expect("overwrite the session keys");
    assert_eq!(updated, 1);
}

async fn a_session_key_that_cannot_be_opened_breaks_only_what_needs_it(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let login = app.login(APP_A, "dot", None).await;
    // A value sealed under a key no node has, as a mixed-up key or a restored backup leaves it.
    let stranger = wxlink_crypto::Keyring::new(wxlink_crypto::DataKey::generate());
    let foreign_id = stranger.current_key_id().to_string();
    overwrite_session_keys(app.database(), &stranger.seal(b"not this node's"));

    assert_eq!(app.me_ok(&login.token).await.user_id, login.user_id);
    let body = signed_body(&app.wx_user_info(APP_A, "dot"));
    let reply = app.user_info(&login.token, &body).await;
    assert_error(
        &reply,
        500,
        "internal_error",
        "user info needs the stored key",
    );
    assert!(
        !reply.body.contains(&foreign_id),
        "no key detail for the client"
    );
    assert!(
        app.wait_for_stderr("data key problem").await,
        "logged as a key problem"
    );
    assert!(
        app.stderr().contains(&foreign_id),
        "the log names the key id"
    );
    let logout = app.logout(&login.token).await;
    assert!(
        logout.status < 300,
        "logout works: {} {}",
        logout.status,
        logout.body
    );
}
