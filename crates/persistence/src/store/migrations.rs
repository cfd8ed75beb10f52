//! The schema's migrations, embedded per backend (`migrations/sqlite`, `migrations/postgres`)
//! under identical names, and the one function that applies them.

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::migration::{Migration, MigrationSource};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::store::connection::DbConnection;
use crate::store::error::PersistenceError;
use crate::store::url::{DatabaseTarget, Target};

pub(crate) const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub(crate) const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Key of the PostgreSQL advisory lock that serializes migrations of nodes starting together.
const PG_MIGRATION_LOCK: i64 = 0x7778_6c69_6e6b; // "wxlink"

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Apply the pending migrations to the database `target` and return the names of those
/// applied, in order (empty when the schema is up to date).
///
/// [`Store::connect`](crate::Store::connect) runs this itself unless `migrate_on_start` is off;
/// this function is for `wxlink migrate`. Several processes may migrate at once: PostgreSQL
/// serializes them with an advisory lock, SQLite with its write lock. The work runs on a
/// blocking thread; [`migrate_blocking`] is the same for code without an async runtime.
///
/// # Errors
/// [`PersistenceError`] when the URL is not accepted, the database cannot be reached, or a
/// migration fails (that migration is rolled back).
pub async fn migrate(target: &DatabaseTarget) -> Result<Vec<String>, PersistenceError> {
    let target = target.0.clone();
    let display = target.display_url();
    tokio::task::spawn_blocking(move || migrate_target(&target))
        .await
        .map_err(|e| PersistenceError::Migration {
            url: display,
            message: format!("the migration thread failed: {e}"),
        })?
}

/// [`migrate`] for synchronous callers; blocks the calling thread.
///
/// # Errors
/// As [`migrate`].
pub fn migrate_blocking(target: &DatabaseTarget) -> Result<Vec<String>, PersistenceError> {
    migrate_target(&target.0)
}

pub(crate) fn migrate_target(target: &Target) -> Result<Vec<String>, PersistenceError> {
    target.create_parent_dir()?;
    let mut conn = target
        .establish()
        .map_err(|message| PersistenceError::Connect {
            url: target.display_url(),
            message,
        })?;
    let applied = match &mut conn {
        DbConnection::Sqlite(c) => migrate_sqlite(c),
        DbConnection::Pg(c) => migrate_postgres(c),
    };
    let applied = applied.map_err(|e| PersistenceError::Migration {
        url: target.display_url(),
        message: target.scrub(e.to_string()),
    })?;
    if !applied.is_empty() {
        tracing::info!(database = %target.display_url(), migrations = ?applied, "applied migrations");
    }
    Ok(applied)
}

fn run_pending<C, DB>(conn: &mut C, source: EmbeddedMigrations) -> Result<Vec<String>, BoxError>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let pending = conn.pending_migrations(source)?;
    let mut applied = Vec::with_capacity(pending.len());
    for migration in &pending {
        conn.run_migration(migration)?;
        applied.push(migration.name().to_string());
    }
    Ok(applied)
}

/// Everything in one `BEGIN IMMEDIATE` transaction (each migration nests as a savepoint): a
/// second process migrating at the same time waits, then finds nothing pending.
fn migrate_sqlite(conn: &mut SqliteConnection) -> Result<Vec<String>, BoxError> {
    AnsiTransactionManager::begin_transaction_sql(conn, "BEGIN IMMEDIATE")?;
    match run_pending(conn, SQLITE) {
        Ok(applied) => {
            AnsiTransactionManager::commit_transaction(conn)?;
            Ok(applied)
        }
        Err(e) => {
            // The migration's own savepoint is already rolled back; this ends the outer one.
            let _ = AnsiTransactionManager::rollback_transaction(conn);
            Err(e)
        }
    }
}

/// Each migration in its own transaction (diesel's default), all under a session advisory lock
/// so nodes starting together take turns.
fn migrate_postgres(conn: &mut PgConnection) -> Result<Vec<String>, BoxError> {
    conn.batch_execute(&format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))?;
    let outcome = run_pending(conn, POSTGRES);
    let unlocked = conn.batch_execute(&format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"));
    let applied = outcome?;
    unlocked?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::pg::Pg;
    use diesel::sqlite::Sqlite;

    /// Names of the migrations a backend's folder holds, in order.
    fn names<DB: diesel::backend::Backend>(source: &impl MigrationSource<DB>) -> Vec<String> {
        source
            .migrations()
            .unwrap()
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    }

    #[test]
    fn both_backends_have_the_same_migrations() {
        let sqlite = names::<Sqlite>(&SQLITE);
        let postgres = names::<Pg>(&POSTGRES);
        assert!(!sqlite.is_empty());
        assert_eq!(
            sqlite, postgres,
            "migrations/sqlite and migrations/postgres must hold the same migration names"
        );
    }

    #[test]
    fn migration_folders_on_disk_match() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let list = |backend: &str| {
            let mut names: Vec<String> = std::fs::read_dir(root.join(backend))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(list("sqlite"), list("postgres"));
        for backend in ["sqlite", "postgres"] {
            for name in list(backend) {
                for file in ["up.sql", "down.sql"] {
                    assert!(
                        root.join(backend).join(&name).join(file).is_file(),
                        "{backend}/{name}/{file} is missing"
                    );
                }
            }
        }
    }
}
