//! The JSON bodies of the API, as types: the handlers build them, serde writes them, and the
//! OpenAPI document (`/openapi.json`) is generated from the same types. How a domain value
//! becomes a body is beside the body's type, once, for every route that answers with it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wxlink_domain::{AppId, Event, EventKind, OpenId, PhoneMerge, PhoneNumber, UnionidSplit};
use wxlink_persistence::UserRecord;

/// `POST /v1/wechat/login`
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The app the code comes from (`[apps.<appid>]`); a server lists its configured appids in
    /// the `enum` of its `/openapi.json`.
    #[schema(example = "wx4f4bc4dec97d474b")]
    pub appid: String,
    /// `wx.login`'s code (mini programs) or the OAuth code (official accounts, mobile apps,
    /// websites): 1 to 256 printable ASCII characters without spaces.
    pub code: String,
}

/// A successful login.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The bearer token: 64 URL-safe characters, or with `[tokens] format = "jwt"` a signed
    /// access token (an ES256 JWT that services verify against `/.well-known/jwks.json`).
    pub token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// With `[tokens] format = "jwt"` only: exchange it at `POST /v1/token/refresh` for the
    /// next access token (64 URL-safe characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub refresh_token: Option<String>,
    /// The person's stable id.
    pub user_id: String,
    /// Whether the user's unionid is known.
    pub unionid_linked: bool,
    /// Whether the client should send encrypted user data (a mini program whose user is not
    /// linked yet).
    pub needs_user_info: bool,
}

/// `POST /v1/wechat/user-info`
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserInfoRequest {
    /// `encryptedData` of `wx.getUserInfo` (standard base64, not empty; a space stands for a `+`
    /// lost to form decoding).
    #[schema(
        min_length = 4,
        pattern = "^(?:[A-Za-z0-9+/ ]{4})*(?:[A-Za-z0-9+/ ]{4}|[A-Za-z0-9+/ ]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/ ][AQgw]==)$"
    )]
    pub encrypted_data: String,
    /// Its `iv` (base64 of 16 bytes).
    #[schema(
        min_length = 24,
        max_length = 24,
        pattern = "^[A-Za-z0-9+/ ]{21}[AQgw]==$"
    )]
    pub iv: String,
    /// `rawData`, with `signature`.
    pub raw_data: Option<String>,
    /// `signature` = hex sha1(raw_data + session_key), with `raw_data`.
    pub signature: Option<String>,
    /// A fresh `wx.login` code: wxlink refreshes the session_key with it first.
    pub code: Option<String>,
}

/// `DELETE /v1/me`: proof that the person is there.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CancelRequest {
    /// A fresh code of the WeChat user the token logged in as: `wx.login`'s code in a mini
    /// program, a new OAuth authorisation's code otherwise. Without it the answer is 400
    /// `reauthentication_required`.
    // Read as optional, so that its absence gets its own answer; documented as required,
    // since no request without it succeeds.
    #[schema(value_type = String, required = true)]
    pub code: Option<String>,
}

/// The outcome of user info.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfoResponse {
    /// Who the user is now (the unionid's owner after a merge).
    pub user_id: String,
    /// Whether the user's unionid is known.
    pub unionid_linked: bool,
    /// Whether this call merged the session's provisional user into the unionid's owner.
    pub merged: bool,
}

/// One (appid, openid) identity.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Identity {
    /// The app.
    pub appid: String,
    /// The user's openid in it.
    pub openid: String,
}

impl From<&(AppId, OpenId)> for Identity {
    fn from((appid, openid): &(AppId, OpenId)) -> Self {
        Self {
            appid: appid.to_string(),
            openid: openid.to_string(),
        }
    }
}

/// `GET /v1/me`
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The person's stable id.
    pub user_id: String,
    /// Whether the user's unionid is known.
    pub unionid_linked: bool,
    /// The user's identities, ordered by appid then openid.
    pub identities: Vec<Identity>,
}

/// `POST /v1/wechat/phone-number`
#[derive(Debug, Deserialize, ToSchema)]
pub struct PhoneNumberRequest {
    /// The code of the `getPhoneNumber` button: 1 to 256 printable ASCII characters without
    /// spaces.
    pub code: String,
}

/// A verified phone number.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneNumberResponse {
    /// With the country code for numbers outside mainland China.
    pub phone_number: String,
    /// Without the country code.
    pub pure_phone_number: String,
    /// E.g. `86`.
    pub country_code: String,
}

impl From<PhoneNumber> for PhoneNumberResponse {
    fn from(phone: PhoneNumber) -> Self {
        Self {
            phone_number: phone.phone_number,
            pure_phone_number: phone.pure_phone_number,
            country_code: phone.country_code,
        }
    }
}

/// `GET /healthz`
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `invalid_code`.
    pub code: String,
    /// Human text.
    pub message: String,
    /// The request's id (also in the `x-request-id` header and the logs).
    pub request_id: Option<String>,
}

/// A user as other teams' services see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InternalUser {
    /// The user's id.
    pub user_id: String,
    /// The unionid, once known.
    pub unionid: Option<String>,
    /// The owner this provisional user was merged into.
    pub merged_into: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Its identities (none once merged away).
    pub identities: Vec<Identity>,
    /// Its verified phone number, `null` when none is stored; left out for a client without
    /// the scope `users:phone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PhoneNumberResponse>)]
    pub phone_number: Option<Option<PhoneNumberResponse>>,
}

impl InternalUser {
    /// A stored user; its phone number only when `with_phone` (else the field is left out).
    pub(crate) fn new(record: UserRecord, with_phone: bool) -> Self {
        Self {
            user_id: record.user.id.to_string(),
            unionid: record.user.unionid.as_ref().map(ToString::to_string),
            merged_into: record.user.merged_into.as_ref().map(ToString::to_string),
            created_at: record.user.created_at,
            identities: record.identities.iter().map(Identity::from).collect(),
            phone_number: with_phone.then(|| record.phone_number.map(PhoneNumberResponse::from)),
        }
    }
}

/// One event of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedEvent {
    /// The event's position in the feed, increasing; pass the last one seen as `after`.
    pub id: i64,
    /// `user_created`, `identity_linked`, `unionid_linked`, `users_merged`, `user_deleted`,
    /// `sessions_revoked`, `identity_unlinked`, `unionid_released` or `user_split`.
    pub kind: &'static str,
    /// The user it happened to (for a merge, the surviving owner).
    pub user_id: String,
    /// The app whose request caused it.
    pub appid: String,
    /// The openid in that app.
    pub openid: String,
    /// Unix seconds.
    pub at: i64,
    /// For `users_merged`: the user merged away; for `user_split`: the user split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// For `users_merged`: the owner it was merged into; for `user_split`: the user the
    /// identities went to (new, or restored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// Facts of the event that are not fields of their own: `by` (`unionid`, `user` or
    /// `support`, with its `actor`), and for `users_merged` and `user_split` what moved, for
    /// revocations and cancellations how many sessions (and identities) they ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<EventDetail>,
}

impl FeedEvent {
    /// The event at position `id` of the feed; a merge or a split also names `from` and `into`.
    pub(crate) fn new(id: i64, event: &Event) -> Self {
        let moved = match (event.kind, &event.other_user_id) {
            (EventKind::UsersMerged | EventKind::UserSplit, Some(from)) => {
                Some((from.to_string(), event.user_id.to_string()))
            }
            _ => None,
        };
        let (from, into) = moved.unzip();
        Self {
            id,
            kind: event.kind.as_str(),
            user_id: event.user_id.to_string(),
            appid: event.appid.to_string(),
            openid: event.openid.to_string(),
            at: event.at,
            from,
            into,
            detail: event.detail.as_ref().map(|d| EventDetail {
                by: d.by.as_str(),
                actor: d.actor.as_ref().map(ToString::to_string),
                phone: d.phone.map(PhoneMerge::as_str),
                sessions: d.sessions,
                identities: d.identities,
                unionid: d.unionid.map(UnionidSplit::as_str),
            }),
        }
    }
}

/// An event's `detail`: a JSON object that may gain fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    /// What caused the event: `unionid` (the linking rules), `user` (the user, e.g. cancelling
    /// their account) or `support` (the internal API or the command line).
    pub by: &'static str,
    /// With `by: support`: who did it, the internal API client's name or `cli:` and the
    /// operator's name (at most 64 printable characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64)]
    pub actor: Option<String>,
    /// `users_merged`: the merged user's phone number: `none` (it had none), `moved` (the owner
    /// had none), `replaced_owner` (it was verified later than the owner's and replaced it),
    /// `kept_owner` (the owner's was verified later or at the same time and stays);
    /// `user_split`: `none` (the user had none), `moved` (the identity that verified it moved,
    /// and the number with it) or `stayed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<&'static str>,
    /// `users_merged`: how many live sessions of the merged user act as the owner from now on;
    /// `sessions_revoked`, `identity_unlinked`, `user_deleted`: how many sessions were revoked;
    /// `user_split`: how many live sessions moved with the identities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    /// `user_deleted`: how many identities were released; `user_split`: how many moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identities: Option<u64>,
    /// `user_split`: the unionid: `none` (the user had none), `moved` (every identity
    /// vouching for it moved, and it with them) or `stayed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<&'static str>,
}

/// `POST /internal/v1/users/{user_id}/revoke-sessions`
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedSessions {
    /// How many live sessions were revoked.
    pub revoked: u64,
}

/// `POST /internal/v1/users/{into}/merge`
#[derive(Debug, Deserialize, ToSchema)]
pub struct MergeRequest {
    /// The user merged away into the path's user.
    pub from: String,
}

/// `POST /internal/v1/users/{user_id}/split`
#[derive(Debug, Deserialize, ToSchema)]
pub struct SplitRequest {
    /// The identities of the path's user that move (at least one; one must stay).
    #[schema(min_items = 1, max_items = 100)]
    pub identities: Vec<Identity>,
    /// A user that was merged into the path's user (directly or through a chain): the
    /// identities go back to it, and it is restored. Without it they go to a new user.
    #[serde(default)]
    pub into: Option<String>,
}

/// The answer to a split: both users as `GET /internal/v1/users/{id}` shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct SplitResponse {
    /// The user the identities went to (new, or restored).
    pub user: InternalUser,
    /// The user that was split, with the identities that stayed.
    pub remaining: InternalUser,
}

/// `POST /internal/v1/introspect` (RFC 7662 §2.1), as a form or as JSON.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IntrospectRequest {
    /// A bearer token a client presented.
    pub token: String,
    /// What the caller thinks the token is (`access_token`, …); wxlink looks every token up
    /// the same way, so it changes nothing.
    #[expect(
        dead_code,
        reason = "read by serde only: RFC 7662 lets a server ignore it"
    )]
    pub token_type_hint: Option<String>,
}

/// RFC 7662 §2.2: an inactive token answers `{"active": false}` and nothing else.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntrospectResponse {
    /// Whether the token works now.
    pub active: bool,
    /// The user the token acts as now (after merges).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The appid of the login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Issued at, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Expires at, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Whether the user's unionid is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid_linked: Option<bool>,
    /// `Bearer` (RFC 7662 §2.2, the `token_type` of RFC 6749 §7.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Bearer")]
    pub token_type: Option<&'static str>,
    /// Who issued the token: `wxlink`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// A page of the event feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    /// Oldest first.
    pub events: Vec<FeedEvent>,
    /// Pass as `after` for the next page.
    pub next_cursor: i64,
}

/// `POST /v1/token/refresh`
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token of the login or of the last refresh; any other string is
    /// `invalid_token`.
    pub refresh_token: String,
}

/// A successful refresh: the presented refresh token no longer works.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResponse {
    /// The new signed access token.
    pub token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token for the next refresh (64 URL-safe characters).
    pub refresh_token: String,
    /// Who the user is now (the unionid's owner after a merge).
    pub user_id: String,
    /// Whether the user's unionid is known.
    pub unionid_linked: bool,
}

/// `GET /.well-known/jwks.json` (RFC 7517): the keys that verify wxlink's access tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwks {
    /// The current key, a successor published before it signs, and retired keys until their
    /// last token expires.
    pub keys: Vec<Jwk>,
}

/// One public signing key (RFC 7517, RFC 7518 §6.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwk {
    /// Always `EC`.
    #[schema(example = "EC")]
    pub kty: String,
    /// Always `P-256`.
    #[schema(example = "P-256")]
    pub crv: String,
    /// The x coordinate, base64url.
    pub x: String,
    /// The y coordinate, base64url.
    pub y: String,
    /// The key id: the tokens' header `kid` (its RFC 7638 thumbprint).
    pub kid: String,
    /// Always `ES256`.
    #[schema(example = "ES256")]
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub use_: String,
}

impl From<&crate::tokens::StoredJwk> for Jwk {
    fn from(stored: &crate::tokens::StoredJwk) -> Self {
        Self {
            kty: stored.kty.clone(),
            crv: stored.crv.clone(),
            x: stored.x.clone(),
            y: stored.y.clone(),
            kid: stored.kid.clone(),
            alg: stored.alg.clone(),
            use_: stored.use_.clone(),
        }
    }
}

/// `GET /.well-known/openid-configuration`: where a service finds the keys and introspection.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenIdConfiguration {
    /// `tokens.issuer`: the tokens' `iss`.
    pub issuer: String,
    /// The JWK Set.
    pub jwks_uri: String,
    /// RFC 7662 token introspection, with a service token (the internal API's introspect
    /// route).
    pub introspection_endpoint: String,
    /// Always `["ES256"]`.
    pub token_signing_alg_values_supported: Vec<&'static str>,
}
