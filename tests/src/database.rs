//! The databases tests run on (the `database` feature): the two backends, and a database of a
//! test's own, dropped with it.
//!
//! As crates.io's `TestDatabase` does, each test process migrates one template database per
//! backend, once, under a lock; every test then gets a copy of it (PostgreSQL:
//! `CREATE DATABASE … TEMPLATE …`; SQLite: the migrated file copied), which costs far less than
//! running every migration again. Tests of migrations and start-up take an empty one instead.
//! The SQL all this needs lives in `wxlink_persistence::testing`.
//!
//! PostgreSQL runs on the server `WXLINK_TEST_DATABASE_URL` names; without it the PostgreSQL
//! half of a test is skipped, unless `WXLINK_REQUIRE_POSTGRES=1` (as `cargo xtask test` sets),
//! which fails it instead, so that no suite passes by doing nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use wxlink_persistence::DatabaseTarget;
use wxlink_persistence::testing;

use crate::unique;

/// The variable naming the PostgreSQL server tests create their databases on.
pub const DATABASE_URL_VAR: &str = "WXLINK_TEST_DATABASE_URL";
/// With this set to `1`, a PostgreSQL test without a server fails instead of being skipped.
pub const REQUIRE_POSTGRES_VAR: &str = "WXLINK_REQUIRE_POSTGRES";

/// Names of the per-process templates; `{prefix}{pid}_…`, so a later process can tell the
/// templates of processes that are gone.
const PG_TEMPLATE_PREFIX: &str = "wxlink_tpl_";
/// Each test's own PostgreSQL database: `{prefix}{owner}_{unique}`.
const PG_DATABASE_PREFIX: &str = "wxlink_t_";
const SQLITE_TEMPLATE_PREFIX: &str = "wxlink-template-";

/// The database a scenario runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temp dir of its own.
    Sqlite,
    /// A database of its own on the server `admin_url` points at, dropped at the end.
    Postgres {
        /// `postgres://…/postgres` from `WXLINK_TEST_DATABASE_URL`.
        admin_url: String,
    },
}

impl Backend {
    /// The PostgreSQL backend, or `None` (with a skip line) when `WXLINK_TEST_DATABASE_URL` is
    /// unset or blank. Under `WXLINK_REQUIRE_POSTGRES=1` that fails the test `test` instead.
    pub fn postgres(test: &str) -> Option<Self> {
        match std::env::var(DATABASE_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => Some(Self::Postgres {
                admin_url: url.trim().to_owned(),
            }),
            _ if std::env::var(REQUIRE_POSTGRES_VAR).is_ok_and(|v| v == "1") => panic!(
                "{REQUIRE_POSTGRES_VAR}=1 but {DATABASE_URL_VAR} is not set: \
                 cannot run {test} on PostgreSQL"
            ),
            _ => {
                eprintln!("skipped: {test} on PostgreSQL (set {DATABASE_URL_VAR} to run it)");
                None
            }
        }
    }

    /// A database of this backend with every migration applied: a copy of this process's
    /// template.
    pub fn database(&self) -> TestDatabase {
        match self {
            Self::Sqlite => {
                let database = TestDatabase::sqlite();
                let template = sqlite_template();
                std::fs::copy(template, &database.path).unwrap_or_else(|e| {
                    panic!(
                        "copy {} to {}: {e}",
                        template.display(),
                        database.path.display()
                    )
                });
                database
            }
            Self::Postgres { admin_url } => {
                let template = pg_template(admin_url);
                TestDatabase::postgres(admin_url, Some(&template))
            }
        }
    }

    /// An empty database of this backend, for tests of migrations and start-up. The SQLite
    /// file does not exist yet: whoever opens it first creates it.
    pub fn empty_database(&self) -> TestDatabase {
        match self {
            Self::Sqlite => TestDatabase::sqlite(),
            Self::Postgres { admin_url } => TestDatabase::postgres(admin_url, None),
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

/// A test's own database. It knows where it is, so no test parses its URL back.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    path: PathBuf,
    place: Place,
}

#[derive(Debug)]
enum Place {
    /// Held for its `Drop`, which removes the file.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDatabase {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir for the database");
        let path = dir.path().join("wxlink.db");
        Self {
            url: format!("sqlite://{}", path.display()),
            path,
            place: Place::Sqlite { _dir: dir },
        }
    }

    fn postgres(admin_url: &str, template: Option<&str>) -> Self {
        let name = format!("{PG_DATABASE_PREFIX}{}_{}", owner(), unique());
        testing::create_postgres_database(admin_url, &name, template)
            .unwrap_or_else(|e| panic!("a test database: {e}"));
        Self {
            url: crate::pg::with_database(admin_url, &name),
            path: PathBuf::new(),
            place: Place::Postgres {
                admin_url: admin_url.to_owned(),
                name,
            },
        }
    }

    /// The URL wxlink is configured with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL parsed as the store takes it.
    pub fn target(&self) -> DatabaseTarget {
        DatabaseTarget::parse(&self.url).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The SQLite file, when it is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self.place {
            Place::Sqlite { .. } => Some(&self.path),
            Place::Postgres { .. } => None,
        }
    }

    /// The PostgreSQL database's name, when it is one.
    pub fn pg_name(&self) -> Option<&str> {
        match &self.place {
            Place::Sqlite { .. } => None,
            Place::Postgres { name, .. } => Some(name),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Place::Postgres { admin_url, name } = &self.place
            && let Err(e) = testing::drop_postgres_database(admin_url, name)
        {
            eprintln!("could not drop the test database {name}: {e}");
        }
    }
}

/// This process's migrated SQLite file, made on first use. It stays (statics are not dropped)
/// until a later process removes it (see [`is_gone`]).
fn sqlite_template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let temp = std::env::temp_dir();
        remove_stale_sqlite_templates(&temp);
        let dir = temp.join(format!("{SQLITE_TEMPLATE_PREFIX}{}_{}", owner(), unique()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = dir.join("wxlink.db");
        let target = DatabaseTarget::parse(&format!("sqlite://{}", path.display()))
            .unwrap_or_else(|e| panic!("{e}"));
        wxlink_persistence::migrate_blocking(&target)
            .unwrap_or_else(|e| panic!("migrate the SQLite template: {e}"));
        testing::checkpoint_sqlite(&target).unwrap_or_else(|e| panic!("{e}"));
        path
    })
}

/// This process's migrated template on the server of `admin_url`, made on first use under a
/// lock (tests run on many threads). It stays until a later process drops it.
fn pg_template(admin_url: &str) -> String {
    static TEMPLATES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    let mut templates = TEMPLATES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(name) = templates.get(admin_url) {
        return name.clone();
    }
    remove_stale_pg_templates(admin_url);
    let name = format!("{PG_TEMPLATE_PREFIX}{}_{}", owner(), unique());
    testing::create_postgres_database(admin_url, &name, None)
        .unwrap_or_else(|e| panic!("the template database: {e}"));
    let target = DatabaseTarget::parse(&crate::pg::with_database(admin_url, &name))
        .unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = wxlink_persistence::migrate_blocking(&target) {
        let _ = testing::drop_postgres_database(admin_url, &name);
        panic!("migrate the template database: {e}");
    }
    templates.insert(admin_url.to_owned(), name.clone());
    name
}

/// Who made a template or database: this machine's PID namespace and this process,
/// `{namespace}_{pid}`. A PostgreSQL server may be shared by processes of other namespaces
/// (containers, hosts), whose pids say nothing here: their names are never swept.
fn owner() -> String {
    format!("{}_{}", pid_namespace(), std::process::id())
}

/// The inode of this process's PID namespace (`/proc/self/ns/pid` reads `pid:[N]`), or 0
/// where there is no /proc.
fn pid_namespace() -> u64 {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|link| {
            let link = link.to_string_lossy().into_owned();
            link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
        })
        .unwrap_or(0)
}

/// Whether the process that made a template or database named `{prefix}{namespace}_{pid}_…`
/// is gone: it was made in this PID namespace by a process that no longer runs.
fn is_gone(name: &str, prefix: &str) -> bool {
    let mut parts = name.strip_prefix(prefix).unwrap_or_default().split('_');
    let (Some(Ok(namespace)), Some(Ok(pid))) = (
        parts.next().map(str::parse::<u64>),
        parts.next().map(str::parse::<u32>),
    ) else {
        return false;
    };
    let here = pid_namespace();
    // Where there is no /proc to ask, nothing is removed.
    here != 0
        && namespace == here
        && pid != std::process::id()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Templates and test databases whose process is gone (a run killed before its databases were
/// dropped leaves them behind).
fn remove_stale_pg_templates(admin_url: &str) {
    for prefix in [PG_TEMPLATE_PREFIX, PG_DATABASE_PREFIX] {
        let Ok(names) = testing::postgres_databases(admin_url, prefix) else {
            return;
        };
        for name in names.iter().filter(|n| is_gone(n, prefix)) {
            let _ = testing::drop_postgres_database(admin_url, name);
        }
    }
}

fn remove_stale_sqlite_templates(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_gone(&name, SQLITE_TEMPLATE_PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Every table of the PostgreSQL database at `url` as text, one row per line.
pub fn dump(url: &str) -> String {
    testing::dump_postgres(url).unwrap_or_else(|e| panic!("{e}"))
}
