//! What a [`Store`](crate::Store) needs to connect.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use wxlink_crypto::Keyring;

use crate::store::url::DatabaseTarget;

/// Settings for [`Store::connect`](crate::Store::connect).
///
/// `Debug` redacts the URL's password and every key of the keyring.
#[derive(Clone)]
pub struct StoreConfig {
    /// The database: `sqlite://PATH` (relative to the working directory),
    /// `sqlite:///ABSOLUTE/PATH`, `postgres://…` or `postgresql://…` (a libpq connection URI).
    pub database: DatabaseTarget,
    /// Pool size, and how many transactions run at once (default 16).
    pub max_connections: u32,
    /// How long to wait for a connection before answering `Unavailable` (default 3 s).
    pub connect_timeout: Duration,
    /// Apply pending migrations in [`Store::connect`](crate::Store::connect) (default `true`).
    pub migrate_on_start: bool,
    /// Seals session keys at rest; older keys in the ring still open what they sealed.
    pub keyring: Arc<Keyring>,
}

impl StoreConfig {
    /// Default pool size.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
    /// Default wait for a connection.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

    /// Settings with the defaults: 16 connections, a 3 s connect timeout, migrations on start.
    pub fn new(database: DatabaseTarget, keyring: impl Into<Arc<Keyring>>) -> Self {
        Self {
            database,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            migrate_on_start: true,
            keyring: keyring.into(),
        }
    }

    /// Set the pool size.
    #[must_use]
    pub fn max_connections(mut self, max_connections: u32) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// Set how long to wait for a connection.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Choose whether [`Store::connect`](crate::Store::connect) applies pending migrations.
    #[must_use]
    pub fn migrate_on_start(mut self, migrate: bool) -> Self {
        self.migrate_on_start = migrate;
        self
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("database", &self.database)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("keyring", &self.keyring)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxlink_crypto::DataKey;

    #[test]
    fn debug_hides_the_password_and_the_keys() {
        let config = StoreConfig::new(
            DatabaseTarget::parse("postgres://wx:hunter2@db:5432/wxlink").unwrap(),
            Keyring::new(DataKey::from_bytes([7; 32])),
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("postgres://[redacted]@db:5432/wxlink"),
            "{debug}"
        );
        assert!(debug.contains("DataKey([redacted])"), "{debug}");
        assert!(debug.contains("max_connections: 16"), "{debug}");
    }
}
