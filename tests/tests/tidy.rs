//! Repository checks as tests: the layering of docs/ARCHITECTURE.md is a fact, not a wish.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

fn manifest(dir: &str) -> toml::Table {
    let path = root().join(dir).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()))
}

/// The dependency names of one table of a manifest (`dependencies`, `dev-dependencies`, …).
fn dependencies(manifest: &toml::Table, table: &str) -> BTreeSet<String> {
    manifest
        .get(table)
        .and_then(toml::Value::as_table)
        .map(|deps| deps.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every workspace member's directory, from the root manifest's `members` globs.
fn members() -> Vec<String> {
    let workspace = manifest(".");
    let globs = workspace["workspace"]["members"]
        .as_array()
        .expect("workspace.members is a list");
    let mut dirs = Vec::new();
    for glob in globs.iter().filter_map(toml::Value::as_str) {
        match glob.strip_suffix("/*") {
            Some(parent) => {
                let mut found: Vec<_> = std::fs::read_dir(root().join(parent))
                    .expect("members folder")
                    .filter_map(Result::ok)
                    .filter(|e| e.path().join("Cargo.toml").is_file())
                    .map(|e| format!("{parent}/{}", e.file_name().to_string_lossy()))
                    .collect();
                found.sort();
                dirs.extend(found);
            }
            None => dirs.push(glob.to_owned()),
        }
    }
    dirs
}

/// What one member may use of wxlink: its normal and dev-dependencies among the wxlink crates,
/// and the features of `wxlink-tests` it may turn on (its default feature counts as `service`).
/// Build-dependencies may name none.
struct Allowed {
    normal: &'static [&'static str],
    dev: &'static [&'static str],
    test_features: &'static [&'static str],
}

/// Which wxlink crates each member may use, as docs/ARCHITECTURE.md draws it.
fn allowed_wxlink_edges() -> BTreeMap<&'static str, Allowed> {
    BTreeMap::from([
        // Pure functions; other teams use it alone.
        (
            "crates/crypto",
            Allowed {
                normal: &[],
                dev: &[],
                test_features: &[],
            },
        ),
        // The rules and their ports: no other wxlink crate.
        (
            "crates/domain",
            Allowed {
                normal: &[],
                dev: &[],
                test_features: &[],
            },
        ),
        // Reusable WeChat crates: only the crypto crate, never the service's; their tests
        // share the process helpers and `eventually` (wxlink-tests without its `service` and
        // `database` features, which would bring the store in).
        (
            "crates/wechat-client",
            Allowed {
                normal: &["wxlink-crypto"],
                dev: &["wxlink-wechat-sim", "wxlink-tests"],
                test_features: &["async"],
            },
        ),
        // Its tests depend on itself with the binary's feature `cli` on.
        (
            "crates/wechat-sim",
            Allowed {
                normal: &["wxlink-crypto"],
                dev: &["wxlink-wechat-sim", "wxlink-tests"],
                test_features: &["async"],
            },
        ),
        // An adapter of the store port. Its tests use the one database harness: wxlink-tests'
        // `database` feature, which depends on persistence itself (a dev-dependency cycle
        // cargo allows) and never on the api.
        (
            "crates/persistence",
            Allowed {
                normal: &["wxlink-domain", "wxlink-crypto"],
                dev: &["wxlink-tests"],
                test_features: &["async", "database"],
            },
        ),
        // The composition root.
        (
            "crates/api",
            Allowed {
                normal: &[
                    "wxlink-domain",
                    "wxlink-crypto",
                    "wxlink-wechat-client",
                    "wxlink-wechat-sim",
                    "wxlink-persistence",
                ],
                // The in-process test level shares the black-box tests' helpers.
                dev: &["wxlink-tests"],
                test_features: &["async", "database", "service"],
            },
        ),
        // Black-box tests drive the built binary; they and their shared helpers use only the
        // reusable crates, and the store's test support (`wxlink_persistence::testing`, for
        // databases, the invariants' rows and injected faults: no SQL of their own).
        (
            "tests",
            Allowed {
                normal: &["wxlink-wechat-sim", "wxlink-crypto", "wxlink-persistence"],
                dev: &[],
                test_features: &[],
            },
        ),
        (
            "bench",
            Allowed {
                // The store's seeding support (`testing`) for the scale runs.
                normal: &[
                    "wxlink-crypto",
                    "wxlink-wechat-sim",
                    "wxlink-tests",
                    "wxlink-persistence",
                ],
                dev: &[],
                test_features: &["async", "database", "service"],
            },
        ),
        (
            "xtask",
            Allowed {
                normal: &["wxlink-tests"],
                dev: &[],
                test_features: &[],
            },
        ),
    ])
}

/// The features of `wxlink-tests` one dependency entry turns on (`service` by default, unless
/// `default-features = false`; an entry inheriting the workspace's keeps its default).
fn test_features(entry: &toml::Value) -> BTreeSet<String> {
    let mut features = BTreeSet::new();
    let table = entry.as_table();
    let defaults = table
        .and_then(|t| t.get("default-features"))
        .and_then(toml::Value::as_bool)
        .unwrap_or(true);
    if defaults {
        features.insert("service".to_owned());
    }
    let listed = table
        .and_then(|t| t.get("features"))
        .and_then(toml::Value::as_array);
    for feature in listed.into_iter().flatten().filter_map(toml::Value::as_str) {
        features.insert(feature.to_owned());
    }
    features
}

#[test]
fn every_member_uses_only_the_wxlink_crates_the_architecture_allows() {
    let allowed = allowed_wxlink_edges();
    let members = members();
    assert_eq!(
        members.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        allowed.keys().copied().collect::<BTreeSet<_>>(),
        "every workspace member needs an entry in allowed_wxlink_edges (and docs/ARCHITECTURE.md)"
    );
    for member in &members {
        let manifest = manifest(member);
        let rule = &allowed[member.as_str()];
        for (table, allowed) in [
            ("dependencies", rule.normal),
            ("dev-dependencies", rule.dev),
            ("build-dependencies", &[][..]),
        ] {
            let used: BTreeSet<_> = dependencies(&manifest, table)
                .into_iter()
                .filter(|name| name.starts_with("wxlink-"))
                .collect();
            let extra: Vec<_> = used
                .iter()
                .filter(|u| !allowed.contains(&u.as_str()))
                .collect();
            assert!(
                extra.is_empty(),
                "{member} [{table}] uses {extra:?}, which docs/ARCHITECTURE.md does not allow"
            );
            if let Some(entry) = manifest
                .get(table)
                .and_then(|deps| deps.get("wxlink-tests"))
            {
                let extra: Vec<_> = test_features(entry)
                    .into_iter()
                    .filter(|f| !rule.test_features.contains(&f.as_str()))
                    .collect();
                assert!(
                    extra.is_empty(),
                    "{member} [{table}] turns on wxlink-tests' features {extra:?}, which \
                     docs/ARCHITECTURE.md does not allow it"
                );
            }
        }
    }
}

fn assert_no_edges(member: &str, forbidden: &[&str], why: &str) {
    let deps = dependencies(&manifest(member), "dependencies");
    let bad: Vec<_> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
    assert!(bad.is_empty(), "{member} must not depend on {bad:?}: {why}");
}

const IO: &[&str] = &[
    "tokio",
    "axum",
    "hyper",
    "reqwest",
    "diesel",
    "diesel_migrations",
    "tower",
    "tower-http",
];

#[test]
fn domain_does_no_io() {
    assert_no_edges(
        "crates/domain",
        IO,
        "the domain holds the rules; adapters implement its ports",
    );
}

#[test]
fn crypto_is_pure() {
    assert_no_edges("crates/crypto", IO, "other teams use it without wxlink");
}

/// Crates that speak SQL to a database.
const SQL_CRATES: &[&str] = &[
    "diesel",
    "diesel_migrations",
    "libsqlite3-sys",
    "rusqlite",
    "sqlx",
    "postgres",
    "tokio-postgres",
];

/// Members that may still depend on a SQL crate besides persistence, and why.
/// The benchmark's floor (a raw commit into a table of its own, without wxlink) and its
/// PostgreSQL counters measure the database itself; it seeds wxlink's tables through
/// `wxlink_persistence::testing::seed_users`.
const SQL_EXEMPT: &[&str] = &["bench"];

#[test]
fn only_persistence_knows_sql_and_it_knows_no_http() {
    assert_no_edges(
        "crates/persistence",
        &["axum", "hyper", "reqwest"],
        "persistence is an adapter of the store port",
    );
    for member in members().iter().filter(|m| *m != "crates/persistence") {
        if SQL_EXEMPT.contains(&member.as_str()) {
            continue;
        }
        let manifest = manifest(member);
        for table in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let deps = dependencies(&manifest, table);
            let bad: Vec<_> = SQL_CRATES.iter().filter(|c| deps.contains(**c)).collect();
            assert!(
                bad.is_empty(),
                "{member} [{table}] uses {bad:?}: only persistence knows SQL \
                 (tests go through the store's API or `wxlink_persistence::testing`)"
            );
        }
    }
}

/// The contents of every string literal in Rust source: `"…"` (escapes kept as written) and
/// raw `r"…"`, `r#"…"#`. Comments, chars and lifetimes are skipped.
fn string_literals(source: &str) -> Vec<String> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'\'' => {
                // A char literal ('x', '\n', '"') or a lifetime ('a): skip the char's body.
                if bytes.get(i + 1) == Some(&b'\\') {
                    i += 2;
                    while i < bytes.len() && bytes[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                } else if bytes.get(i + 2) == Some(&b'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            b'r' if matches!(bytes.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while bytes.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if bytes.get(j) != Some(&b'"') {
                    i = j;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = j + 1;
                let end = source[start..]
                    .find(&close)
                    .map_or(source.len(), |at| start + at);
                found.push(source[start..end].to_owned());
                i = end + close.len();
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                found.push(source[start..j.min(source.len())].to_owned());
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    found
}

/// SQL a string literal would hold: a statement's opening words, in any case.
fn looks_like_sql(text: &str) -> Option<&'static str> {
    const STATEMENTS: &[(&str, &str)] = &[
        ("SELECT ", " FROM "),
        ("INSERT INTO ", ""),
        ("UPDATE ", " SET "),
        ("DELETE FROM ", ""),
        ("CREATE TABLE", ""),
        ("CREATE DATABASE", ""),
        ("CREATE INDEX", ""),
        ("DROP TABLE", ""),
        ("DROP DATABASE", ""),
        ("ALTER TABLE", ""),
        ("BEGIN IMMEDIATE", ""),
        ("PRAGMA ", ""),
        ("TRUNCATE ", ""),
        ("SAVEPOINT ", ""),
        ("VACUUM", ""),
    ];
    let text = text.to_ascii_uppercase();
    STATEMENTS.iter().find_map(|(head, then)| {
        let at = text.find(head)?;
        (then.is_empty() || text[at..].contains(then)).then_some(*head)
    })
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && name != "node_modules" {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn no_sql_is_written_outside_persistence() {
    let mut files = Vec::new();
    for member in members()
        .iter()
        .filter(|m| *m != "crates/persistence" && !SQL_EXEMPT.contains(&m.as_str()))
    {
        rust_files(&root().join(member), &mut files);
    }
    assert!(
        files.iter().any(|f| f.ends_with("tests/tests/tidy.rs")),
        "the search reads the tests"
    );
    let mut found = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap_or_default();
        // This file names the statements it looks for.
        if file.ends_with("tests/tests/tidy.rs") {
            continue;
        }
        for literal in string_literals(&source) {
            if let Some(statement) = looks_like_sql(&literal) {
                found.push(format!("{}: {statement}… in {literal:?}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL outside crates/persistence (use the store's API, or `wxlink_persistence::testing` \
         for what only tests need):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_sql_search_sees_literals_and_skips_comments() {
    let source = r###"
        // SELECT a FROM b in a comment
        /// INSERT INTO docs
        let q = "SELECT id FROM users";
        let r = r#"UPDATE users SET x = "1""#;
        let c = '"'; let l: &'a str = "select nothing";
        let u = "Update the settings";
        let w = "delete from sessions where id = 1";
    "###;
    let literals = string_literals(source);
    let sql: Vec<_> = literals.iter().filter_map(|l| looks_like_sql(l)).collect();
    assert_eq!(sql, ["SELECT ", "UPDATE ", "DELETE FROM "], "{literals:?}");
}

#[test]
fn the_msrv_is_stated_once() {
    let workspace = manifest(".");
    let msrv = workspace["workspace"]["package"]["rust-version"]
        .as_str()
        .expect("workspace.package.rust-version");
    // external-tests is a workspace of its own, so it cannot inherit the value.
    let external = manifest("external-tests");
    assert_eq!(
        external["package"]["rust-version"].as_str(),
        Some(msrv),
        "external-tests/Cargo.toml's rust-version differs from the workspace's"
    );
    for member in members() {
        let package = &manifest(&member)["package"];
        if let Some(own) = package.get("rust-version") {
            assert!(
                own.get("workspace").is_some(),
                "{member} states its own rust-version; inherit the workspace's"
            );
        }
    }
}

/// What `cargo ARGS --locked --offline` prints in the workspace root; it must succeed.
fn cargo(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO"))
        .args(args)
        .args(["--locked", "--offline"])
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo {args:?}: {e}"));
    assert!(
        output.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The platform rustc builds for here (`rustc -vV`'s `host:`).
fn host_triple() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names its host")
        .to_owned()
}

/// The stated MSRV is no lower than what the locked dependencies declare: otherwise it is a
/// promise the build cannot keep.
#[test]
fn the_msrv_covers_every_locked_dependency() {
    let version = |text: &str| -> Vec<u64> {
        text.split('.')
            .map(|part| part.parse().expect("a numeric rust-version"))
            .chain(std::iter::repeat(0))
            .take(3)
            .collect()
    };
    let workspace = manifest(".");
    let msrv = workspace["workspace"]["package"]["rust-version"]
        .as_str()
        .expect("workspace.package.rust-version");
    // Only the packages of the platform this machine builds for: Cargo.lock also lists
    // Windows- and macOS-only crates, which `--offline` cannot resolve on a machine that never
    // downloaded them (every fresh Linux one: CI was red for it), and which no build here compiles
    // to prove the MSRV anyway. `cargo tree` below filters to the host the same way by default.
    let host = host_triple();
    let metadata: serde_json::Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--filter-platform",
        &host,
    ]))
    .expect("cargo metadata's JSON");
    let above: Vec<String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs) > version(msrv))
                .then(|| format!("{} {} needs {needs}", p["name"], p["version"]))
        })
        .collect();
    assert!(
        above.is_empty(),
        "rust-version {msrv} is below what dependencies need: {above:?}"
    );
}

/// `--no-default-features` leaves the simulator out of the production binary.
#[test]
fn the_binary_without_the_sandbox_feature_has_no_simulator() {
    let tree = |features: &[&str]| {
        let mut args = vec![
            "tree",
            "-p",
            "wxlink-api",
            "-e",
            "normal",
            "--prefix",
            "none",
        ];
        args.extend_from_slice(features);
        cargo(&args)
    };
    assert!(
        tree(&[]).contains("wxlink-wechat-sim"),
        "the default build has the sandbox"
    );
    let production = tree(&["--no-default-features"]);
    assert!(
        !production.contains("wxlink-wechat-sim"),
        "the simulator is in the build without the sandbox:\n{production}"
    );
}
