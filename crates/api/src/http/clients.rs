//! Who calls the internal API, and what each caller may do: named clients with scopes
//! (`[internal.clients.<name>]`), least privilege as in Keycloak's and Logto's machine clients.
//!
//! A client authenticates with `Authorization: Bearer <token>` or with HTTP Basic, its name and
//! token form-urlencoded before base64 (RFC 6749 §2.3.1, what RFC 7662 clients send). wxlink
//! keeps only the tokens' SHA-256 and compares every one of them in constant time. The old
//! `[internal] tokens` are clients with every scope, named `legacy-1`, `legacy-2`, … in their
//! order (Bearer only: they have no name to send).
//!
//! Each internal route needs one scope, from the one table [`ROUTE_SCOPES`]: the middleware
//! enforces it and the OpenAPI document states it. A request without it answers 403
//! `insufficient_scope` with `WWW-Authenticate: Bearer error="insufficient_scope",
//! scope="…"` (RFC 6750 §3.1) and changes nothing. Phone numbers in lookups need `users:phone`
//! besides: without it the field is left out of the answer.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::ALLOW;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::http::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// What a client may do on the internal API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `users:read`: user lookups, without phone numbers.
    UsersRead,
    /// `users:phone`: phone numbers in the users that answers show.
    UsersPhone,
    /// `events:read`: the event feed.
    EventsRead,
    /// `tokens:introspect`: token introspection.
    TokensIntrospect,
    /// `support:write`: support's repairs (revoke sessions, unlink, merge, split).
    SupportWrite,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 5] = [
        Scope::UsersRead,
        Scope::UsersPhone,
        Scope::EventsRead,
        Scope::TokensIntrospect,
        Scope::SupportWrite,
    ];

    /// Its name in the configuration, the OpenAPI document and `WWW-Authenticate`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::UsersRead => "users:read",
            Scope::UsersPhone => "users:phone",
            Scope::EventsRead => "events:read",
            Scope::TokensIntrospect => "tokens:introspect",
            Scope::SupportWrite => "support:write",
        }
    }

    /// The scope of this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// The scope each internal route needs, by method and route template. A route missing here is
/// refused to everyone, as a method it does not have (and a test fails): add a line when adding
/// a route.
pub(crate) const ROUTE_SCOPES: &[(Method, &str, Scope)] = &[
    (
        Method::GET,
        "/internal/v1/users/{user_id}",
        Scope::UsersRead,
    ),
    (Method::GET, "/internal/v1/users", Scope::UsersRead),
    (Method::GET, "/internal/v1/events", Scope::EventsRead),
    (
        Method::POST,
        "/internal/v1/users/{user_id}/revoke-sessions",
        Scope::SupportWrite,
    ),
    (
        Method::DELETE,
        "/internal/v1/users/{user_id}/identities/{appid}/{openid}",
        Scope::SupportWrite,
    ),
    (
        Method::POST,
        "/internal/v1/users/{into}/merge",
        Scope::SupportWrite,
    ),
    (
        Method::POST,
        "/internal/v1/users/{user_id}/split",
        Scope::SupportWrite,
    ),
    (
        Method::POST,
        "/internal/v1/introspect",
        Scope::TokensIntrospect,
    ),
];

/// The scope a route needs, if it is in [`ROUTE_SCOPES`].
pub(crate) fn scope_of(method: &Method, path: &str) -> Option<Scope> {
    ROUTE_SCOPES
        .iter()
        .find(|(m, p, _)| m == method && *p == path)
        .map(|(_, _, scope)| *scope)
}

/// The authenticated client of an internal request, in the request's extensions for the
/// handlers (`Extension<Caller>`); support's events name it as their actor.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client's name: `[internal.clients.<name>]`, or `legacy-N` for the N-th entry of
    /// `[internal] tokens`.
    pub name: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
}

impl Caller {
    /// Whether the client has `scope`.
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// One configured client, as validated from the settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Its name (`legacy-N` for a token of `[internal] tokens`).
    pub name: String,
    /// Its token.
    pub token: SecretString,
    /// Its scopes.
    pub scopes: BTreeSet<Scope>,
    /// Whether it is named in `[internal.clients]` (and so may use HTTP Basic).
    pub named: bool,
}

/// The configured clients, with their tokens' hashes.
#[derive(Debug, Default)]
pub struct Clients(Vec<Registered>);

#[derive(Debug)]
struct Registered {
    caller: Caller,
    hash: [u8; 32],
    named: bool,
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Clients {
    /// Keep each client with the hash of its token.
    pub fn new(clients: &[ClientConfig]) -> Self {
        Self(
            clients
                .iter()
                .map(|c| Registered {
                    caller: Caller {
                        name: c.name.clone(),
                        scopes: c.scopes.clone(),
                    },
                    hash: hash(c.token.expose_secret()),
                    named: c.named,
                })
                .collect(),
        )
    }

    /// Whether any client is configured, i.e. the internal routes are mounted.
    pub(crate) fn enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// The client whose token is `token` and, for HTTP Basic, whose name is `name`. Every
    /// client is compared, in constant time, so the answer's timing tells nothing of which
    /// (tokens are unique, so at most one matches).
    fn find(&self, name: Option<&str>, token: &str) -> Option<&Caller> {
        let presented = hash(token);
        let mut found = Choice::from(0);
        let mut index = 0_u32;
        for (i, client) in (0_u32..).zip(&self.0) {
            let mut matches = client.hash.ct_eq(&presented);
            if let Some(name) = name {
                matches &= Choice::from(u8::from(client.named))
                    & client.caller.name.as_bytes().ct_eq(name.as_bytes());
            }
            index.conditional_assign(&i, matches);
            found |= matches;
        }
        let index = usize::try_from(index).ok()?;
        bool::from(found).then(|| &self.0[index].caller)
    }

    /// The client that the request's `Authorization` header authenticates.
    fn authenticate(&self, headers: &HeaderMap) -> Option<&Caller> {
        let (scheme, credentials) = crate::http::handlers::authorization(headers)?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.find(None, credentials);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()?;
        let (name, token) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        // RFC 6749 §2.3.1 form-urlencodes both before base64; clients that send a token
        // verbatim (it may hold `+` or `%`) are common enough to accept as well.
        let (form_name, form_token) = (form_decode(name)?, form_decode(token)?);
        self.find(Some(&form_name), &form_token)
            .or_else(|| self.find(Some(name), token))
    }
}

/// One `application/x-www-form-urlencoded` value: `+` is a space, then percent-decoding.
fn form_decode(value: &str) -> Option<String> {
    let spaced = value.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// The answer to a method that [`ROUTE_SCOPES`] does not list for `route`: 405 with the
/// methods it lists (what the router would answer for a method the route has no handler for),
/// so a handler that nobody gave a scope is nobody's; a route the table does not know at all is
/// a bug, 500.
fn not_in_the_table(method: &Method, route: &str) -> Response {
    let allowed: Vec<&str> = ROUTE_SCOPES
        .iter()
        .filter(|(_, path, _)| *path == route)
        .flat_map(|(m, _, _)| match *m {
            Method::GET => vec!["GET", "HEAD"],
            ref other => vec![other.as_str()],
        })
        .collect();
    if allowed.is_empty() {
        tracing::error!(%method, route, "an internal route has no scope in ROUTE_SCOPES");
        return ApiError::internal().into_response();
    }
    let mut response = ApiError::method_not_allowed().into_response();
    if let Ok(allow) = HeaderValue::try_from(allowed.join(",")) {
        response.headers_mut().insert(ALLOW, allow);
    }
    response
}

/// 403 `insufficient_scope` for a client without `scope`, with RFC 6750's challenge.
fn insufficient_scope(caller: &Caller, scope: Scope) -> ApiError {
    let mut error = ApiError::new(
        ErrorCode::InsufficientScope,
        format!(
            "client {} lacks the scope {} that this route needs",
            caller.name,
            scope.as_str()
        ),
    );
    error.www_authenticate = Some(format!(
        "Bearer error=\"insufficient_scope\", scope=\"{}\"",
        scope.as_str()
    ));
    error
}

/// Authenticates the client of an internal request and checks its route's scope; the
/// [`Caller`] goes into the request's extensions. A failed authentication counts against the
/// client address's per-IP limit, so guessing tokens soon answers 429 `rate_limited`;
/// authenticated calls do not count (services poll the feed).
pub(crate) async fn require_client(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !state.clients.enabled() {
        return Err(ApiError::not_found());
    }
    let Some(caller) = state.clients.authenticate(request.headers()).cloned() else {
        super::middleware::count_against_ip(&state, &request).await?;
        return Err(ApiError::invalid_token(
            "a valid client token is required (Authorization: Bearer, or Basic with the \
             client's name)",
        ));
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str);
    // axum answers HEAD with the GET handler.
    let method = match request.method() {
        &Method::HEAD => &Method::GET,
        other => other,
    };
    let Some(scope) = scope_of(method, route) else {
        return Ok(not_in_the_table(request.method(), route));
    };
    if !caller.may(scope) {
        tracing::info!(client = %caller.name, scope = scope.as_str(), "refused: insufficient scope");
        return Err(insufficient_scope(&caller, scope));
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use axum::http::header::AUTHORIZATION;

    use super::*;

    fn clients() -> Clients {
        let client = |name: &str, token: &str, named: bool| ClientConfig {
            name: name.to_owned(),
            token: token.to_owned().into(),
            scopes: BTreeSet::from([Scope::EventsRead]),
            named,
        };
        Clients::new(&[
            client("crm", "crm-token+with/odd=chars%", true),
            client("legacy-1", "legacy-token-0123456789", false),
        ])
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    fn basic(user: &str, password: &str) -> String {
        let text = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }

    fn who(clients: &Clients, value: &str) -> Option<String> {
        clients
            .authenticate(&headers(value))
            .map(|c| c.name.clone())
    }

    #[test]
    fn bearer_and_basic_find_their_client_and_nothing_else_does() {
        let clients = clients();
        let crm = Some("crm".to_owned());
        assert_eq!(who(&clients, "Bearer crm-token+with/odd=chars%"), crm);
        assert_eq!(
            who(&clients, "bearer  legacy-token-0123456789"),
            Some("legacy-1".into())
        );
        // Form-urlencoded as RFC 6749 says, and verbatim as many clients send it.
        let encoded = "crm-token%2Bwith%2Fodd%3Dchars%25";
        assert_eq!(who(&clients, &basic("crm", encoded)), crm);
        assert_eq!(who(&clients, &basic("c%72m", encoded)), crm);
        assert_eq!(
            who(&clients, &basic("crm", "crm-token+with/odd=chars%")),
            crm
        );
        for refused in [
            basic("legacy-1", "legacy-token-0123456789"),
            basic("crm", "legacy-token-0123456789"),
            basic("other", encoded),
            "Bearer wrong-token-0123456789".to_owned(),
            "Basic not-base64!".to_owned(),
            "Digest crm-token+with/odd=chars%".to_owned(),
            "Bearer".to_owned(),
        ] {
            assert_eq!(who(&clients, &refused), None, "{refused}");
        }
    }

    #[test]
    fn every_scope_parses_from_its_name() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("users:write"), None);
    }
}
