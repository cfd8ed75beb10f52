//! Configuration: a TOML file, every key overridable by `WXLINK__SECTION__KEY` environment
//! variables, defaults as the contract gives them, validated before anything starts.
//!
//! Three parts: what the file and the environment say (`settings`), the checks that turn it
//! into typed values once (`validate`), and the data key and its key file (`data_keys`).

mod data_keys;
mod settings;
mod validate;

pub use data_keys::{DataKeys, NewKeyFile};
pub use settings::{
    AppSettings, ClientSettings, ConsoleSettings, DatabaseSettings, InternalSettings,
    MetricsSettings, RateLimitSettings, SecuritySettings, ServerSettings, SessionSettings,
    Settings, TokenFormat, TokenSettings, WeChatSettings, WebhookSettings,
};
pub use validate::{App, ISSUER, MAX_CLIENT_NAME_CHARS, MIN_SHARED_SECRET_CHARS, Validated};

/// Why the configuration was refused; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be read or has unknown or mistyped keys.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A key's value is invalid.
    #[error("configuration: {key}: {message}")]
    Invalid {
        /// The key, e.g. `apps.wx123.secret`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The data key file could not be read or created.
    #[error("configuration: security.data_key: {0}")]
    DataKeyFile(String),
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests;
