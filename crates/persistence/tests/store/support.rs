//! One database per test: a fresh SQLite file, or a fresh PostgreSQL database created on the
//! server named by `WXLINK_TEST_DATABASE_URL` and dropped when the test ends.

use std::path::PathBuf;

use diesel::prelude::*;
use diesel::sql_types::Binary;
use diesel::{PgConnection, SqliteConnection};
use wxlink_crypto::{DataKey, Keyring};
use wxlink_domain::{
    AppId, OpenId, Session, SessionKey, SessionToken, StoreError, StoreTx, UnionId, User, UserId,
};
use wxlink_persistence::{Backend, DatabaseTarget, Store, StoreConfig};

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

pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    guard: Guard,
}

enum Guard {
    /// Held for its `Drop`, which removes the directory.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Postgres { admin_url, name } = self {
            let dropped = PgConnection::establish(admin_url)
                .map_err(|e| e.to_string())
                .and_then(|mut admin| {
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = dropped {
                eprintln!("could not drop test database {name}: {e}");
            }
        }
    }
}

impl TestDb {
    /// A fresh SQLite file in a directory that does not exist yet (the store creates it).
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("nested/dir/wxlink.db");
        TestDb {
            url: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite,
            guard: Guard::Sqlite { _dir: dir },
        }
    }

    /// A fresh PostgreSQL database, or `None` (after saying so) when no server is configured.
    /// With `WXLINK_REQUIRE_POSTGRES=1` a missing server fails the test instead.
    pub fn postgres() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("WXLINK_TEST_DATABASE_URL") else {
            if std::env::var("WXLINK_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("WXLINK_REQUIRE_POSTGRES=1 but WXLINK_TEST_DATABASE_URL is not set");
            }
            eprintln!("skipped: PostgreSQL test (set WXLINK_TEST_DATABASE_URL to run it)");
            return None;
        };
        let name = format!("wxlink_t_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("cannot connect to WXLINK_TEST_DATABASE_URL: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create the test database");
        Some(TestDb {
            url: wxlink_tests::pg::with_database(&admin_url, &name),
            backend: Backend::Postgres,
            guard: Guard::Postgres { admin_url, name },
        })
    }

    pub fn target(&self) -> DatabaseTarget {
        DatabaseTarget::parse(&self.url).unwrap()
    }

    pub fn config(&self, keyring: Keyring) -> StoreConfig {
        StoreConfig::new(self.target(), keyring).max_connections(8)
    }

    /// A store sealing with `key_a`, migrations applied.
    pub async fn store(&self) -> Store {
        self.store_with(keyring_a()).await
    }

    pub async fn store_with(&self, keyring: Keyring) -> Store {
        Store::connect(self.config(keyring))
            .await
            .expect("connect the store")
    }

    /// The SQLite file, when this is SQLite.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.target().sqlite_path().map(PathBuf::from)
    }

    /// The PostgreSQL database name, when this is PostgreSQL.
    pub fn pg_name(&self) -> Option<&str> {
        match &self.guard {
            Guard::Postgres { name, .. } => Some(name),
            Guard::Sqlite { .. } => None,
        }
    }

    /// Run SQL on a connection of our own, outside the store.
    pub fn raw_execute(&self, sql: &str) -> Result<usize, String> {
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
                let mut conn = PgConnection::establish(&self.url).map_err(|e| e.to_string())?;
                diesel::sql_query(sql).execute(&mut conn)
            }
        };
        result.map_err(|e| e.to_string())
    }

    /// Every session row's stored bytes, read outside the store.
    pub fn raw_sessions(&self) -> Vec<RawSession> {
        let sql = "SELECT token_hash, session_key FROM sessions ORDER BY token_hash";
        match self.sqlite_path() {
            Some(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
                diesel::sql_query(sql).load(&mut conn).unwrap()
            }
            None => {
                let mut conn = PgConnection::establish(&self.url).unwrap();
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
