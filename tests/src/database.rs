//! The two backends a test runs on, and a PostgreSQL database of a test's own.

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
    /// PostgreSQL database (returned too, so that it is dropped with the app); its URL first.
    pub fn fresh_database(&self, dir: &std::path::Path) -> (String, Option<PgDatabase>) {
        match self {
            Self::Sqlite => (
                format!("sqlite://{}", dir.join("wxlink.db").display()),
                None,
            ),
            Self::Postgres { admin_url } => {
                let db = PgDatabase::create(admin_url);
                (db.url.clone(), Some(db))
            }
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
            url: with_database(admin_url, &name),
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

/// `url` with its database (the path) replaced by `name`, keeping any query string.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{name}{query}")
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
