//! The two backends a test runs on, and a PostgreSQL database of a test's own.

use std::path::{Path, PathBuf};

use diesel::sql_types::Text;
use diesel::{Connection, PgConnection, RunQueryDsl};

use crate::unique;

/// The database a scenario runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file in the test's temp dir.
    Sqlite,
    /// A fresh database on the server `admin_url` points at, dropped at the end.
    Postgres {
        /// `postgres://…/postgres` from `WXLINK_TEST_DATABASE_URL`.
        admin_url: String,
    },
}

impl Backend {
    /// The PostgreSQL backend, or `None` (with a skip line) when `WXLINK_TEST_DATABASE_URL` is
    /// absent. Under `WXLINK_REQUIRE_POSTGRES=1` an absent URL fails the test instead.
    pub fn postgres(test: &str) -> Option<Self> {
        match std::env::var("WXLINK_TEST_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Some(Self::Postgres {
                admin_url: url.trim().to_owned(),
            }),
            _ if std::env::var("WXLINK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => panic!(
                "WXLINK_REQUIRE_POSTGRES=1 but WXLINK_TEST_DATABASE_URL is not set: \
                 cannot run {test} on PostgreSQL"
            ),
            _ => {
                eprintln!("skipped: {test} on PostgreSQL (set WXLINK_TEST_DATABASE_URL to run it)");
                None
            }
        }
    }

    /// A fresh database of this backend for one test app: a SQLite file in `dir`, or a new
    /// PostgreSQL database, dropped with the returned value.
    pub fn fresh_database(&self, dir: &Path) -> TestDatabase {
        match self {
            Self::Sqlite => {
                let path = dir.join("wxlink.db");
                TestDatabase::Sqlite {
                    url: format!("sqlite://{}", path.display()),
                    path,
                }
            }
            Self::Postgres { admin_url } => TestDatabase::Postgres(PgDatabase::create(admin_url)),
        }
    }

    /// `sqlite` or `postgres`, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }
}

/// A test app's own database. It knows where it is, so no test parses its URL back.
#[derive(Debug)]
pub enum TestDatabase {
    /// A SQLite file (`sqlite://` + its absolute path).
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Its URL.
        url: String,
    },
    /// A database of its own on the PostgreSQL server.
    Postgres(PgDatabase),
}

impl TestDatabase {
    /// The URL wxlink is configured with.
    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } => url,
            Self::Postgres(db) => &db.url,
        }
    }

    /// The SQLite file, when it is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite { path, .. } => Some(path),
            Self::Postgres(_) => None,
        }
    }
}

/// A database of its own on the PostgreSQL server, dropped (`WITH (FORCE)`) on drop.
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// The new database's URL.
    pub url: String,
}

impl PgDatabase {
    /// Create a database with a unique name on the server `admin_url` points at.
    pub fn create(admin_url: &str) -> Self {
        let name = format!("wxlink_bb_{}", unique());
        let mut conn = PgConnection::establish(admin_url)
            .unwrap_or_else(|e| panic!("cannot connect to {admin_url}: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        Self {
            admin_url: admin_url.to_owned(),
            url: crate::pg::with_database(admin_url, &name),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

/// Every table of the database at `url` as text, one row per line.
pub fn dump(url: &str) -> String {
    let mut conn =
        PgConnection::establish(url).unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    let tables: String = diesel::select(diesel::dsl::sql::<Text>(
        "(SELECT coalesce(string_agg(quote_ident(table_name), ','), '') \
          FROM information_schema.tables \
          WHERE table_schema = 'public' AND table_type = 'BASE TABLE')",
    ))
    .get_result(&mut conn)
    .expect("list the tables");
    let mut all = String::new();
    for table in tables.split(',').filter(|t| !t.is_empty()) {
        let rows: String = diesel::select(diesel::dsl::sql::<Text>(&format!(
            "(SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {table} t)"
        )))
        .get_result(&mut conn)
        .unwrap_or_else(|e| panic!("dump {table}: {e}"));
        all.push_str(&rows);
        all.push('\n');
    }
    all
}
