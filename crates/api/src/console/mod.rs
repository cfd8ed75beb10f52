//! The support console: a small server-rendered web app on a listener of its own
//! (`[console] bind`), for operators kept in the database (`wxlink operator …`).
//!
//! It adds no rule: searches and pages read the store directly (like the internal API's
//! lookups), and every repair runs the domain's use case, as the internal API and `wxlink user`
//! do. Security: a `__Host-` session cookie (`HttpOnly`, `Secure`, `SameSite=Strict`) whose
//! token the database holds only hashed, an idle timeout, a CSRF token in every form, state
//! changes refused from another origin (`Origin`, `Sec-Fetch-Site`), a strict
//! `Content-Security-Policy`, and every asset embedded in the binary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine as _;
use minijinja::context;
use rand::Rng as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use wxlink_domain::{
    ActorName, AppId, AppKind, Clock, DomainError, Event, OpenId, PhoneMerge, PhoneNumber, UnionId,
    UnixTime, UserId,
};
use wxlink_persistence::{ConsoleUser, Operator, Store, UserRecord};

use crate::http::error::ApiError;
use crate::limits::{ClientAddr, RateLimits, limit_key};
use crate::state::WxlinkAccounts;

pub mod i18n;
pub mod operators;

use i18n::Lang;
use operators::{EVENTS_READ, Gate, SUPPORT_WRITE, USERS_PHONE, USERS_READ};

/// A page that refuses the request (boxed: a response is large, and most requests are not
/// refused).
type Refusal = Box<Response>;

/// The session cookie. `__Host-`: only ever set by this host, over a secure connection, for `/`.
pub const SESSION_COOKIE: &str = "__Host-wxlink-console";

/// The newest events a user's page shows.
const TIMELINE_EVENTS: u32 = 100;
/// The most groups the duplicates page shows.
const DUPLICATE_GROUPS: u32 = 100;

/// What the console's handlers share.
#[derive(Debug)]
pub struct ConsoleState {
    store: Store,
    accounts: WxlinkAccounts,
    apps: HashMap<AppId, AppKind>,
    limits: Arc<RateLimits>,
    idle_timeout_secs: i64,
    max_session_secs: i64,
    sign_in: operators::SignInPolicy,
    templates: Templates,
    /// The time sessions idle, expire and sign-ins are counted by.
    clock: Arc<dyn Clock>,
}

impl ConsoleState {
    /// Wire the console to the store, the use cases, the configured apps, the service's rate
    /// limits (for the client address behind trusted proxies) and its clock.
    pub fn new(
        store: Store,
        accounts: WxlinkAccounts,
        apps: HashMap<AppId, AppKind>,
        limits: Arc<RateLimits>,
        settings: &crate::config::ConsoleSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            accounts,
            apps,
            limits,
            idle_timeout_secs: i64::try_from(settings.idle_timeout_secs).unwrap_or(i64::MAX),
            max_session_secs: i64::try_from(settings.max_session_secs).unwrap_or(i64::MAX),
            sign_in: operators::SignInPolicy::of(settings),
            templates: Templates::new(),
            clock,
        }
    }
}

/// The templates, parsed once; all embedded in the binary.
struct Templates(minijinja::Environment<'static>);

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Templates {
    fn new() -> Self {
        let mut env = minijinja::Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("sign_in.html", include_str!("templates/sign_in.html")),
            ("password.html", include_str!("templates/password.html")),
            ("search.html", include_str!("templates/search.html")),
            (
                "users_table.html",
                include_str!("templates/users_table.html"),
            ),
            ("duplicates.html", include_str!("templates/duplicates.html")),
            ("user.html", include_str!("templates/user.html")),
            ("merge.html", include_str!("templates/merge.html")),
            ("confirm.html", include_str!("templates/confirm.html")),
            ("message.html", include_str!("templates/message.html")),
            ("split.html", include_str!("templates/split.html")),
        ] {
            // A template that does not parse is a bug the console's tests catch at once.
            if let Err(error) = env.add_template(name, source) {
                tracing::error!(%error, name, "console template does not parse");
            }
        }
        Self(env)
    }
}

/// The console's routes, with its security headers and the same-origin check on every
/// state-changing request.
pub fn router(state: Arc<ConsoleState>) -> Router {
    use axum::routing::post;
    Router::new()
        .route("/", get(|| async { Redirect::to("/search") }))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/password", get(password_page).post(change_password))
        .route("/search", get(search))
        .route("/duplicates", get(duplicates))
        .route("/users/{id}", get(user_page))
        .route("/merge", get(merge_page).post(merge))
        .route("/users/{id}/unlink", get(unlink_page).post(unlink))
        .route(
            "/users/{id}/revoke-sessions",
            get(revoke_page).post(revoke_sessions),
        )
        .route("/users/{id}/cancel", get(cancel_page).post(cancel_account))
        .route("/users/{id}/split", get(split_page).post(split))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(same_origin_writes))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        // Logged like the public API's requests: escaped path, request id.
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(crate::http::middleware::request_span)
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                ),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
        .layer(axum::middleware::from_fn(
            crate::http::middleware::drop_unfit_request_id,
        ))
        .with_state(state)
}

/// Nothing from another origin, no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not `no-referrer`: with it a browser sends `Origin: null` on the console's own forms.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A state-changing request from another origin is refused before it reaches a handler: the
/// browser's `Sec-Fetch-Site` must say `same-origin`, and an `Origin` must name this host.
/// (Clients that send neither, such as scripts, still need the session and its CSRF token.)
async fn same_origin_writes(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let headers = request.headers();
        if let Some(site) = headers.get("sec-fetch-site")
            && site.as_bytes() != b"same-origin"
        {
            return forbidden_origin();
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
            let origin_host = origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .map(|(_, rest)| rest.as_bytes());
            if origin_host.is_none() || origin_host != host {
                return forbidden_origin();
            }
        }
    }
    next.run(request).await
}

fn forbidden_origin() -> Response {
    (
        StatusCode::FORBIDDEN,
        "refused: a state-changing request from another origin",
    )
        .into_response()
}

async fn css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// What every page gets: the labels, the language and, when signed in, the operator and the
/// CSRF token of its forms.
fn base(lang: Lang, signed: Option<&Signed>) -> minijinja::Value {
    context! {
        t => lang.labels(),
        lang => lang.tag(),
        operator => signed.map(|s| s.operator.name.clone()),
        csrf => signed.map(|s| s.csrf.clone()),
    }
}

fn render(
    state: &ConsoleState,
    status: StatusCode,
    template: &str,
    ctx: minijinja::Value,
) -> Response {
    let page = state
        .templates
        .0
        .get_template(template)
        .and_then(|t| t.render(ctx));
    match page {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, template, "console page does not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A page with just a message (an error or a refusal).
fn message(
    state: &ConsoleState,
    lang: Lang,
    signed: Option<&Signed>,
    status: StatusCode,
    text: &str,
) -> Response {
    render(
        state,
        status,
        "message.html",
        context! { error => text, ..base(lang, signed) },
    )
}

async fn not_found(State(state): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    message(
        &state,
        Lang::of(&headers),
        None,
        StatusCode::NOT_FOUND,
        "not found",
    )
}

/// A signed-in operator, its session's token hash and the CSRF token of its forms.
#[derive(Debug)]
pub struct Signed {
    operator: Operator,
    token_hash: [u8; 32],
    csrf: String,
    lang: Lang,
}

impl Signed {
    /// Who a repair's event names: `console:<operator>`.
    fn actor(&self) -> ActorName {
        // Operator names are at most 56 characters of a safe set (`operators::parse_name`),
        // so this always parses.
        ActorName::parse(format!("console:{}", self.operator.name))
            .unwrap_or_else(|_| ActorName::parse("console").expect("a valid actor name"))
    }

    fn may(&self, scope: &str) -> bool {
        self.operator.scopes.iter().any(|s| s == scope)
    }

    /// The page refusing an operator without `scope`.
    fn require(&self, state: &ConsoleState, scope: &str) -> Result<(), Refusal> {
        if self.may(scope) {
            Ok(())
        } else {
            Err(Box::new(message(
                state,
                self.lang,
                Some(self),
                StatusCode::FORBIDDEN,
                &format!("insufficient scope: this needs {scope}"),
            )))
        }
    }

    /// The form's CSRF token must be this session's (compared in constant time).
    /// The gate of every repair: the operator may write, and the form is the console's own.
    fn may_repair(&self, state: &ConsoleState, csrf: &str) -> Result<(), Refusal> {
        self.require(state, SUPPORT_WRITE)
            .and_then(|()| self.check_csrf(state, csrf))
    }

    fn check_csrf(&self, state: &ConsoleState, token: &str) -> Result<(), Refusal> {
        use subtle::ConstantTimeEq as _;
        if bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes())) {
            Ok(())
        } else {
            Err(Box::new(message(
                state,
                self.lang,
                Some(self),
                StatusCode::FORBIDDEN,
                "refused: the form's CSRF token is missing or not this session's",
            )))
        }
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The CSRF token of a session: derived from its secret token, so it needs no storage and
/// cannot be guessed without the cookie.
fn csrf_of(token: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"wxlink console csrf\n");
    hash.update(token.as_bytes());
    hex::encode(hash.finalize())
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

fn session_cookie(token: &str) -> String {
    cookie::Cookie::build((SESSION_COOKIE, token.to_owned()))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .build()
        .to_string()
}

fn expired_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Anything but a live session sends the browser to the sign-in page; an operator whose
/// password is a one-time one can only change it (or sign out).
impl FromRequestParts<Arc<ConsoleState>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ConsoleState>,
    ) -> Result<Self, Self::Rejection> {
        let lang = Lang::of(&parts.headers);
        let to_sign_in = || Redirect::to("/sign-in").into_response();
        let Some(token) = session_token(&parts.headers) else {
            return Err(to_sign_in());
        };
        let hash = token_hash(&token);
        let now = state.clock.now();
        let operator = state
            .store
            .operator_session(
                hash,
                now,
                now.saturating_sub(state.idle_timeout_secs),
                now.saturating_sub(state.max_session_secs),
            )
            .await
            .map_err(|e| store_failure(state, lang, &e.into()))?;
        let Some(operator) = operator else {
            return Err(to_sign_in());
        };
        let path = parts.uri.path();
        if operator.password_expired && path != "/password" && path != "/sign-out" {
            return Err(Redirect::to("/password").into_response());
        }
        Ok(Signed {
            operator,
            token_hash: hash,
            csrf: csrf_of(&token),
            lang,
        })
    }
}

fn store_failure(state: &ConsoleState, lang: Lang, error: &ApiError) -> Response {
    message(state, lang, None, error.status(), &error.message)
}

/// The client address failed sign-ins are counted under (behind trusted proxies, the client
/// they name); `None` in-process, where no connection was accepted.
struct Client(Option<String>);

impl FromRequestParts<Arc<ConsoleState>> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ConsoleState>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Client(peer.map(
            |peer| match state.limits.client(peer, &parts.headers) {
                ClientAddr::Peer(ip) | ClientAddr::Forwarded(ip) => {
                    format!("address:{}", limit_key(ip))
                }
                ClientAddr::Unnamed(proxy) => format!("address:via:{proxy}"),
            },
        )))
    }
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

async fn sign_in_page(State(state): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    let lang = Lang::of(&headers);
    render(
        &state,
        StatusCode::OK,
        "sign_in.html",
        context! { name => "", ..base(lang, None) },
    )
}

/// An Argon2id hash checked when the operator does not exist, so that an unknown name takes
/// as long as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| operators::hash_password("not a password of anyone").unwrap_or_default())
}

async fn sign_in(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Client(address): Client,
    axum::Form(form): axum::Form<SignInForm>,
) -> Response {
    let lang = Lang::of(&headers);
    let now = state.clock.now();
    let refuse = |status: StatusCode, text: &str, retry_after: Option<u64>| {
        let mut page = render(
            &state,
            status,
            "sign_in.html",
            context! { name => form.name.clone(), error => text, ..base(lang, None) },
        );
        if let Some(secs) = retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            page.headers_mut().insert(header::RETRY_AFTER, value);
        }
        page
    };
    let name = operators::parse_name(form.name.trim()).ok();
    let mut keys: Vec<String> = name.iter().map(|n| format!("operator:{n}")).collect();
    keys.extend(address);
    let policy = state.sign_in;
    let gate = state
        .store
        .reserve_sign_in(keys.clone(), now, move |counts| policy.gate(counts, now))
        .await;
    match gate {
        Ok(Ok(())) => {}
        Ok(Err(Gate::Wait(secs))) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many failed sign-ins: try again in {secs} s."),
                Some(secs),
            );
        }
        Ok(Err(Gate::Locked(secs))) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "Locked after too many failed sign-ins: an administrator must reset the \
                 password (wxlink operator reset-password).",
                secs,
            );
        }
        Err(e) => return store_failure(&state, lang, &e.into()),
    }
    let operator = match &name {
        Some(name) => match state.store.operator(name).await {
            Ok(operator) => operator,
            Err(e) => return store_failure(&state, lang, &e.into()),
        },
        None => None,
    };
    let hash = operator
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |o| o.password_hash.clone());
    let password = secrecy::SecretString::from(form.password.clone());
    let matches = tokio::task::spawn_blocking(move || {
        use secrecy::ExposeSecret as _;
        operators::verify_password(password.expose_secret(), &hash)
    })
    .await
    .unwrap_or(false);
    let operator = operator.filter(|o| matches && !o.disabled);
    // The second factor: a code of the current time step, accepted once.
    let operator = match operator {
        Some(o) => match &o.totp_secret {
            None => Some(o),
            Some(secret) => match operators::totp_step(secret, &o.name, &form.code, now) {
                None => None,
                Some(step) => match state.store.accept_totp_step(&o.name, step).await {
                    Ok(true) => Some(o),
                    Ok(false) => None,
                    Err(e) => return store_failure(&state, lang, &e.into()),
                },
            },
        },
        None => None,
    };
    let Some(operator) = operator else {
        tracing::info!(operator = ?name, "console sign-in refused");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Sign-in refused: wrong name, password or code, or a disabled operator.",
            None,
        );
    };
    if let Err(e) = state.store.sign_in_succeeded(keys).await {
        return store_failure(&state, lang, &e.into());
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    if let Err(e) = state
        .store
        .create_operator_session(token_hash(&token), &operator.name, now)
        .await
    {
        return store_failure(&state, lang, &e.into());
    }
    tracing::info!(operator = %operator.name, "console sign-in");
    let next = if operator.password_expired {
        "/password"
    } else {
        "/search"
    };
    let mut response = Redirect::to(next).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session_cookie(&token)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Err(refused) = signed.check_csrf(&state, &form.csrf) {
        return *refused;
    }
    if let Err(e) = state.store.delete_operator_session(signed.token_hash).await {
        return store_failure(&state, signed.lang, &e.into());
    }
    let mut response = Redirect::to("/sign-in").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&expired_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

async fn password_page(State(state): State<Arc<ConsoleState>>, signed: Signed) -> Response {
    render(
        &state,
        StatusCode::OK,
        "password.html",
        context! {
            expired => signed.operator.password_expired,
            min_chars => operators::MIN_PASSWORD_CHARS, ..base(signed.lang, Some(&signed))
        },
    )
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new_password: String,
}

async fn change_password(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    axum::Form(form): axum::Form<PasswordForm>,
) -> Response {
    if let Err(refused) = signed.check_csrf(&state, &form.csrf) {
        return *refused;
    }
    let again = |status: StatusCode, text: &str| {
        render(
            &state,
            status,
            "password.html",
            context! {
                expired => signed.operator.password_expired,
                min_chars => operators::MIN_PASSWORD_CHARS,
                error => text, ..base(signed.lang, Some(&signed))
            },
        )
    };
    if form.new_password.chars().count() < operators::MIN_PASSWORD_CHARS {
        return again(
            StatusCode::BAD_REQUEST,
            &format!(
                "The new password needs at least {} characters.",
                operators::MIN_PASSWORD_CHARS
            ),
        );
    }
    if form.new_password == form.current {
        return again(
            StatusCode::BAD_REQUEST,
            "The new password must differ from the current one.",
        );
    }
    let (current, new, hash) = (
        form.current.clone(),
        form.new_password.clone(),
        signed.operator.password_hash.clone(),
    );
    let hashed = tokio::task::spawn_blocking(move || {
        operators::verify_password(&current, &hash).then(|| operators::hash_password(&new))
    })
    .await
    .ok()
    .flatten();
    let hashed = match hashed {
        Some(Ok(hashed)) => hashed,
        Some(Err(e)) => {
            tracing::error!(error = %e, "cannot hash a password");
            return again(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
        None => return again(StatusCode::UNAUTHORIZED, "The current password is wrong."),
    };
    match state
        .store
        .set_operator_password(&signed.operator.name, hashed, false, state.clock.now())
        .await
    {
        Ok(_) => Redirect::to("/search?done=password").into_response(),
        Err(e) => store_failure(&state, signed.lang, &e.into()),
    }
}

/// A done repair's notice, shown on the page the browser is sent to.
#[derive(Debug, Default, Deserialize)]
struct Done {
    done: Option<String>,
}

fn notice(lang: Lang, done: Option<&str>) -> Option<&'static str> {
    let zh = lang == Lang::Zh;
    Some(match done? {
        "password" if zh => "密码已修改。",
        "password" => "Password changed.",
        "merged" if zh => "已合并。",
        "merged" => "Merged.",
        "split" if zh => "已拆分。",
        "split" => "Split.",
        "unlinked" if zh => "已解绑。",
        "unlinked" => "Identity unlinked.",
        "revoked" if zh => "会话已撤销。",
        "revoked" => "Sessions revoked.",
        "cancelled" if zh => "账号已注销。",
        "cancelled" => "Account cancelled.",
        _ => return None,
    })
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    done: Option<String>,
}

async fn search(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Query(query): Query<SearchQuery>,
) -> Response {
    if let Err(refused) = signed.require(&state, USERS_READ) {
        return *refused;
    }
    let q = query.q.trim().to_owned();
    let found = if q.is_empty() {
        Vec::new()
    } else {
        match find_users(&state.store, &q).await {
            Ok(found) => found,
            Err(e) => return store_failure(&state, signed.lang, &e.into()),
        }
    };
    let users: Vec<_> = found.iter().map(|r| user_row(&state, &signed, r)).collect();
    render(
        &state,
        StatusCode::OK,
        "search.html",
        context! {
            q => q,
            users => users,
            notice => notice(signed.lang, query.done.as_deref()), ..base(signed.lang, Some(&signed))
        },
    )
}

/// Every user the text could name: as a user id, a unionid, an openid of any app, or a phone
/// number (digits, spaces and dashes; a leading `+` and country code are tried without).
async fn find_users(store: &Store, q: &str) -> Result<Vec<UserRecord>, wxlink_domain::StoreError> {
    let mut found: Vec<UserRecord> = Vec::new();
    let mut add = |records: Vec<UserRecord>| {
        for record in records {
            if !found.iter().any(|f| f.user.id == record.user.id) {
                found.push(record);
            }
        }
    };
    if let Ok(id) = UserId::parse(q.to_owned()) {
        add(store.user_by_id(&id).await?.into_iter().collect());
    }
    if let Ok(unionid) = UnionId::parse(q.to_owned()) {
        add(store.user_by_unionid(&unionid).await?.into_iter().collect());
    }
    if let Ok(openid) = OpenId::parse(q.to_owned()) {
        add(store.users_by_openid(&openid).await?);
    }
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    let phone_like = q
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '+' | '(' | ')'));
    if phone_like && (5..=20).contains(&digits.len()) {
        add(store.users_by_phone(&digits).await?);
        if q.starts_with('+') {
            // Without the country code: WeChat's purePhoneNumber.
            for cc in 1..=3 {
                if let Some(rest) = digits.get(cc..).filter(|r| r.len() >= 5) {
                    add(store.users_by_phone(rest).await?);
                }
            }
        }
    }
    Ok(found)
}

/// A phone number with all but its last four digits masked.
fn masked(phone: &PhoneNumber) -> String {
    let digits: Vec<char> = phone.pure_phone_number.chars().collect();
    let keep = digits.len().saturating_sub(4);
    digits
        .iter()
        .enumerate()
        .map(|(i, c)| if i < keep { '*' } else { *c })
        .collect()
}

fn shown_phone(signed: &Signed, phone: Option<&PhoneNumber>) -> Option<String> {
    phone.map(|p| {
        if signed.may(USERS_PHONE) {
            p.phone_number.clone()
        } else {
            masked(p)
        }
    })
}

fn kind_name(kind: Option<AppKind>) -> &'static str {
    match kind {
        Some(AppKind::MiniProgram) => "mini_program",
        Some(AppKind::OfficialAccount) => "official_account",
        Some(AppKind::MobileApp) => "mobile_app",
        Some(AppKind::Website) => "website",
        None => "-",
    }
}

fn when(at: UnixTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| at.to_string())
}

fn status_of(lang: Lang, merged_into: Option<&UserId>, unionid: bool, deleted: bool) -> String {
    if deleted {
        lang.t("cancelled").to_owned()
    } else if merged_into.is_some() {
        lang.t("merged").to_owned()
    } else if unionid {
        lang.t("linked").to_owned()
    } else {
        lang.t("provisional").to_owned()
    }
}

fn identity_view(state: &ConsoleState, appid: &AppId, openid: &OpenId) -> minijinja::Value {
    let kind = state.apps.get(appid).copied();
    context! {
        app => appid.to_string(),
        appid => appid.to_string(),
        openid => openid.to_string(),
        kind => kind_name(kind),
    }
}

fn user_row(state: &ConsoleState, signed: &Signed, record: &UserRecord) -> minijinja::Value {
    let user = &record.user;
    context! {
        id => user.id.to_string(),
        status => status_of(signed.lang, user.merged_into.as_ref(), user.unionid.is_some(), false),
        identities => record.identities.iter().map(|(a, o)| identity_view(state, a, o)).collect::<Vec<_>>(),
        phone => shown_phone(signed, record.phone_number.as_ref()),
        unionid => user.unionid.as_ref().map(ToString::to_string),
        created => when(user.created_at),
    }
}

async fn duplicates(State(state): State<Arc<ConsoleState>>, signed: Signed) -> Response {
    if let Err(refused) = signed.require(&state, USERS_READ) {
        return *refused;
    }
    let groups = match state.store.possible_duplicates(DUPLICATE_GROUPS).await {
        Ok(groups) => groups,
        Err(e) => return store_failure(&state, signed.lang, &e.into()),
    };
    let groups: Vec<_> = groups
        .iter()
        .map(|group| {
            // Suggested: the user with a unionid (else the oldest) stays, the newest goes.
            let into = group
                .iter()
                .find(|r| r.user.unionid.is_some())
                .or_else(|| group.last())
                .map(|r| r.user.id.to_string());
            let from = group
                .iter()
                .find(|r| Some(r.user.id.to_string()) != into)
                .map(|r| r.user.id.to_string());
            context! {
                users => group.iter().map(|r| user_row(&state, &signed, r)).collect::<Vec<_>>(),
                into => into,
                from => from,
            }
        })
        .collect();
    render(
        &state,
        StatusCode::OK,
        "duplicates.html",
        context! {
            groups => groups,
            can_write => signed.may(SUPPORT_WRITE), ..base(signed.lang, Some(&signed))
        },
    )
}

fn parse_user(state: &ConsoleState, signed: &Signed, id: &str) -> Result<UserId, Refusal> {
    UserId::parse(id.to_owned()).map_err(|e| {
        Box::new(message(
            state,
            signed.lang,
            Some(signed),
            StatusCode::BAD_REQUEST,
            &format!("user id: {e}"),
        ))
    })
}

async fn load_user(
    state: &ConsoleState,
    signed: &Signed,
    id: &UserId,
) -> Result<ConsoleUser, Refusal> {
    match state.store.console_user(id, state.clock.now()).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(Box::new(message(
            state,
            signed.lang,
            Some(signed),
            StatusCode::NOT_FOUND,
            &format!("no user {id}"),
        ))),
        Err(e) => Err(Box::new(store_failure(state, signed.lang, &e.into()))),
    }
}

fn event_detail(event: &Event) -> String {
    let mut parts = Vec::new();
    if let Some(other) = &event.other_user_id {
        parts.push(format!("other: {other}"));
    }
    if let Some(detail) = &event.detail {
        parts.push(format!("by: {}", detail.by.as_str()));
        if let Some(actor) = &detail.actor {
            parts.push(format!("actor: {}", actor.as_str()));
        }
        if let Some(unionid) = detail.unionid {
            parts.push(format!("unionid: {}", unionid.as_str()));
        }
        if let Some(phone) = detail.phone {
            parts.push(format!("phone: {}", phone.as_str()));
        }
        if let Some(n) = detail.sessions {
            parts.push(format!("sessions: {n}"));
        }
        if let Some(n) = detail.identities {
            parts.push(format!("identities: {n}"));
        }
    }
    parts.join(", ")
}

fn user_view(state: &ConsoleState, signed: &Signed, user: &ConsoleUser) -> minijinja::Value {
    let record = &user.record;
    let deleted = user.deleted_at.is_some();
    let identities: Vec<_> = record
        .identities
        .iter()
        .map(|(appid, openid)| {
            let sessions = user
                .live_sessions
                .iter()
                .find(|((a, o), _)| a == appid && o == openid)
                .map_or(0, |(_, n)| *n);
            context! {
                sessions => sessions,
                vouches => if user.vouching.iter().any(|(a, o)| a == appid && o == openid) { signed.lang.t("yes") } else { signed.lang.t("no") }, ..identity_view(state, appid, openid)
            }
        })
        .collect();
    context! {
        id => record.user.id.to_string(),
        status => status_of(signed.lang, record.user.merged_into.as_ref(), record.user.unionid.is_some(), deleted),
        merged_into => record.user.merged_into.as_ref().map(ToString::to_string),
        unionid => record.user.unionid.as_ref().map(ToString::to_string),
        phone => shown_phone(signed, record.phone_number.as_ref()),
        created => when(record.user.created_at),
        merged_from => user.merged_from.iter().map(ToString::to_string).collect::<Vec<_>>(),
        identities => identities,
        active => !deleted && record.user.merged_into.is_none(),
    }
}

async fn user_page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    if let Err(refused) = signed.require(&state, USERS_READ) {
        return *refused;
    }
    let id = match parse_user(&state, &signed, &id) {
        Ok(id) => id,
        Err(refused) => return *refused,
    };
    let user = match load_user(&state, &signed, &id).await {
        Ok(user) => user,
        Err(refused) => return *refused,
    };
    let timeline = if signed.may(EVENTS_READ) {
        match state.store.events_of_user(&id, TIMELINE_EVENTS).await {
            Ok(events) => Some(
                events
                    .iter()
                    .map(|(_, e)| {
                        context! {
                            at => when(e.at),
                            kind => e.kind.as_str(),
                            app => e.appid.to_string(),
                            detail => event_detail(e),
                        }
                    })
                    .collect::<Vec<_>>(),
            ),
            Err(e) => return store_failure(&state, signed.lang, &e.into()),
        }
    } else {
        None
    };
    render(
        &state,
        StatusCode::OK,
        "user.html",
        context! {
            u => user_view(&state, &signed, &user),
            timeline => timeline,
            can_write => signed.may(SUPPORT_WRITE),
            can_split => user.record.identities.len() > 1,
            notice => notice(signed.lang, done.done.as_deref()), ..base(signed.lang, Some(&signed))
        },
    )
}

/// A refused or failed use case, as the internal API would answer it.
fn refused(state: &ConsoleState, signed: &Signed, error: DomainError) -> Response {
    let error = ApiError::from(error);
    message(
        state,
        signed.lang,
        Some(signed),
        error.status(),
        &format!("{}: {}", error.code.as_str(), error.message),
    )
}

#[derive(Debug, Deserialize)]
struct MergeQuery {
    #[serde(default)]
    into: String,
    #[serde(default)]
    from: String,
}

/// What a merge will move, in words, from the domain's [`wxlink_domain::MergePlan`].
fn merge_moves(lang: Lang, plan: &wxlink_domain::MergePlan) -> Vec<String> {
    let zh = lang == Lang::Zh;
    let (into, from) = (&plan.into.id, &plan.from.id);
    let mut lines: Vec<String> = plan
        .identities
        .iter()
        .map(|(appid, openid)| {
            if zh {
                format!("身份 {appid} · {openid} 迁移到 {into}")
            } else {
                format!("identity {appid} · {openid} moves to {into}")
            }
        })
        .collect();
    lines.push(if zh {
        format!("{} 个有效会话此后代表 {into}", plan.sessions)
    } else {
        format!("{} live sessions act as {into} from then on", plan.sessions)
    });
    lines.push(match (plan.phone, zh) {
        // A merge never keeps a phone number where it is (`Stayed` is a split's).
        (PhoneMerge::None | PhoneMerge::Stayed, false) => {
            format!("{from} has no phone number: none moves")
        }
        (PhoneMerge::None | PhoneMerge::Stayed, true) => format!("{from} 没有手机号"),
        (PhoneMerge::Moved, false) => format!("the phone number moves to {into}"),
        (PhoneMerge::Moved, true) => format!("手机号迁移到 {into}"),
        (PhoneMerge::ReplacedOwner, false) => {
            format!("the newer phone number of {from} replaces that of {into}")
        }
        (PhoneMerge::ReplacedOwner, true) => format!("{from} 较新的手机号替换 {into} 的手机号"),
        (PhoneMerge::KeptOwner, false) => {
            format!("{into} keeps its newer phone number; that of {from} is erased")
        }
        (PhoneMerge::KeptOwner, true) => {
            format!("{into} 保留其较新的手机号，{from} 的手机号被删除")
        }
    });
    lines.push(match (&plan.unionid, zh) {
        (Some(u), false) => format!("unionid {u} moves to {into}"),
        (Some(u), true) => format!("unionid {u} 迁移到 {into}"),
        (None, false) => "no unionid moves".to_owned(),
        (None, true) => "unionid 不变".to_owned(),
    });
    lines
}

fn plan_side(
    state: &ConsoleState,
    signed: &Signed,
    user: &wxlink_domain::User,
    identities: &[(AppId, OpenId)],
    phone: Option<&PhoneNumber>,
) -> minijinja::Value {
    context! {
        id => user.id.to_string(),
        unionid => user.unionid.as_ref().map(ToString::to_string),
        phone => shown_phone(signed, phone),
        identities => identities.iter().map(|(a, o)| identity_view(state, a, o)).collect::<Vec<_>>(),
    }
}

async fn merge_preview(
    state: &ConsoleState,
    signed: &Signed,
    into: &str,
    from: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let page = |plan: Option<minijinja::Value>, error: Option<String>, status| {
        render(
            state,
            status,
            "merge.html",
            context! {
                into => into, from => from, plan => plan, error => error, ..base(signed.lang, Some(signed))
            },
        )
    };
    if into.is_empty() || from.is_empty() {
        return page(None, None, StatusCode::OK);
    }
    let (into_id, from_id) = match (
        parse_user(state, signed, into),
        parse_user(state, signed, from),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(refused), _) | (_, Err(refused)) => return *refused,
    };
    let plan = match state
        .accounts
        .preview_merge(into_id.clone(), from_id.clone())
        .await
    {
        Ok(plan) => plan,
        Err(e) => {
            let e = ApiError::from(e);
            return page(
                None,
                Some(format!("{}: {}", e.code.as_str(), e.message)),
                e.status(),
            );
        }
    };
    let (into_user, from_user) = match (
        load_user(state, signed, &into_id).await,
        load_user(state, signed, &from_id).await,
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(refused), _) | (_, Err(refused)) => return *refused,
    };
    let view = context! {
        into => plan_side(state, signed, &plan.into, &into_user.record.identities, into_user.record.phone_number.as_ref()),
        from => plan_side(state, signed, &plan.from, &plan.identities, from_user.record.phone_number.as_ref()),
        moves => merge_moves(signed.lang, &plan),
    };
    page(Some(view), error.map(str::to_owned), status)
}

async fn merge_page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Query(query): Query<MergeQuery>,
) -> Response {
    if let Err(refused) = signed.require(&state, SUPPORT_WRITE) {
        return *refused;
    }
    merge_preview(
        &state,
        &signed,
        query.into.trim(),
        query.from.trim(),
        StatusCode::OK,
        None,
    )
    .await
}

#[derive(Debug, Deserialize)]
struct MergeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    into: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    confirm: String,
}

async fn merge(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    axum::Form(form): axum::Form<MergeForm>,
) -> Response {
    if let Err(refused) = signed.may_repair(&state, &form.csrf) {
        return *refused;
    }
    if form.confirm.trim() != form.into.trim() {
        let text = if signed.lang == Lang::Zh {
            "未合并：输入的 ID 与保留的用户不符。"
        } else {
            "Not merged: the id typed is not the one of the user that stays."
        };
        return merge_preview(
            &state,
            &signed,
            form.into.trim(),
            form.from.trim(),
            StatusCode::BAD_REQUEST,
            Some(text),
        )
        .await;
    }
    let (into, from) = match (
        parse_user(&state, &signed, form.into.trim()),
        parse_user(&state, &signed, form.from.trim()),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(refused), _) | (_, Err(refused)) => return *refused,
    };
    tracing::info!(operator = %signed.operator.name, %into, %from, "console: merge");
    match state.accounts.merge(into, from, signed.actor()).await {
        Ok(survivor) => Redirect::to(&format!("/users/{survivor}?done=merged")).into_response(),
        Err(e) => refused(&state, &signed, e),
    }
}

#[derive(Debug, Deserialize)]
struct IdentityQuery {
    #[serde(default)]
    appid: String,
    #[serde(default)]
    openid: String,
}

fn parse_identity(
    state: &ConsoleState,
    signed: &Signed,
    appid: &str,
    openid: &str,
) -> Result<(AppId, OpenId), Refusal> {
    let bad = |e: String| {
        Box::new(message(
            state,
            signed.lang,
            Some(signed),
            StatusCode::BAD_REQUEST,
            &e,
        ))
    };
    let appid = AppId::parse(appid.to_owned()).map_err(|e| bad(format!("appid: {e}")))?;
    let openid = OpenId::parse(openid.to_owned()).map_err(|e| bad(format!("openid: {e}")))?;
    Ok((appid, openid))
}

struct Confirmation<'a> {
    heading: &'a str,
    user: &'a UserId,
    lines: Vec<String>,
    action: String,
    fields: Vec<(&'static str, String)>,
}

/// The confirmation page of a repair that posts nothing but the form's CSRF token, to
/// `/users/{id}/{path}`; `heading` is the i18n key.
fn confirm_user_repair(
    state: &ConsoleState,
    signed: &Signed,
    id: &UserId,
    heading: &str,
    path: &str,
    lines: Vec<String>,
) -> Response {
    confirm_page(
        state,
        signed,
        Confirmation {
            heading: signed.lang.t(heading),
            user: id,
            lines,
            action: format!("/users/{id}/{path}"),
            fields: Vec::new(),
        },
    )
}

fn confirm_page(state: &ConsoleState, signed: &Signed, page: Confirmation<'_>) -> Response {
    render(
        state,
        StatusCode::OK,
        "confirm.html",
        context! {
            heading => page.heading,
            user_id => page.user.to_string(),
            lines => page.lines,
            action => page.action,
            fields => page.fields.into_iter().map(|(name, value)| context! { name => name, value => value }).collect::<Vec<_>>(), ..base(signed.lang, Some(signed))
        },
    )
}

/// A repair's post needs `support:write`, the console's own form and a valid user id.
fn repair_subject(
    state: &ConsoleState,
    signed: &Signed,
    csrf: &str,
    id: &str,
) -> Result<UserId, Refusal> {
    signed.may_repair(state, csrf)?;
    parse_user(state, signed, id)
}

/// A repair ends on the user's page saying what was `done`, or on the domain's refusal.
fn repaired<T>(
    state: &ConsoleState,
    signed: &Signed,
    outcome: Result<T, DomainError>,
    id: &UserId,
    done: &str,
) -> Response {
    match outcome {
        Ok(_) => Redirect::to(&format!("/users/{id}?done={done}")).into_response(),
        Err(e) => refused(state, signed, e),
    }
}

/// A repair that needs nothing but its user: checked, logged (`what`), done, and back on the
/// user's page saying it is `done`.
async fn repair_user<T, F, Fut>(
    state: &ConsoleState,
    signed: &Signed,
    csrf: &str,
    id: &str,
    what: &str,
    done: &str,
    act: F,
) -> Response
where
    F: FnOnce(UserId, ActorName) -> Fut,
    Fut: std::future::Future<Output = Result<T, DomainError>>,
{
    let id = match repair_subject(state, signed, csrf, id) {
        Ok(id) => id,
        Err(refused) => return *refused,
    };
    tracing::info!(operator = %signed.operator.name, user = %id, "console: {what}");
    let outcome = act(id.clone(), signed.actor()).await;
    repaired(state, signed, outcome, &id, done)
}

/// A repair's confirmation page needs `support:write`, a valid user id and the user.
async fn repair_target(
    state: &ConsoleState,
    signed: &Signed,
    id: &str,
) -> Result<(UserId, ConsoleUser), Refusal> {
    signed.require(state, SUPPORT_WRITE)?;
    let id = parse_user(state, signed, id)?;
    let user = load_user(state, signed, &id).await?;
    Ok((id, user))
}

async fn unlink_page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    Query(query): Query<IdentityQuery>,
) -> Response {
    let (id, user) = match repair_target(&state, &signed, &id).await {
        Ok(target) => target,
        Err(refused) => return *refused,
    };
    let (appid, openid) = match parse_identity(&state, &signed, &query.appid, &query.openid) {
        Ok(identity) => identity,
        Err(refused) => return *refused,
    };
    let sessions = user
        .live_sessions
        .iter()
        .find(|((a, o), _)| *a == appid && *o == openid)
        .map_or(0, |(_, n)| *n);
    let lines = if signed.lang == Lang::Zh {
        vec![
            format!("身份 {appid} · {openid} 从用户 {id} 解绑"),
            format!("撤销其 {sessions} 个有效会话"),
            "其下次登录将创建新的临时用户".to_owned(),
        ]
    } else {
        vec![
            format!("identity {appid} · {openid} is detached from user {id}"),
            format!("its {sessions} live sessions are revoked"),
            "its next login makes a new provisional user".to_owned(),
        ]
    };
    confirm_page(
        &state,
        &signed,
        Confirmation {
            heading: signed.lang.t("unlink"),
            user: &id,
            lines,
            action: format!("/users/{id}/unlink"),
            fields: vec![("appid", appid.to_string()), ("openid", openid.to_string())],
        },
    )
}

#[derive(Debug, Deserialize)]
struct IdentityForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    appid: String,
    #[serde(default)]
    openid: String,
}

async fn unlink(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<IdentityForm>,
) -> Response {
    let checked = repair_subject(&state, &signed, &form.csrf, &id)
        .and_then(|id| parse_identity(&state, &signed, &form.appid, &form.openid).map(|i| (id, i)));
    let (id, (appid, openid)) = match checked {
        Ok(checked) => checked,
        Err(refused) => return *refused,
    };
    tracing::info!(operator = %signed.operator.name, user = %id, %appid, "console: unlink");
    let outcome = state
        .accounts
        .unlink_identity(id.clone(), appid, openid, signed.actor())
        .await;
    repaired(&state, &signed, outcome, &id, "unlinked")
}

async fn revoke_page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let (id, user) = match repair_target(&state, &signed, &id).await {
        Ok(target) => target,
        Err(refused) => return *refused,
    };
    let sessions: u64 = user.live_sessions.iter().map(|(_, n)| n).sum();
    let lines = if signed.lang == Lang::Zh {
        vec![format!(
            "撤销用户 {id}（及并入它的用户）的 {sessions} 个有效会话"
        )]
    } else {
        vec![format!(
            "{sessions} live sessions of user {id} (and of the users merged into it) are revoked"
        )]
    };
    confirm_user_repair(&state, &signed, &id, "revoke", "revoke-sessions", lines)
}

async fn revoke_sessions(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let accounts = &state.accounts;
    repair_user(
        &state,
        &signed,
        &form.csrf,
        &id,
        "revoke sessions",
        "revoked",
        |id, actor| accounts.revoke_sessions(id, actor),
    )
    .await
}

async fn cancel_page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let (id, user) = match repair_target(&state, &signed, &id).await {
        Ok(target) => target,
        Err(refused) => return *refused,
    };
    let sessions: u64 = user.live_sessions.iter().map(|(_, n)| n).sum();
    let identities = user.record.identities.len();
    let lines = if signed.lang == Lang::Zh {
        vec![
            format!("撤销 {sessions} 个有效会话，释放 {identities} 个身份"),
            "删除 unionid、手机号和 session_key；用户 ID 作为墓碑保留".to_owned(),
        ]
    } else {
        vec![
            format!("{sessions} live sessions are revoked, {identities} identities released"),
            "the unionid, phone number and session keys are erased; the id stays as a tombstone"
                .to_owned(),
        ]
    };
    confirm_user_repair(&state, &signed, &id, "cancel", "cancel", lines)
}

async fn cancel_account(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let accounts = &state.accounts;
    repair_user(
        &state,
        &signed,
        &form.csrf,
        &id,
        "cancel account",
        "cancelled",
        |id, actor| accounts.delete_user(id, actor),
    )
    .await
}

/// The identities a split moves and the user it restores (`None`: a new user).
type SplitChoice = (Vec<(AppId, OpenId)>, Option<UserId>);

/// A split's form: `identity` (`APPID:OPENID`, repeated), `into` (empty: a new user) and,
/// when posted, `csrf`.
#[derive(Debug, Default)]
struct SplitForm {
    identities: Vec<String>,
    into: String,
    csrf: String,
}

impl SplitForm {
    fn of(pairs: Vec<(String, String)>) -> Self {
        let mut form = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "identity" => form.identities.push(value),
                "into" => form.into = value.trim().to_owned(),
                "csrf" => form.csrf = value,
                _ => {}
            }
        }
        form
    }

    /// The identities and the user to restore, parsed.
    fn parse(&self, state: &ConsoleState, signed: &Signed) -> Result<SplitChoice, Refusal> {
        let identities = self
            .identities
            .iter()
            .map(|pair| {
                let (appid, openid) = pair.split_once(':').unwrap_or((pair.as_str(), ""));
                parse_identity(state, signed, appid, openid)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let into = match self.into.as_str() {
            "" => None,
            id => Some(parse_user(state, signed, id)?),
        };
        Ok((identities, into))
    }
}

/// Where each fact goes, in words, from the domain's [`wxlink_domain::SplitPlan`].
fn split_lines(lang: Lang, plan: &wxlink_domain::SplitPlan, user: &ConsoleUser) -> Vec<String> {
    use wxlink_domain::UnionidSplit;
    let zh = lang == Lang::Zh;
    let target = plan
        .into
        .as_ref()
        .map_or_else(|| lang.t("new_user").to_owned(), ToString::to_string);
    let source = &plan.user;
    let mut lines: Vec<String> = plan
        .identities
        .iter()
        .map(|(appid, openid)| {
            let sessions = user
                .live_sessions
                .iter()
                .find(|((a, o), _)| a == appid && o == openid)
                .map_or(0, |(_, n)| *n);
            if zh {
                format!("身份 {appid} · {openid} 及其 {sessions} 个有效会话迁往 {target}")
            } else {
                format!(
                    "identity {appid} · {openid} and its {sessions} live sessions go to {target}"
                )
            }
        })
        .collect();
    for (appid, openid) in &plan.remaining {
        lines.push(if zh {
            format!("身份 {appid} · {openid} 留在 {source}")
        } else {
            format!("identity {appid} · {openid} stays with {source}")
        });
    }
    lines.push(match (plan.unionid, zh) {
        (UnionidSplit::Moved, false) => format!("the unionid goes to {target}"),
        (UnionidSplit::Moved, true) => format!("unionid 迁往 {target}"),
        (UnionidSplit::Stayed, false) => format!("the unionid stays with {source}"),
        (UnionidSplit::Stayed, true) => format!("unionid 留在 {source}"),
        (UnionidSplit::None, false) => "no unionid".to_owned(),
        (UnionidSplit::None, true) => "没有 unionid".to_owned(),
    });
    lines.push(match (plan.phone, zh) {
        (PhoneMerge::Moved, false) => format!("the phone number goes to {target}"),
        (PhoneMerge::Moved, true) => format!("手机号迁往 {target}"),
        (PhoneMerge::None, false) => "no phone number".to_owned(),
        (PhoneMerge::None, true) => "没有手机号".to_owned(),
        (_, false) => format!("the phone number stays with {source}"),
        (_, true) => format!("手机号留在 {source}"),
    });
    lines
}

async fn split_page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let (id, user) = match repair_target(&state, &signed, &id).await {
        Ok(target) => target,
        Err(refused) => return *refused,
    };
    let form = SplitForm::of(pairs);
    let (chosen, into) = match form.parse(&state, &signed) {
        Ok(parsed) => parsed,
        Err(refused) => return *refused,
    };
    let (plan, error, status) = if chosen.is_empty() {
        (None, None, StatusCode::OK)
    } else {
        match state
            .accounts
            .preview_split(id.clone(), chosen.clone(), into.clone())
            .await
        {
            Ok(plan) => {
                let view = context! {
                    lines => split_lines(signed.lang, &plan, &user),
                    identities => plan.identities.iter().map(|(a, o)| format!("{a}:{o}")).collect::<Vec<_>>(),
                };
                (Some(view), None, StatusCode::OK)
            }
            Err(e) => {
                let e = ApiError::from(e);
                (
                    None,
                    Some(format!("{}: {}", e.code.as_str(), e.message)),
                    e.status(),
                )
            }
        }
    };
    let identities: Vec<_> = user
        .record
        .identities
        .iter()
        .map(|(appid, openid)| {
            context! {
                checked => chosen.iter().any(|(a, o)| a == appid && o == openid),
                ..identity_view(&state, appid, openid)
            }
        })
        .collect();
    render(
        &state,
        status,
        "split.html",
        context! {
            user_id => id.to_string(),
            identities => identities,
            merged_from => user.merged_from.iter().map(ToString::to_string).collect::<Vec<_>>(),
            into => into.map(|u| u.to_string()).unwrap_or_default(),
            plan => plan,
            error => error,
            ..base(signed.lang, Some(&signed))
        },
    )
}

async fn split(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = SplitForm::of(pairs);
    let checked = repair_subject(&state, &signed, &form.csrf, &id)
        .and_then(|id| form.parse(&state, &signed).map(|parsed| (id, parsed)));
    let (id, (identities, into)) = match checked {
        Ok(checked) => checked,
        Err(refused) => return *refused,
    };
    tracing::info!(operator = %signed.operator.name, user = %id, "console: split");
    match state
        .accounts
        .split(id, identities, into, signed.actor())
        .await
    {
        Ok(split) => Redirect::to(&format!("/users/{}?done=split", split.user)).into_response(),
        Err(e) => refused(&state, &signed, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(when(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn templates_all_parse() {
        let templates = Templates::new();
        for name in ["sign_in.html", "user.html", "merge.html", "duplicates.html"] {
            assert!(templates.0.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn languages_follow_accept_language() {
        let of = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_LANGUAGE,
                HeaderValue::from_str(value).expect("header"),
            );
            Lang::of(&headers)
        };
        assert_eq!(of("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(of("en-US,en;q=0.9,zh;q=0.5"), Lang::En);
        assert_eq!(of("fr"), Lang::En);
        assert_eq!(of("fr, zh-TW;q=0.5"), Lang::Zh);
    }
}
