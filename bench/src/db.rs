//! Direct database work of the benchmark, with diesel: the durable-commit floor, and bulk seeding
//! of users and identities for the scale runs. (wxlink itself only ever touches its database
//! through wxlink-persistence; the benchmark is a measuring tool standing beside it.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use serde::Serialize;

/// SQLite's settings as wxlink's store applies them to every connection.
pub const SQLITE_SETTINGS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

diesel::table! {
    commit_floor (id) {
        id -> Text,
        payload -> Text,
        at -> BigInt,
    }
}

/// A database the benchmark talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Db {
    /// An SQLite file (absolute path).
    Sqlite(String),
    /// A libpq URL.
    Postgres(String),
}

impl Db {
    /// The URL wxlink's configuration takes.
    pub fn wxlink_url(&self) -> String {
        match self {
            Db::Sqlite(path) => format!("sqlite://{path}"),
            Db::Postgres(url) => url.clone(),
        }
    }

    fn connect(&self) -> Result<Conn, String> {
        match self {
            Db::Sqlite(path) => {
                let mut c = SqliteConnection::establish(path).map_err(|e| e.to_string())?;
                c.batch_execute(SQLITE_SETTINGS)
                    .map_err(|e| e.to_string())?;
                Ok(Conn::Sqlite(c))
            }
            Db::Postgres(url) => PgConnection::establish(url)
                .map(Conn::Pg)
                .map_err(|e| e.to_string()),
        }
    }
}

enum Conn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

impl Conn {
    fn batch(&mut self, sql: &str) -> QueryResult<()> {
        match self {
            Conn::Sqlite(c) => c.batch_execute(sql),
            Conn::Pg(c) => c.batch_execute(sql),
        }
    }

    /// BEGIN as wxlink's store begins a write (SQLite takes the write lock up front).
    fn begin(&mut self) -> QueryResult<()> {
        match self {
            Conn::Sqlite(c) => c.batch_execute("BEGIN IMMEDIATE"),
            Conn::Pg(c) => c.batch_execute("BEGIN"),
        }
    }

    fn insert_floor_row(&mut self, id: &str, payload: &str, at: i64) -> QueryResult<usize> {
        let row = (
            commit_floor::id.eq(id),
            commit_floor::payload.eq(payload),
            commit_floor::at.eq(at),
        );
        match self {
            Conn::Sqlite(c) => diesel::insert_into(commit_floor::table)
                .values(row)
                .execute(c),
            Conn::Pg(c) => diesel::insert_into(commit_floor::table)
                .values(row)
                .execute(c),
        }
    }
}

/// Creates a PostgreSQL database (dropping an old one of the same name) on the server of
/// `admin_url`, returning its URL.
pub fn fresh_pg_database(admin_url: &str, name: &str) -> Result<String, String> {
    let mut c = PgConnection::establish(admin_url).map_err(|e| e.to_string())?;
    // One statement each: several in one batch would run in one transaction, which
    // CREATE DATABASE refuses.
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .map_err(|e| format!("drop database {name}: {e}"))?;
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .map_err(|e| format!("create database {name}: {e}"))?;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(base, _)| base);
    let url = format!("{base}/{name}");
    // For counting statements; without the library loaded the count is just not reported.
    if let Ok(mut db) = PgConnection::establish(&url) {
        let _ = db.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    }
    Ok(url)
}

/// What the PostgreSQL server has done so far, for per-login figures: commits and rollbacks
/// in one database (from `pg_stat_database`, which a backend updates when it exits or at most
/// once a second, so take it when the service's connections are closed), the WAL position,
/// and the CPU of the server's processes.
#[derive(Debug, Clone, Copy)]
pub struct PgCounters {
    pub commits: u64,
    pub rollbacks: u64,
    pub wal_bytes: u64,
    /// The postmaster and every backend, live or exited (exited ones count in the
    /// postmaster's children's time).
    pub server_cpu_us: u64,
    /// Statements clients sent to this database (`pg_stat_statements`, top level: each is a
    /// round trip, `BEGIN` and `COMMIT` included); `None` when the extension is not loaded.
    pub statements: Option<u64>,
}

#[derive(QueryableByName)]
struct PgCountersRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    commits: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    rollbacks: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    wal_bytes: i64,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    backend: i32,
}

#[derive(QueryableByName)]
struct StatementsRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    statements: i64,
}

/// Load `pg_stat_statements` into the server of `admin_url` (a restart of `cluster`), so that
/// [`pg_counters`] can count the statements, and so the round trips, of a login.
pub fn count_statements(cluster: &wxlink_tests::pg::Cluster) -> Result<(), String> {
    let mut c = PgConnection::establish(&cluster.url()).map_err(|e| e.to_string())?;
    c.batch_execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        .map_err(|e| format!("shared_preload_libraries: {e}"))?;
    drop(c);
    cluster.stop()?;
    cluster.start_server()
}

/// The counters of database `url` (its name is the URL's last segment) now.
pub fn pg_counters(url: &str) -> Result<PgCounters, String> {
    let mut c = PgConnection::establish(url).map_err(|e| e.to_string())?;
    let row: PgCountersRow = diesel::sql_query(
        "SELECT xact_commit AS commits, xact_rollback AS rollbacks, \
         pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal_bytes, \
         pg_backend_pid() AS backend \
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .get_result(&mut c)
    .map_err(|e| format!("pg_stat_database: {e}"))?;
    let backend = u32::try_from(row.backend).map_err(|e| e.to_string())?;
    let postmaster = crate::procs::parent_pid(backend).ok_or("no postmaster pid")?;
    let server_cpu_us = crate::procs::tree_cpu_us(postmaster).ok_or("no postmaster CPU")?;
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    let statements = diesel::sql_query(
        "SELECT coalesce(sum(calls), 0)::bigint AS statements FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .get_result::<StatementsRow>(&mut c)
    .ok()
    .map(|row| count(row.statements));
    Ok(PgCounters {
        statements,
        commits: count(row.commits),
        rollbacks: count(row.rollbacks),
        wal_bytes: count(row.wal_bytes),
        server_cpu_us,
    })
}

/// The durable-commit floor at one writer count.
#[derive(Debug, Clone, Serialize)]
pub struct CommitRun {
    /// Concurrent writers (threads, one connection each).
    pub writers: usize,
    /// Committed single-row transactions.
    pub commits: u64,
    /// Their rate.
    pub per_sec: f64,
}

/// Single-row INSERT transactions per second from `writers` threads for `duration` (or
/// `max_commits` in all), each `BEGIN [IMMEDIATE]; INSERT …; COMMIT` with the database's
/// durability settings (SQLite: WAL + synchronous=NORMAL; PostgreSQL: its defaults, fsync on).
pub fn commit_floor(
    db: &Db,
    writers: usize,
    duration: Duration,
    max_commits: u64,
) -> Result<CommitRun, String> {
    let mut setup = db.connect()?;
    setup
        .batch(
            "DROP TABLE IF EXISTS commit_floor; CREATE TABLE commit_floor \
             (id TEXT NOT NULL PRIMARY KEY, payload TEXT NOT NULL, at BIGINT NOT NULL)",
        )
        .map_err(|e| format!("commit floor table: {e}"))?;
    drop(setup);
    let stop = Arc::new(AtomicBool::new(false));
    let per_writer = max_commits / writers.max(1) as u64;
    let started = Instant::now();
    let handles: Vec<_> = (0..writers.max(1))
        .map(|w| {
            let db = db.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || -> Result<u64, String> {
                let mut conn = db.connect()?;
                // ~ a sealed session key and a token hash in hex: a login's largest row.
                let payload = "p".repeat(120);
                let mut done = 0u64;
                while done < per_writer && !stop.load(Ordering::Relaxed) {
                    if started.elapsed() >= duration {
                        break;
                    }
                    let id = format!("{w:04}-{done:012}-{:016x}", rand::random::<u64>());
                    conn.begin().map_err(|e| format!("begin: {e}"))?;
                    conn.insert_floor_row(&id, &payload, 1_700_000_000)
                        .map_err(|e| format!("insert: {e}"))?;
                    conn.batch("COMMIT").map_err(|e| format!("commit: {e}"))?;
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect();
    let mut commits = 0;
    let mut failure = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(n)) => commits += n,
            Ok(Err(e)) => {
                stop.store(true, Ordering::Relaxed);
                failure = Some(e);
            }
            Err(_) => failure = Some("a writer thread panicked".to_owned()),
        }
    }
    let elapsed = started.elapsed();
    if let Some(e) = failure {
        return Err(e);
    }
    if let Ok(mut c) = db.connect() {
        let _ = c.batch("DROP TABLE IF EXISTS commit_floor");
    }
    Ok(CommitRun {
        writers,
        commits,
        per_sec: crate::stats::rate(commits, elapsed),
    })
}

/// The user id, openid and unionid of seeded user `i`: deterministic, so a run can log in any
/// of a million users without keeping a list. Each id starts with `i` in fixed-width hex, so
/// a bulk load appends to every index (as a sorted load would lay the B-trees out) instead of
/// splitting pages at random, which would make seeding several times slower; the measured
/// logins then draw users uniformly at random.
pub fn seeded_user(i: u64) -> (String, String, Option<String>) {
    let user_id = format!(
        "{i:08x}{:016x}{:08x}",
        mix(i ^ 0x5eed_0001),
        mix(i ^ 0x5eed_0002) >> 32
    );
    let openid = format!("os{i:08x}{:016x}{:02x}", mix(i ^ 0x0fe0_0001), mix(i) >> 56);
    let unionid = i.is_multiple_of(2).then(|| {
        format!(
            "us{i:08x}{:016x}{:02x}",
            mix(i ^ 0x0e10_0001),
            mix(i ^ 7) >> 56
        )
    });
    (user_id, openid, unionid)
}

/// splitmix64: a cheap bijective mix of an index.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Inserts users `from..to` (half with a unionid) and one identity each in `appid`, through the
/// store's seeding support (`wxlink_persistence::testing::seed_users`: no SQL here), then
/// settles the database so that the measurement starts from a quiet one.
pub fn seed_users(db: &Db, appid: &str, from: u64, to: u64, now: i64) -> Result<Duration, String> {
    let started = Instant::now();
    let target =
        wxlink_persistence::DatabaseTarget::parse(&db.wxlink_url()).map_err(|e| e.to_string())?;
    let users = (from..to).map(|i| {
        let (id, openid, unionid) = seeded_user(i);
        wxlink_persistence::testing::SeedUser {
            id,
            openid,
            unionid,
        }
    });
    wxlink_persistence::testing::seed_users(&target, appid, users, now)?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_are_distinct_valid_and_half_have_a_unionid() {
        let mut openids = std::collections::HashSet::new();
        let mut with_unionid = 0;
        for i in 0..10_000 {
            let (user_id, openid, unionid) = seeded_user(i);
            assert_eq!(user_id.len(), 32);
            assert_eq!(openid.len(), 28);
            assert!(openid.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(openids.insert(openid));
            if let Some(u) = unionid {
                assert_eq!(u.len(), 28);
                with_unionid += 1;
            }
        }
        assert_eq!(with_unionid, 5_000);
        assert_eq!(seeded_user(42), seeded_user(42));
        // In index order, so that seeding appends.
        for i in [0, 1, 255, 256, 65_535, 999_999] {
            let (a, b) = (seeded_user(i), seeded_user(i + 1));
            assert!(a.0 < b.0 && a.1 < b.1, "{a:?} {b:?}");
        }
    }

    #[test]
    fn seeding_writes_wxlinks_tables_in_sqlite() {
        let dir = std::env::temp_dir().join(format!("wxlink-bench-seed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("seed.db");
        let db = Db::Sqlite(path.to_string_lossy().into_owned());
        let target = wxlink_persistence::DatabaseTarget::parse(&db.wxlink_url()).expect("a URL");
        wxlink_persistence::migrate_blocking(&target).expect("migrate");
        seed_users(&db, "wxbench00000000001", 0, 2_500, 1_700_000_000).expect("seed");
        seed_users(&db, "wxbench00000000001", 2_500, 3_000, 1_700_000_000).expect("seed more");
        let rows = wxlink_persistence::testing::read_rows(&target).expect("read the rows");
        assert_eq!(rows.users.len(), 3_000);
        assert_eq!(rows.identities.len(), 3_000);
        assert!(
            seed_users(&db, "wxbench00000000001", 0, 1, 1_700_000_000).is_err(),
            "seeding a user twice breaks the primary key"
        );
        let run = commit_floor(&db, 1, Duration::from_secs(5), 50).expect("floor");
        assert_eq!(run.commits, 50);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
