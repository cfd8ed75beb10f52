//! Why a control operation failed.

use super::AppKind;

/// Why a control operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another I/O failure of the server socket.
    #[error("simulator socket error")]
    Io(#[from] std::io::Error),
    /// The appid was never registered.
    #[error("unknown app {0}")]
    UnknownApp(String),
    /// No such user for that app.
    #[error("unknown user {openid} of app {appid}")]
    UnknownUser {
        /// The appid.
        appid: String,
        /// The openid.
        openid: String,
    },
    /// The user never logged in, so there is no session key to encrypt with.
    #[error("user {openid} of app {appid} has no session_key: log in first")]
    NoSession {
        /// The appid.
        appid: String,
        /// The openid.
        openid: String,
    },
    /// The app's kind does not allow the operation, e.g. `wx.login` for an official account.
    #[error("app {appid} ({kind}) cannot {operation}", kind = .kind.as_str())]
    WrongAppKind {
        /// The appid.
        appid: String,
        /// Its kind.
        kind: AppKind,
        /// What was asked, e.g. `grant snsapi_login`.
        operation: String,
    },
    /// A field is empty, too long or malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A size cap was reached (apps, users, codes or fault rules).
    #[error("simulator capacity reached: too many {0}")]
    Capacity(&'static str),
    /// Encrypting the user data failed.
    #[error("cannot encrypt user data")]
    Crypto(#[source] wxlink_crypto::DecryptError),
}

impl SimError {
    /// A stable snake_case name of the error, used as `error.code` by the HTTP control API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Bind { .. } | Self::Io(_) => "io_error",
            Self::UnknownApp(_) => "unknown_app",
            Self::UnknownUser { .. } => "unknown_user",
            Self::NoSession { .. } => "no_session",
            Self::WrongAppKind { .. } => "wrong_app_kind",
            Self::InvalidInput(_) => "invalid_request",
            Self::Capacity(_) => "capacity_reached",
            Self::Crypto(_) => "crypto_error",
        }
    }
}
