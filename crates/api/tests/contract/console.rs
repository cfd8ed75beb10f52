//! The support console's HTTP, driven as a browser would (a cookie jar, forms, the headers a
//! browser sends): sign-in, the session cookie, CSRF and origin checks, failed sign-ins that
//! slow down and lock, sessions that end when idle or old and waits that pass (the clock
//! moved, not waited for), scopes, and repairs with a preview that run the support use cases.
//! The real browser's walk through it is `tests/tests/console_browser.rs`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request};
use tower::ServiceExt as _;
use wxlink_api::console::operators;

use crate::helpers::{APP_A, APP_B, Api, Backend, Options, TestApp};

on_both_backends!(
    no_page_works_without_a_signed_in_operator,
    an_operator_changes_the_one_time_password_then_signs_out,
    a_totp_operator_needs_the_current_code,
    an_idle_session_ends_and_a_busy_one_ends_at_its_limit,
    forms_from_another_origin_or_without_the_csrf_token_change_nothing,
    failed_sign_ins_slow_down,
    a_locked_operator_cannot_sign_in_until_its_password_is_reset,
    an_address_that_keeps_failing_is_locked_for_every_operator,
    scopes_decide_what_an_operator_sees_and_does,
    duplicates_by_phone_merge_with_a_preview_through_the_support_use_case,
);

/// The console's origin as the browser sees it.
const ORIGIN: &str = "http://127.0.0.1:8081";
const HOST: &str = "127.0.0.1:8081";
const NEW_PASSWORD: &str = "a long password of my own";
const ALL_SCOPES: &str = "users:read,users:phone,events:read,tokens:introspect,support:write";

/// One answer of the console.
#[derive(Debug)]
struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF token on the page:\n{}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("the token's end") + start;
        self.body[start..end].to_owned()
    }

    fn shows(&self, text: &str) -> bool {
        self.body.contains(text)
    }
}

/// A browser: one cookie jar, one language, one client address.
struct Browser<'a> {
    app: &'a TestApp,
    cookie: Mutex<Option<String>>,
    language: &'static str,
    address: Ipv4Addr,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookie: Mutex::new(None),
            language: "en-US,en;q=0.9",
            address: Ipv4Addr::new(192, 0, 2, 10),
        }
    }

    fn cookie(&self) -> Option<String> {
        self.cookie.lock().expect("jar").clone()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        extra: &[(&str, &str)],
    ) -> Page {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", HOST)
            .header("accept-language", self.language);
        if let Some(cookie) = self.cookie() {
            request = request.header(
                "cookie",
                format!("{}={cookie}", wxlink_api::console::SESSION_COOKIE),
            );
        }
        let body = form.map(|fields| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish()
        });
        if body.is_some() {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let mut request = request
            .body(Body::from(body.unwrap_or_default()))
            .expect("a request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((self.address, 40_000))));
        let response = self
            .app
            .console
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for set in headers.get_all("set-cookie") {
            let set = set.to_str().expect("ASCII cookie");
            let value = set
                .split(';')
                .next()
                .and_then(|pair| pair.split_once('='))
                .map(|(_, v)| v.to_owned());
            *self.cookie.lock().expect("jar") = value.filter(|v| !v.is_empty());
        }
        let body = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .expect("a body");
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(Method::GET, path, None, &[("sec-fetch-site", "none")])
            .await
    }

    /// A form posted from one of the console's own pages.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(
            Method::POST,
            path,
            Some(form),
            &[("origin", ORIGIN), ("sec-fetch-site", "same-origin")],
        )
        .await
    }

    async fn sign_in(&self, name: &str, password: &str, code: &str) -> Page {
        self.post(
            "/sign-in",
            &[("name", name), ("password", password), ("code", code)],
        )
        .await
    }

    /// Sign in with the one-time password and choose [`NEW_PASSWORD`].
    async fn first_sign_in(&self, name: &str, one_time: &str) {
        let signed = self.sign_in(name, one_time, "").await;
        assert_eq!(
            (signed.status, signed.location()),
            (303, "/password"),
            "{}",
            signed.body
        );
        let page = self.get("/password").await;
        let changed = self
            .post(
                "/password",
                &[
                    ("csrf", &page.csrf()),
                    ("current", one_time),
                    ("new_password", NEW_PASSWORD),
                ],
            )
            .await;
        assert_eq!(changed.status, 303, "{}", changed.body);
    }

    /// The CSRF token of this session, from any page.
    async fn csrf(&self) -> String {
        self.get("/search").await.csrf()
    }
}

async fn operator(app: &TestApp, name: &str, scopes: &str, totp: bool) -> operators::Credentials {
    operators::add_operator(app.store(), name, scopes, totp, app.now())
        .await
        .unwrap_or_else(|e| panic!("add operator {name}: {e}"))
}

/// A signed-in operator with every scope and a password of its own.
async fn signed_in<'a>(app: &'a TestApp, name: &str) -> Browser<'a> {
    let credentials = operator(app, name, ALL_SCOPES, false).await;
    let browser = Browser::new(app);
    browser
        .first_sign_in(name, &credentials.one_time_password)
        .await;
    browser
}

async fn no_page_works_without_a_signed_in_operator(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let someone = app.login(APP_B, "anon-b", Some("anon-union")).await;
    let browser = Browser::new(&app);
    for path in [
        "/search?q=anon-union",
        "/duplicates",
        &format!("/users/{}", someone.user_id),
        "/merge",
        &format!("/users/{}/cancel", someone.user_id),
    ] {
        let page = browser.get(path).await;
        assert_eq!(
            (page.status, page.location()),
            (303, "/sign-in"),
            "GET {path}"
        );
    }
    // A made-up cookie is no session either.
    *browser.cookie.lock().expect("jar") = Some("made-up".into());
    let cancel = browser
        .post(
            &format!("/users/{}/cancel", someone.user_id),
            &[("csrf", "x")],
        )
        .await;
    assert_eq!((cancel.status, cancel.location()), (303, "/sign-in"));
    assert_eq!(
        app.me(&someone.token).await.status,
        200,
        "the account is untouched"
    );
    let sign_in = Browser::new(&app).get("/sign-in").await;
    assert_eq!(sign_in.status, 200);
    assert!(sign_in.shows(">Sign in</button>"), "{}", sign_in.body);
}

async fn an_operator_changes_the_one_time_password_then_signs_out(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let credentials = operator(&app, "ann", ALL_SCOPES, false).await;
    let browser = Browser::new(&app);
    let signed = browser
        .sign_in("ann", &credentials.one_time_password, "")
        .await;
    assert_eq!((signed.status, signed.location()), (303, "/password"));
    let cookie = signed
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    assert!(cookie.starts_with("__Host-wxlink-console="), "{cookie}");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    // Nothing but the password change until the one-time password is gone.
    let search = browser.get("/search").await;
    assert_eq!((search.status, search.location()), (303, "/password"));
    let page = browser.get("/password").await;
    let short = browser
        .post(
            "/password",
            &[
                ("csrf", &page.csrf()),
                ("current", &credentials.one_time_password),
                ("new_password", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, 400);
    browser
        .post(
            "/password",
            &[
                ("csrf", &page.csrf()),
                ("current", &credentials.one_time_password),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    let search = browser.get("/search").await;
    assert_eq!(search.status, 200, "{}", search.body);
    assert!(
        search.shows("<label for=\"q\">Search</label>"),
        "{}",
        search.body
    );
    let csp = search
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .expect("a CSP");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        !search.shows("<script>") && !search.shows("style="),
        "no inline script or style"
    );
    // Chinese for a browser that prefers it.
    let chinese = Browser {
        language: "zh-CN,zh;q=0.9,en;q=0.5",
        ..Browser::new(&app)
    };
    *chinese.cookie.lock().expect("jar") = browser.cookie();
    assert!(chinese.get("/search").await.shows("搜索"));

    // The one-time password is spent.
    let again = Browser::new(&app)
        .sign_in("ann", &credentials.one_time_password, "")
        .await;
    assert_eq!(again.status, 401);

    let old_cookie = browser.cookie();
    let csrf = browser.csrf().await;
    let out = browser.post("/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location()), (303, "/sign-in"));
    // The old cookie, replayed, is no session any more.
    *browser.cookie.lock().expect("jar") = old_cookie;
    assert_eq!(browser.get("/search").await.location(), "/sign-in");
}

async fn a_totp_operator_needs_the_current_code(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let credentials = operator(&app, "tess", ALL_SCOPES, true).await;
    let uri = credentials.totp_uri.as_deref().expect("a TOTP URI");
    assert!(uri.starts_with("otpauth://totp/wxlink:tess?"), "{uri}");
    let secret = credentials.totp_secret.as_deref().expect("a TOTP secret");
    let browser = Browser::new(&app);
    let password = credentials.one_time_password.as_str();
    let without = browser.sign_in("tess", password, "").await;
    assert_eq!(without.status, 401);
    let wrong = browser.sign_in("tess", password, "000000").await;
    let code = operators::totp_code(secret, "tess", app.now()).expect("a code");
    // 000000 may be the current code once in a million: then the test says nothing of it.
    if code != "000000" {
        assert_eq!(wrong.status, 401);
    }
    let with = browser.sign_in("tess", password, &code).await;
    assert_eq!(
        (with.status, with.location()),
        (303, "/password"),
        "{}",
        with.body
    );
    // A code is accepted once (RFC 6238 §5.2): someone who saw it cannot sign in with it.
    let replayed = Browser::new(&app).sign_in("tess", password, &code).await;
    assert_eq!(replayed.status, 401, "{}", replayed.body);
}

async fn forms_from_another_origin_or_without_the_csrf_token_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let victim = app.login(APP_B, "csrf-b", Some("csrf-union")).await;
    let browser = signed_in(&app, "olga").await;
    let csrf = browser.csrf().await;
    let path = format!("/users/{}/revoke-sessions", victim.user_id);
    // A page of another site posting the form, with the operator's cookie (as a browser with
    // a lax cookie policy would send it).
    for headers in [
        &[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ][..],
        &[("origin", "https://evil.example")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("origin", "null")][..],
    ] {
        let page = browser
            .send(Method::POST, &path, Some(&[("csrf", &csrf)]), headers)
            .await;
        assert_eq!(page.status, 403, "{headers:?}");
    }
    // Same origin, but no token or another session's token.
    for token in ["", "0123456789abcdef"] {
        let page = browser.post(&path, &[("csrf", token)]).await;
        assert_eq!(page.status, 403, "csrf {token:?}");
    }
    assert_eq!(
        app.me(&victim.token).await.status,
        200,
        "nothing was revoked"
    );
    // The operator's own form works.
    let page = browser.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(app.me(&victim.token).await.status, 401, "revoked");
}

/// Failed sign-ins slow down after `slow_after` (then by an hour: longer than any test
/// takes, so no test depends on the clock) and lock an operator after `lock_after`.
fn lock_options(slow_after: u32, lock_after: u32) -> Options {
    Options::default().extra_toml(&format!(
        "[console]\nslow_after_failures = {slow_after}\nslow_down_secs = 3600\n\
         lock_after_failures = {lock_after}\n"
    ))
}

async fn failed_sign_ins_slow_down(backend: Backend) {
    let app = TestApp::spawn(backend, lock_options(2, 50)).await;
    let credentials = operator(&app, "sam", ALL_SCOPES, false).await;
    let browser = Browser::new(&app);
    for _ in 0..2 {
        assert_eq!(
            browser.sign_in("sam", "wrong password", "").await.status,
            401
        );
    }
    // Even the right password waits now: the limit is checked before the password.
    let waiting = browser
        .sign_in("sam", &credentials.one_time_password, "")
        .await;
    assert_eq!(waiting.status, 429, "{}", waiting.body);
    let retry: u64 = waiting
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry > 3000, "{retry}");
    assert!(browser.cookie().is_none());
    // Once the wait has passed, the right password signs in.
    app.advance_clock(Duration::from_secs(retry));
    let signed = browser
        .sign_in("sam", &credentials.one_time_password, "")
        .await;
    assert_eq!(
        (signed.status, signed.location()),
        (303, "/password"),
        "{}",
        signed.body
    );
}

async fn a_locked_operator_cannot_sign_in_until_its_password_is_reset(backend: Backend) {
    let app = TestApp::spawn(backend, lock_options(50, 3)).await;
    let credentials = operator(&app, "lee", ALL_SCOPES, false).await;
    let browser = Browser::new(&app);
    for _ in 0..3 {
        assert_eq!(
            browser.sign_in("lee", "wrong password", "").await.status,
            401
        );
    }
    // From another address too: the lock is the operator's.
    let elsewhere = Browser {
        address: Ipv4Addr::new(198, 51, 100, 7),
        ..Browser::new(&app)
    };
    let locked = elsewhere
        .sign_in("lee", &credentials.one_time_password, "")
        .await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.shows("reset-password"), "{}", locked.body);
    assert!(elsewhere.cookie().is_none());
    // What `wxlink operator reset-password` does.
    let password = operators::one_time_password();
    let hash = operators::hash_password(&password).expect("hash");
    assert!(
        app.store()
            .set_operator_password("lee", hash, true, app.now())
            .await
            .expect("reset")
    );
    let signed = elsewhere.sign_in("lee", &password, "").await;
    assert_eq!((signed.status, signed.location()), (303, "/password"));
}

async fn an_address_that_keeps_failing_is_locked_for_every_operator(backend: Backend) {
    // An address locks after three times the operator's count: 6 here.
    let app = TestApp::spawn(backend, lock_options(50, 2)).await;
    let credentials = operator(&app, "vic", ALL_SCOPES, false).await;
    let attacker = Browser::new(&app);
    for n in 0..6 {
        let page = attacker
            .sign_in(&format!("guess{n}"), "wrong password", "")
            .await;
        assert_eq!(page.status, 401);
    }
    let refused = attacker
        .sign_in("vic", &credentials.one_time_password, "")
        .await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    let colleague = Browser {
        address: Ipv4Addr::new(198, 51, 100, 8),
        ..Browser::new(&app)
    };
    let signed = colleague
        .sign_in("vic", &credentials.one_time_password, "")
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    // The address's lock lasts an hour from its last failure: five minutes before, still
    // locked.
    let hour = u64::try_from(operators::ADDRESS_LOCK_SECS).expect("positive");
    app.advance_clock(Duration::from_secs(hour - 300));
    let early = attacker
        .sign_in("vic", &credentials.one_time_password, "")
        .await;
    assert_eq!(early.status, 429, "{}", early.body);
    app.advance_clock(Duration::from_secs(300));
    let later = attacker
        .sign_in("vic", &credentials.one_time_password, "")
        .await;
    assert_eq!(later.status, 303, "{}", later.body);
}

/// An operator's session ends after `idle_timeout_secs` without a request, and
/// `max_session_secs` after its sign-in however busy the operator is.
async fn an_idle_session_ends_and_a_busy_one_ends_at_its_limit(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        Options::default()
            .extra_toml("[console]\nidle_timeout_secs = 900\nmax_session_secs = 2100\n"),
    )
    .await;
    let browser = signed_in(&app, "ida").await;
    let page_after = |idle: u64| {
        let browser = &browser;
        let app = &app;
        async move {
            app.advance_clock(Duration::from_secs(idle));
            browser.get("/search").await
        }
    };
    // A request every ten minutes keeps the session: 30 minutes after sign-in it still works…
    for _ in 0..3 {
        let page = page_after(600).await;
        assert_eq!(page.status, 200, "a busy session: {}", page.body);
    }
    // … and at 40 minutes, past `max_session_secs` (35), it has ended, busy or not.
    let ended = page_after(600).await;
    assert_eq!((ended.status, ended.location()), (303, "/sign-in"));

    // A new session left alone for ten minutes still works; left alone for 20, it has ended.
    let signed = browser.sign_in("ida", NEW_PASSWORD, "").await;
    assert_eq!(
        (signed.status, signed.location()),
        (303, "/search"),
        "{}",
        signed.body
    );
    assert_eq!(page_after(600).await.status, 200);
    let idle = page_after(1200).await;
    assert_eq!((idle.status, idle.location()), (303, "/sign-in"));
}

/// Person A logged in on the unbound app (a provisional user) and on the bound one (a linked
/// user) and gave both the same phone number: the duplicates the console exists for.
async fn two_accounts_of_one_person(app: &TestApp, tag: &str, phone: &str) -> (String, String) {
    let provisional = app.login(APP_A, &format!("{tag}-a"), None).await;
    let linked = app
        .login(APP_B, &format!("{tag}-b"), Some(&format!("{tag}-union")))
        .await;
    for (token, appid, openid) in [
        (&provisional.token, APP_A, format!("{tag}-a")),
        (&linked.token, APP_B, format!("{tag}-b")),
    ] {
        let code = app.wx_phone_code(appid, &openid, phone, Some("86"));
        let reply = app.phone_number(token, &code).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    (provisional.user_id, linked.user_id)
}

async fn scopes_decide_what_an_operator_sees_and_does(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let (provisional, linked) = two_accounts_of_one_person(&app, "scope", "13700001234").await;
    let reader_credentials = operator(&app, "rita", "users:read", false).await;
    let reader = Browser::new(&app);
    reader
        .first_sign_in("rita", &reader_credentials.one_time_password)
        .await;
    let page = reader.get(&format!("/users/{linked}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.shows("*******1234") && !page.shows("13700001234"),
        "masked: {}",
        page.body
    );
    assert!(
        !page.shows(">Merge<") && !page.shows("id=\"timeline\""),
        "{}",
        page.body
    );
    let csrf = reader.csrf().await;
    let refused = reader
        .post(
            &format!("/users/{linked}/revoke-sessions"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.shows("support:write"));
    let merge = reader
        .post(
            "/merge",
            &[
                ("csrf", &csrf),
                ("into", &linked),
                ("from", &provisional),
                ("confirm", &linked),
            ],
        )
        .await;
    assert_eq!(merge.status, 403);
    assert_eq!(
        reader
            .get(&format!("/merge?into={linked}&from={provisional}"))
            .await
            .status,
        403
    );

    let admin = signed_in(&app, "adam").await;
    let page = admin.get(&format!("/users/{linked}")).await;
    assert!(page.shows("13700001234"), "{}", page.body);
    assert!(
        page.shows(">Merge<") && page.shows(">Revoke sessions<") && page.shows(">Cancel account<")
    );
    assert!(
        page.shows("id=\"timeline\"") && page.shows("user_created"),
        "{}",
        page.body
    );
    // Still two users: the reader's attempts changed nothing.
    let still = admin.get(&format!("/users/{provisional}")).await;
    assert!(still.shows("provisional"), "{}", still.body);
}

async fn duplicates_by_phone_merge_with_a_preview_through_the_support_use_case(backend: Backend) {
    let app = TestApp::spawn(backend, wxlink_tests::internal_api::with_tokens()).await;
    let (provisional, linked) = two_accounts_of_one_person(&app, "dup", "13600005678").await;
    let browser = signed_in(&app, "dora").await;

    let found = browser.get("/search?q=136%200000%205678").await;
    assert_eq!(found.status, 200);
    assert!(
        found.shows(&provisional) && found.shows(&linked),
        "{}",
        found.body
    );
    let by_openid = browser.get("/search?q=dup-a").await;
    assert!(by_openid.shows(&provisional) && !by_openid.shows(&linked));
    let by_unionid = browser.get("/search?q=dup-union").await;
    assert!(by_unionid.shows(&linked) && !by_unionid.shows(&provisional));

    let duplicates = browser.get("/duplicates").await;
    assert!(
        duplicates.shows(&provisional) && duplicates.shows(&linked),
        "{}",
        duplicates.body
    );
    let suggested = format!("/merge?into={linked}&amp;from={provisional}");
    assert!(duplicates.shows(&suggested), "{}", duplicates.body);

    let preview = browser
        .get(&format!("/merge?into={linked}&from={provisional}"))
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(
        preview.shows(&format!("identity {APP_A} · dup-a moves to {linked}")),
        "{}",
        preview.body
    );
    assert!(preview.shows("live sessions act as"), "{}", preview.body);
    assert!(preview.shows(">Confirm</button>"));
    let csrf = preview.csrf();
    // The wrong id typed: nothing merges.
    let wrong = browser
        .post(
            "/merge",
            &[
                ("csrf", &csrf),
                ("into", &linked),
                ("from", &provisional),
                ("confirm", &provisional),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(
        !browser
            .get(&format!("/users/{provisional}"))
            .await
            .shows("merged into")
    );

    let merge_form = [
        ("csrf", csrf.as_str()),
        ("into", &linked),
        ("from", &provisional),
        ("confirm", &linked),
    ];
    let merged = browser.post("/merge", &merge_form).await;
    assert_eq!(
        (merged.status, merged.location()),
        (303, format!("/users/{linked}?done=merged").as_str()),
        "{}",
        merged.body
    );
    let page = browser.get(&format!("/users/{linked}?done=merged")).await;
    assert!(page.shows("Merged."), "{}", page.body);
    assert!(page.shows("users_merged"), "{}", page.body);
    assert!(
        page.shows(&format!("href=\"/users/{provisional}\"")),
        "merged into it: {}",
        page.body
    );
    // The event names the operator, as the internal API's name their client.
    assert!(page.shows("actor: console:dora"), "{}", page.body);
    let gone = browser.get(&format!("/users/{provisional}")).await;
    assert!(gone.shows("merged into"), "{}", gone.body);
    assert!(
        !browser.get("/duplicates").await.shows(&provisional),
        "no longer a duplicate"
    );
    // The same refusal as the internal API for a second merge.
    let again = browser.post("/merge", &merge_form).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.shows("user_merged"), "{}", again.body);

    // Undone: the provisional user's identity split back into it, with a preview first.
    let identity = format!("{APP_A}:dup-a");
    let preview = browser
        .get(&format!(
            "/users/{linked}/split?identity={APP_A}%3Adup-a&into={provisional}"
        ))
        .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(
        preview.shows(&format!(
            "identity {APP_A} · dup-a and its 1 live sessions go to {provisional}"
        )),
        "{}",
        preview.body
    );
    assert!(
        preview.shows(&format!("the unionid stays with {linked}")),
        "{}",
        preview.body
    );
    let split = browser
        .post(
            &format!("/users/{linked}/split"),
            &[
                ("csrf", &csrf),
                ("identity", &identity),
                ("into", &provisional),
            ],
        )
        .await;
    assert_eq!(
        (split.status, split.location()),
        (303, format!("/users/{provisional}?done=split").as_str()),
        "{}",
        split.body
    );
    // The feed shows the console's repairs as the internal API's, naming the operator.
    let feed = wxlink_tests::internal_api::internal(&app, "/internal/v1/events?limit=1000")
        .await
        .ok_json(200, "the feed");
    let events = feed["events"].as_array().expect("events");
    let detail = |kind: &str| {
        events
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("a {kind} event in {events:?}"))["detail"]
            .clone()
    };
    assert_eq!(
        detail("users_merged"),
        serde_json::json!({"by": "support", "actor": "console:dora", "phone": "kept_owner", "sessions": 1})
    );
    assert_eq!(
        detail("user_split"),
        serde_json::json!({"by": "support", "actor": "console:dora", "identities": 1,
                           "sessions": 1, "unionid": "stayed", "phone": "stayed"})
    );
    let restored = browser.get(&format!("/users/{provisional}")).await;
    assert!(
        !restored.shows("merged into") && restored.shows("dup-a"),
        "{}",
        restored.body
    );
}
