//! Start-up and configuration: refused configurations name the key, environment overrides
//! work, the data key file is created private, `wxlink migrate` reports what it did.
//! SQLite only: nothing here depends on the backend.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use secrecy::ExposeSecret as _;
use wxlink_tests::config::WxlinkToml;
use wxlink_wechat_sim::{Simulator, UnionidPolicy};

use crate::helpers::{
    APP_A, APP_B, PROCESS_LIMIT, Proc, free_port, http_client, toml_str, wait_until_ready,
    wxlink_command,
};

/// A valid configuration with `extra` appended.
fn config(dir: &Path, port: u16, api_base: &str, extra: &str) -> String {
    let db = format!("sqlite://{}", dir.join("wxlink.db").display());
    WxlinkToml::new(&format!("127.0.0.1:{port}"), &db, api_base)
        .trailer(extra)
        .to_string()
}

/// Environment variables for a child process.
type Env<'a> = &'a [(&'a str, &'a str)];

const APP_A_TABLE: &str = "[apps.wxa1b2c3d4e5f60001]\nsecret = \"s3cret\"\n";

/// Run `wxlink serve --config` with `toml` and `env`; it must exit non-zero on its own.
fn refused(toml: &str, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("wxlink.toml");
    std::fs::write(&path, toml).expect("write the config");
    let mut cmd = wxlink_command();
    cmd.arg("serve")
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut proc = Proc::spawn(cmd, "wxlink (refused config)");
    let status = proc.wait_exit(PROCESS_LIMIT);
    let stderr = proc.stderr();
    assert!(
        !status.success(),
        "wxlink should refuse this configuration:\n{toml}\nstderr:\n{stderr}"
    );
    stderr
}

#[test]
fn unknown_keys_stop_startup_and_are_named() {
    let dir = Path::new("/nonexistent");
    let cases: Vec<(String, Env, &str)> = vec![
        (
            config(dir, 1, "http://127.0.0.1:9", APP_A_TABLE)
                .replace("[server]\n", "[server]\ncolour = \"blue\"\n"),
            &[],
            "colour",
        ),
        (
            config(
                dir,
                1,
                "http://127.0.0.1:9",
                &format!("{APP_A_TABLE}\n[wechat_extra]\ntimeout = 5\n"),
            ),
            &[],
            "wechat_extra",
        ),
        (
            config(
                dir,
                1,
                "http://127.0.0.1:9",
                &format!("{APP_A_TABLE}secrett = \"typo\"\n"),
            ),
            &[],
            "secrett",
        ),
        (
            config(dir, 1, "http://127.0.0.1:9", APP_A_TABLE)
                .replace("[wechat]\n", "[wechat]\ntimeout_secs = 5\n"),
            &[],
            "timeout_secs",
        ),
        (
            config(dir, 1, "http://127.0.0.1:9", APP_A_TABLE),
            &[("WXLINK__SESSION__TTL_DAYS", "3")],
            "ttl_days",
        ),
    ];
    for (toml, env, key) in cases {
        let stderr = refused(&toml, env);
        assert!(
            stderr.contains(key),
            "the message should name `{key}`:\n{stderr}"
        );
    }
}

#[test]
fn malformed_appids_are_named() {
    for appid in ["wxBAD", "wx4f4bc4dec97d474b0", "xx4f4bc4dec97d474b"] {
        let toml = config(
            Path::new("/nonexistent"),
            1,
            "http://127.0.0.1:9",
            &format!("[apps.{appid}]\nsecret = \"s\"\n"),
        );
        let stderr = refused(&toml, &[]);
        assert!(
            stderr.contains(&format!("apps.{appid}")),
            "the message should name apps.{appid}:\n{stderr}"
        );
    }
}

#[test]
fn missing_secrets_are_named() {
    for table in ["kind = \"mini_program\"\n", "secret = \"\"\n"] {
        let toml = config(
            Path::new("/nonexistent"),
            1,
            "http://127.0.0.1:9",
            &format!("[apps.{APP_A}]\n{table}"),
        );
        let stderr = refused(&toml, &[]);
        assert!(
            stderr.contains(&format!("apps.{APP_A}.secret")),
            "the message should name apps.{APP_A}.secret:\n{stderr}"
        );
    }
}

#[test]
fn a_client_with_an_unknown_scope_stops_startup_naming_it() {
    let toml = config(
        Path::new("/nonexistent"),
        1,
        "http://127.0.0.1:9",
        &format!(
            "{APP_A_TABLE}[internal.clients.crm]\ntoken = \"crm-token-0123456789abcdef\"\n\
             scopes = [\"events:read\", \"users:write\"]\n"
        ),
    );
    let stderr = refused(&toml, &[]);
    assert!(
        stderr.contains("internal.clients.crm.scopes[1]") && stderr.contains("users:write"),
        "the message should name the key and the scope:\n{stderr}"
    );
    assert!(!stderr.contains("crm-token-0123456789abcdef"), "{stderr}");
}

/// A client's token from the environment and its scopes from the file; the old service tokens
/// still work, and start-up warns about them, naming what replaces them.
#[tokio::test]
async fn legacy_tokens_warn_naming_internal_clients_and_a_client_token_comes_from_the_environment()
{
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port().expect("a free port");
    let legacy = "legacy-service-token-0123456789";
    let crm = "crm-token-from-the-environment-0123";
    let toml = config(
        dir.path(),
        port,
        "http://127.0.0.1:9",
        &format!(
            "{APP_A_TABLE}[internal]\ntokens = [\"{legacy}\"]\n\
             [internal.clients.crm]\nscopes = [\"events:read\"]\n"
        ),
    );
    let mut proc = serve(
        dir.path(),
        port,
        &toml,
        &[("WXLINK__INTERNAL__CLIENTS__CRM__TOKEN", crm)],
    )
    .await;
    let client = http_client();
    let get = |path: &str, token: &str| {
        client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .bearer_auth(token)
    };
    let events = crate::helpers::send(get("/internal/v1/events", crm), "crm reads events").await;
    let users = crate::helpers::send(get("/internal/v1/users/u1", crm), "crm looks up").await;
    let legacy_users =
        crate::helpers::send(get("/internal/v1/users/u1", legacy), "legacy looks up").await;
    proc.kill();
    assert_eq!(events.status, 200, "{}", events.body);
    crate::helpers::assert_error(&users, 403, "insufficient_scope", "crm without users:read");
    crate::helpers::assert_error(
        &legacy_users,
        404,
        "not_found",
        "a legacy token may look up",
    );
    let stderr = proc.stderr();
    assert!(
        stderr.contains("internal.tokens is deprecated") && stderr.contains("internal.clients"),
        "start-up warns about internal.tokens, naming internal.clients:\n{stderr}"
    );
    assert!(
        !stderr.contains(legacy) && !stderr.contains(crm),
        "no token is logged:\n{stderr}"
    );
}

/// Start `wxlink serve` in `dir` with `toml` and `env` and wait until it is ready.
async fn serve(dir: &Path, port: u16, toml: &str, env: &[(&str, &str)]) -> Proc {
    let path = dir.join("wxlink.toml");
    std::fs::write(&path, toml).expect("write the config");
    let mut cmd = wxlink_command();
    cmd.arg("serve").arg("--config").arg(&path).current_dir(dir);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut proc = Proc::spawn(cmd, "wxlink (startup)");
    let base = format!("http://127.0.0.1:{port}");
    if let Err(why) = wait_until_ready(&mut proc, &http_client(), &base, port).await {
        proc.kill();
        panic!("{why}");
    }
    proc
}

#[tokio::test]
async fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port().expect("a free port");
    let from_file = dir.path().join("from-file.db");
    let from_env = dir.path().join("from-env.db");
    let toml = config(dir.path(), port, "http://127.0.0.1:9", APP_A_TABLE)
        .replace(
            &format!("sqlite://{}", dir.path().join("wxlink.db").display()),
            &format!("sqlite://{}", from_file.display()),
        )
        .replace("[server]\n", "[server]\nmax_body_bytes = 65536\n");
    let env_url = format!("sqlite://{}", from_env.display());
    let mut proc = serve(
        dir.path(),
        port,
        &toml,
        &[
            ("WXLINK__DATABASE__URL", &env_url),
            ("WXLINK__SERVER__MAX_BODY_BYTES", "1024"),
        ],
    )
    .await;
    let body = serde_json::json!({"appid": APP_A, "code": "x", "padding": "x".repeat(2000)});
    let request = http_client()
        .post(format!("http://127.0.0.1:{port}/v1/wechat/login"))
        .json(&body);
    let reply = crate::helpers::send(request, "login of 2 KB").await;
    proc.kill();
    crate::helpers::assert_error(
        &reply,
        413,
        "payload_too_large",
        "WXLINK__SERVER__MAX_BODY_BYTES=1024 overrides the file's 65536",
    );
    assert!(from_env.exists(), "the environment's database was created");
    assert!(
        !from_file.exists(),
        "the file's database URL was overridden, yet {} exists",
        from_file.display()
    );
}

#[tokio::test]
async fn app_secret_comes_from_the_environment() {
    let sim = Simulator::builder()
        .app(APP_B, "secret-from-env", UnionidPolicy::Always)
        .start()
        .await
        .expect("start the simulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port().expect("a free port");
    let toml = config(
        dir.path(),
        port,
        &sim.base_url(),
        &format!("[apps.{APP_B}]\nkind = \"mini_program\"\n"),
    );
    let env_key = format!("WXLINK__APPS__{}__SECRET", APP_B.to_ascii_uppercase());
    let mut proc = serve(dir.path(), port, &toml, &[(&env_key, "secret-from-env")]).await;

    let wx = sim
        .login(APP_B, "env-user", Some("env-union"))
        .expect("simulated wx.login");
    let client = http_client();
    let request = client
        .post(format!("http://127.0.0.1:{port}/v1/wechat/login"))
        .json(&serde_json::json!({"appid": APP_B, "code": wx.code}));
    let reply = crate::helpers::send(request, "login").await;
    proc.kill();
    let login = crate::helpers::LoginResponse::parse(&reply);
    assert!(login.unionid_linked);
    assert!(
        !proc.stderr().contains("secret-from-env"),
        "the secret is never logged"
    );
}

#[tokio::test]
async fn data_key_file_is_created_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port().expect("a free port");
    let toml = config(dir.path(), port, "http://127.0.0.1:9", APP_A_TABLE);
    let key_file = dir.path().join("wxlink.key");
    assert!(!key_file.exists());
    let mut proc = serve(dir.path(), port, &toml, &[]).await;
    proc.kill();

    let metadata = std::fs::metadata(&key_file).expect("wxlink.key beside the config file");
    assert_eq!(
        metadata.permissions().mode() & 0o777,
        0o600,
        "the data key file is private"
    );
    let key = std::fs::read_to_string(&key_file).expect("read the key");
    let bytes = wxlink_crypto::decode_base64(key.trim()).expect("base64");
    assert_eq!(bytes.len(), 32, "a data key is 32 bytes");
    let stderr = proc.stderr();
    assert!(
        stderr.contains("data key") || stderr.contains("data_key"),
        "creating the key file is warned about:\n{stderr}"
    );
    assert!(!stderr.contains(key.trim()), "the data key is never logged");
}

/// An operator who lost the key file of a database in use: the node refuses to start, naming
/// the setting, and leaves no new key file behind (one would be a key the database never
/// accepted, found by the next start as if it were the real one).
#[tokio::test]
async fn a_lost_key_file_refuses_the_start_and_leaves_no_new_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port().expect("a free port");
    let toml = config(dir.path(), port, "http://127.0.0.1:9", APP_A_TABLE);
    let key_file = dir.path().join("wxlink.key");
    let mut first = serve(dir.path(), port, &toml, &[]).await;
    first.kill();
    std::fs::remove_file(&key_file).expect("lose the key file");

    let mut cmd = wxlink_command();
    cmd.arg("serve")
        .arg("--config")
        .arg(dir.path().join("wxlink.toml"))
        .current_dir(dir.path());
    let mut second = Proc::spawn(cmd, "wxlink (lost key file)");
    let status = second.wait_exit(PROCESS_LIMIT);
    let stderr = second.stderr();
    assert!(!status.success(), "started without its key:\n{stderr}");
    assert!(stderr.contains("security.data_key"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list the directory")
        .map(|entry| entry.expect("an entry").file_name())
        .filter(|name| name.to_string_lossy().contains("key"))
        .collect();
    assert!(left.is_empty(), "key files left behind: {left:?}");
}

#[test]
fn migrate_reports_applied_migrations_then_up_to_date() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("migrated.db").display());
    let run = || {
        let mut cmd = wxlink_command();
        cmd.args(["migrate", "--database-url", &url])
            .current_dir(dir.path());
        let mut proc = Proc::spawn(cmd, "wxlink migrate");
        let status = proc.wait_exit(PROCESS_LIMIT);
        assert!(
            status.success(),
            "wxlink migrate: {status}\n{}",
            proc.stderr()
        );
        proc.stdout()
    };

    let first = run();
    let applied: Vec<&str> = first
        .lines()
        .filter_map(|l| l.strip_prefix("applied "))
        .collect();
    let mut expected: Vec<String> = std::fs::read_dir(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/persistence/migrations/sqlite"),
    )
    .expect("the SQLite migrations directory")
    .filter_map(Result::ok)
    .map(|e| e.file_name().to_string_lossy().into_owned())
    .collect();
    expected.sort();
    assert!(!expected.is_empty());
    assert_eq!(
        applied, expected,
        "first run prints every migration:\n{first}"
    );
    assert!(!first.contains("up to date"), "{first}");

    let second = run();
    assert!(
        second.contains("up to date") && !second.contains("applied "),
        "second run is up to date:\n{second}"
    );
}

/// `AppId` accepts capital letters, and "every key can be overridden by WXLINK__SECTION__KEY",
/// though the environment source lowercases keys: the tables are matched ignoring case.
#[tokio::test]
async fn app_secret_from_the_environment_for_an_appid_with_capitals() {
    const CAPITALS: &str = "wxABCDEF0123456789";
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port().expect("a free port");
    let toml = config(
        dir.path(),
        port,
        "http://127.0.0.1:9",
        &format!("[apps.{CAPITALS}]\nkind = \"mini_program\"\n"),
    );
    let env_key = format!("WXLINK__APPS__{}__SECRET", CAPITALS.to_ascii_uppercase());
    let mut proc = serve(dir.path(), port, &toml, &[(&env_key, "secret-from-env")]).await;
    proc.kill();
}

/// The start-up log prints the effective configuration, and the refusal names the database:
/// neither may show its password, in whichever URL form it is written.
#[test]
fn database_passwords_never_reach_the_logs() {
    let closed_port = free_port().expect("a free port");
    for url in [
        format!("postgres://wx:hun/ter2@127.0.0.1:{closed_port}/wxlink"),
        format!("postgres://127.0.0.1:{closed_port}/wxlink?user=wx&password=hunter2"),
        format!("postgres://wx:hun%40ter2@127.0.0.1:{closed_port}/wxlink"),
    ] {
        let toml = config(
            Path::new("/nonexistent"),
            free_port().expect("a free port"),
            "http://127.0.0.1:9",
            APP_A_TABLE,
        )
        .replace(
            "url = \"sqlite:///nonexistent/wxlink.db\"",
            &format!("url = {}", toml_str(&url)),
        );
        assert!(toml.contains(&url), "{toml}");
        let data_key = wxlink_crypto::DataKey::generate().to_base64();
        let stderr = refused(
            &toml,
            &[
                ("WXLINK_LOG", "debug"),
                ("WXLINK__SECURITY__DATA_KEY", data_key.expose_secret()),
            ],
        );
        assert!(stderr.contains("effective configuration"), "{stderr}");
        assert!(
            !stderr.contains("ter2"),
            "a database password was logged:\n{stderr}"
        );
    }
}
