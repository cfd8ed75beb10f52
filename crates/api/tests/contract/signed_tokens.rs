//! `[tokens] format = "jwt"`: signed access tokens that other services verify offline against
//! `/.well-known/jwks.json`, that wxlink accepts only while their session is live, and rotating
//! refresh tokens whose reuse revokes the session.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use wxlink_tests::internal_api::{introspect, with_tokens};
use wxlink_tests::options::ISSUER;

use crate::helpers::{
    APP_A, APP_B, Api, Backend, LoginResponse, Options, Reply, TestApp, assert_error, unsigned_body,
};

on_both_backends!(
    a_signed_token_verifies_against_the_jwks_and_works_until_its_session_is_revoked,
    a_forged_or_altered_token_is_refused_everywhere,
    a_refresh_rotates_and_a_reused_refresh_token_revokes_the_session,
    an_access_token_expires_and_refreshes_renew_it_until_the_session_ends,
    two_refreshes_of_one_token_at_once_let_exactly_one_win,
    a_merged_users_refresh_carries_the_owner,
    opaque_tokens_stay_as_they_were,
);

fn signed() -> Options {
    with_tokens().signed_tokens("")
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}

/// What a service does: verify the token with the published keys, knowing nothing else.
async fn verify_offline(app: &TestApp, token: &str) -> Result<Value, String> {
    let jwks = app
        .get("/.well-known/jwks.json", None)
        .await
        .ok_json(200, "jwks");
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(jwks).map_err(|e| format!("not a JWK Set: {e}"))?;
    let kid = jsonwebtoken::decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("kid not published")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[ISSUER]);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Reply {
    app.post_json(
        "/v1/token/refresh",
        None,
        &json!({ "refresh_token": refresh_token }),
    )
    .await
}

/// A 200 of the refresh, with exactly the contract's fields: (access token, refresh token).
fn refreshed(reply: &Reply) -> (String, String, Value) {
    let value = reply.ok_json(200, "refresh");
    let mut fields: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "expires_in",
            "refresh_token",
            "token",
            "token_type",
            "unionid_linked",
            "user_id"
        ],
        "{value}"
    );
    assert_eq!(value["token_type"], "Bearer");
    let token = value["token"].as_str().expect("token").to_owned();
    let next = value["refresh_token"].as_str().expect("refresh").to_owned();
    (token, next, value)
}

fn refresh_token(login: &LoginResponse) -> &str {
    login
        .refresh_token
        .as_deref()
        .expect("a signed login has a refresh token")
}

async fn a_signed_token_verifies_against_the_jwks_and_works_until_its_session_is_revoked(
    backend: Backend,
) {
    let app = TestApp::spawn(backend, signed()).await;
    let config = app
        .get("/.well-known/openid-configuration", None)
        .await
        .ok_json(200, "discovery");
    assert_eq!(
        config,
        json!({
            "issuer": ISSUER,
            "jwks_uri": format!("{ISSUER}/.well-known/jwks.json"),
            "introspection_endpoint": format!("{ISSUER}/internal/v1/introspect"),
            "token_signing_alg_values_supported": ["ES256"],
        })
    );

    let login = app.login(APP_B, "jwt-b", Some("jwt-union")).await;
    assert_eq!(login.expires_in, 900);
    let claims = verify_offline(&app, &login.token).await.expect("verifies");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], login.user_id.as_str());
    assert_eq!(claims["azp"], APP_B);
    assert_eq!(claims["unionid_linked"], true);
    let iat = claims["iat"].as_i64().expect("iat");
    assert_eq!(claims["exp"].as_i64(), Some(iat + 900));
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims["sid"].as_str().is_some_and(|s| !s.is_empty()));

    // wxlink's own endpoints take it, and introspection answers for it exactly.
    assert_eq!(app.me_ok(&login.token).await.user_id, login.user_id);
    let active = introspect(&app, &login.token).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["sub"], login.user_id.as_str());
    assert_eq!(active["client_id"], APP_B);
    assert_eq!(
        (active["iat"].as_i64(), active["exp"].as_i64()),
        (Some(iat), Some(iat + 900))
    );

    // Logging out revokes the session: wxlink refuses the token at once, introspection says
    // so, and the refresh token is dead; an offline verifier still accepts it until `exp`.
    assert_eq!(app.logout(&login.token).await.status, 204);
    app.me_refused(&login.token, "revoked session's JWT").await;
    assert_eq!(
        introspect(&app, &login.token).await,
        json!({"active": false})
    );
    assert_error(
        &refresh(&app, refresh_token(&login)).await,
        401,
        "invalid_token",
        "a revoked session's refresh token",
    );
    assert!(verify_offline(&app, &login.token).await.is_ok());
}

async fn a_forged_or_altered_token_is_refused_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend, signed()).await;
    let victim = app.login(APP_B, "victim-b", Some("victim-union")).await;
    let attacker = app.login(APP_A, "attacker-a", None).await;

    // The attacker's own token with the victim's session and user put in: the signature no
    // longer holds.
    let mut altered = claims(&attacker.token);
    let victims = claims(&victim.token);
    altered["sid"] = victims["sid"].clone();
    altered["sub"] = victims["sub"].clone();
    let parts: Vec<&str> = attacker.token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(altered.to_string());
    let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
    // And unsigned (`alg: none`), as a careless verifier would take it.
    let unsigned = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    for (token, what) in [(&forged, "altered claims"), (&unsigned, "alg none")] {
        assert_error(&app.me(token).await, 401, "invalid_token", what);
        assert_eq!(
            introspect(&app, token).await,
            json!({"active": false}),
            "{what}"
        );
        assert_error(&app.logout(token).await, 401, "invalid_token", what);
        assert!(verify_offline(&app, token).await.is_err(), "{what}");
    }
    // Nothing happened to the victim.
    assert_eq!(app.me_ok(&victim.token).await.user_id, victim.user_id);
}

async fn a_refresh_rotates_and_a_reused_refresh_token_revokes_the_session(backend: Backend) {
    let app = TestApp::spawn(backend, signed()).await;
    let login = app.login(APP_A, "rot-a", None).await;
    let first = refresh_token(&login).to_owned();

    let (token, second, body) = refreshed(&refresh(&app, &first).await);
    assert_eq!(body["user_id"], login.user_id.as_str());
    assert_eq!(body["expires_in"], 900);
    assert_ne!(second, first);
    assert_eq!(
        claims(&token)["sid"],
        claims(&login.token)["sid"],
        "same session"
    );
    assert_eq!(app.me_ok(&token).await.user_id, login.user_id);
    // The old access token stays valid (same live session) until it expires.
    assert_eq!(app.me_ok(&login.token).await.user_id, login.user_id);

    let (_, third, _) = refreshed(&refresh(&app, &second).await);

    // Someone replays the first refresh token (stolen earlier): refused, and the whole session
    // ends, so neither the thief nor the owner can go on with it.
    assert_error(
        &refresh(&app, &first).await,
        401,
        "invalid_token",
        "reused refresh token",
    );
    assert_error(
        &refresh(&app, &third).await,
        401,
        "invalid_token",
        "after reuse",
    );
    for access in [&login.token, &token] {
        assert_error(&app.me(access).await, 401, "invalid_token", "after reuse");
        assert_eq!(introspect(&app, access).await, json!({"active": false}));
    }
    // Another session of the same user is untouched.
    let other = app.login(APP_A, "rot-a", None).await;
    assert_eq!(app.me_ok(&other.token).await.user_id, login.user_id);

    // Malformed and unknown tokens are refused without changing anything.
    for bad in ["", "short", "x".repeat(5000).as_str(), &login.token] {
        let reply = refresh(&app, bad).await;
        assert_error(&reply, 401, "invalid_token", "not a refresh token");
    }
    let reply = app
        .post_json("/v1/token/refresh", None, &json!({"refresh": 1}))
        .await;
    assert_error(&reply, 400, "invalid_request", "no refresh_token");
    refreshed(&refresh(&app, refresh_token(&other)).await);
}

/// An access token works for `access_ttl_secs` (900 s); refreshes give new ones as long as the
/// session lives (`[session] ttl_secs`), and none after. The clock is moved to either side of
/// each end (five minutes before, then past it) instead of waiting.
async fn an_access_token_expires_and_refreshes_renew_it_until_the_session_ends(backend: Backend) {
    let app = TestApp::spawn(backend, signed().ttl_secs(3600)).await;
    let login = app.login(APP_A, "exp-a", None).await;
    assert_eq!(login.expires_in, 900);
    let minutes = |n: u64| Duration::from_secs(60 * n);

    app.advance_clock(minutes(10));
    assert_eq!(app.me_ok(&login.token).await.user_id, login.user_id);
    app.advance_clock(minutes(5));
    app.me_refused(&login.token, "an expired access token")
        .await;
    assert_eq!(
        introspect(&app, &login.token).await,
        json!({"active": false})
    );

    // The session lives on: its refresh token gives a working access token.
    let (token, next, _) = refreshed(&refresh(&app, refresh_token(&login)).await);
    assert_eq!(app.me_ok(&token).await.user_id, login.user_id);

    // Five minutes before the session's end (60 minutes after the login) a refresh works…
    app.advance_clock(minutes(40));
    let (last, after_end, _) = refreshed(&refresh(&app, &next).await);
    assert_eq!(app.me_ok(&last).await.user_id, login.user_id);
    // … and after it, neither the access token (whose own `exp` is still ahead) nor a refresh.
    app.advance_clock(minutes(5));
    app.me_refused(&last, "the access token of an ended session")
        .await;
    assert_error(
        &refresh(&app, &after_end).await,
        401,
        "invalid_token",
        "a refresh token of an ended session",
    );
}

async fn two_refreshes_of_one_token_at_once_let_exactly_one_win(backend: Backend) {
    let app = TestApp::spawn(backend, signed()).await;
    for round in 0..4 {
        let login = app.login(APP_A, &format!("race-{round}"), None).await;
        let presented = refresh_token(&login).to_owned();
        let (one, two) = tokio::join!(refresh(&app, &presented), refresh(&app, &presented));
        let statuses = [one.status, two.status];
        assert!(
            statuses.contains(&200) && statuses.contains(&401),
            "round {round}: exactly one refresh wins: {statuses:?} {} {}",
            one.body,
            two.body
        );
    }
}

async fn a_merged_users_refresh_carries_the_owner(backend: Backend) {
    let app = TestApp::spawn(backend, signed()).await;
    let provisional = app.login(APP_A, "mrg-a", Some("mrg-union")).await;
    let owner = app.login(APP_B, "mrg-b", Some("mrg-union")).await;
    assert_eq!(
        claims(&provisional.token)["sub"],
        provisional.user_id.as_str()
    );
    let info = app.wx_user_info(APP_A, "mrg-a");
    let merged = app
        .user_info_ok(&provisional.token, &unsigned_body(&info))
        .await;
    assert!(merged.merged);
    assert_eq!(merged.user_id, owner.user_id);

    // The old token still names the merged user, but acts as the owner on wxlink and in
    // introspection; the refreshed token names the owner.
    assert_eq!(
        claims(&provisional.token)["sub"],
        provisional.user_id.as_str()
    );
    assert_eq!(app.me_ok(&provisional.token).await.user_id, owner.user_id);
    assert_eq!(
        introspect(&app, &provisional.token).await["sub"],
        owner.user_id.as_str()
    );
    let (token, _, body) = refreshed(&refresh(&app, refresh_token(&provisional)).await);
    assert_eq!(body["user_id"], owner.user_id.as_str());
    assert_eq!(body["unionid_linked"], true);
    assert_eq!(claims(&token)["sub"], owner.user_id.as_str());
    assert_eq!(claims(&token)["azp"], APP_A);
}

async fn opaque_tokens_stay_as_they_were(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let login = app.login(APP_A, "opaque-a", None).await;
    assert_eq!(login.refresh_token, None);
    assert!(!login.token.contains('.'));
    assert_eq!(login.expires_in, 604_800);
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        assert_error(&app.get(path, None).await, 404, "not_found", path);
    }
    let reply = app
        .post_json(
            "/v1/token/refresh",
            None,
            &json!({"refresh_token": login.token}),
        )
        .await;
    assert_error(&reply, 404, "not_found", "refresh with opaque tokens");
}
