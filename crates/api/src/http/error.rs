//! The one place where failures become the contract's statuses and error codes.
//!
//! Handlers return [`ApiError`]; `From` impls hold the whole status policy, so no handler picks a
//! status code. Every error body has the shape `{"error": {"code", "message", "request_id"}}`,
//! built by [`ApiError::body`] alone.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use wxlink_domain::{DomainError, StoreError, UserDataError, WeChatError};

use super::wire::{ErrorBody, ErrorDetail};

/// The one table of the contract's error codes: each [`ErrorCode`] with its snake_case name and
/// its status. docs/contract.md and the OpenAPI document are tested against it.
macro_rules! codes {
    ($($variant:ident = $name:literal => $status:ident,)*) => {
        /// A stable, machine-readable error code of the contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = concat!("`", $name, "`")] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The snake_case name clients see.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }

            /// The status every answer with this code has.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

codes! {
    InvalidRequest = "invalid_request" => BAD_REQUEST,
    UnknownApp = "unknown_app" => BAD_REQUEST,
    UnsupportedAppKind = "unsupported_app_kind" => BAD_REQUEST,
    ReauthenticationRequired = "reauthentication_required" => BAD_REQUEST,
    InvalidCode = "invalid_code" => UNAUTHORIZED,
    InvalidToken = "invalid_token" => UNAUTHORIZED,
    UserBlocked = "user_blocked" => FORBIDDEN,
    SnapshotUser = "snapshot_user" => FORBIDDEN,
    IdentityMismatch = "identity_mismatch" => FORBIDDEN,
    InsufficientScope = "insufficient_scope" => FORBIDDEN,
    NotFound = "not_found" => NOT_FOUND,
    MethodNotAllowed = "method_not_allowed" => METHOD_NOT_ALLOWED,
    RequestTimeout = "request_timeout" => REQUEST_TIMEOUT,
    UnionidConflict = "unionid_conflict" => CONFLICT,
    LastIdentity = "last_identity" => CONFLICT,
    UserMerged = "user_merged" => CONFLICT,
    SameUser = "same_user" => CONFLICT,
    NotMergedHere = "not_merged_here" => CONFLICT,
    PayloadTooLarge = "payload_too_large" => PAYLOAD_TOO_LARGE,
    DecryptFailed = "decrypt_failed" => UNPROCESSABLE_ENTITY,
    SessionKeyExpired = "session_key_expired" => UNPROCESSABLE_ENTITY,
    SignatureMismatch = "signature_mismatch" => UNPROCESSABLE_ENTITY,
    WatermarkMismatch = "watermark_mismatch" => UNPROCESSABLE_ENTITY,
    WatermarkExpired = "watermark_expired" => UNPROCESSABLE_ENTITY,
    WatermarkInFuture = "watermark_in_future" => UNPROCESSABLE_ENTITY,
    RateLimited = "rate_limited" => TOO_MANY_REQUESTS,
    TooManyAttempts = "too_many_attempts" => TOO_MANY_REQUESTS,
    UpstreamRateLimited = "upstream_rate_limited" => TOO_MANY_REQUESTS,
    InternalError = "internal_error" => INTERNAL_SERVER_ERROR,
    UpstreamError = "upstream_error" => BAD_GATEWAY,
    DatabaseUnavailable = "database_unavailable" => SERVICE_UNAVAILABLE,
    DatabaseContention = "database_contention" => SERVICE_UNAVAILABLE,
    UpstreamTimeout = "upstream_timeout" => GATEWAY_TIMEOUT,
}

tokio::task_local! {
    /// The id of the request being answered, so that the one builder of error bodies puts it
    /// in (set around each request by the error-envelope middleware).
    static REQUEST_ID: Option<String>;
}

/// Runs `answer` with `request_id` as the id every [`ApiError`] body inside carries.
pub(crate) async fn with_request_id<F: Future>(request_id: Option<String>, answer: F) -> F::Output {
    REQUEST_ID.scope(request_id, answer).await
}

/// Marks a response whose body [`ApiError`] built, so the middleware leaves it as it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Enveloped;

/// An error answer: stable code (which fixes the status), human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human text; never carries a secret.
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// A `WWW-Authenticate` challenge (RFC 6750 §3), e.g. for `insufficient_scope`.
    pub www_authenticate: Option<String>,
}

impl ApiError {
    /// An error with any code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            www_authenticate: None,
        }
    }

    /// The HTTP status, from the code.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// 429 `rate_limited` with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(ErrorCode::RateLimited, "too many requests; retry later")
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// 401 `invalid_token`.
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidToken, message)
    }

    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such route")
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            "this route does not take that method",
        )
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large() -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            "request body is larger than allowed",
        )
    }

    /// 408 `request_timeout`.
    pub fn request_timeout() -> Self {
        Self::new(
            ErrorCode::RequestTimeout,
            "the request took longer than the server allows",
        )
    }

    /// 500 `internal_error`; the cause is logged, not returned.
    pub fn internal() -> Self {
        Self::new(ErrorCode::InternalError, "internal error")
    }

    /// The contract's error body, with the id of the request being answered.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message.clone(),
                request_id: REQUEST_ID.try_with(Clone::clone).ok().flatten(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        response.extensions_mut().insert(Enveloped);
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if let Some(challenge) = self
            .www_authenticate
            .and_then(|c| axum::http::HeaderValue::try_from(c).ok())
        {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        use ErrorCode as C;
        let message = error.to_string();
        let code = match &error {
            DomainError::InvalidToken => C::InvalidToken,
            DomainError::WeChat(WeChatError::CallLimited { retry_after_secs }) => {
                tracing::debug!("the app's limit of WeChat calls refused a call");
                return Self::rate_limited(*retry_after_secs);
            }
            DomainError::WeChat(e) => match e {
                WeChatError::InvalidCode => C::InvalidCode,
                WeChatError::UserBlocked => C::UserBlocked,
                WeChatError::RateLimited => C::UpstreamRateLimited,
                WeChatError::Timeout => C::UpstreamTimeout,
                WeChatError::UnknownApp => C::UnknownApp,
                WeChatError::SnapshotUser => {
                    return Self::new(
                        C::SnapshotUser,
                        "this is a snapshot page's preview user; open the page for real (tap \"使用完整服务\") and log in again",
                    );
                }
                WeChatError::Errcode(_) => C::UpstreamError,
                _ => {
                    // The text carries the client's error chain (hosts, ports, errmsg): logs
                    // only, the client gets the category.
                    tracing::warn!(%error, "WeChat did not give a usable answer");
                    return Self::new(C::UpstreamError, "WeChat did not give a usable answer");
                }
            },
            DomainError::UserData(e) => match e {
                UserDataError::SignatureMismatch => C::SignatureMismatch,
                UserDataError::WatermarkMismatch => C::WatermarkMismatch,
                UserDataError::WatermarkExpired => C::WatermarkExpired,
                UserDataError::WatermarkInFuture => C::WatermarkInFuture,
                // One answer, whatever the reason (logged where it was found): no oracle.
                _ => C::DecryptFailed,
            },
            DomainError::TooManyAttempts(spent) => {
                // A daily budget says when it starts again; a session's is new at the next login.
                let retry_after = match spent {
                    wxlink_domain::SpentBudget::Session => None,
                    wxlink_domain::SpentBudget::IdentityDay { retry_after_secs } => {
                        Some(*retry_after_secs)
                    }
                };
                return Self {
                    retry_after,
                    ..Self::new(C::TooManyAttempts, message)
                };
            }
            DomainError::IdentityMismatch => C::IdentityMismatch,
            DomainError::ReauthenticationRequired => C::ReauthenticationRequired,
            DomainError::UnionidConflict => C::UnionidConflict,
            DomainError::SessionKeyExpired => C::SessionKeyExpired,
            DomainError::UnsupportedForApp => C::UnsupportedAppKind,
            DomainError::UserNotFound | DomainError::IdentityNotFound => C::NotFound,
            DomainError::LastIdentity => C::LastIdentity,
            DomainError::UserMerged(_) => C::UserMerged,
            DomainError::SameUser => C::SameUser,
            DomainError::NotMergedHere => C::NotMergedHere,
            DomainError::Store(StoreError::Unavailable(cause)) => {
                tracing::warn!(%cause, "database unavailable");
                return Self::new(
                    C::DatabaseUnavailable,
                    "the database is not answering; try again shortly",
                );
            }
            DomainError::Store(StoreError::Contention { .. } | StoreError::Conflict) => {
                tracing::warn!(%error, "gave up on a contended transaction");
                return Self::new(
                    C::DatabaseContention,
                    "too many concurrent changes to this user; try again",
                );
            }
            DomainError::Store(StoreError::Key(problem)) => {
                // The operator's problem, not the client's: the details stay in the log.
                tracing::error!(%problem, "data key problem");
                return Self::internal();
            }
            DomainError::Store(_) | _ => {
                tracing::error!(%error, "internal error");
                return Self::internal();
            }
        };
        Self::new(code, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        DomainError::Store(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_error_maps_to_the_contracts_status_and_code() {
        use StatusCode as S;
        let cases: Vec<(DomainError, S, &str)> = vec![
            (DomainError::InvalidToken, S::UNAUTHORIZED, "invalid_token"),
            (
                WeChatError::InvalidCode.into(),
                S::UNAUTHORIZED,
                "invalid_code",
            ),
            (
                WeChatError::UserBlocked.into(),
                S::FORBIDDEN,
                "user_blocked",
            ),
            (
                WeChatError::RateLimited.into(),
                S::TOO_MANY_REQUESTS,
                "upstream_rate_limited",
            ),
            (
                WeChatError::Timeout.into(),
                S::GATEWAY_TIMEOUT,
                "upstream_timeout",
            ),
            (
                WeChatError::UnknownApp.into(),
                S::BAD_REQUEST,
                "unknown_app",
            ),
            (
                WeChatError::Upstream("busy".into()).into(),
                S::BAD_GATEWAY,
                "upstream_error",
            ),
            (
                WeChatError::Errcode(40125).into(),
                S::BAD_GATEWAY,
                "upstream_error",
            ),
            (
                WeChatError::SnapshotUser.into(),
                S::FORBIDDEN,
                "snapshot_user",
            ),
            (
                UserDataError::DecryptFailed.into(),
                S::UNPROCESSABLE_ENTITY,
                "decrypt_failed",
            ),
            (
                UserDataError::SignatureMismatch.into(),
                S::UNPROCESSABLE_ENTITY,
                "signature_mismatch",
            ),
            (
                UserDataError::WatermarkMismatch.into(),
                S::UNPROCESSABLE_ENTITY,
                "watermark_mismatch",
            ),
            (
                UserDataError::WatermarkExpired.into(),
                S::UNPROCESSABLE_ENTITY,
                "watermark_expired",
            ),
            (
                UserDataError::WatermarkInFuture.into(),
                S::UNPROCESSABLE_ENTITY,
                "watermark_in_future",
            ),
            (
                DomainError::TooManyAttempts(wxlink_domain::SpentBudget::Session),
                S::TOO_MANY_REQUESTS,
                "too_many_attempts",
            ),
            (
                DomainError::TooManyAttempts(wxlink_domain::SpentBudget::IdentityDay {
                    retry_after_secs: 60,
                }),
                S::TOO_MANY_REQUESTS,
                "too_many_attempts",
            ),
            (
                DomainError::IdentityMismatch,
                S::FORBIDDEN,
                "identity_mismatch",
            ),
            (
                DomainError::UnionidConflict,
                S::CONFLICT,
                "unionid_conflict",
            ),
            (
                DomainError::ReauthenticationRequired,
                S::BAD_REQUEST,
                "reauthentication_required",
            ),
            (DomainError::UserNotFound, S::NOT_FOUND, "not_found"),
            (DomainError::IdentityNotFound, S::NOT_FOUND, "not_found"),
            (DomainError::LastIdentity, S::CONFLICT, "last_identity"),
            (
                DomainError::UserMerged("u-owner".parse().unwrap()),
                S::CONFLICT,
                "user_merged",
            ),
            (DomainError::SameUser, S::CONFLICT, "same_user"),
            (DomainError::NotMergedHere, S::CONFLICT, "not_merged_here"),
            (
                StoreError::Unavailable("down".into()).into(),
                S::SERVICE_UNAVAILABLE,
                "database_unavailable",
            ),
            (
                StoreError::Contention { attempts: 12 }.into(),
                S::SERVICE_UNAVAILABLE,
                "database_contention",
            ),
            (
                StoreError::Corrupt("loop".into()).into(),
                S::INTERNAL_SERVER_ERROR,
                "internal_error",
            ),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error.clone());
            assert_eq!(
                (api.status(), api.code.as_str()),
                (status, code),
                "{error:?}"
            );
            assert!(!api.message.is_empty());
        }
    }

    #[test]
    fn every_code_is_in_the_contract() {
        let contract = include_str!("../../../../docs/contract.md");
        for code in ErrorCode::ALL {
            let name = code.as_str();
            assert!(
                contract.contains(&format!("`{name}`")),
                "docs/contract.md does not name `{name}`"
            );
        }
    }

    #[tokio::test]
    async fn the_body_carries_the_request_id_it_is_built_for() {
        let body = with_request_id(Some("req-1".into()), async { ApiError::not_found().body() });
        let body = serde_json::to_value(body.await).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {
                "code": "not_found", "message": "no such route", "request_id": "req-1"
            }})
        );
    }

    #[test]
    fn internal_details_stay_out_of_the_body() {
        let api = ApiError::from(StoreError::Unavailable("postgres://u:pw@db refused".into()));
        assert!(!api.message.contains("pw"));
        let api = ApiError::from(StoreError::Corrupt("user u1 is missing".into()));
        assert_eq!(api.message, "internal error");
        let api = ApiError::from(DomainError::from(WeChatError::Upstream(
            "transport error: connection refused (127.0.0.1:9)".into(),
        )));
        assert_eq!(api.message, "WeChat did not give a usable answer");
        let api = ApiError::from(DomainError::from(WeChatError::Errcode(40125)));
        assert_eq!(api.message, "WeChat answered errcode 40125");
        let api = ApiError::from(StoreError::Key(
            "session key of TokenHash(9ca3…): sealed value needs key 0badbeef".into(),
        ));
        assert_eq!(
            (api.status(), api.code.as_str(), api.message.as_str()),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error"
            )
        );
    }
}
