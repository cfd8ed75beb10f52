//! Named clients of the internal API and their scopes (issue 20 §3), and token introspection as
//! RFC 7662 writes it: form bodies and HTTP Basic (issue 22 §1).

use axum::http::Method;
use base64::Engine as _;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use crate::helpers::{APP_A, APP_B, Api, Backend, Options, Reply, TestApp, assert_error};
use wxlink_tests::internal_api::{client_token, clients_toml, merge_someone, with_clients};

on_both_backends!(
    each_route_refuses_a_client_without_its_scope_and_changes_nothing,
    a_client_that_reads_events_cannot_merge_its_throwaway_user_into_anyone,
    phone_numbers_are_shown_only_with_users_phone,
    introspection_takes_a_form_and_http_basic_with_form_urlencoded_credentials,
    a_junk_introspection_body_is_invalid_request,
    an_unknown_client_or_a_wrong_token_is_invalid_token,
    failed_authentications_spend_the_per_ip_limit,
    a_method_that_a_route_does_not_have_is_405_after_authentication,
);

const EVERY_SCOPE: &[&str] = &[
    "users:read",
    "users:phone",
    "events:read",
    "tokens:introspect",
    "support:write",
];

/// The name of the test client that has every scope but `scope`.
fn all_but(scope: &str) -> String {
    format!("all-but-{}", scope.replace(':', "-"))
}

fn basic(name: &str, token: &str) -> String {
    let encode = |text: &str| utf8_percent_encode(text, NON_ALPHANUMERIC).to_string();
    let pair = format!("{}:{}", encode(name), encode(token));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

async fn as_client(
    app: &TestApp,
    client: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    let token = client_token(client);
    let body = body.map(|b| b.to_string().into_bytes());
    let content_type = body.as_ref().map(|_| "application/json");
    app.call(method, path, Some(&token), content_type, body)
        .await
}

/// For every internal route and its scope, a client with every other scope gets 403
/// `insufficient_scope` with RFC 6750's challenge naming the scope, and the database is as it
/// was; a client with the scope is let through.
async fn each_route_refuses_a_client_without_its_scope_and_changes_nothing(backend: Backend) {
    let names: Vec<String> = EVERY_SCOPE.iter().map(|s| all_but(s)).collect();
    let mut clients: Vec<(&str, Vec<&str>)> = names
        .iter()
        .zip(EVERY_SCOPE)
        .map(|(name, lacking)| {
            let scopes = EVERY_SCOPE.iter().copied().filter(|s| s != lacking);
            (name.as_str(), scopes.collect())
        })
        .collect();
    clients.push(("everything", EVERY_SCOPE.to_vec()));
    let clients: Vec<(&str, &[&str])> = clients.iter().map(|(n, s)| (*n, &s[..])).collect();
    let app = TestApp::spawn(backend, with_clients(&clients)).await;
    let (_, owner) = merge_someone(&app).await;
    let user = app.login(APP_B, "scoped-b", Some("scoped-union")).await;

    let routes: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::GET,
            format!("/internal/v1/users/{owner}"),
            None,
            "users:read",
        ),
        (
            Method::GET,
            "/internal/v1/users?unionid=in-union".to_owned(),
            None,
            "users:read",
        ),
        (
            Method::GET,
            "/internal/v1/events".to_owned(),
            None,
            "events:read",
        ),
        (
            Method::POST,
            "/internal/v1/introspect".to_owned(),
            Some(json!({"token": user.token})),
            "tokens:introspect",
        ),
        (
            Method::POST,
            format!("/internal/v1/users/{owner}/revoke-sessions"),
            None,
            "support:write",
        ),
        (
            Method::DELETE,
            format!("/internal/v1/users/{owner}/identities/{APP_A}/in-a"),
            None,
            "support:write",
        ),
        (
            Method::POST,
            format!("/internal/v1/users/{}/merge", user.user_id),
            Some(json!({"from": owner})),
            "support:write",
        ),
    ];
    let before = format!("{:?}", app.snapshot());
    for (method, path, body, scope) in &routes {
        let what = format!("{method} {path} without {scope}");
        let reply = as_client(&app, &all_but(scope), method.clone(), path, body.as_ref()).await;
        let message = assert_error(&reply, 403, "insufficient_scope", &what);
        assert!(message.contains(scope), "{what}: {message}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"").as_str()),
            "{what}"
        );
    }
    assert_eq!(
        format!("{:?}", app.snapshot()),
        before,
        "a refused request changes nothing"
    );
    // Each client is refused only what it lacks, and "everything" nothing.
    for (method, path, body, scope) in &routes {
        for client in EVERY_SCOPE
            .iter()
            .filter(|s| *s != scope)
            .map(|s| all_but(s))
            .chain(["everything".to_owned()])
        {
            if method != Method::GET && client != "everything" {
                continue; // Writes once, below.
            }
            let reply = as_client(&app, &client, method.clone(), path, body.as_ref()).await;
            assert!(
                ![401, 403].contains(&reply.status),
                "{method} {path} as {client}: {} {}",
                reply.status,
                reply.body
            );
        }
    }
}

/// Issue 20's takeover: a team whose client only follows the feed merges its own throwaway
/// user into a victim, so that the throwaway's bearer token acts as the victim. Refused, and
/// nothing changes; the same request from support (`support:write`) does merge, which is what
/// made the attack work when every token could do everything.
async fn a_client_that_reads_events_cannot_merge_its_throwaway_user_into_anyone(backend: Backend) {
    let clients: &[(&str, &[&str])] = &[
        ("crm", &["events:read", "users:read"]),
        ("support", &["support:write", "users:read"]),
    ];
    let app = TestApp::spawn(backend, with_clients(clients)).await;
    let victim = app.login(APP_B, "victim", Some("victim-union")).await;
    let throwaway = app.login(APP_A, "throwaway", None).await;
    let before = format!("{:?}", app.snapshot());

    let path = format!("/internal/v1/users/{}/merge", victim.user_id);
    let attack = json!({"from": throwaway.user_id});
    let reply = as_client(&app, "crm", Method::POST, &path, Some(&attack)).await;
    assert_error(&reply, 403, "insufficient_scope", "crm merges");
    assert_eq!(format!("{:?}", app.snapshot()), before);
    let me = app.me_ok(&throwaway.token).await;
    assert_eq!(
        me.user_id, throwaway.user_id,
        "the throwaway is still itself"
    );
    assert_eq!(app.me_ok(&victim.token).await.user_id, victim.user_id);

    let reply = as_client(&app, "support", Method::POST, &path, Some(&attack)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let me = app.me_ok(&throwaway.token).await;
    assert_eq!(
        me.user_id, victim.user_id,
        "a merge is what the attack needed"
    );
    // The event names the client that merged: its name is the actor.
    let feed = as_client(
        &app,
        "crm",
        Method::GET,
        "/internal/v1/events?limit=1000",
        None,
    )
    .await
    .ok_json(200, "the feed");
    let merged = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "users_merged")
        .cloned()
        .expect("the support merge's event");
    assert_eq!(merged["detail"]["actor"], "support", "{merged}");
}

/// `users:read` shows a user without the phone number's field; `users:phone` adds it, `null`
/// for a user without one.
async fn phone_numbers_are_shown_only_with_users_phone(backend: Backend) {
    let clients: &[(&str, &[&str])] = &[
        ("reader", &["users:read"]),
        ("phones", &["users:read", "users:phone"]),
        ("support", &["support:write"]),
    ];
    let app = TestApp::spawn(backend, with_clients(clients)).await;
    let login = app.login(APP_A, "phone-a", None).await;
    let code = app.wx_phone_code(APP_A, "phone-a", "13900002222", Some("86"));
    app.phone_number(&login.token, &code)
        .await
        .ok_json(200, "phone number");
    let other = app.login(APP_B, "phone-b", Some("phone-union")).await;

    let path = format!("/internal/v1/users/{}", login.user_id);
    let shown = as_client(&app, "reader", Method::GET, &path, None)
        .await
        .ok_json(200, "reader");
    assert_eq!(shown["user_id"], login.user_id.as_str());
    assert!(shown.get("phone_number").is_none(), "{shown}");
    let by_identity = format!("/internal/v1/users?appid={APP_A}&openid=phone-a");
    let shown = as_client(&app, "reader", Method::GET, &by_identity, None)
        .await
        .ok_json(200, "reader by identity");
    assert!(shown.get("phone_number").is_none(), "{shown}");

    let shown = as_client(&app, "phones", Method::GET, &path, None)
        .await
        .ok_json(200, "phones");
    assert_eq!(shown["phone_number"]["phone_number"], "13900002222");
    let none = format!("/internal/v1/users/{}", other.user_id);
    let shown = as_client(&app, "phones", Method::GET, &none, None)
        .await
        .ok_json(200, "phones, no number");
    assert_eq!(shown.get("phone_number"), Some(&Value::Null), "{shown}");

    // Support's merge answers the user too, and shows no number without `users:phone`.
    let merge = format!("/internal/v1/users/{}/merge", other.user_id);
    let body = json!({"from": login.user_id});
    let merged = as_client(&app, "support", Method::POST, &merge, Some(&body))
        .await
        .ok_json(200, "merge");
    assert_eq!(merged["user_id"], other.user_id.as_str());
    assert!(merged.get("phone_number").is_none(), "{merged}");
}

/// What an RFC 7662 client sends: a form body, and HTTP Basic with the client's name and token
/// form-urlencoded before base64 (the token has `+`, `/`, `=`, `%`, `:` and `&`).
async fn introspection_takes_a_form_and_http_basic_with_form_urlencoded_credentials(
    backend: Backend,
) {
    let clients: &[(&str, &[&str])] = &[("resource-server", &["tokens:introspect"])];
    let app = TestApp::spawn(backend, with_clients(clients)).await;
    let login = app.login(APP_B, "rs-b", Some("rs-union")).await;
    let authorization = basic("resource-server", &client_token("resource-server"));
    let form = |token: &str| {
        let token: String = url_encode(token);
        format!("token={token}&token_type_hint=access_token").into_bytes()
    };
    let introspect = |authorization: String, content_type: &'static str, body: Vec<u8>| {
        let app = &app;
        async move {
            app.call_authorized(
                Method::POST,
                "/internal/v1/introspect",
                Some(&authorization),
                Some(content_type),
                Some(body),
            )
            .await
        }
    };
    let form_type = "application/x-www-form-urlencoded";
    let active = introspect(authorization.clone(), form_type, form(&login.token))
        .await
        .ok_json(200, "form and Basic");
    let iat = active["iat"].as_i64().expect("iat");
    assert_eq!(
        active,
        json!({
            "active": true,
            "sub": login.user_id,
            "client_id": APP_B,
            "iat": iat,
            "exp": active["exp"],
            "unionid_linked": true,
            "token_type": "Bearer",
            "iss": "wxlink",
        })
    );
    assert!(active["exp"].as_i64().expect("exp") > iat);
    // A charset parameter, and JSON with Bearer as before: the same answer.
    let with_charset = introspect(
        authorization.clone(),
        "application/x-www-form-urlencoded; charset=UTF-8",
        form(&login.token),
    )
    .await
    .ok_json(200, "form with a charset");
    assert_eq!(with_charset, active);
    let token = client_token("resource-server");
    let as_json = app
        .post_json(
            "/internal/v1/introspect",
            Some(&token),
            &json!({"token": login.token}),
        )
        .await
        .ok_json(200, "JSON and Bearer");
    assert_eq!(as_json, active);

    let inactive = introspect(authorization.clone(), form_type, form("no-such-token"))
        .await
        .ok_json(200, "an unknown token");
    assert_eq!(inactive, json!({"active": false}));
    app.logout(&login.token).await;
    let revoked = introspect(authorization, form_type, form(&login.token))
        .await
        .ok_json(200, "a revoked token");
    assert_eq!(revoked, json!({"active": false}));
}

fn url_encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

/// Bodies that are neither the form nor the JSON of RFC 7662 are 400 `invalid_request`.
async fn a_junk_introspection_body_is_invalid_request(backend: Backend) {
    let app = TestApp::spawn(backend, with_clients(&[("rs", &["tokens:introspect"])])).await;
    let token = client_token("rs");
    let form = "application/x-www-form-urlencoded";
    for (content_type, body, what) in [
        (form, "token_type_hint=access_token", "a form without token"),
        (form, "{\"token\": \"abc\"}", "JSON sent as a form"),
        (form, "token=a&token=b", "two tokens"),
        ("application/json", "token=abc", "a form sent as JSON"),
        (
            "application/json",
            "{\"token\": 5}",
            "a token that is no string",
        ),
        ("text/plain", "\u{0}\u{1}junk", "junk"),
    ] {
        let reply = app
            .post_raw(
                "/internal/v1/introspect",
                Some(&token),
                Some(content_type),
                body,
            )
            .await;
        assert_error(&reply, 400, "invalid_request", what);
    }
}

/// Credentials of no configured client are 401 `invalid_token`, whichever way they come:
/// a legacy token has no name to use with Basic.
async fn an_unknown_client_or_a_wrong_token_is_invalid_token(backend: Backend) {
    let legacy = "legacy-token-for-a-team-0123456789";
    let options = Options::default().extra_toml(&format!(
        "[internal]\ntokens = [\"{legacy}\"]\n{}",
        clients_toml(&[("rs", &["tokens:introspect"])])
    ));
    let app = TestApp::spawn(backend, options).await;
    let body = br#"{"token": "x"}"#.to_vec();
    for (authorization, what) in [
        (basic("nobody", &client_token("rs")), "an unknown name"),
        (basic("rs", "rs-token-that-is-wrong-0123"), "a wrong token"),
        (basic("legacy-1", legacy), "a legacy token with Basic"),
        ("Bearer rs".to_owned(), "the name as a token"),
        (format!("Token {}", client_token("rs")), "another scheme"),
        ("Basic %%%".to_owned(), "Basic that is not base64"),
    ] {
        let reply = app
            .call_authorized(
                Method::POST,
                "/internal/v1/introspect",
                Some(&authorization),
                Some("application/json"),
                Some(body.clone()),
            )
            .await;
        assert_error(&reply, 401, "invalid_token", what);
    }
    // The legacy token is a client with every scope, with Bearer.
    let reply = app
        .post_raw(
            "/internal/v1/introspect",
            Some(legacy),
            Some("application/json"),
            body,
        )
        .await;
    assert_eq!(reply.json(), json!({"active": false}));
}

/// Guessing client tokens spends the address's per-IP budget: past it the guesses answer 429
/// `rate_limited` with `Retry-After`. A known client's requests do not spend it.
async fn failed_authentications_spend_the_per_ip_limit(backend: Backend) {
    let options = with_clients(&[("crm", &["events:read"])]).extra_toml(
        "[rate_limit]\nexempt_loopback = false\nper_ip_per_minute = 1\nper_ip_burst = 3\n",
    );
    let app = TestApp::spawn(backend, options).await;
    let crm = client_token("crm");
    for _ in 0..5 {
        let reply = app.get("/internal/v1/events", Some(&crm)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    for guess in 0..3 {
        let token = format!("guessed-token-number-{guess:04}");
        let reply = app.get("/internal/v1/events", Some(&token)).await;
        assert_error(&reply, 401, "invalid_token", "a guess within the budget");
    }
    let reply = app
        .get("/internal/v1/events", Some("guessed-token-number-0004"))
        .await;
    assert_error(&reply, 429, "rate_limited", "a guess past the budget");
    assert!(reply.header("retry-after").is_some(), "{:?}", reply.headers);
}

/// A client is authenticated before anything else is told, then a method the route does not
/// have is 405 with the route's methods, as for every route; HEAD is GET.
async fn a_method_that_a_route_does_not_have_is_405_after_authentication(backend: Backend) {
    let app = TestApp::spawn(backend, with_clients(&[("crm", &["events:read"])])).await;
    let anonymous = app
        .call(Method::PUT, "/internal/v1/events", None, None, None)
        .await;
    assert_error(&anonymous, 401, "invalid_token", "PUT without a client");
    for method in [Method::PUT, Method::TRACE, Method::DELETE] {
        let reply = as_client(&app, "crm", method.clone(), "/internal/v1/events", None).await;
        assert_error(&reply, 405, "method_not_allowed", method.as_str());
        assert_eq!(reply.header("allow"), Some("GET,HEAD"), "{method}");
    }
    let reply = as_client(&app, "crm", Method::TRACE, "/internal/v1/users/u1", None).await;
    assert_error(
        &reply,
        405,
        "method_not_allowed",
        "TRACE without the route's scope",
    );
    let head = as_client(&app, "crm", Method::HEAD, "/internal/v1/events", None).await;
    assert_eq!(head.status, 200);
}
