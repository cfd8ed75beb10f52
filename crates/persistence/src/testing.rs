//! Test support, behind the cargo feature `testing` (which only `wxlink-tests` and `bench` turn on):
//! what tests need of a database beyond the store's API — creating and cloning the databases
//! they run on, reading every row to check the invariants, and the faults a test injects behind
//! wxlink's back. It lives here so that no SQL lives outside this crate; wxlink never calls it.

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::{PgConnection, SqliteConnection};
use wxlink_domain::TxMode;

use crate::store::connection::{self, DbConnection};
use crate::store::schema::{events, identities, sessions, users};
use crate::store::url::DatabaseTarget;

/// A connection to the PostgreSQL server `admin_url` names, for `CREATE`/`DROP DATABASE`.
fn admin(admin_url: &str) -> Result<PgConnection, String> {
    PgConnection::establish(admin_url)
        .map_err(|e| format!("cannot connect to {}: {e}", crate::redact_url(admin_url)))
}

/// A database name a test made: ASCII letters, digits and `_`, so it needs no quoting.
fn checked_name(name: &str) -> Result<&str, String> {
    if !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(name)
    } else {
        Err(format!("not a test database name: {name:?}"))
    }
}

/// Create the PostgreSQL database `name` on the server of `admin_url`: empty, or a copy of
/// `template` (which nobody may be connected to).
///
/// # Errors
/// When the server cannot be reached or refuses.
pub fn create_postgres_database(
    admin_url: &str,
    name: &str,
    template: Option<&str>,
) -> Result<(), String> {
    let name = checked_name(name)?;
    let sql = match template {
        Some(template) => format!(
            "CREATE DATABASE {name} TEMPLATE {}",
            checked_name(template)?
        ),
        None => format!("CREATE DATABASE {name}"),
    };
    admin(admin_url)?
        .batch_execute(&sql)
        .map_err(|e| format!("{sql}: {e}"))
}

/// Drop the PostgreSQL database `name` (`WITH (FORCE)`: its connections are cut), if it exists.
///
/// # Errors
/// When the server cannot be reached or refuses.
pub fn drop_postgres_database(admin_url: &str, name: &str) -> Result<(), String> {
    let sql = format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        checked_name(name)?
    );
    admin(admin_url)?
        .batch_execute(&sql)
        .map_err(|e| format!("{sql}: {e}"))
}

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// The databases on the server of `admin_url` whose names start with `prefix`.
///
/// # Errors
/// When the server cannot be reached.
pub fn postgres_databases(admin_url: &str, prefix: &str) -> Result<Vec<String>, String> {
    let rows: Vec<Named> = diesel::sql_query("SELECT datname FROM pg_database")
        .load(&mut admin(admin_url)?)
        .map_err(|e| format!("list the databases: {e}"))?;
    Ok(rows
        .into_iter()
        .map(|r| r.datname)
        .filter(|name| name.starts_with(prefix))
        .collect())
}

/// Make the SQLite file of `target` whole in itself: its WAL checkpointed into it and emptied,
/// so that copying the file alone copies the database.
///
/// # Errors
/// When the file cannot be opened or checkpointed.
pub fn checkpoint_sqlite(target: &DatabaseTarget) -> Result<(), String> {
    let path = target
        .sqlite_path()
        .ok_or_else(|| "not a SQLite database".to_owned())?;
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")
        .map_err(|e| format!("checkpoint {}: {e}", path.display()))
}

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// `users.id`
    pub id: String,
    /// `users.unionid`
    pub unionid: Option<String>,
    /// `users.merged_into`
    pub merged_into: Option<String>,
    /// `users.deleted_at`: set on the tombstone of a cancelled account.
    pub deleted_at: Option<i64>,
}

/// A row of `identities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    /// `identities.appid`
    pub appid: String,
    /// `identities.openid`
    pub openid: String,
    /// `identities.user_id`
    pub user_id: String,
    /// `identities.unionid`: the unionid the identity vouches for.
    pub unionid: Option<String>,
}

/// A row of `sessions` (without the token hash and the sealed key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// `sessions.user_id`
    pub user_id: String,
    /// `sessions.appid`
    pub appid: String,
    /// `sessions.openid`
    pub openid: String,
    /// `sessions.expires_at`
    pub expires_at: i64,
    /// `sessions.revoked_at`
    pub revoked_at: Option<i64>,
}

/// A row of `events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// `events.kind`
    pub kind: String,
    /// `events.user_id`
    pub user_id: String,
    /// `events.other_user_id`
    pub other_user_id: Option<String>,
    /// `events.appid`
    pub appid: String,
    /// `events.openid`
    pub openid: String,
    /// `events.detail`
    pub detail: Option<String>,
}

/// Every user (by id), identity (by appid, openid), session and event (in id order) of one
/// database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    /// `users`
    pub users: Vec<UserRow>,
    /// `identities`
    pub identities: Vec<IdentityRow>,
    /// `sessions`
    pub sessions: Vec<SessionRow>,
    /// `events`
    pub events: Vec<EventRow>,
}

/// Read every row of `target` in one read transaction, so that the tables agree.
///
/// # Errors
/// When the database cannot be reached or read.
pub fn read_rows(target: &DatabaseTarget) -> Result<Rows, String> {
    let mut conn = target.0.establish()?;
    connection::begin(&mut conn, TxMode::Read).map_err(|e| format!("begin: {e}"))?;
    let rows = load_rows(&mut conn);
    let _ = connection::rollback(&mut conn);
    rows.map_err(|e| format!("read the rows: {e}"))
}

fn load_rows(conn: &mut DbConnection) -> QueryResult<Rows> {
    let users = users::table
        .select((
            users::id,
            users::unionid,
            users::merged_into,
            users::deleted_at,
        ))
        .order(users::id)
        .load::<(String, Option<String>, Option<String>, Option<i64>)>(conn)?
        .into_iter()
        .map(|(id, unionid, merged_into, deleted_at)| UserRow {
            id,
            unionid,
            merged_into,
            deleted_at,
        })
        .collect();
    let identities = identities::table
        .select((
            identities::appid,
            identities::openid,
            identities::user_id,
            identities::unionid,
        ))
        .order((identities::appid, identities::openid))
        .load::<(String, String, String, Option<String>)>(conn)?
        .into_iter()
        .map(|(appid, openid, user_id, unionid)| IdentityRow {
            appid,
            openid,
            user_id,
            unionid,
        })
        .collect();
    let sessions = sessions::table
        .select((
            sessions::user_id,
            sessions::appid,
            sessions::openid,
            sessions::expires_at,
            sessions::revoked_at,
        ))
        .load::<(String, String, String, i64, Option<i64>)>(conn)?
        .into_iter()
        .map(
            |(user_id, appid, openid, expires_at, revoked_at)| SessionRow {
                user_id,
                appid,
                openid,
                expires_at,
                revoked_at,
            },
        )
        .collect();
    let events = events::table
        .select((
            events::kind,
            events::user_id,
            events::other_user_id,
            events::appid,
            events::openid,
            events::detail,
        ))
        .order(events::id)
        .load::<(
            String,
            String,
            Option<String>,
            String,
            String,
            Option<String>,
        )>(conn)?
        .into_iter()
        .map(
            |(kind, user_id, other_user_id, appid, openid, detail)| EventRow {
                kind,
                user_id,
                other_user_id,
                appid,
                openid,
                detail,
            },
        )
        .collect();
    Ok(Rows {
        users,
        identities,
        sessions,
        events,
    })
}

#[derive(QueryableByName)]
struct Dumped {
    #[diesel(sql_type = Text)]
    text: String,
}

/// Every table of the PostgreSQL database at `url` as text, one row per line: what a search
/// for a secret stored in the clear must look through.
///
/// # Errors
/// When the database cannot be reached or read.
pub fn dump_postgres(url: &str) -> Result<String, String> {
    let mut conn =
        PgConnection::establish(url).map_err(|e| format!("cannot connect to the database: {e}"))?;
    let tables: Vec<Named> = diesel::sql_query(
        "SELECT table_name::text AS datname FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .load(&mut conn)
    .map_err(|e| format!("list the tables: {e}"))?;
    let mut all = String::new();
    for table in tables {
        let rows: Vec<Dumped> = diesel::sql_query(format!(
            "SELECT t::text AS text FROM {} t",
            quote_ident(&table.datname)
        ))
        .load(&mut conn)
        .map_err(|e| format!("dump {}: {e}", table.datname))?;
        for row in rows {
            all.push_str(&row.text);
            all.push('\n');
        }
    }
    Ok(all)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A fault test's damage: replace the sealed session_key of every session of `target` with
/// `sealed`, as a mixed-up key or a restored backup leaves them. Returns how many rows changed.
///
/// # Errors
/// When the database cannot be reached or written.
pub fn overwrite_session_keys(target: &DatabaseTarget, sealed: &[u8]) -> Result<usize, String> {
    let mut conn = target.0.establish()?;
    diesel::update(sessions::table)
        .set(sessions::session_key.eq(Some(sealed)))
        .execute(&mut conn)
        .map_err(|e| format!("overwrite the session keys: {e}"))
}

/// An open transaction from outside wxlink, held until [`HeldTransaction::commit`] or
/// [`HeldTransaction::release`] (dropping it rolls back when the connection closes).
pub struct HeldTransaction {
    conn: DbConnection,
}

impl std::fmt::Debug for HeldTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeldTransaction")
    }
}

impl HeldTransaction {
    /// Take SQLite's write lock on `target` with a write pending, as another process (a backup
    /// tool, an operator's `sqlite3` shell left in a transaction) can.
    ///
    /// # Errors
    /// When the database cannot be opened or the lock not taken within the busy timeout.
    pub fn sqlite_write_lock(target: &DatabaseTarget) -> Result<Self, String> {
        let mut conn = target.0.establish()?;
        connection::begin(&mut conn, TxMode::Write).map_err(|e| format!("begin: {e}"))?;
        diesel::update(users::table)
            .set(users::updated_at.eq(users::updated_at))
            .execute(&mut conn)
            .map_err(|e| format!("a pending write: {e}"))?;
        Ok(Self { conn })
    }

    /// Begin a transaction that takes the next event id with an `identity_linked` event of
    /// `user_id`, (`appid`, `openid`), and stays open: a commit that comes late, after events
    /// with higher ids committed.
    ///
    /// # Errors
    /// When the database cannot be reached or written.
    pub fn late_event(
        target: &DatabaseTarget,
        user_id: &str,
        appid: &str,
        openid: &str,
    ) -> Result<Self, String> {
        let mut conn = target.0.establish()?;
        connection::begin(&mut conn, TxMode::WriteGuarded).map_err(|e| format!("begin: {e}"))?;
        diesel::insert_into(events::table)
            .values((
                events::kind.eq("identity_linked"),
                events::user_id.eq(user_id),
                events::appid.eq(appid),
                events::openid.eq(openid),
                events::at.eq(1_i64),
            ))
            .execute(&mut conn)
            .map_err(|e| format!("the held event: {e}"))?;
        Ok(Self { conn })
    }

    /// Commit what the transaction wrote.
    ///
    /// # Errors
    /// When the commit fails.
    pub fn commit(mut self) -> Result<(), String> {
        connection::commit(&mut self.conn).map_err(|e| format!("commit: {e}"))
    }

    /// Roll back and let go.
    ///
    /// # Errors
    /// When the rollback fails.
    pub fn release(mut self) -> Result<(), String> {
        connection::rollback(&mut self.conn).map_err(|e| format!("rollback: {e}"))
    }
}

/// One user to seed, with its one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedUser {
    /// `users.id`
    pub id: String,
    /// The identity's openid.
    pub openid: String,
    /// `users.unionid`
    pub unionid: Option<String>,
}

/// Rows per multi-row `INSERT` when seeding (4 parameters a row, far below both backends'
/// limits on parameters per statement).
const SEED_BATCH: usize = 1_000;

/// Bulk-load `users` into the migrated database `target`, one identity each in `appid`, all
/// created at `now`, in one transaction; then settle the database (SQLite: the WAL folded into
/// the file; PostgreSQL: fresh statistics and a checkpoint, as autovacuum would soon after a
/// load), so that a measurement starts from a quiet database. For the benchmark's scale runs:
/// the rows are consistent by construction, so foreign keys are not checked row by row.
///
/// # Errors
/// When the database cannot be reached, a row breaks a constraint (a user seeded twice), or
/// the commit fails; nothing is then written.
pub fn seed_users(
    target: &DatabaseTarget,
    appid: &str,
    users: impl IntoIterator<Item = SeedUser>,
    now: i64,
) -> Result<(), String> {
    let mut conn = target.0.establish()?;
    if let DbConnection::Sqlite(c) = &mut conn {
        // A page cache that holds the indexes being appended to.
        c.batch_execute("PRAGMA foreign_keys = OFF; PRAGMA cache_size = -262144")
            .map_err(|e| format!("seed settings: {e}"))?;
    }
    connection::begin(&mut conn, TxMode::Write).map_err(|e| format!("begin: {e}"))?;
    let loaded = load_seed(&mut conn, appid, users, now);
    if let Err(e) = loaded {
        let _ = connection::rollback(&mut conn);
        return Err(e);
    }
    connection::commit(&mut conn).map_err(|e| format!("commit the seed: {e}"))?;
    match &mut conn {
        DbConnection::Sqlite(c) => c.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)"),
        DbConnection::Pg(c) => c.batch_execute("ANALYZE users; ANALYZE identities; CHECKPOINT"),
    }
    .map_err(|e| format!("settling after the load: {e}"))
}

fn load_seed(
    conn: &mut DbConnection,
    appid: &str,
    users: impl IntoIterator<Item = SeedUser>,
    now: i64,
) -> Result<(), String> {
    if let DbConnection::Pg(c) = conn {
        c.batch_execute("SET LOCAL session_replication_role = replica")
            .map_err(|e| format!("seed settings: {e}"))?;
    }
    let mut users = users.into_iter().peekable();
    while users.peek().is_some() {
        let batch: Vec<SeedUser> = users.by_ref().take(SEED_BATCH).collect();
        let user_rows: Vec<_> = batch
            .iter()
            .map(|u| {
                (
                    users::id.eq(&u.id),
                    users::unionid.eq(u.unionid.as_deref()),
                    users::created_at.eq(now),
                    users::updated_at.eq(now),
                )
            })
            .collect();
        let identity_rows: Vec<_> = batch
            .iter()
            .map(|u| {
                (
                    identities::appid.eq(appid),
                    identities::openid.eq(&u.openid),
                    identities::user_id.eq(&u.id),
                    identities::created_at.eq(now),
                    identities::updated_at.eq(now),
                )
            })
            .collect();
        let first = &batch[0].id;
        // Multi-row inserts are per backend in diesel (the one connection type has none): the
        // same statements, typed once for each backend's connection.
        macro_rules! insert_batch {
            ($c:expr) => {
                diesel::insert_into(users::table)
                    .values(&user_rows)
                    .execute($c)
                    .and_then(|_| {
                        diesel::insert_into(identities::table)
                            .values(&identity_rows)
                            .execute($c)
                    })
            };
        }
        let inserted = match &mut *conn {
            DbConnection::Sqlite(c) => insert_batch!(c),
            DbConnection::Pg(c) => insert_batch!(c),
        };
        inserted.map_err(|e| format!("seeding users from {first}: {e}"))?;
    }
    Ok(())
}
