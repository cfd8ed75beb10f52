//! The internal API for other teams' services, behind named clients with scopes
//! (`clients.rs`): user lookups, the durable event feed they follow to move their own rows when
//! users merge, support's repairs and token introspection. Without clients the internal routes
//! answer 404, as if they did not exist.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use wxlink_domain::{ActorName, AppId, DomainError, OpenId, UnionId, UserId};
use wxlink_persistence::{MAX_EVENTS_PAGE, UserRecord};

use crate::http::clients::{Caller, Scope};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::handlers::{FormOrJson, JsonBody};
use crate::http::wire::{
    ErrorBody, EventsPage, FeedEvent, InternalUser, IntrospectRequest, IntrospectResponse,
    MergeRequest, RevokedSessions, SplitRequest, SplitResponse,
};
use crate::state::AppState;

/// The internal routes, under `/internal/v1`.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/internal/v1/users/{user_id}", get(user_by_id))
        .route("/internal/v1/users", get(find_user))
        .route("/internal/v1/events", get(events))
        .route(
            "/internal/v1/users/{user_id}/revoke-sessions",
            post(revoke_sessions),
        )
        .route(
            "/internal/v1/users/{user_id}/identities/{appid}/{openid}",
            delete(unlink_identity),
        )
        .route("/internal/v1/users/{into}/merge", post(merge))
        .route("/internal/v1/users/{user_id}/split", post(split))
        .route("/internal/v1/introspect", post(introspect))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            crate::http::clients::require_client,
        ))
}

/// The actor of a support action: the authenticated client's name.
fn actor(caller: &Caller) -> Result<ActorName, ApiError> {
    ActorName::parse(caller.name.clone()).map_err(|e| {
        tracing::error!(error = %e, "an internal API client's name cannot be an event's actor");
        ApiError::new(
            ErrorCode::InternalError,
            "the client's name cannot be recorded",
        )
    })
}

/// A user as `caller` may see it: the phone number only with `users:phone`.
pub(crate) fn internal_user(record: UserRecord, caller: &Caller) -> InternalUser {
    InternalUser::new(record, caller.may(Scope::UsersPhone))
}

/// The answer for a looked-up user: the user as `caller` may see it, or 404 `not_found`.
fn user_or_not_found(
    record: Option<UserRecord>,
    caller: &Caller,
) -> Result<Json<InternalUser>, ApiError> {
    record
        .map(|r| Json(internal_user(r, caller)))
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such user"))
}

/// An identifier from the request, by its parser; 400 `invalid_request` naming `field`.
fn parse_id<T>(
    field: &str,
    value: String,
    parser: fn(String) -> Result<T, wxlink_domain::IdError>,
) -> Result<T, ApiError> {
    parser(value).map_err(|e| ApiError::invalid_request(format!("{field}: {e}")))
}

/// A user by id; a merged-away user answers with `merged_into` set.
#[utoipa::path(get, path = "/internal/v1/users/{user_id}", tag = "internal",
    params(("user_id" = String, Path, description = "wxlink's user id")),
    responses(
        (status = 200, body = InternalUser),
        (status = 400, description = "`invalid_request` (a malformed user id)", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the client lacks the route's scope (the WWW-Authenticate header names it)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed authentications from this client address", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody)))]
pub(crate) async fn user_by_id(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
) -> Result<Json<InternalUser>, ApiError> {
    let id = parse_id("user_id", user_id, UserId::parse)?;
    user_or_not_found(state.store.user_by_id(&id).await?, &caller)
}

/// Documented in `openapi.rs` as one object parameter: OpenAPI cannot say "either unionid, or
/// appid and openid" of separate parameters.
#[derive(Debug, Deserialize)]
pub(crate) struct FindUser {
    /// With `openid`: the identity's app.
    appid: Option<String>,
    /// With `appid`: the identity's openid.
    openid: Option<String>,
    /// Alone: the unionid.
    unionid: Option<String>,
}

/// The user of an (appid, openid) identity, or of a unionid.
#[utoipa::path(get, path = "/internal/v1/users", tag = "internal",
    responses(
        (status = 200, body = InternalUser),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the client lacks the route's scope (the WWW-Authenticate header names it)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed authentications from this client address", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody)))]
pub(crate) async fn find_user(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<FindUser>,
) -> Result<Json<InternalUser>, ApiError> {
    match query {
        FindUser {
            unionid: Some(unionid),
            appid: None,
            openid: None,
        } => {
            let unionid = parse_id("unionid", unionid, UnionId::parse)?;
            user_or_not_found(state.store.user_by_unionid(&unionid).await?, &caller)
        }
        FindUser {
            appid: Some(appid),
            openid: Some(openid),
            unionid: None,
        } => {
            let appid = parse_id("appid", appid, AppId::parse)?;
            let openid = parse_id("openid", openid, OpenId::parse)?;
            user_or_not_found(
                state.store.user_by_identity(&appid, &openid).await?,
                &caller,
            )
        }
        _ => Err(ApiError::invalid_request(
            "give either unionid, or appid and openid",
        )),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// The last position seen (`next_cursor`, or the last event's `id`); 0 to start.
    #[serde(default)]
    #[param(minimum = 0, required = false)]
    after: i64,
    /// At most this many events (default 100; 0 is served as 1, more than 1000 as 1000).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4_294_967_295_i64, nullable = false)]
    limit: Option<u32>,
}

/// The durable event feed: creations, links and merges, oldest first.
#[utoipa::path(get, path = "/internal/v1/events", tag = "internal",
    params(EventsQuery),
    responses(
        (status = 200, body = EventsPage),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the client lacks the route's scope (the WWW-Authenticate header names it)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed authentications from this client address", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody)))]
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventsPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    if query.after < 0 {
        return Err(ApiError::invalid_request(
            "after must be 0 or a returned cursor",
        ));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_EVENTS_PAGE);
    let page = state.store.events_after(query.after, limit).await?;
    let next_cursor = page.last().map_or(query.after, |(id, _)| *id);
    let events = page.iter().map(|(id, e)| FeedEvent::new(*id, e)).collect();
    Ok(Json(EventsPage {
        events,
        next_cursor,
    }))
}

/// Revoke every live session of a user and of the users merged into it (a stolen token).
#[utoipa::path(post, path = "/internal/v1/users/{user_id}/revoke-sessions", tag = "internal",
    params(("user_id" = String, Path, description = "wxlink's user id")),
    responses(
        (status = 200, body = RevokedSessions),
        (status = 400, description = "`invalid_request` (a malformed user id)", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the client lacks the route's scope (the WWW-Authenticate header names it)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed authentications from this client address", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`user_merged`: act on the user it was merged into", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody)))]
pub(crate) async fn revoke_sessions(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
) -> Result<Json<RevokedSessions>, ApiError> {
    let id = parse_id("user_id", user_id, UserId::parse)?;
    let revoked = state
        .accounts
        .revoke_sessions(id.clone(), actor(&caller)?)
        .await?;
    tracing::info!(user_id = %id, revoked, "support revoked sessions");
    Ok(Json(RevokedSessions { revoked }))
}

/// Unlink one identity (linked by mistake); its sessions are revoked, and if it was the last
/// identity vouching for the user's unionid the unionid is released, so its next login lands on
/// the user of its own unionid (or a new provisional user).
#[utoipa::path(delete, path = "/internal/v1/users/{user_id}/identities/{appid}/{openid}",
    tag = "internal",
    params(
        ("user_id" = String, Path, description = "wxlink's user id"),
        ("appid" = String, Path, description = "the identity's app"),
        ("openid" = String, Path, description = "the identity's openid")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 400, description = "`invalid_request` (a malformed user id)", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the client lacks the route's scope (the WWW-Authenticate header names it)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed authentications from this client address", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user, or not its identity (also an appid or openid that cannot be one)", body = ErrorBody),
        (status = 409, description = "`last_identity` (cancel instead) or `user_merged`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody)))]
pub(crate) async fn unlink_identity(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path((user_id, appid, openid)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id("user_id", user_id, UserId::parse)?;
    // An id that cannot exist is not found, like one that does not.
    let (Ok(appid), Ok(openid)) = (AppId::parse(appid), OpenId::parse(openid)) else {
        return Err(wxlink_domain::DomainError::IdentityNotFound.into());
    };
    state
        .accounts
        .unlink_identity(id.clone(), appid.clone(), openid, actor(&caller)?)
        .await?;
    tracing::info!(user_id = %id, %appid, "support unlinked an identity");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Merge `from` into the path's user by the rules of a unionid merge.
#[utoipa::path(post, path = "/internal/v1/users/{into}/merge", tag = "internal",
    params(("into" = String, Path, description = "the user that stays")),
    request_body = MergeRequest,
    responses(
        (status = 200, body = InternalUser),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the client lacks the route's scope (the WWW-Authenticate header names it)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed authentications from this client address", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`unionid_conflict`, `same_user` or `user_merged`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody)))]
pub(crate) async fn merge(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(into): Path<String>,
    JsonBody(body): JsonBody<MergeRequest>,
) -> Result<Json<InternalUser>, ApiError> {
    let into = parse_id("into", into, UserId::parse)?;
    let from = parse_id("from", body.from, UserId::parse)?;
    let survivor = state
        .accounts
        .merge(into, from.clone(), actor(&caller)?)
        .await?;
    tracing::info!(user_id = %survivor, from = %from, "support merged users");
    user_or_not_found(state.store.user_by_id(&survivor).await?, &caller)
}

/// Undo a merge: the listed identities move to a new user, or with `into` back to a user that
/// was merged into the path's user, which is restored. Sessions follow the identity they
/// logged in through, the phone number the identity that verified it, the unionid the
/// identities vouching for it.
#[utoipa::path(post, path = "/internal/v1/users/{user_id}/split", tag = "internal",
    params(("user_id" = String, Path, description = "the user to split")),
    request_body = SplitRequest,
    responses(
        (status = 200, body = SplitResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the client lacks the route's scope (the WWW-Authenticate header names it)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed authentications from this client address", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user, or not its identity", body = ErrorBody),
        (status = 409, description = "`last_identity` (no identity would remain), `not_merged_here` (the user named by into was never merged into this one) or `user_merged`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody)))]
pub(crate) async fn split(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
    JsonBody(body): JsonBody<SplitRequest>,
) -> Result<Json<SplitResponse>, ApiError> {
    let id = parse_id("user_id", user_id, UserId::parse)?;
    if body.identities.is_empty() {
        return Err(ApiError::invalid_request("identities: list at least one"));
    }
    if body.identities.len() > MAX_SPLIT_IDENTITIES {
        return Err(ApiError::invalid_request(format!(
            "identities: at most {MAX_SPLIT_IDENTITIES}"
        )));
    }
    // An identity that cannot exist is not the user's, like one that does not.
    let identities = body
        .identities
        .into_iter()
        .map(|i| match (AppId::parse(i.appid), OpenId::parse(i.openid)) {
            (Ok(appid), Ok(openid)) => Ok((appid, openid)),
            _ => Err(DomainError::IdentityNotFound),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let into = body
        .into
        .map(|into| parse_id("into", into, UserId::parse))
        .transpose()?;
    let split = state
        .accounts
        .split(id, identities, into, actor(&caller)?)
        .await?;
    tracing::info!(user_id = %split.user, from = %split.remaining, "support split a user");
    let user = user_or_not_found(state.store.user_by_id(&split.user).await?, &caller)?.0;
    let remaining = user_or_not_found(state.store.user_by_id(&split.remaining).await?, &caller)?.0;
    Ok(Json(SplitResponse { user, remaining }))
}

/// The most identities one split moves: a person has a handful.
const MAX_SPLIT_IDENTITIES: usize = 100;

/// RFC 7662 token introspection: whether a user's bearer token works, and whom it stands for.
/// The body is a form (RFC 7662 §2.1) or JSON; the client authenticates with Bearer or with
/// HTTP Basic (its name and token).
#[utoipa::path(post, path = "/internal/v1/introspect", tag = "internal",
    request_body(content(
        (IntrospectRequest = "application/x-www-form-urlencoded"),
        (IntrospectRequest = "application/json"))),
    responses(
        (status = 200, body = IntrospectResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_token` (the client's token, or its name and token)", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the client lacks the route's scope (the WWW-Authenticate header names it)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed authentications from this client address", body = ErrorBody),
        (status = 503, description = "`database_unavailable`, `database_contention`", body = ErrorBody)))]
pub(crate) async fn introspect(
    State(state): State<Arc<AppState>>,
    FormOrJson(body): FormOrJson<IntrospectRequest>,
) -> Result<Json<IntrospectResponse>, ApiError> {
    // `token_type_hint` may be ignored (RFC 7662 §2.1): a token is looked up the same way
    // whatever it claims to be.
    let answer = match state.accounts.introspect(&body.token).await? {
        Some(active) => IntrospectResponse {
            active: true,
            sub: Some(active.sub.to_string()),
            client_id: Some(active.client_id.to_string()),
            iat: Some(active.iat),
            exp: Some(active.exp),
            unionid_linked: Some(active.unionid_linked),
            token_type: Some("Bearer"),
            iss: Some(state.issuer.clone()),
        },
        None => IntrospectResponse {
            active: false,
            sub: None,
            client_id: None,
            iat: None,
            exp: None,
            unionid_linked: None,
            token_type: None,
            iss: None,
        },
    };
    Ok(Json(answer))
}
