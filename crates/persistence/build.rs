//! `embed_migrations!` reads the migration directories at compile time, but cargo tracks only
//! the files it was given: a new migration directory would leave a stale build serving the old
//! schema (as a release build once did). Rebuild when anything under `migrations/` changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
