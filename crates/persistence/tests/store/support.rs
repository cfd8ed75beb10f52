//! The persistence suite's side of the one test harness (`wxlink_tests::database`: a database
//! per test, cloned from one migrated per process, on SQLite or PostgreSQL): the store on a
//! test database, the keys it seals with, raw reads and writes behind the store's back (SQL
//! stays in this crate), and small builders for the cases.

use diesel::prelude::*;
use diesel::sql_types::Binary;
use diesel::{PgConnection, SqliteConnection};
use wxlink_crypto::{DataKey, Keyring};
use wxlink_domain::{
    AppId, OpenId, Session, SessionKey, SessionToken, StoreError, StoreTx, UnionId, User, UserId,
};
use wxlink_persistence::{Store, StoreConfig};
pub use wxlink_tests::database::{Backend as TestBackend, TestDatabase as TestDb};

/// How long a test keeps a fault in place (a held connection, a closed port) before it gives up
/// on an answer: far past any budget under test, so only a wait nothing cuts reaches it. A
/// give-up, not a promise: tests assert the answer, never how fast it came.
pub const GIVE_UP: std::time::Duration = std::time::Duration::from_secs(60);

/// The data key most tests seal with.
pub fn key_a() -> DataKey {
    DataKey::from_bytes([0xA1; 32])
}

/// A second data key, for rotation.
pub fn key_b() -> DataKey {
    DataKey::from_bytes([0xB2; 32])
}

/// A keyring with only `key_a`.
pub fn keyring_a() -> Keyring {
    Keyring::new(key_a())
}

/// The store on a test database, and what a case reads or writes behind its back.
pub trait TestDbExt {
    /// The store's settings for this database: `keyring`, 8 connections.
    fn config(&self, keyring: Keyring) -> StoreConfig;

    /// A store sealing with `key_a`, migrations applied.
    async fn store(&self) -> Store {
        self.store_with(keyring_a()).await
    }

    /// A store sealing with `keyring`, migrations applied.
    async fn store_with(&self, keyring: Keyring) -> Store {
        Store::connect(self.config(keyring))
            .await
            .expect("connect the store")
    }

    /// Run SQL on a connection of our own, outside the store.
    fn raw_execute(&self, sql: &str) -> Result<usize, String>;

    /// Every session row's stored bytes, read outside the store.
    fn raw_sessions(&self) -> Vec<RawSession>;
}

impl TestDbExt for TestDb {
    fn config(&self, keyring: Keyring) -> StoreConfig {
        StoreConfig::new(self.target(), keyring).max_connections(8)
    }

    fn raw_execute(&self, sql: &str) -> Result<usize, String> {
        let result = match self.sqlite_path() {
            Some(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(|e| e.to_string())?;
                diesel::sql_query("PRAGMA busy_timeout = 5000")
                    .execute(&mut conn)
                    .map_err(|e| e.to_string())?;
                diesel::sql_query(sql).execute(&mut conn)
            }
            None => {
                let mut conn = PgConnection::establish(self.url()).map_err(|e| e.to_string())?;
                diesel::sql_query(sql).execute(&mut conn)
            }
        };
        result.map_err(|e| e.to_string())
    }

    fn raw_sessions(&self) -> Vec<RawSession> {
        let sql = "SELECT token_hash, session_key FROM sessions ORDER BY token_hash";
        match self.sqlite_path() {
            Some(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
                diesel::sql_query(sql).load(&mut conn).unwrap()
            }
            None => {
                let mut conn = PgConnection::establish(self.url()).unwrap();
                diesel::sql_query(sql).load(&mut conn).unwrap()
            }
        }
    }
}

#[derive(Debug, QueryableByName)]
pub struct RawSession {
    #[diesel(sql_type = Binary)]
    pub token_hash: Vec<u8>,
    #[diesel(sql_type = Binary)]
    pub session_key: Vec<u8>,
}

// Small builders for the cases.

pub fn app(n: u8) -> AppId {
    AppId::parse(format!("wx{:0>16}", format!("a{n}"))).unwrap()
}

pub fn openid(text: &str) -> OpenId {
    OpenId::parse(text.to_owned()).unwrap()
}

pub fn unionid(text: &str) -> UnionId {
    UnionId::parse(text.to_owned()).unwrap()
}

pub fn user_id(text: &str) -> UserId {
    UserId::parse(text.to_owned()).unwrap()
}

pub fn user(id: &str, union: Option<&str>, at: i64) -> User {
    User {
        id: user_id(id),
        unionid: union.map(unionid),
        merged_into: None,
        created_at: at,
    }
}

pub fn token(n: u32) -> SessionToken {
    SessionToken::new(format!("test-token-{n:0>24}"))
}

/// A session to insert, and the session_key it is inserted with.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub session: Session,
    pub key: Option<SessionKey>,
}

impl std::ops::Deref for NewSession {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl std::ops::DerefMut for NewSession {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.session
    }
}

pub fn session(
    token: &SessionToken,
    user: &str,
    app_: &AppId,
    open: &str,
    key: &str,
) -> NewSession {
    NewSession {
        session: Session {
            token_hash: token.hash(),
            user_id: user_id(user),
            appid: app_.clone(),
            openid: openid(open),
            has_session_key: true,
            created_at: 1_000,
            expires_at: 1_000 + 3_600,
            revoked: false,
        },
        key: Some(SessionKey::new(key)),
    }
}

/// Insert a [`NewSession`] with its key.
pub fn insert_new_session(tx: &mut dyn StoreTx, s: NewSession) -> Result<(), StoreError> {
    tx.insert_session(&s, &s.key)
}
