//! Repository checks as tests: the layering of docs/ARCHITECTURE.md is a fact, not a wish.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// The names in a manifest's `[dependencies]` table (not dev- or build-dependencies).
fn normal_dependencies(krate: &str) -> BTreeSet<String> {
    let path = root().join("crates").join(krate).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut in_deps = false;
    let mut deps = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && let Some((name, _)) = line.split_once('=') {
            let name = name.trim().trim_end_matches(".workspace").trim();
            if !name.is_empty() && !name.starts_with('#') {
                deps.insert(name.to_string());
            }
        }
    }
    assert!(!deps.is_empty(), "{} lists no dependencies", path.display());
    deps
}

fn assert_no_edges(krate: &str, forbidden: &[&str], why: &str) {
    let deps = normal_dependencies(krate);
    let bad: Vec<_> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
    assert!(
        bad.is_empty(),
        "crate {krate} must not depend on {bad:?}: {why}"
    );
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
fn domain_does_no_io_and_depends_on_no_other_wxlink_crate() {
    let mut forbidden = IO.to_vec();
    forbidden.extend([
        "wxlink-crypto",
        "wxlink-persistence",
        "wxlink-api",
        "wxlink-wechat-client",
        "wxlink-wechat-sim",
    ]);
    assert_no_edges(
        "domain",
        &forbidden,
        "the domain holds the rules; adapters implement its ports",
    );
}

#[test]
fn crypto_is_pure_and_stands_alone() {
    let mut forbidden = IO.to_vec();
    forbidden.extend([
        "wxlink-domain",
        "wxlink-persistence",
        "wxlink-api",
        "wxlink-wechat-client",
        "wxlink-wechat-sim",
    ]);
    assert_no_edges("crypto", &forbidden, "other teams use it without wxlink");
}

#[test]
fn wechat_crates_know_nothing_of_users() {
    for krate in ["wechat-client", "wechat-sim"] {
        assert_no_edges(
            krate,
            &[
                "wxlink-domain",
                "wxlink-persistence",
                "wxlink-api",
                "diesel",
            ],
            "the WeChat crates are reusable and free of wxlink's domain",
        );
    }
}

#[test]
fn only_persistence_knows_sql_and_it_knows_no_http() {
    assert_no_edges(
        "persistence",
        &[
            "axum",
            "hyper",
            "reqwest",
            "wxlink-api",
            "wxlink-wechat-client",
        ],
        "persistence is an adapter of the store port",
    );
    for krate in ["domain", "crypto", "wechat-client", "wechat-sim", "api"] {
        assert_no_edges(
            krate,
            &["diesel", "diesel_migrations"],
            "only persistence knows SQL",
        );
    }
}
