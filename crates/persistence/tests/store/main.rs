//! The store's test suite: every case is written once (in `cases`, `flows` and the others) and
//! run on SQLite and PostgreSQL by the one harness (`wxlink_tests::on_both_backends!`): a
//! database of its own per test, cloned from one migrated per test process; PostgreSQL on the
//! server named by `WXLINK_TEST_DATABASE_URL`, skipped without it unless
//! `WXLINK_REQUIRE_POSTGRES=1`.

// Clippy exempts `#[test]` functions from `unwrap_used`, not the shared cases they call.
#![expect(
    clippy::unwrap_used,
    reason = "test code: a panic is how a case reports failure"
)]

mod cases;
mod console;
mod flows;
mod keys;
mod lifecycle;
mod seeding;
mod signed;
mod support;

use cases::*;
use console::*;
use flows::*;
use keys::*;
use lifecycle::*;
use seeding::*;
use signed::*;

wxlink_tests::on_both_backends!(
    ping_and_backend,
    migrations_apply_once_and_report_names,
    users_and_unionids,
    identities_are_ordered_and_move,
    sessions_round_trip,
    sessions_are_found_by_their_id_and_secret,
    decrypt_attempts_are_reserved_within_the_budget,
    first_decrypt_attempts_of_an_identity_at_once_are_all_granted,
    events_feed_pages_in_order,
    events_are_append_only,
    phone_numbers_move_between_users,
    concurrent_followers_see_one_order,
    events_from_before_positions_keep_their_ids_as_positions,
    constraint_violations_are_conflicts,
    rule_errors_roll_back_everything,
    refused_writes_among_concurrent_ones_roll_back_alone,
    racing_guarded_merges_of_one_user_merge_it_once,
    read_transactions_refuse_writes,
    concurrent_logins_link_one_user,
    session_keys_are_sealed_at_rest,
    purge_deletes_only_old_sessions,
    reseal_rotates_the_data_key,
    user_lookups,
    access_token_lease_is_exclusive_and_tokens_are_shared,
    a_late_store_after_the_lease_lapsed_changes_nothing,
    invalidating_a_rejected_token_spares_its_successor,
    webhook_cursors_lease_and_advance,
    rate_limit_hits_add_up_across_nodes,
    a_saturated_store_answers_unavailable_in_bounded_time,
    service_logs_in_links_and_merges,
    service_refreshes_the_session_key,
    phone_numbers_are_stored_sealed_and_rotate,
    phone_numbers_are_found_by_their_keyed_hash,
    operator_sessions_end_when_idle_too_old_or_disabled,
    failed_sign_ins_are_counted_across_nodes,
    logins_without_a_session_key_are_stored_without_one,
    a_phone_number_attached_during_a_merge_is_kept,
    every_kind_of_login_lands_by_the_rules,
    a_login_mints_a_user_id_only_for_a_new_user,
    a_tombstone_keeps_the_id_and_erases_the_person,
    support_repairs_move_unionids_merges_and_identities,
    identities_vouch_and_a_split_moves_them_with_sessions_and_phone,
    the_migration_counts_existing_identities_as_vouching,
    event_details_round_trip,
    a_refresh_token_is_exchanged_once_and_goes_with_its_session,
    one_signing_key_per_generation_sealed_and_resealed,
    keyring_check_refuses_what_cannot_open_the_database_and_follows_a_rotation,
    a_node_behind_the_rotation_or_on_a_retired_key_refuses_to_start,
    keyring_check_derives_the_keys_of_an_older_database,
    nodes_starting_at_once_with_different_keys_cannot_both_start,
    a_lookup_answers_without_a_phone_number_it_cannot_unseal,
    an_operators_check_records_nothing,
    seeded_users_are_found_as_the_store_writes_them,
);

/// What only SQLite has: a file, WAL, a directory to create.
mod sqlite_only {
    use wxlink_persistence::{DatabaseTarget, PersistenceError, Store, StoreConfig};

    use crate::support::{TestBackend, TestDbExt as _, keyring_a};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_is_in_wal_mode_in_a_created_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/wxlink.db");
        let target = DatabaseTarget::parse(&format!("sqlite://{}", path.display())).unwrap();
        let store = Store::connect(StoreConfig::new(target, keyring_a()))
            .await
            .unwrap();
        store.ping().await.unwrap();
        let header = std::fs::read(&path).unwrap();
        // Bytes 18 and 19 of the header are the write and read versions: 2 means WAL.
        assert_eq!((header[18], header[19]), (2, 2), "the file is in WAL mode");
    }

    /// The database holds every identity: its file and SQLite's `-wal` and `-shm` beside it
    /// are the owner's alone, as the data key file is, whatever the umask lets others read.
    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fresh_database_and_its_wal_files_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        use wxlink_domain::{IdentityStore as _, TxMode};

        // Empty: the store creates the file.
        let db = TestBackend::Sqlite.empty_database();
        let store = db.store().await;
        store
            .transact(TxMode::Write, |tx| {
                Ok(tx.insert_user(&crate::support::user("u-mode", None, 1))?)
            })
            .await
            .unwrap();
        let path = db.sqlite_path().unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            let mode = std::fs::metadata(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o777,
                0o600,
                "{} is {:o}",
                file.display(),
                mode & 0o777
            );
        }
        drop(store);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unusable_path_is_a_setup_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"not a directory").unwrap();
        let url = format!("sqlite://{}/wxlink.db", file.display());
        let target = DatabaseTarget::parse(&url).unwrap();
        let err = Store::connect(StoreConfig::new(target, keyring_a()))
            .await
            .unwrap_err();
        assert!(matches!(err, PersistenceError::CreateDir { .. }), "{err}");
    }

    /// Another process holding SQLite's write lock: readers go on (WAL), a writer gives up
    /// with `Unavailable` after about one busy_timeout rather than retrying for a minute.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_write_lock_blocks_writers_for_one_busy_timeout_only() {
        use diesel::connection::SimpleConnection as _;
        use diesel::{Connection as _, SqliteConnection};
        use wxlink_domain::{DomainError, IdentityStore, StoreError, TxMode};

        let db = TestBackend::Sqlite.database();
        let store = db.store().await;
        let path = db.sqlite_path().unwrap().to_owned();
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
            conn.batch_execute("PRAGMA busy_timeout = 5000; BEGIN IMMEDIATE")
                .unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(std::time::Duration::from_secs(30));
            conn.batch_execute("ROLLBACK").unwrap();
        });
        locked.recv().unwrap();

        let read = store
            .transact(TxMode::Read, |tx| {
                Ok(tx.user(&crate::support::user_id("u"))?)
            })
            .await;
        // A reader that waited for the lock would fail after the busy timeout: the holder keeps
        // it until released below.
        assert_eq!(read, Ok(None));

        let started = std::time::Instant::now();
        let write = store
            .transact(TxMode::Write, |tx| {
                Ok(tx.insert_user(&crate::support::user("w", None, 1))?)
            })
            .await;
        let waited = started.elapsed();
        assert!(
            matches!(write, Err(DomainError::Store(StoreError::Unavailable(_)))),
            "{write:?}"
        );
        // A writer that kept retrying would outlast the holder (30 s) and succeed: the error
        // itself shows that it gave up; no upper bound on the clock is needed.
        assert!(waited >= std::time::Duration::from_secs(4), "{waited:?}");

        release.send(()).unwrap();
        holder.join().unwrap();
        store
            .transact(TxMode::Write, |tx| {
                Ok(tx.insert_user(&crate::support::user("w", None, 1))?)
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn bad_urls_and_settings_are_setup_errors() {
        for url in ["mysql://root:hunter2@db/x", "wxlink.db", "sqlite://"] {
            let err = DatabaseTarget::parse(url).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("sqlite://"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        let db = TestBackend::Sqlite.database();
        let err = Store::connect(db.config(keyring_a()).max_connections(0))
            .await
            .unwrap_err();
        assert!(matches!(err, PersistenceError::Config(_)), "{err}");
    }
}

/// What only PostgreSQL has: a server that can be away or restart.
mod postgres_only {
    use std::time::Duration;

    use wxlink_domain::{DomainError, IdentityStore, StoreError, TxMode};
    use wxlink_persistence::{DatabaseTarget, PersistenceError, Store, StoreConfig};

    use crate::support::{GIVE_UP, TestBackend, TestDbExt as _, keyring_a, user, user_id};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_feed_hands_out_a_late_commit_after_its_cursor() {
        let test = concat!(
            module_path!(),
            "::the_feed_hands_out_a_late_commit_after_its_cursor"
        );
        let Some(backend) = TestBackend::postgres(test) else {
            return;
        };
        crate::cases::the_feed_hands_out_a_late_commit_after_its_cursor(backend).await;
    }

    /// A loopback port nothing listens on.
    fn closed_port() -> u16 {
        wxlink_tests::process::free_port().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Needs no server: answers, not a hang — typed and free of the password. Nothing ever
    /// listens on the port, so any answer came from the connect timeout cutting the wait;
    /// [`GIVE_UP`] only ends a test whose wait nothing cuts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_server_is_unavailable_not_a_hang() {
        let url = format!("postgres://wx:hunter2@127.0.0.1:{}/wxlink", closed_port());
        let config = StoreConfig::new(DatabaseTarget::parse(&url).unwrap(), keyring_a())
            .connect_timeout(Duration::from_secs(2))
            .migrate_on_start(false);

        let store = Store::connect(config.clone()).await.unwrap();
        let outcome = answer_within_give_up(
            "a transaction",
            store.transact(TxMode::Read, |tx| Ok(tx.user(&user_id("u"))?)),
        )
        .await;
        let Err(DomainError::Store(StoreError::Unavailable(message))) = outcome else {
            panic!("expected Unavailable, got {outcome:?}");
        };
        assert!(!message.contains("hunter2"), "{message}");
        assert!(matches!(
            answer_within_give_up("a ping", store.ping()).await,
            Err(StoreError::Unavailable(_))
        ));

        let err = answer_within_give_up(
            "a connect with migrations",
            Store::connect(config.migrate_on_start(true)),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, PersistenceError::Connect { .. }), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }

    /// `call`'s answer; the test fails (rather than hangs) when none comes within [`GIVE_UP`].
    async fn answer_within_give_up<T>(what: &str, call: impl Future<Output = T>) -> T {
        tokio::time::timeout(GIVE_UP, call)
            .await
            .unwrap_or_else(|_| panic!("{what} had no answer in {GIVE_UP:?}: nothing cut its wait"))
    }

    /// A restart closes every connection; the pool must notice and reconnect by itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_recovers_when_connections_are_killed() {
        let test = concat!(
            module_path!(),
            "::the_pool_recovers_when_connections_are_killed"
        );
        let Some(backend) = TestBackend::postgres(test) else {
            return;
        };
        let db = backend.database();
        let store = db.store().await;
        store
            .transact(TxMode::Write, |tx| {
                Ok(tx.insert_user(&user("before", None, 1))?)
            })
            .await
            .unwrap();
        let killed = db.raw_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            db.pg_name().unwrap()
        ));
        assert!(killed.is_ok(), "{killed:?}");
        for n in 0..5 {
            store.ping().await.unwrap();
            let id = format!("after-{n}");
            store
                .transact(TxMode::Write, move |tx| {
                    Ok(tx.insert_user(&user(&id, None, 1))?)
                })
                .await
                .unwrap();
        }
    }
}
