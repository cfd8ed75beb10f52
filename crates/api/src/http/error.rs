//! The one place where failures become the contract's statuses and error codes.
//!
//! Handlers return [`ApiError`]; `From` impls hold the whole status policy, so no handler picks a
//! status code. Every error body has the shape `{"error": {"code", "message"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use wxlink_domain::{DomainError, StoreError, UserDataError, WeChatError};

/// An error answer: status, stable snake_case code, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human text; never carries a secret.
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429 `rate_limited` with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry later",
            )
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401 `invalid_token`.
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
    }

    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is larger than allowed",
        )
    }

    /// 500 `internal_error`; the cause is logged, not returned.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        use StatusCode as S;
        let message = error.to_string();
        let (status, code) = match &error {
            DomainError::InvalidToken => (S::UNAUTHORIZED, "invalid_token"),
            DomainError::WeChat(WeChatError::CallLimited { retry_after_secs }) => {
                tracing::debug!("the app's limit of WeChat calls refused a call");
                return Self::rate_limited(*retry_after_secs);
            }
            DomainError::WeChat(e) => match e {
                WeChatError::InvalidCode => (S::UNAUTHORIZED, "invalid_code"),
                WeChatError::UserBlocked => (S::FORBIDDEN, "user_blocked"),
                WeChatError::RateLimited => (S::TOO_MANY_REQUESTS, "upstream_rate_limited"),
                WeChatError::Timeout => (S::GATEWAY_TIMEOUT, "upstream_timeout"),
                WeChatError::UnknownApp => (S::BAD_REQUEST, "unknown_app"),
                WeChatError::SnapshotUser => {
                    return Self::new(
                        S::FORBIDDEN,
                        "snapshot_user",
                        "this is a snapshot page's preview user; open the page for real (tap \"使用完整服务\") and log in again",
                    );
                }
                WeChatError::Errcode(_) => (S::BAD_GATEWAY, "upstream_error"),
                _ => {
                    // The text carries the client's error chain (hosts, ports, errmsg): logs
                    // only, the client gets the category.
                    tracing::warn!(%error, "WeChat did not give a usable answer");
                    return Self::new(
                        S::BAD_GATEWAY,
                        "upstream_error",
                        "WeChat did not give a usable answer",
                    );
                }
            },
            DomainError::UserData(e) => match e {
                UserDataError::SignatureMismatch => (S::UNPROCESSABLE_ENTITY, "signature_mismatch"),
                UserDataError::WatermarkMismatch => (S::UNPROCESSABLE_ENTITY, "watermark_mismatch"),
                UserDataError::WatermarkExpired => (S::UNPROCESSABLE_ENTITY, "watermark_expired"),
                UserDataError::WatermarkInFuture => {
                    (S::UNPROCESSABLE_ENTITY, "watermark_in_future")
                }
                // One answer, whatever the reason (logged where it was found): no oracle.
                _ => (S::UNPROCESSABLE_ENTITY, "decrypt_failed"),
            },
            DomainError::TooManyAttempts => (S::TOO_MANY_REQUESTS, "too_many_attempts"),
            DomainError::IdentityMismatch => (S::FORBIDDEN, "identity_mismatch"),
            DomainError::UnionidConflict => (S::CONFLICT, "unionid_conflict"),
            DomainError::SessionKeyExpired => (S::UNPROCESSABLE_ENTITY, "session_key_expired"),
            DomainError::UnsupportedForApp => (S::BAD_REQUEST, "unsupported_app_kind"),
            DomainError::UserNotFound | DomainError::IdentityNotFound => {
                (S::NOT_FOUND, "not_found")
            }
            DomainError::LastIdentity => (S::CONFLICT, "last_identity"),
            DomainError::UserMerged(_) => (S::CONFLICT, "user_merged"),
            DomainError::SameUser => (S::CONFLICT, "same_user"),
            DomainError::Store(StoreError::Unavailable(cause)) => {
                tracing::warn!(%cause, "database unavailable");
                return Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is not answering; try again shortly",
                );
            }
            DomainError::Store(StoreError::Contention { .. } | StoreError::Conflict) => {
                tracing::warn!(%error, "gave up on a contended transaction");
                return Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "database_contention",
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
        Self::new(status, code, message)
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
                DomainError::TooManyAttempts,
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
            (DomainError::UserNotFound, S::NOT_FOUND, "not_found"),
            (DomainError::IdentityNotFound, S::NOT_FOUND, "not_found"),
            (DomainError::LastIdentity, S::CONFLICT, "last_identity"),
            (
                DomainError::UserMerged("u-owner".parse().unwrap()),
                S::CONFLICT,
                "user_merged",
            ),
            (DomainError::SameUser, S::CONFLICT, "same_user"),
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
            assert_eq!((api.status, api.code), (status, code), "{error:?}");
            assert!(!api.message.is_empty());
        }
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
            (api.status, api.code, api.message.as_str()),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error"
            )
        );
    }
}
