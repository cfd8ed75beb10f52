//! Test support shared by wxlink's black-box tests and `cargo xtask`: a throwaway PostgreSQL
//! cluster. The black-box tests themselves live in `tests/tests/`.
//!
//! ```no_run
//! let cluster = wxlink_tests::pg::Cluster::start()?;
//! println!("connect to {}", cluster.url());
//! # Ok::<(), String>(())
//! ```

pub mod pg;
