//! The support console in a real browser: Debian's headless Chromium driven over WebDriver
//! (`chromium-driver`), against the `wxlink serve` process with `[console] bind`, with
//! operators made by `wxlink operator add`. A support agent's walk: sign in (with and without
//! TOTP), change the one-time password, search by phone, open the duplicates, merge with the
//! preview, revoke sessions, sign out; a form posted from another origin is refused; a locked
//! operator cannot sign in.
//!
//! Without `chromedriver` on `PATH` the test says so and passes, unless `CI=true`, where it
//! fails. With `WXLINK_CONSOLE_SCREENSHOTS=1` it writes the screenshots shown in the README and
//! docs/operations.md to `docs/console/`.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::helpers::{
    APP_A, APP_B, Api, Backend, Options, PROCESS_LIMIT, Proc, TestApp, clean_command, free_port,
    wxlink_command,
};

on_both_backends!(
    a_support_agent_works_through_the_console_in_a_real_browser,
    operators_are_added_listed_disabled_and_reset_at_the_command_line,
);

/// The whole walk may take this long before the test fails instead of hanging.
const WALK_LIMIT: Duration = Duration::from_secs(180);
/// How long one page may take to show what the test waits for.
const PAGE_LIMIT: Duration = Duration::from_secs(20);
const NEW_PASSWORD: &str = "a long password of my own";

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// `wxlink operator ARGS --config <the app's config> --json`, run to its end.
fn run_wxlink_operator(app: &TestApp, args: &[&str]) -> (std::process::ExitStatus, Proc) {
    let mut cmd = wxlink_command();
    cmd.arg("operator")
        .args(args)
        .arg("--config")
        .arg(app.config_path())
        .arg("--json")
        .env("WXLINK_LOG", "warn")
        .current_dir(app.dir());
    let mut proc = Proc::spawn(cmd, "wxlink operator");
    let status = proc.wait_exit(PROCESS_LIMIT);
    (status, proc)
}

/// The one JSON object a `wxlink operator … --json` printed.
fn operator_json(proc: &Proc) -> Value {
    serde_json::from_str(proc.stdout().trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", proc.stdout()))
}

/// `wxlink operator ARGS --config <the app's config> --json`: exit status and its JSON.
fn try_wxlink_operator(app: &TestApp, args: &[&str]) -> (Option<i32>, Value) {
    let (status, proc) = run_wxlink_operator(app, args);
    (status.code(), operator_json(&proc))
}

async fn operators_are_added_listed_disabled_and_reset_at_the_command_line(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let added = wxlink_operator(
        &app,
        &["add", "olivia", "--scopes", "users:read,support:write"],
    );
    let password = added["one_time_password"].as_str().expect("a password");
    assert!(password.len() >= 20, "{password}");
    assert_eq!(added["totp_uri"], Value::Null);
    let totp = wxlink_operator(&app, &["add", "otto", "--scopes", "users:read", "--totp"]);
    assert!(
        totp["totp_uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("otpauth://totp/"))
    );
    // The password is stored only as its Argon2id hash.
    let stored = app.stored_bytes();
    assert!(
        !stored
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    );

    let list = wxlink_operator(&app, &["list"]);
    assert_eq!(
        list["operators"],
        json!([
            {"name": "olivia", "scopes": ["users:read", "support:write"], "totp": false,
             "disabled": false, "password_expired": true},
            {"name": "otto", "scopes": ["users:read"], "totp": true,
             "disabled": false, "password_expired": true},
        ])
    );
    wxlink_operator(&app, &["disable", "olivia"]);
    let reset = wxlink_operator(&app, &["reset-password", "olivia"]);
    assert_ne!(reset["one_time_password"].as_str(), Some(password));
    let list = wxlink_operator(&app, &["list"]);
    assert_eq!(
        list["operators"][0]["disabled"], false,
        "a reset enables it again"
    );

    // Refusals: the contract's codes and the command line's exit statuses.
    let (exit, json) = try_wxlink_operator(&app, &["add", "olivia", "--scopes", "users:read"]);
    assert_eq!(
        (exit, json["error"]["code"].as_str()),
        (Some(2), Some("invalid_request"))
    );
    let (exit, json) = try_wxlink_operator(&app, &["add", "x", "--scopes", "users:write"]);
    assert_eq!(
        (exit, json["error"]["code"].as_str()),
        (Some(2), Some("invalid_request"))
    );
    let (exit, json) = try_wxlink_operator(&app, &["disable", "nobody"]);
    assert_eq!(
        (exit, json["error"]["code"].as_str()),
        (Some(4), Some("not_found"))
    );
}

/// `wxlink operator ARGS --config <the app's config> --json`, which must succeed.
fn wxlink_operator(app: &TestApp, args: &[&str]) -> Value {
    let (status, proc) = run_wxlink_operator(app, args);
    assert!(
        status.success(),
        "wxlink operator {args:?}: {}",
        proc.stderr()
    );
    operator_json(&proc)
}

/// chromedriver on a free port, once it accepts connections.
fn start_chromedriver(driver: &std::path::Path) -> (Proc, u16) {
    let port = free_port().expect("a free port");
    let mut cmd = clean_command(driver);
    cmd.arg(format!("--port={port}"));
    let mut proc = Proc::spawn(cmd, "chromedriver");
    wxlink_tests::eventually_blocking(PROCESS_LIMIT, || {
        if let Err(why) = proc.check_running() {
            panic!("chromedriver exited: {why}");
        }
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("chromedriver listens");
    (proc, port)
}

async fn browser(driver_port: u16, profile: &std::path::Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    let mut args = vec![
        "--headless=new".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--no-first-run".to_owned(),
        "--window-size=1280,900".to_owned(),
        "--lang=en-US".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    // Chromium's sandbox needs user namespaces that root in a container does not get.
    if std::env::var("USER").is_ok_and(|u| u == "root") || is_root() {
        args.push("--no-sandbox".to_owned());
    }
    let mut options = json!({ "args": args, "prefs": {"intl.accept_languages": "en-US,en"} });
    if let Some(chromium) = on_path("chromium") {
        options["binary"] = json!(chromium);
    }
    capabilities.insert("goog:chromeOptions".to_owned(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .unwrap_or_else(|e| panic!("cannot start Chromium through chromedriver: {e}"))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}

/// The agent's view: the browser plus the console's base URL.
struct Agent {
    client: Client,
    base: String,
    screenshots: Option<PathBuf>,
}

impl Agent {
    async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(PAGE_LIMIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "no {css} on {}: {e}\n{}",
                self.url().await,
                self.page().await
            ),
        }
    }

    async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    async fn page(&self) -> String {
        self.client.source().await.expect("the page's source")
    }

    /// The input a visible label names, as a person finds it.
    async fn field(&self, label: &str) -> fantoccini::elements::Element {
        let label = self
            .client
            .find(Locator::XPath(&format!(
                "//label[normalize-space()='{label}']"
            )))
            .await
            .unwrap_or_else(|e| panic!("no field labelled {label:?}: {e}"));
        let id = label.attr("for").await.expect("for").expect("a for");
        self.client
            .find(Locator::Id(&id))
            .await
            .expect("the labelled input")
    }

    async fn fill(&self, label: &str, text: &str) {
        let field = self.field(label).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// Click the button that reads `text` (else the link), as a person would.
    async fn click(&self, text: &str) {
        let mut found = None;
        for tag in ["button", "a"] {
            let xpath = format!("//{tag}[normalize-space()='{text}']");
            if let Ok(element) = self.client.find(Locator::XPath(&xpath)).await {
                found = Some(element);
                break;
            }
        }
        let Some(element) = found else {
            panic!("no {text:?} to click on {}", self.url().await);
        };
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {text:?}: {e}"));
    }

    async fn sign_in(&self, name: &str, password: &str, code: &str) {
        self.open("/sign-in").await;
        self.wait("#sign-in-form").await;
        self.fill("Operator", name).await;
        self.fill("Password", password).await;
        self.fill("Authenticator code (if enabled)", code).await;
        self.click("Sign in").await;
    }

    async fn screenshot(&self, name: &str) {
        let Some(dir) = &self.screenshots else { return };
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::create_dir_all(dir).expect("create docs/console");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    }
}

async fn a_support_agent_works_through_the_console_in_a_real_browser(backend: Backend) {
    let Some(driver) = on_path("chromedriver") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipping the console's browser test: no chromedriver on PATH");
        return;
    };
    let console_port = free_port().expect("a free port");
    let options = Options::default().extra_toml(&format!(
        "[console]\nbind = \"127.0.0.1:{console_port}\"\nslow_after_failures = 10\nlock_after_failures = 3\n"
    ));
    let app = TestApp::spawn(backend, options).await;
    let (_driver, driver_port) = start_chromedriver(&driver);
    let profile = tempfile::tempdir().expect("a browser profile dir");
    let client = browser(driver_port, profile.path()).await;
    let screenshots = std::env::var_os("WXLINK_CONSOLE_SCREENSHOTS").map(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("docs")
            .join("console")
    });
    let agent = Agent {
        client,
        base: format!("http://127.0.0.1:{console_port}"),
        screenshots,
    };
    let walked = tokio::time::timeout(WALK_LIMIT, walk(&app, &agent)).await;
    let closed = agent.client.close().await;
    walked.unwrap_or_else(|_| panic!("the walk did not finish within {WALK_LIMIT:?}"));
    closed.expect("close the browser");
}

async fn walk(app: &TestApp, agent: &Agent) {
    // One person, two accounts: a provisional one on the unbound app, a linked one on the
    // bound app, both with the same verified phone number.
    let provisional = app.login(APP_A, "web-a", None).await;
    let linked = app.login(APP_B, "web-b", Some("web-union")).await;
    for (token, appid, openid) in [
        (&provisional.token, APP_A, "web-a"),
        (&linked.token, APP_B, "web-b"),
    ] {
        let code = app.wx_phone_code(appid, openid, "13512345678", Some("86"));
        assert_eq!(app.phone_number(token, &code).await.status, 200);
    }
    let ops = wxlink_operator(
        app,
        &[
            "add",
            "alice",
            "--scopes",
            "users:read,users:phone,events:read,support:write",
        ],
    );
    let one_time = ops["one_time_password"].as_str().expect("a password");

    // No page without a signed-in operator.
    agent.open("/search").await;
    agent.wait("#sign-in-form").await;
    assert!(agent.url().await.ends_with("/sign-in"));
    agent.screenshot("sign-in").await;

    // Sign in; the one-time password must be changed first.
    agent.sign_in("alice", one_time, "").await;
    agent.wait("#password-form").await;
    agent.fill("Password", one_time).await;
    agent.fill("New password", NEW_PASSWORD).await;
    agent.click("Confirm").await;
    agent.wait("#notice").await;

    // Search by phone number: both accounts.
    agent.fill("Search", "135 1234 5678").await;
    agent.click("Search").await;
    agent.wait("table.users").await;
    let found = agent.page().await;
    assert!(found.contains(&provisional.user_id) && found.contains(&linked.user_id));
    agent.screenshot("search").await;

    // The duplicates, and a merge with its preview.
    agent.click("Possible duplicates").await;
    agent.wait("section.group").await;
    agent.screenshot("duplicates").await;
    agent.click("Merge").await;
    agent.wait("#merge-preview").await;
    let preview = agent.page().await;
    assert!(preview.contains(&format!(
        "identity {APP_A} · web-a moves to {}",
        linked.user_id
    )));
    let confirm = agent
        .client
        .find(Locator::Id("confirm"))
        .await
        .expect("Confirm");
    assert_eq!(
        confirm.attr("disabled").await.expect("attr").as_deref(),
        Some("true"),
        "Confirm waits for the target's id"
    );
    agent
        .fill(
            "Type the id of the user that stays to confirm",
            &linked.user_id,
        )
        .await;
    agent.screenshot("merge-preview").await;
    agent.click("Confirm").await;
    agent.wait("#notice").await;
    let merged = agent.page().await;
    assert!(merged.contains("Merged.") && merged.contains("users_merged"));
    assert_eq!(app.me_ok(&provisional.token).await.user_id, linked.user_id);
    agent.screenshot("user").await;

    // Split the merge back: the identity returns to the provisional user, with its session.
    agent.click("Split").await;
    agent.wait("#split-pick").await;
    let identity = agent
        .client
        .find(Locator::XPath(&format!(
            "//label[normalize-space()='{APP_A} · web-a']"
        )))
        .await
        .expect("the identity's checkbox label");
    identity.click().await.expect("tick the identity");
    let into = agent.field("They go to").await;
    into.select_by_value(&provisional.user_id)
        .await
        .expect("choose the user to restore");
    agent.click("Preview").await;
    agent.wait("#split-preview").await;
    assert!(agent.page().await.contains(&format!(
        "identity {APP_A} · web-a and its 1 live sessions go to {}",
        provisional.user_id
    )));
    agent.screenshot("split-preview").await;
    agent.click("Confirm").await;
    agent.wait("#notice").await;
    assert_eq!(
        app.me_ok(&provisional.token).await.user_id,
        provisional.user_id
    );
    agent.open(&format!("/users/{}", linked.user_id)).await;
    agent.wait("#user-id").await;

    // Revoke sessions: the person's tokens stop working.
    agent.click("Revoke sessions").await;
    agent.wait("#confirm-form").await;
    agent.click("Confirm").await;
    agent.wait("#notice").await;
    assert_eq!(app.me(&linked.token).await.status, 401);
    assert_eq!(
        app.me(&provisional.token).await.status,
        200,
        "split away: not revoked"
    );

    // A page of another origin posting the console's form with the agent's browser is refused.
    let victim = app.login(APP_B, "web-victim", Some("victim-union")).await;
    let attacker = attacker_page(&agent.base, &victim.user_id).await;
    agent
        .client
        .goto(&attacker.url)
        .await
        .expect("open the attacker's page");
    agent.click("Win a prize").await;
    agent
        .client
        .wait()
        .at_most(PAGE_LIMIT)
        .for_url(
            &url::Url::parse(&format!(
                "{}/users/{}/revoke-sessions",
                agent.base, victim.user_id
            ))
            .expect("url"),
        )
        .await
        .expect("the form was posted");
    assert_eq!(
        app.me(&victim.token).await.status,
        200,
        "nothing was revoked"
    );
    attacker.stop();

    // Sign out: the console is closed again.
    agent.open("/search").await;
    agent.wait("#sign-out").await;
    agent.click("Sign out").await;
    agent.wait("#sign-in-form").await;
    agent.open("/duplicates").await;
    agent.wait("#sign-in-form").await;

    // An operator with a second factor.
    let totp = wxlink_operator(app, &["add", "tom", "--scopes", "users:read", "--totp"]);
    let uri = totp["totp_uri"].as_str().expect("an otpauth URI");
    let code = totp_rs::TOTP::from_url(uri)
        .expect("a TOTP URI")
        .generate_current()
        .expect("a code");
    agent
        .sign_in(
            "tom",
            totp["one_time_password"].as_str().expect("password"),
            &code,
        )
        .await;
    agent.wait("#password-form").await;
    agent.click("Sign out").await;
    agent.wait("#sign-in-form").await;

    // A locked operator cannot sign in, even with its password.
    let locked = wxlink_operator(app, &["add", "lars", "--scopes", "users:read"]);
    for _ in 0..3 {
        agent.sign_in("lars", "not the password", "").await;
        agent.wait("#error").await;
    }
    agent
        .sign_in(
            "lars",
            locked["one_time_password"].as_str().expect("password"),
            "",
        )
        .await;
    let error = agent.wait("#error").await.text().await.expect("text");
    assert!(error.starts_with("Locked"), "{error}");
    assert!(agent.url().await.ends_with("/sign-in"));
}

/// Another origin's page with a form that posts to the console (as a phishing page would).
struct Attacker {
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Attacker {
    fn stop(self) {
        self.server.abort();
    }
}

async fn attacker_page(console: &str, victim: &str) -> Attacker {
    let html = format!(
        "<!doctype html><form method=\"post\" action=\"{console}/users/{victim}/revoke-sessions\">\
         <input type=\"hidden\" name=\"csrf\" value=\"guessed\">\
         <button type=\"submit\">Win a prize</button></form>"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the attacker's page");
    let url = format!("http://{}/", listener.local_addr().expect("address"));
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Attacker { url, server }
}
