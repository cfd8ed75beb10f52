//! The OpenAPI 3 document of the whole HTTP API, generated from the handlers and the wire
//! types; kept in full in `docs/openapi.json` and served at `/openapi.json` with the routes this
//! server mounts: the internal routes only when clients are configured (without them they
//! answer 404, so listing them would be a false promise).

use std::sync::{Arc, LazyLock};

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use wxlink_domain::{AppId, Grammar, JsCode, OpenId, UnionId, UserId};

use super::{clients, handlers as http, internal, tokens, wire};

/// Every route with its method, in one list: the router test checks each exists, and the
/// document test checks the document has exactly these.
#[cfg(test)]
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/v1/wechat/login"),
    ("post", "/v1/wechat/user-info"),
    ("post", "/v1/wechat/phone-number"),
    ("get", "/v1/me"),
    ("delete", "/v1/me"),
    ("post", "/v1/logout"),
    ("post", "/v1/token/refresh"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/.well-known/openid-configuration"),
    ("get", "/internal/v1/users/{user_id}"),
    ("get", "/internal/v1/users"),
    ("get", "/internal/v1/events"),
    ("post", "/internal/v1/users/{user_id}/revoke-sessions"),
    (
        "delete",
        "/internal/v1/users/{user_id}/identities/{appid}/{openid}",
    ),
    ("post", "/internal/v1/users/{into}/merge"),
    ("post", "/internal/v1/users/{user_id}/split"),
    ("post", "/internal/v1/introspect"),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wxlink",
        description = "WeChat login that links every app's identity of one person to one user by UnionID. Errors are `{\"error\": {\"code\", \"message\", \"request_id\"}}`; see docs/contract.md.",
    ),
    paths(
        http::healthz,
        http::prometheus_metrics,
        openapi_document,
        http::login,
        http::user_info,
        http::phone_number,
        http::me,
        http::cancel_account,
        http::logout,
        tokens::refresh,
        tokens::jwks,
        tokens::openid_configuration,
        internal::user_by_id,
        internal::find_user,
        internal::events,
        internal::revoke_sessions,
        internal::unlink_identity,
        internal::merge,
        internal::split,
        internal::introspect,
    ),
    components(schemas(
        wire::LoginRequest,
        wire::LoginResponse,
        wire::UserInfoRequest,
        wire::UserInfoResponse,
        wire::PhoneNumberRequest,
        wire::PhoneNumberResponse,
        wire::MeResponse,
        wire::Identity,
        wire::Health,
        wire::ErrorBody,
        wire::ErrorDetail,
        wire::InternalUser,
        wire::FeedEvent,
        wire::EventDetail,
        wire::EventsPage,
        wire::RevokedSessions,
        wire::MergeRequest,
        wire::SplitRequest,
        wire::SplitResponse,
        wire::IntrospectRequest,
        wire::IntrospectResponse,
        wire::RefreshRequest,
        wire::RefreshResponse,
        wire::Jwks,
        wire::Jwk,
        wire::OpenIdConfiguration,
    )),
    modifiers(&IdGrammars, &Security, &FindUserQuery, &SignedTogether, &BodyLimit),
    tags(
        (name = "users", description = "What a mini program (or web page, or app) calls"),
        (name = "internal", description = "Other teams' services: named clients, each route with its scope"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
struct ApiDoc;

/// Which identifier a field or parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    App,
    Open,
    Union,
    User,
    Code,
}

impl Id {
    /// The grammar its parser checks, from the domain: the one home of each identifier's rules.
    fn grammar(self) -> Grammar {
        match self {
            Id::App => AppId::grammar(),
            Id::Open => OpenId::grammar(),
            Id::Union => UnionId::grammar(),
            Id::User => UserId::grammar(),
            Id::Code => JsCode::grammar(),
        }
    }

    /// Its JSON Schema.
    fn schema(self) -> serde_json::Value {
        let grammar = self.grammar();
        serde_json::json!({
            "type": "string",
            "pattern": grammar.pattern,
            "minLength": grammar.min_length,
            "maxLength": grammar.max_length,
        })
    }
}

/// The identifiers of the request bodies: schema, property, identifier.
const ID_PROPERTIES: &[(&str, &str, Id)] = &[
    ("LoginRequest", "appid", Id::App),
    ("LoginRequest", "code", Id::Code),
    ("UserInfoRequest", "code", Id::Code),
    ("CancelRequest", "code", Id::Code),
    ("PhoneNumberRequest", "code", Id::Code),
    ("MergeRequest", "from", Id::User),
    ("SplitRequest", "into", Id::User),
];

/// The identifiers of the paths, by parameter name: every route names them alike.
const ID_PATH_PARAMETERS: &[(&str, Id)] = &[
    ("user_id", Id::User),
    ("into", Id::User),
    ("appid", Id::App),
    ("openid", Id::Open),
];

/// Each identifier's `pattern` and lengths, from the domain's grammar: utoipa's attributes take
/// only literals, which would restate it.
struct IdGrammars;

impl Modify for IdGrammars {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{RefOr, Schema};
        let state = |schema: &mut RefOr<Schema>, id: Id| {
            if let RefOr::T(Schema::Object(object)) = schema {
                let grammar = id.grammar();
                object.pattern = Some(grammar.pattern);
                object.min_length = Some(grammar.min_length);
                object.max_length = Some(grammar.max_length);
            }
        };
        if let Some(components) = doc.components.as_mut() {
            for (schema, property, id) in ID_PROPERTIES {
                if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*schema)
                    && let Some(field) = object.properties.get_mut(*property)
                {
                    state(field, *id);
                }
            }
        }
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for parameter in operation.parameters.iter_mut().flatten() {
                    let id = ID_PATH_PARAMETERS
                        .iter()
                        .find(|(name, _)| *name == parameter.name)
                        .map(|(_, id)| *id);
                    if parameter.parameter_in == ParameterIn::Path
                        && let Some(id) = id
                        && let Some(schema) = parameter.schema.as_mut()
                    {
                        state(schema, id);
                    }
                }
            }
        }
    }
}

/// The security schemes, and each internal route's requirement: a client's token as Bearer, or
/// its name and token as HTTP Basic, with the route's scope from the one table the middleware
/// enforces (OpenAPI 3.1 lets the scopes of a non-OAuth scheme name roles).
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("bearer", bearer());
        components.add_security_scheme(SERVICE_TOKEN, bearer());
        components.add_security_scheme(
            CLIENT_BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "An [internal.clients.<name>] client: its name and token, each \
                         form-urlencoded, as user and password (RFC 6749 §2.3.1)",
                    ))
                    .build(),
            ),
        );
        for (method, path, scope) in clients::ROUTE_SCOPES {
            let Some(item) = doc.paths.paths.get_mut(*path) else {
                continue;
            };
            let operation = match *method {
                Method::GET => item.get.as_mut(),
                Method::POST => item.post.as_mut(),
                Method::DELETE => item.delete.as_mut(),
                Method::PUT => item.put.as_mut(),
                Method::PATCH => item.patch.as_mut(),
                _ => None,
            };
            if let Some(operation) = operation {
                operation.security = Some(vec![
                    SecurityRequirement::new(SERVICE_TOKEN, [scope.as_str()]),
                    SecurityRequirement::new(CLIENT_BASIC, [scope.as_str()]),
                ]);
            }
        }
    }
}

/// Every route that takes a body answers 413 `payload_too_large` past `[server]
/// max_body_bytes` (the limit layer wraps the whole router, so no handler states it itself).
struct BodyLimit;

impl Modify for BodyLimit {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let too_large = || {
            ResponseBuilder::new()
                .description("`payload_too_large`: the body is over the server's max_body_bytes")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let operations = [
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                if operation.request_body.is_some() {
                    operation
                        .responses
                        .responses
                        .entry("413".to_owned())
                        .or_insert_with(|| too_large().into());
                }
            }
        }
    }
}

/// `GET /internal/v1/users` takes either `unionid`, or `appid` and `openid`: one query object
/// whose schema says so (separate parameters cannot), exploded into the query string.
struct FindUserQuery;

impl Modify for FindUserQuery {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn, ParameterStyle};
        let schema = serde_json::json!({
            "oneOf": [
                {
                    "type": "object",
                    "description": "The user owning this unionid.",
                    "required": ["unionid"],
                    "properties": {"unionid": Id::Union.schema()},
                    "additionalProperties": false,
                },
                {
                    "type": "object",
                    "description": "The user of this (appid, openid) identity.",
                    "required": ["appid", "openid"],
                    "properties": {
                        "appid": Id::App.schema(),
                        "openid": Id::Open.schema(),
                    },
                    "additionalProperties": false,
                },
            ],
        });
        let Ok(schema) = serde_json::from_value::<utoipa::openapi::Schema>(schema) else {
            unreachable!("the query schema is a schema")
        };
        let parameter = ParameterBuilder::new()
            .name("query")
            .parameter_in(ParameterIn::Query)
            .required(utoipa::openapi::Required::True)
            .style(Some(ParameterStyle::Form))
            .explode(Some(true))
            .description(Some("either `unionid`, or `appid` and `openid`"))
            .schema(Some(schema))
            .build();
        if let Some(get) = doc
            .paths
            .paths
            .get_mut("/internal/v1/users")
            .and_then(|item| item.get.as_mut())
        {
            get.parameters = Some(vec![parameter]);
        }
    }
}

/// `raw_data` and `signature` of user info go together: both strings, or both absent (or null).
struct SignedTogether;

impl Modify for SignedTogether {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Type};
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        let Some(object) = components.schemas.remove("UserInfoRequest") else {
            return;
        };
        let pair = |kind: Type| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("raw_data", ObjectBuilder::new().schema_type(kind.clone()))
                .property("signature", ObjectBuilder::new().schema_type(kind))
        };
        let both = pair(Type::String)
            .required("raw_data")
            .required("signature");
        let neither = pair(Type::Null);
        let together = AllOfBuilder::new()
            .item(object)
            .item(AnyOfBuilder::new().item(both).item(neither));
        components
            .schemas
            .insert("UserInfoRequest".to_owned(), together.into());
    }
}

/// The tag, path prefix, schemas and security scheme that only the internal routes use.
const INTERNAL_TAG: &str = "internal";
const INTERNAL_PREFIX: &str = "/internal/";
const INTERNAL_SCHEMAS: &[&str] = &[
    "InternalUser",
    "FeedEvent",
    "EventDetail",
    "EventsPage",
    "RevokedSessions",
    "MergeRequest",
    "SplitRequest",
    "SplitResponse",
    "IntrospectRequest",
    "IntrospectResponse",
];
const SERVICE_TOKEN: &str = "service_token";
const CLIENT_BASIC: &str = "client_basic";
const INTERNAL_SECURITY: &[&str] = &[SERVICE_TOKEN, CLIENT_BASIC];

fn openapi(with_internal: bool, with_signed: bool) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    if !with_signed {
        // Opaque tokens: the signed tokens' routes answer 404, so they are not listed.
        doc.paths
            .paths
            .retain(|path, _| !tokens::PATHS.contains(&path.as_str()));
        if let Some(components) = &mut doc.components {
            components
                .schemas
                .retain(|name, _| !tokens::SCHEMAS.contains(&name.as_str()));
        }
    }
    // The version is the crate's, so the committed file changes with releases only.
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    if !with_internal {
        doc.paths
            .paths
            .retain(|path, _| !path.starts_with(INTERNAL_PREFIX));
        if let Some(tags) = &mut doc.tags {
            tags.retain(|tag| tag.name != INTERNAL_TAG);
        }
        if let Some(components) = &mut doc.components {
            components
                .schemas
                .retain(|name, _| !INTERNAL_SCHEMAS.contains(&name.as_str()));
            for scheme in INTERNAL_SECURITY {
                components.security_schemes.remove(*scheme);
            }
        }
    }
    doc
}

fn to_json(doc: &utoipa::openapi::OpenApi) -> String {
    doc.to_pretty_json()
        .unwrap_or_else(|e| unreachable!("the document serializes: {e}"))
}

/// The full document as JSON text, internal routes included, stable from run to run (what
/// `docs/openapi.json` holds).
#[cfg(test)]
pub fn document() -> String {
    to_json(&openapi(true, true))
}

/// The document of a server without service tokens: no internal routes.
#[cfg(test)]
pub fn public_document() -> String {
    to_json(&openapi(false, true))
}

/// What a server serves: with or without the internal routes, and with or without the signed
/// tokens' routes (`[tokens] format = "jwt"`).
fn served_document(with_internal: bool, with_signed: bool) -> serde_json::Value {
    serde_json::from_str(&to_json(&openapi(with_internal, with_signed))).unwrap_or_default()
}

static SERVED: LazyLock<[[serde_json::Value; 2]; 2]> = LazyLock::new(|| {
    [false, true].map(|internal| [false, true].map(|signed| served_document(internal, signed)))
});

/// This document, with the routes this server mounts and its configured appids as the `enum` of
/// the login's `appid` (any other is `unknown_app`; appids are public anyway: every OAuth URL and
/// mini program package carries its own).
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document of the routes this server mounts (the internal ones only with clients configured)", content_type = "application/json")))]
pub(crate) async fn openapi_document(State(state): State<Arc<crate::state::AppState>>) -> Response {
    let internal = usize::from(state.clients.enabled());
    let signed = usize::from(state.tokens.is_some());
    let mut doc = SERVED[internal][signed].clone();
    if state.metrics_apart
        && let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut())
    {
        paths.remove("/metrics");
    }
    let mut appids: Vec<&str> = state.apps.keys().map(|a| a.as_str()).collect();
    appids.sort_unstable();
    if let Some(appid) = doc
        .pointer_mut("/components/schemas/LoginRequest/properties/appid")
        .and_then(|v| v.as_object_mut())
    {
        appid.insert("enum".to_owned(), serde_json::json!(appids));
    }
    Json(doc).into_response()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn committed_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
    }

    /// Like rust-analyzer's tidy checks: locally the file is rewritten and the test fails once
    /// so the change gets committed; under CI a stale file only fails.
    #[test]
    fn docs_openapi_json_is_the_generated_document() {
        let generated = document();
        let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
        if committed.trim_end() != generated.trim_end() {
            if std::env::var_os("CI").is_none() {
                std::fs::write(committed_path(), format!("{generated}\n")).unwrap();
            }
            panic!("docs/openapi.json was stale: regenerated it (locally); commit it");
        }
    }

    /// Every `pattern` in the document, with the name of the property or parameter it is on,
    /// where it is, and its lengths.
    fn patterns(doc: &serde_json::Value) -> Vec<(String, String, String, usize, usize)> {
        fn walk(
            value: &serde_json::Value,
            at: &str,
            field: &str,
            out: &mut Vec<(String, String, String, usize, usize)>,
        ) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(pattern) = map.get("pattern").and_then(|p| p.as_str()) {
                        let length = |key: &str| {
                            map.get(key)
                                .and_then(serde_json::Value::as_u64)
                                .and_then(|n| usize::try_from(n).ok())
                        };
                        out.push((
                            field.to_owned(),
                            at.to_owned(),
                            pattern.to_owned(),
                            length("minLength").unwrap_or(0),
                            length("maxLength").unwrap_or(usize::MAX),
                        ));
                    }
                    // A parameter's schema is the parameter's; a property's is the property's.
                    let named = map.get("name").and_then(|n| n.as_str());
                    for (key, child) in map {
                        let at = format!("{at}/{key}");
                        match (key.as_str(), named) {
                            ("schema", Some(name)) => walk(child, &at, name, out),
                            ("properties", _) => {
                                for (name, property) in child.as_object().into_iter().flatten() {
                                    walk(property, &format!("{at}/{name}"), name, out);
                                }
                            }
                            _ => walk(child, &at, field, out),
                        }
                    }
                }
                serde_json::Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(item, &format!("{at}/{i}"), field, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(doc, "", "", &mut out);
        out
    }

    /// What the domain's parser of an identifier says of `value`.
    fn parses(id: Id, value: &str) -> bool {
        let value = value.to_owned();
        match id {
            Id::App => AppId::parse(value).is_ok(),
            Id::Open => OpenId::parse(value).is_ok(),
            Id::Union => UnionId::parse(value).is_ok(),
            Id::User => UserId::parse(value).is_ok(),
            Id::Code => JsCode::parse(value).is_ok(),
        }
    }

    /// Strings near a published pattern: made from it, made from it and then edited once (a
    /// character in, out or replaced, repeated up to around `max` characters, or all gone),
    /// and random ones.
    fn near(pattern: &str, max: usize) -> proptest::strategy::BoxedStrategy<String> {
        use proptest::prelude::*;
        let body = pattern
            .strip_prefix('^')
            .and_then(|p| p.strip_suffix('$'))
            .unwrap_or_else(|| panic!("{pattern} is not anchored"));
        let valid = || proptest::string::string_regex(body).unwrap();
        // Each alphabet's neighbours, the other alphabets' characters, and beyond ASCII.
        let other = proptest::sample::select(vec![
            '-', '_', '+', '/', '=', ' ', '!', '~', '\u{7f}', '`', '@', '[', ':', '.', '\0', '\n',
            'w', 'x', '0', 'Z', '\u{e9}', '\u{4e2d}', '\u{2028}',
        ]);
        let around_max = max.saturating_sub(1)..=max.saturating_add(2).min(1024);
        let edited = (
            valid(),
            any::<proptest::sample::Index>(),
            other,
            0..5_u8,
            around_max,
        )
            .prop_map(|(text, at, c, edit, len)| {
                let mut chars: Vec<char> = text.chars().collect();
                let i = at.index(chars.len() + 1);
                let last = chars.len().saturating_sub(1);
                match edit {
                    0 => chars.insert(i, c),
                    1 if !chars.is_empty() => {
                        chars.remove(i.min(last));
                    }
                    2 if !chars.is_empty() => chars[i.min(last)] = c,
                    3 => {
                        let fill = chars.last().copied().unwrap_or(c);
                        chars.resize(len, fill);
                    }
                    _ => chars.clear(),
                }
                chars.into_iter().collect::<String>()
            });
        prop_oneof![
            3 => valid(),
            6 => edited,
            1 => any::<String>(),
            1 => "[\\x00-\\x7f]{0,40}",
        ]
        .boxed()
    }

    /// Every identifier's `pattern` and lengths in `/openapi.json` accept exactly what the
    /// domain's parser of that identifier accepts, and no other field has a pattern that no
    /// parser is held to.
    #[test]
    fn published_id_patterns_accept_exactly_what_the_parsers_accept() {
        use proptest::test_runner::{Config, TestRunner};
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let found = patterns(&doc);
        let mut checked = 0;
        for (field, at, pattern, min, max) in &found {
            let id = match field.as_str() {
                "appid" => Id::App,
                "openid" => Id::Open,
                "unionid" => Id::Union,
                "user_id" | "into" | "from" => Id::User,
                "code" => Id::Code,
                // Base64, checked by decoding: no identifier.
                "encrypted_data" | "iv" => continue,
                other => panic!("{at}: a pattern on `{other}` that no parser is held to"),
            };
            let published = regex::Regex::new(pattern).unwrap();
            let mut runner = TestRunner::new(Config {
                cases: 512,
                failure_persistence: None,
                ..Config::default()
            });
            runner
                .run(&near(pattern, *max), |value| {
                    let length = value.chars().count();
                    let accepted = published.is_match(&value) && (*min..=*max).contains(&length);
                    proptest::prop_assert_eq!(
                        accepted,
                        parses(id, &value),
                        "{} ({} {}..={}) on {:?}",
                        at,
                        pattern,
                        min,
                        max,
                        value
                    );
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
        }
        // Each body's identifier and each path's parameter states its grammar.
        for (schema, property, _) in ID_PROPERTIES {
            assert!(
                found.iter().any(|(field, at, ..)| field == property
                    && at.starts_with(&format!("/components/schemas/{schema}/"))),
                "{schema}.{property} has no pattern"
            );
        }
        for (method, path) in ROUTES {
            for name in path.split('{').skip(1).filter_map(|p| p.split_once('}')) {
                let (name, _) = name;
                assert!(
                    found.iter().any(|(field, at, ..)| field == name
                        && at.starts_with(&format!("/paths/{path}/{method}/parameters/"))),
                    "{method} {path}: {{{name}}} has no pattern"
                );
            }
        }
        assert!(checked >= ID_PROPERTIES.len(), "{found:#?}");
    }

    /// Each error response names its codes in backticks; each must be a code of the one table
    /// with exactly that status, and every code a client can get from a route is documented.
    #[test]
    fn documented_error_codes_are_the_tables() {
        use crate::http::error::ErrorCode;
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let mut documented = std::collections::HashSet::new();
        for ops in doc["paths"].as_object().unwrap().values() {
            for (method, op) in ops.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    if !status.starts_with(['4', '5']) {
                        continue;
                    }
                    let description = response["description"].as_str().unwrap_or_default();
                    let names: Vec<&str> = description.split('`').skip(1).step_by(2).collect();
                    assert!(
                        !names.is_empty(),
                        "{method} {status}: no code in {description:?}"
                    );
                    for name in names {
                        let code = ErrorCode::ALL.iter().find(|c| c.as_str() == name);
                        let code = code.unwrap_or_else(|| panic!("{method}: `{name}` is no code"));
                        assert_eq!(code.status().as_str(), status, "{method}: `{name}`");
                        documented.insert(*code);
                    }
                }
            }
        }
        // What the HTTP stack answers on any route, documented once in docs/contract.md.
        let everywhere = [
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::PayloadTooLarge,
            ErrorCode::RequestTimeout,
            ErrorCode::InternalError,
        ];
        for code in ErrorCode::ALL {
            assert!(
                documented.contains(code) || everywhere.contains(code),
                "`{}` is in no route's responses",
                code.as_str()
            );
        }
    }

    /// Each route's error responses cover what the route can answer, read from the route's own
    /// document: a route that takes input can refuse it (`invalid_request`), a route behind a
    /// token can refuse that (`invalid_token`), and a route that touches the store can meet a
    /// database that does not answer or stays busy (both 503s).
    #[test]
    fn each_route_documents_the_errors_it_can_answer() {
        // These read no transaction: `/healthz` only pings (and says so), the others no store.
        let without_transactions = [
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/.well-known/openid-configuration",
            "/.well-known/jwks.json",
        ];
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let mut missing = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let documented: Vec<&str> = op["responses"]
                    .as_object()
                    .unwrap()
                    .values()
                    .filter_map(|response| response["description"].as_str())
                    .flat_map(|description| description.split('`').skip(1).step_by(2))
                    .collect();
                let mut expected = Vec::new();
                if op.get("parameters").is_some() || op.get("requestBody").is_some() {
                    expected.push("invalid_request");
                }
                if op.get("security").is_some() {
                    expected.push("invalid_token");
                }
                if path.starts_with(INTERNAL_PREFIX) {
                    expected.extend(["insufficient_scope", "rate_limited"]);
                }
                if !without_transactions.contains(&path.as_str()) {
                    expected.extend(["database_unavailable", "database_contention"]);
                }
                for code in expected {
                    if !documented.contains(&code) {
                        missing.push(format!("{method} {path}: `{code}`"));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "undocumented errors: {missing:#?}");
    }

    /// Every internal route has its scope in the one table, the table names only routes, and
    /// the document states each route's scope for both ways a client authenticates.
    #[test]
    fn each_internal_route_states_its_scope() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let internal: Vec<&(&str, &str)> = ROUTES
            .iter()
            .filter(|(_, path)| path.starts_with(INTERNAL_PREFIX))
            .collect();
        for (method, path) in &internal {
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let scope = clients::scope_of(&verb, path)
                .unwrap_or_else(|| panic!("{method} {path} has no scope in ROUTE_SCOPES"));
            let security = &doc["paths"][*path][*method]["security"];
            assert_eq!(
                security,
                &serde_json::json!([
                    {"service_token": [scope.as_str()]},
                    {"client_basic": [scope.as_str()]},
                ]),
                "{method} {path}"
            );
        }
        assert_eq!(
            internal.len(),
            clients::ROUTE_SCOPES.len(),
            "ROUTE_SCOPES names a route that is not in ROUTES"
        );
    }

    #[test]
    fn the_document_has_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        routes.sort();
        assert_eq!(paths(&doc), routes);
    }

    /// A router with the internal API on (service tokens configured) or off.
    async fn router(with_tokens: bool) -> (tempfile::TempDir, crate::Application, axum::Router) {
        let dir = tempfile::tempdir().unwrap();
        let mut env: config::Map<String, String> = [
            (
                "WXLINK__DATABASE__URL".to_owned(),
                format!("sqlite://{}/t.db", dir.path().display()),
            ),
            (
                "WXLINK__APPS__WX4F4BC4DEC97D474B__SECRET".to_owned(),
                "s".to_owned(),
            ),
            ("WXLINK__SERVER__BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ]
        .into();
        if with_tokens {
            env.insert("WXLINK__INTERNAL__TOKENS".to_owned(), TOKEN.to_owned());
        }
        let settings = crate::config::Settings::load_with_env(None, Some(env)).unwrap();
        let app = crate::Application::build(settings, dir.path().join("k"))
            .await
            .unwrap();
        let router = app.router();
        (dir, app, router)
    }

    const TOKEN: &str = "svc-token-0123456789abcdef";

    async fn call(router: &axum::Router, method: &str, uri: &str) -> (u16, serde_json::Value) {
        use tower::ServiceExt;
        let request = axum::http::Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let value = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
        (status, value)
    }

    fn paths(doc: &serde_json::Value) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        found.sort();
        found
    }

    /// The served document lists exactly the routes that are mounted: with service tokens every
    /// route, without them none of the internal ones (which then answer 404); every listed
    /// route is served, neither 404 nor 405 from the router itself.
    #[tokio::test]
    async fn the_served_document_lists_exactly_the_mounted_routes() {
        for with_tokens in [true, false] {
            let (_dir, _app, router) = router(with_tokens).await;
            let (status, mut served) = call(&router, "get", "/openapi.json").await;
            assert_eq!(status, 200);
            // The configured appids are the login's `enum`; the rest is the generated document.
            let appid = served
                .pointer_mut("/components/schemas/LoginRequest/properties/appid")
                .and_then(|v| v.as_object_mut())
                .unwrap();
            assert_eq!(
                appid.remove("enum"),
                Some(serde_json::json!(["wx4f4bc4dec97d474b"]))
            );
            // The default token format is opaque: no signed tokens' routes.
            assert_eq!(served, served_document(with_tokens, false));
            let listed = paths(&served);
            for (method, path) in ROUTES {
                let uri = path.replace("{user_id}", "u1");
                let (status, error) = call(&router, method, &uri).await;
                let unrouted = status == 405
                    || (status == 404 && error["error"]["message"] == "no such route");
                let is_listed = listed.contains(&((*method).to_owned(), (*path).to_owned()));
                assert_eq!(
                    !unrouted, is_listed,
                    "tokens {with_tokens}: {method} {path} answers {status} {error}, listed {is_listed}"
                );
            }
        }
    }

    /// Every `$ref` of the public document resolves: dropping the internal schemas left none
    /// dangling.
    #[test]
    fn the_public_document_has_no_dangling_reference() {
        fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                        out.push(r.clone());
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc: serde_json::Value = serde_json::from_str(&public_document()).unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} dangles"
            );
        }
        assert!(
            !public_document().contains("/internal/")
                && !public_document().contains("service_token")
                && !public_document().contains("client_basic")
        );
    }
}
