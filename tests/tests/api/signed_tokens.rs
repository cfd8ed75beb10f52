//! `[tokens] format = "jwt"` across processes: two nodes sign and verify with the keys they
//! share through the database, a refresh token raced on two nodes is exchanged once, and a
//! JOSE library nobody here wrote (PyJWT's `PyJWKClient`) verifies the tokens against the JWKS
//! across a key rotation (`wxlink rotate-signing-key`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A generous bound for one run of the script (a JWKS fetch and a few verifications).
const SCRIPT_LIMIT: Duration = Duration::from_secs(60);

use serde_json::{Value, json};
use tokio::task::JoinSet;
use wxlink_tests::options::ISSUER;

use crate::helpers::{
    APP_A, APP_B, Api, Backend, LoginResponse, Options, PROCESS_LIMIT, Proc, Reply, TestApp, send,
    wxlink_command,
};

on_both_backends!(
    two_nodes_share_the_keys_and_a_raced_refresh_is_exchanged_once,
    pyjwt_verifies_the_tokens_across_a_key_rotation,
);

/// Signing keys take over at once, so a test can rotate without waiting; production keeps
/// the default publication span.
fn signed() -> Options {
    Options::default().signed_tokens("key_publish_secs = 0")
}

async fn get(app: &TestApp, node: &str, path: &str, token: Option<&str>) -> Reply {
    let mut request = app.client.get(format!("{node}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request, path).await
}

fn kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().expect("a JWT");
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("base64url"),
    )
    .expect("JSON header");
    header["kid"].as_str().expect("a kid").to_owned()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

async fn two_nodes_share_the_keys_and_a_raced_refresh_is_exchanged_once(backend: Backend) {
    let mut app = TestApp::spawn(backend, signed()).await;
    let second = app.spawn_node().await;
    let first = app.address.clone();
    assert_eq!(
        get(&app, &first, "/.well-known/jwks.json", None)
            .await
            .ok_json(200, "jwks"),
        get(&app, &second, "/.well-known/jwks.json", None)
            .await
            .ok_json(200, "jwks"),
        "one key set for the cluster"
    );
    for round in 0..4 {
        let openid = format!("race-{round}");
        let login = app.login(APP_A, &openid, None).await;
        // Signed on the first node, taken by the second.
        let me = get(&app, &second, "/v1/me", Some(&login.token))
            .await
            .ok_json(200, "me on the other node");
        assert_eq!(me["user_id"], login.user_id.as_str());

        let refresh = login.refresh_token.clone().expect("a refresh token");
        let mut racers = JoinSet::new();
        for node in [first.clone(), second.clone()] {
            let request = app
                .client
                .post(format!("{node}/v1/token/refresh"))
                .json(&json!({ "refresh_token": refresh }));
            racers.spawn(async move { send(request, "refresh").await });
        }
        let answers = racers.join_all().await;
        let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 401],
            "round {round}: exactly one of two refreshes wins: {:?}",
            answers.iter().map(|a| &a.body).collect::<Vec<_>>()
        );
    }
}

async fn pyjwt_verifies_the_tokens_across_a_key_rotation(backend: Backend) {
    let Some(python) = tokio::task::spawn_blocking(|| {
        wxlink_tests::venv::sdk_python(
            "signed_tokens::pyjwt_verifies_the_tokens_across_a_key_rotation",
        )
    })
    .await
    .expect("join") else {
        return;
    };
    let mut app = TestApp::spawn(backend, signed()).await;
    let second = app.spawn_node().await;
    let jwks_url = format!("{}/.well-known/jwks.json", app.address);
    let before: LoginResponse = app.login(APP_B, "py-b", Some("py-union")).await;

    let verified = pyjwt(&python, &jwks_url, &[&before.token]).await;
    assert_eq!(
        verified[0]["claims"]["sub"],
        before.user_id.as_str(),
        "{verified}"
    );
    assert_eq!(verified[0]["claims"]["azp"], APP_B);
    assert_eq!(verified[0]["claims"]["unionid_linked"], true);

    // An operator rotates the signing key while both nodes serve.
    let run = rotate_signing_key(app.config_path(), app.dir());
    assert!(run.0, "wxlink rotate-signing-key failed: {}", run.1);
    // Both nodes publish the new key next to the old one once their key job has re-read the
    // store (every second here, `key_publish_secs = 0`); the route itself never reads it.
    let jwks = wxlink_tests::eventually(Duration::from_secs(20), async || {
        let first = get(&app, &app.address, "/.well-known/jwks.json", None)
            .await
            .ok_json(200, "jwks");
        let other = get(&app, &second, "/.well-known/jwks.json", None)
            .await
            .ok_json(200, "jwks");
        (kids(&first).len() == 2 && first == other).then_some(first)
    })
    .await
    .expect("both nodes publish the rotated key");
    let published = kids(&jwks);
    assert_eq!(published.len(), 2, "old and new key: {jwks}");
    assert!(published.contains(&kid(&before.token)));

    let after = app.login(APP_B, "py-b", Some("py-union")).await;
    assert_ne!(kid(&after.token), kid(&before.token), "the new key signs");
    // Both nodes take both tokens; a service verifies both with the published keys.
    for token in [&before.token, &after.token] {
        for node in [&app.address, &second] {
            assert_eq!(get(&app, node, "/v1/me", Some(token)).await.status, 200);
        }
    }
    // One character inside the signature (the last one carries padding bits only in part).
    let mut tampered = after.token.clone().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ASCII");
    let verified = pyjwt(
        &python,
        &jwks_url,
        &[&before.token, &after.token, &tampered],
    )
    .await;
    assert_eq!(
        verified[0]["kid"],
        kid(&before.token).as_str(),
        "{verified}"
    );
    assert_eq!(verified[1]["kid"], kid(&after.token).as_str(), "{verified}");
    assert_eq!(verified[1]["claims"]["sub"], before.user_id.as_str());
    assert!(
        verified[2]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Signature")),
        "a tampered token fails: {verified}"
    );
}

/// `wxlink rotate-signing-key --config FILE`: (success, stderr).
fn rotate_signing_key(config: &Path, dir: &Path) -> (bool, String) {
    let mut cmd = wxlink_command();
    cmd.arg("rotate-signing-key")
        .arg("--config")
        .arg(config)
        .env("WXLINK_LOG", "warn")
        .current_dir(dir);
    let mut proc = Proc::spawn(cmd, "wxlink rotate-signing-key");
    let status = proc.wait_exit(PROCESS_LIMIT);
    (status.success(), proc.stderr())
}

/// Runs tests/sdk/pyjwt_verify.py on `tokens`; what it printed.
async fn pyjwt(python: &Path, jwks_url: &str, tokens: &[&str]) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::NamedTempFile::new().expect("a temp file");
    let err = tempfile::NamedTempFile::new().expect("a temp file");
    let mut cmd = Command::new(python);
    cmd.arg(root.join("sdk/pyjwt_verify.py"))
        .env("JWKS_URL", jwks_url)
        .env("ISSUER", ISSUER)
        .env("TOKENS", json!(tokens).to_string())
        // Loopback must not go through a proxy of the caller's.
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env("NO_PROXY", "*")
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("reopen"))
        .stderr(err.reopen().expect("reopen"));
    let outcome = tokio::task::spawn_blocking(move || {
        wxlink_tests::run_bounded(&mut cmd, SCRIPT_LIMIT, "pyjwt_verify.py")
    })
    .await
    .expect("join");
    let stdout = std::fs::read_to_string(out.path()).unwrap_or_default();
    let stderr = std::fs::read_to_string(err.path()).unwrap_or_default();
    if let Err(e) = outcome {
        panic!("{e}\nstdout: {stdout}\nstderr: {stderr}");
    }
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("pyjwt_verify.py printed no JSON ({e}): {stdout}\n{stderr}"))
}
