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

/// Which wxlink crates each member may use, as docs/ARCHITECTURE.md draws it:
/// (normal dependencies, dev-dependencies). Build-dependencies may name none.
fn allowed_wxlink_edges()
-> BTreeMap<&'static str, (&'static [&'static str], &'static [&'static str])> {
    BTreeMap::from([
        // Pure functions; other teams use it alone.
        ("crates/crypto", (&[][..], &[][..])),
        // The rules and their ports: no other wxlink crate.
        ("crates/domain", (&[], &[])),
        // Reusable WeChat crates: only the crypto crate, never the service's; their tests
        // share the process helpers (wxlink-tests without its `service` feature).
        (
            "crates/wechat-client",
            (&["wxlink-crypto"], &["wxlink-wechat-sim", "wxlink-tests"]),
        ),
        // Its tests depend on itself with the binary's feature `cli` on.
        (
            "crates/wechat-sim",
            (&["wxlink-crypto"], &["wxlink-wechat-sim", "wxlink-tests"]),
        ),
        // An adapter of the store port.
        (
            "crates/persistence",
            (&["wxlink-domain", "wxlink-crypto"], &["wxlink-tests"]),
        ),
        // The composition root.
        (
            "crates/api",
            (
                &[
                    "wxlink-domain",
                    "wxlink-crypto",
                    "wxlink-wechat-client",
                    "wxlink-wechat-sim",
                    "wxlink-persistence",
                ],
                // The in-process test level shares the black-box tests' helpers.
                &["wxlink-tests"],
            ),
        ),
        // Black-box tests drive the built binary; they and their shared helpers use only the
        // reusable crates.
        ("tests", (&["wxlink-wechat-sim", "wxlink-crypto"], &[])),
        (
            "bench",
            (&["wxlink-crypto", "wxlink-wechat-sim", "wxlink-tests"], &[]),
        ),
        ("xtask", (&["wxlink-tests"], &[])),
    ])
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
        let (normal, dev) = allowed[member.as_str()];
        for (table, allowed) in [
            ("dependencies", normal),
            ("dev-dependencies", dev),
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

#[test]
fn only_persistence_knows_sql_and_it_knows_no_http() {
    assert_no_edges(
        "crates/persistence",
        &["axum", "hyper", "reqwest"],
        "persistence is an adapter of the store port",
    );
    for member in members().iter().filter(|m| *m != "crates/persistence") {
        if member == "tests" || member == "bench" {
            continue;
        }
        assert_no_edges(
            member,
            &["diesel", "diesel_migrations"],
            "only persistence knows SQL",
        );
    }
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
