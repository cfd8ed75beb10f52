//! The store's behaviour, written once; `main.rs` runs every case on both backends.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wxlink_crypto::{DataKey, Keyring};
use wxlink_domain::{
    DomainError, Event, EventKind, IdentityStore, Session, SessionKey, StoreError, StoreTx, TxMode,
    User,
};
use wxlink_persistence::{
    Backend, MAX_ATTEMPTS, SESSION_PURGE_GRACE_SECS, Store, UserRecord, migrate, migrate_blocking,
};

use crate::support::*;

const MIGRATIONS: [&str; 4] = [
    "2026-11-26-000001_users_and_identities",
    "2026-11-26-000002_sessions_and_events",
    "2026-11-26-000003_app_kinds_phones_tokens",
    "2026-11-26-000004_webhook_cursors",
];

/// Run `work` in a write transaction and unwrap.
async fn write<T, F>(store: &Store, work: F) -> T
where
    T: Send + 'static,
    F: FnMut(&mut dyn StoreTx) -> Result<T, DomainError> + Send + 'static,
{
    store
        .transact(TxMode::Write, work)
        .await
        .expect("write transaction")
}

async fn read<T, F>(store: &Store, work: F) -> T
where
    T: Send + 'static,
    F: FnMut(&mut dyn StoreTx) -> Result<T, DomainError> + Send + 'static,
{
    store
        .transact(TxMode::Read, work)
        .await
        .expect("read transaction")
}

pub async fn ping_and_backend(db: &TestDb) {
    let store = db.store().await;
    assert_eq!(store.backend(), db.backend);
    store.ping().await.unwrap();
    let debug = format!("{store:?}");
    assert!(debug.contains("Store"), "{debug}");
}

pub async fn migrations_apply_once_and_report_names(db: &TestDb) {
    assert_eq!(migrate(&db.url).await.unwrap(), MIGRATIONS);
    assert_eq!(migrate(&db.url).await.unwrap(), Vec::<String>::new());
    let url = db.url.clone();
    let blocking = tokio::task::spawn_blocking(move || migrate_blocking(&url));
    assert_eq!(blocking.await.unwrap().unwrap(), Vec::<String>::new());
    // Connecting with migrate_on_start finds nothing to do either.
    let store = db.store().await;
    store.ping().await.unwrap();
}

pub async fn users_and_unionids(db: &TestDb) {
    let store = db.store().await;
    write(&store, |tx| {
        tx.insert_user(&user("provisional", None, 10))?;
        tx.insert_user(&user("owner", Some("union-1"), 11))?;
        tx.insert_user(&user("other", None, 12))?;
        Ok(())
    })
    .await;

    let (p, o, by_union, missing) = read(&store, |tx| {
        Ok((
            tx.user(&user_id("provisional"))?,
            tx.user(&user_id("owner"))?,
            tx.user_by_unionid(&unionid("union-1"))?,
            tx.user(&user_id("nobody"))?,
        ))
    })
    .await;
    assert_eq!(p, Some(user("provisional", None, 10)));
    assert_eq!(o, Some(user("owner", Some("union-1"), 11)));
    assert_eq!(by_union, o);
    assert_eq!(missing, None);

    write(&store, |tx| {
        tx.set_unionid(&user_id("provisional"), &unionid("union-2"), 20)?;
        tx.mark_merged(&user_id("other"), &user_id("owner"), 21)?;
        Ok(())
    })
    .await;
    let (p, other) = read(&store, |tx| {
        Ok((
            tx.user_by_unionid(&unionid("union-2"))?,
            tx.user(&user_id("other"))?,
        ))
    })
    .await;
    assert_eq!(p, Some(user("provisional", Some("union-2"), 10)));
    assert_eq!(
        other.unwrap().merged_into,
        Some(user_id("owner")),
        "mark_merged records the owner"
    );

    // Broken preconditions are reported, not ignored.
    let twice = store
        .transact(TxMode::Write, |tx| {
            Ok(tx.set_unionid(&user_id("owner"), &unionid("union-3"), 30)?)
        })
        .await;
    assert!(
        matches!(twice, Err(DomainError::Store(StoreError::Corrupt(_)))),
        "{twice:?}"
    );
    let merge_missing = store
        .transact(TxMode::Write, |tx| {
            Ok(tx.mark_merged(&user_id("nobody"), &user_id("owner"), 30)?)
        })
        .await;
    assert!(
        matches!(
            merge_missing,
            Err(DomainError::Store(StoreError::Corrupt(_)))
        ),
        "{merge_missing:?}"
    );
}

pub async fn identities_are_ordered_and_move(db: &TestDb) {
    let store = db.store().await;
    write(&store, |tx| {
        tx.insert_user(&user("from", None, 1))?;
        tx.insert_user(&user("into", Some("u"), 1))?;
        tx.insert_identity(&app(2), &openid("o2"), &user_id("from"), 5)?;
        tx.insert_identity(&app(1), &openid("o9"), &user_id("from"), 5)?;
        tx.insert_identity(&app(1), &openid("o1"), &user_id("from"), 5)?;
        tx.insert_identity(&app(3), &openid("o0"), &user_id("into"), 5)?;
        Ok(())
    })
    .await;
    let (owner, none, list) = read(&store, |tx| {
        Ok((
            tx.identity_owner(&app(1), &openid("o9"))?,
            tx.identity_owner(&app(2), &openid("o9"))?,
            tx.identities(&user_id("from"))?,
        ))
    })
    .await;
    assert_eq!(owner, Some(user_id("from")));
    assert_eq!(none, None);
    assert_eq!(
        list,
        vec![
            (app(1), openid("o1")),
            (app(1), openid("o9")),
            (app(2), openid("o2"))
        ]
    );

    let moved = write(&store, |tx| {
        Ok(tx.move_identities(&user_id("from"), &user_id("into"), 9)?)
    })
    .await;
    assert_eq!(moved, 3);
    let (from, into, owner) = read(&store, |tx| {
        Ok((
            tx.identities(&user_id("from"))?,
            tx.identities(&user_id("into"))?,
            tx.identity_owner(&app(2), &openid("o2"))?,
        ))
    })
    .await;
    assert!(from.is_empty());
    assert_eq!(into.len(), 4);
    assert_eq!(into[0], (app(1), openid("o1")));
    assert_eq!(owner, Some(user_id("into")));

    // Foreign keys hold on both backends (SQLite only with foreign_keys=ON).
    let orphan = store
        .transact(TxMode::Write, |tx| {
            Ok(tx.insert_identity(&app(4), &openid("x"), &user_id("nobody"), 1)?)
        })
        .await;
    assert!(
        matches!(orphan, Err(DomainError::Store(StoreError::Corrupt(_)))),
        "{orphan:?}"
    );
}

pub async fn sessions_round_trip(db: &TestDb) {
    let store = db.store().await;
    let t1 = token(1);
    let s1 = session(&t1, "u1", &app(1), "o1", "tiihtNczf5v6AKRyjwEUhQ==");
    let inserted = s1.clone();
    write(&store, move |tx| {
        tx.insert_user(&user("u1", None, 1))?;
        tx.insert_session(&inserted)?;
        Ok(())
    })
    .await;
    let h1 = t1.hash();
    let (found, unknown) = read(&store, move |tx| {
        Ok((tx.session(&h1)?, tx.session(&token(2).hash())?))
    })
    .await;
    assert_eq!(found.as_ref(), Some(&s1));
    assert_eq!(unknown, None);

    let fresh = SessionKey::new("HyVFkGl5F5OQWJZZaNzBBg==");
    let replacement = fresh.clone();
    write(&store, move |tx| {
        tx.replace_session_key(&h1, &replacement)?;
        tx.revoke_session(&h1, 1_500)?;
        // Revoking twice keeps the first revocation.
        tx.revoke_session(&h1, 1_600)?;
        Ok(())
    })
    .await;
    let after = read(&store, move |tx| Ok(tx.session(&h1)?)).await.unwrap();
    assert_eq!(after.session_key, Some(fresh));
    assert!(after.revoked);
    assert!(!after.is_live(1_001));
    assert_eq!(
        Session {
            session_key: s1.session_key.clone(),
            revoked: false,
            ..after
        },
        s1
    );

    for op in 0..2 {
        let missing = store
            .transact(TxMode::Write, move |tx| {
                let h = token(9).hash();
                match op {
                    0 => Ok(tx.replace_session_key(&h, &SessionKey::new("x"))?),
                    _ => Ok(tx.revoke_session(&h, 1)?),
                }
            })
            .await;
        assert!(
            matches!(missing, Err(DomainError::Store(StoreError::Corrupt(_)))),
            "{missing:?}"
        );
    }
}

fn event(kind: EventKind, user: &str, other: Option<&str>, at: i64) -> Event {
    Event {
        kind,
        user_id: user_id(user),
        other_user_id: other.map(user_id),
        appid: app(1),
        openid: openid("o1"),
        at,
    }
}

pub async fn events_feed_pages_in_order(db: &TestDb) {
    let store = db.store().await;
    let events = vec![
        event(EventKind::UserCreated, "p", None, 1),
        event(EventKind::IdentityLinked, "p", None, 2),
        event(EventKind::UserCreated, "o", None, 3),
        event(EventKind::UnionidLinked, "o", None, 4),
        event(EventKind::UsersMerged, "o", Some("p"), 5),
    ];
    let written = events.clone();
    write(&store, move |tx| {
        tx.insert_user(&user("p", None, 1))?;
        tx.insert_user(&user("o", None, 1))?;
        for e in &written {
            tx.append_event(e)?;
        }
        Ok(())
    })
    .await;
    let first = store.events_after(0, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let cursor = first[1].0;
    let rest = store.events_after(cursor, 100).await.unwrap();
    assert_eq!(rest.len(), 3);
    let all: Vec<_> = first.iter().chain(&rest).cloned().collect();
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    assert_eq!(all.into_iter().map(|(_, e)| e).collect::<Vec<_>>(), events);
    assert!(store.events_after(rest[2].0, 10).await.unwrap().is_empty());
}

pub async fn events_are_append_only(db: &TestDb) {
    let store = db.store().await;
    write(&store, |tx| {
        tx.insert_user(&user("p", None, 1))?;
        tx.append_event(&event(EventKind::UserCreated, "p", None, 1))?;
        Ok(())
    })
    .await;
    drop(store);
    assert!(db.raw_execute("UPDATE events SET kind = 'x'").is_err());
    assert!(db.raw_execute("DELETE FROM events").is_err());
}

/// Runs `op` in a write transaction that keeps failing, and checks the adapter reported a
/// conflict on each of the bounded attempts.
async fn assert_conflict<F>(store: &Store, what: &str, op: F)
where
    F: Fn(&mut dyn StoreTx) -> Result<(), StoreError> + Send + Sync + 'static,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let outcome = store
        .transact(TxMode::Write, move |tx| {
            let result = op(tx);
            log.lock().unwrap().push(result.clone());
            Ok(result?)
        })
        .await;
    assert_eq!(
        outcome,
        Err(DomainError::Store(StoreError::Contention {
            attempts: MAX_ATTEMPTS
        })),
        "{what}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), MAX_ATTEMPTS as usize, "{what}");
    assert!(
        seen.iter().all(|r| r == &Err(StoreError::Conflict)),
        "{what}: {seen:?}"
    );
}

pub async fn constraint_violations_are_conflicts(db: &TestDb) {
    let store = db.store().await;
    let t = token(1);
    let s = session(&t, "owner", &app(1), "o1", "key");
    write(&store, move |tx| {
        tx.insert_user(&user("owner", Some("union-x"), 1))?;
        tx.insert_user(&user("prov", None, 1))?;
        tx.insert_identity(&app(1), &openid("o1"), &user_id("owner"), 1)?;
        tx.insert_session(&s)?;
        Ok(())
    })
    .await;

    assert_conflict(&store, "same user id", |tx| {
        tx.insert_user(&user("owner", None, 2))
    })
    .await;
    assert_conflict(&store, "same unionid on insert", |tx| {
        tx.insert_user(&user("new", Some("union-x"), 2))
    })
    .await;
    assert_conflict(&store, "same unionid on set", |tx| {
        tx.set_unionid(&user_id("prov"), &unionid("union-x"), 2)
    })
    .await;
    assert_conflict(&store, "same identity", |tx| {
        tx.insert_identity(&app(1), &openid("o1"), &user_id("prov"), 2)
    })
    .await;
    assert_conflict(&store, "same token hash", |tx| {
        tx.insert_session(&session(&token(1), "prov", &app(1), "o1", "other"))
    })
    .await;

    // Swallowing the error does not save the transaction: it is retried all the same.
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let swallowed = store
        .transact(TxMode::Write, move |tx| {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ignored = tx.insert_user(&user("owner", None, 3));
            Ok(())
        })
        .await;
    assert_eq!(
        swallowed,
        Err(DomainError::Store(StoreError::Contention {
            attempts: MAX_ATTEMPTS
        }))
    );
    assert_eq!(runs.load(Ordering::SeqCst), MAX_ATTEMPTS);

    // A conflict that goes away is retried to success.
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let recovered = store
        .transact(TxMode::Write, move |tx| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(StoreError::Conflict.into());
            }
            tx.insert_user(&user("late", None, 4))?;
            Ok("done")
        })
        .await;
    assert_eq!(recovered, Ok("done"));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let late = read(&store, |tx| Ok(tx.user(&user_id("late"))?)).await;
    assert!(late.is_some());
}

pub async fn rule_errors_roll_back_everything(db: &TestDb) {
    let store = db.store().await;
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    let t = token(5);
    let s = session(&t, "doomed", &app(1), "o1", "key");
    let outcome: Result<(), _> = store
        .transact(TxMode::Write, move |tx| {
            counter.fetch_add(1, Ordering::SeqCst);
            tx.insert_user(&user("doomed", Some("union-d"), 1))?;
            tx.insert_identity(&app(1), &openid("o1"), &user_id("doomed"), 1)?;
            tx.append_event(&event(EventKind::UserCreated, "doomed", None, 1))?;
            tx.insert_session(&s)?;
            Err(DomainError::UnionidConflict)
        })
        .await;
    assert_eq!(outcome, Err(DomainError::UnionidConflict));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "rule errors are not retried"
    );
    let h = t.hash();
    let (u, by_union, owner, sess) = read(&store, move |tx| {
        Ok((
            tx.user(&user_id("doomed"))?,
            tx.user_by_unionid(&unionid("union-d"))?,
            tx.identity_owner(&app(1), &openid("o1"))?,
            tx.session(&h)?,
        ))
    })
    .await;
    assert_eq!((u, by_union, owner), (None, None, None));
    assert!(sess.is_none());
    assert!(store.events_after(0, 10).await.unwrap().is_empty());
}

/// Concurrent writes, a third of them refused by their rule after writing: on SQLite they
/// share group transactions, and each refused one must roll back alone.
pub async fn refused_writes_among_concurrent_ones_roll_back_alone(db: &TestDb) {
    let store = db.store().await;
    let mut tasks = Vec::new();
    for i in 0..48u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .transact(TxMode::Write, move |tx| {
                    let id = format!("u{i}");
                    tx.insert_user(&user(&id, Some(&format!("union-{i}")), 1))?;
                    tx.insert_identity(&app(1), &openid(&format!("o{i}")), &user_id(&id), 1)?;
                    if i % 3 == 0 {
                        return Err(DomainError::UnionidConflict);
                    }
                    Ok(())
                })
                .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let outcome = task.await.unwrap();
        let expected = if i % 3 == 0 {
            Err(DomainError::UnionidConflict)
        } else {
            Ok(())
        };
        assert_eq!(outcome, expected, "write {i}");
    }
    let found = read(&store, |tx| {
        (0..48u32)
            .map(|i| {
                Ok((
                    tx.user(&user_id(&format!("u{i}")))?.is_some(),
                    tx.identity_owner(&app(1), &openid(&format!("o{i}")))?
                        .is_some(),
                ))
            })
            .collect::<Result<Vec<_>, DomainError>>()
    })
    .await;
    for (i, kept) in found.into_iter().enumerate() {
        let committed = i % 3 != 0;
        assert_eq!(kept, (committed, committed), "write {i}");
    }
}

/// Two merges of one provisional user into two owners race in `WriteGuarded` transactions
/// (PostgreSQL: `READ COMMITTED`): the guarded update makes the loser a conflict, and its
/// rerun sees the merge, so exactly one merge happens.
pub async fn racing_guarded_merges_of_one_user_merge_it_once(db: &TestDb) {
    let store = db.store().await;
    write(&store, |tx| {
        tx.insert_user(&user("prov", None, 1))?;
        tx.insert_user(&user("owner-1", Some("union-1"), 1))?;
        tx.insert_user(&user("owner-2", Some("union-2"), 1))?;
        tx.insert_identity(&app(1), &openid("p"), &user_id("prov"), 1)?;
        Ok(())
    })
    .await;
    let mut tasks = Vec::new();
    for owner in ["owner-1", "owner-2"] {
        let store = store.clone();
        let mut first_run = true;
        tasks.push(tokio::spawn(async move {
            store
                .transact(TxMode::WriteGuarded, move |tx| {
                    let prov = tx.user(&user_id("prov"))?.expect("prov exists");
                    if prov.merged_into.is_some() {
                        return Err(DomainError::UnionidConflict);
                    }
                    if first_run {
                        // Both read the user before either writes (on PostgreSQL; SQLite's
                        // writers take turns anyway).
                        first_run = false;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    tx.move_identities(&user_id("prov"), &user_id(owner), 2)?;
                    tx.mark_merged(&user_id("prov"), &user_id(owner), 2)?;
                    Ok(owner)
                })
                .await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(owner) => winners.push(owner),
            Err(e) => assert_eq!(e, DomainError::UnionidConflict),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one merge: {winners:?}");
    let (prov, owner) = read(&store, |tx| {
        Ok((
            tx.user(&user_id("prov"))?,
            tx.identity_owner(&app(1), &openid("p"))?,
        ))
    })
    .await;
    assert_eq!(prov.unwrap().merged_into, Some(user_id(winners[0])));
    assert_eq!(
        owner,
        Some(user_id(winners[0])),
        "the identities followed the merge"
    );
}

pub async fn read_transactions_refuse_writes(db: &TestDb) {
    let store = db.store().await;
    let outcome = store
        .transact(TxMode::Read, |tx| Ok(tx.insert_user(&user("r", None, 1))?))
        .await;
    assert!(
        matches!(outcome, Err(DomainError::Store(StoreError::Corrupt(_)))),
        "{outcome:?}"
    );
}

/// 32 logins race for one unionid: exactly one user owns it and gets all 32 identities.
pub async fn concurrent_logins_link_one_user(db: &TestDb) {
    let store = db.store().await;
    let started = Instant::now();
    let runs = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for i in 0..32u32 {
        let store = store.clone();
        let runs = Arc::clone(&runs);
        let mut first_run = true;
        tasks.push(tokio::spawn(async move {
            store
                .transact(TxMode::Write, move |tx| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let union = unionid("shared-union");
                    let found = tx.user_by_unionid(&union)?;
                    if first_run {
                        // Widen the window between read and write so the racers really
                        // overlap (on PostgreSQL; SQLite's writers take turns anyway).
                        first_run = false;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    let owner = match found {
                        Some(owner) => owner,
                        None => {
                            let created = User {
                                id: user_id(&format!("user-{i}")),
                                unionid: Some(union.clone()),
                                merged_into: None,
                                created_at: 1,
                            };
                            tx.insert_user(&created)?;
                            created
                        }
                    };
                    tx.insert_identity(&app(1), &openid(&format!("open-{i}")), &owner.id, 1)?;
                    Ok(owner.id)
                })
                .await
        }));
    }
    let mut owners = Vec::new();
    for task in tasks {
        owners.push(task.await.unwrap().expect("every login succeeds"));
    }
    owners.dedup();
    assert_eq!(owners.len(), 1, "one owner: {owners:?}");
    let record = store
        .user_by_unionid(&unionid("shared-union"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.user.id, owners[0]);
    assert_eq!(record.identities.len(), 32);
    let runs = runs.load(Ordering::SeqCst);
    if db.backend == Backend::Postgres {
        assert!(
            runs > 32,
            "the racers conflicted and were retried ({runs} runs)"
        );
    }
    eprintln!(
        "{:?}: 32 racing logins took {:?} and {} runs of the work",
        db.backend,
        started.elapsed(),
        runs
    );
}

pub async fn session_keys_are_sealed_at_rest(db: &TestDb) {
    const KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    let store = db.store().await;
    let t1 = token(1);
    let t2 = token(2);
    let s1 = session(&t1, "u", &app(1), "o_one", KEY);
    let s2 = session(&t2, "u", &app(1), "o_two", "HyVFkGl5F5OQWJZZaNzBBg==");
    write(&store, move |tx| {
        tx.insert_user(&user("u", None, 1))?;
        tx.insert_session(&s1)?;
        tx.insert_session(&s2)?;
        Ok(())
    })
    .await;

    let rows = db.raw_sessions();
    assert_eq!(rows.len(), 2);
    let mut hashes: Vec<_> = [t1.hash(), t2.hash()]
        .iter()
        .map(|h| h.as_bytes().to_vec())
        .collect();
    hashes.sort();
    for (row, hash) in rows.iter().zip(&hashes) {
        assert_eq!(&row.token_hash, hash, "the token's SHA-256 is stored");
        assert!(!contains(&row.session_key, KEY.as_bytes()));
        assert!(!contains(&row.session_key, t1.expose_secret().as_bytes()));
    }

    if let Some(path) = db.sqlite_path() {
        // Move everything from the WAL into the file, then search both.
        db.raw_execute("PRAGMA wal_checkpoint(TRUNCATE)").ok();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        assert!(
            contains(&bytes, t1.hash().as_bytes()),
            "the search reads the right file"
        );
        assert!(!contains(&bytes, KEY.as_bytes()), "session_key in clear");
        assert!(
            !contains(&bytes, t1.expose_secret().as_bytes()),
            "token in clear"
        );
    }

    // A sealed key is bound to its row: copied to another session it does not open.
    db.raw_execute(
        "UPDATE sessions SET session_key = \
         (SELECT s2.session_key FROM sessions s2 WHERE s2.openid = 'o_two') \
         WHERE openid = 'o_one'",
    )
    .unwrap();
    let h1 = t1.hash();
    let moved = store
        .transact(TxMode::Read, move |tx| Ok(tx.session(&h1)?))
        .await;
    assert!(
        matches!(moved, Err(DomainError::Store(StoreError::Corrupt(_)))),
        "{moved:?}"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub async fn purge_deletes_only_old_sessions(db: &TestDb) {
    let store = db.store().await;
    let now = 10_000_000;
    let old = now - SESSION_PURGE_GRACE_SECS - 10;
    let mut sessions = Vec::new();
    // (token n, expires_at, revoked?) and whether purge removes it.
    let plan = [
        (1, now + 100, false, false), // live
        (2, now - 10, false, false),  // expired within the grace
        (3, old, false, true),        // expired long ago
        (4, now + 100, true, true),   // revoked long ago
        (5, now + 100, false, false), // revoked just now (below)
    ];
    for (n, expires_at, revoked, _) in plan {
        let mut s = session(&token(n), "u", &app(1), "o", "k");
        s.created_at = old - 100;
        s.expires_at = expires_at;
        s.revoked = revoked; // revoked at creation, i.e. long ago
        sessions.push(s);
    }
    write(&store, move |tx| {
        tx.insert_user(&user("u", None, 1))?;
        for s in &sessions {
            tx.insert_session(s)?;
        }
        tx.revoke_session(&token(5).hash(), now - 5)?;
        Ok(())
    })
    .await;
    assert_eq!(store.purge_expired_sessions(now).await.unwrap(), 2);
    for (n, _, _, purged) in plan {
        let h = token(n).hash();
        let found = read(&store, move |tx| Ok(tx.session(&h)?)).await;
        assert_eq!(found.is_none(), purged, "session {n}");
    }
    assert_eq!(store.purge_expired_sessions(now).await.unwrap(), 0);
}

pub async fn reseal_rotates_the_data_key(db: &TestDb) {
    let keys: Vec<String> = (0..5).map(|n| format!("session-key-{n}")).collect();
    {
        let store_a = db.store().await;
        let written = keys.clone();
        write(&store_a, move |tx| {
            tx.insert_user(&user("u", None, 1))?;
            for (n, key) in written.iter().enumerate() {
                let n = u32::try_from(n).unwrap();
                tx.insert_session(&session(&token(n), "u", &app(1), "o", key))?;
            }
            Ok(())
        })
        .await;
    }
    // One session sealed under a key the new ring does not hold: left alone, not fatal.
    {
        let store_c = db
            .store_with(Keyring::new(DataKey::from_bytes([0xC3; 32])))
            .await;
        write(&store_c, |tx| {
            Ok(tx.insert_session(&session(&token(99), "u", &app(1), "o", "lost"))?)
        })
        .await;
    }

    let rotated = db
        .store_with(Keyring::new(key_b()).with_old_key(key_a()))
        .await;
    assert_eq!(rotated.reseal_session_keys(2).await.unwrap(), 5);
    assert_eq!(rotated.reseal_session_keys(2).await.unwrap(), 0);
    drop(rotated);

    let only_b = db.store_with(Keyring::new(key_b())).await;
    for (n, key) in keys.iter().enumerate() {
        let h = token(u32::try_from(n).unwrap()).hash();
        let s = read(&only_b, move |tx| Ok(tx.session(&h)?)).await.unwrap();
        assert_eq!(s.session_key, Some(SessionKey::new(key.as_str())));
    }
    let only_a = db.store().await;
    let h = token(0).hash();
    let stale = only_a
        .transact(TxMode::Read, move |tx| Ok(tx.session(&h)?))
        .await;
    assert!(
        matches!(stale, Err(DomainError::Store(StoreError::Corrupt(_)))),
        "{stale:?}"
    );
}

pub async fn user_lookups(db: &TestDb) {
    let store = db.store().await;
    write(&store, |tx| {
        tx.insert_user(&user("owner", Some("union-l"), 1))?;
        tx.insert_user(&user("merged", None, 1))?;
        tx.insert_identity(&app(2), &openid("b"), &user_id("owner"), 1)?;
        tx.insert_identity(&app(1), &openid("a"), &user_id("owner"), 1)?;
        tx.mark_merged(&user_id("merged"), &user_id("owner"), 2)?;
        Ok(())
    })
    .await;
    let expected = UserRecord {
        user: user("owner", Some("union-l"), 1),
        identities: vec![(app(1), openid("a")), (app(2), openid("b"))],
        phone_number: None,
    };
    assert_eq!(
        store.user_by_id(&user_id("owner")).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.user_by_unionid(&unionid("union-l")).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.user_by_identity(&app(2), &openid("b")).await.unwrap(),
        Some(expected)
    );
    let merged = store.user_by_id(&user_id("merged")).await.unwrap().unwrap();
    assert_eq!(merged.user.merged_into, Some(user_id("owner")));
    assert!(merged.identities.is_empty());
    assert_eq!(store.user_by_id(&user_id("none")).await.unwrap(), None);
    assert_eq!(store.user_by_unionid(&unionid("none")).await.unwrap(), None);
    assert_eq!(
        store
            .user_by_identity(&app(9), &openid("none"))
            .await
            .unwrap(),
        None
    );
}

/// With every connection busy, a caller waits at most `connect_timeout`, then hears
/// `Unavailable`, instead of queueing without bound.
pub async fn a_saturated_store_answers_unavailable_in_bounded_time(db: &TestDb) {
    let store = wxlink_persistence::Store::connect(
        db.config(keyring_a())
            .max_connections(1)
            .connect_timeout(std::time::Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let busy = store.clone();
    let holder = tokio::spawn(async move {
        busy.transact(TxMode::Read, |_tx| {
            std::thread::sleep(std::time::Duration::from_millis(2_500));
            Ok(())
        })
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = Instant::now();
    let outcome = store
        .transact(TxMode::Read, |tx| Ok(tx.user(&user_id("u"))?))
        .await;
    assert!(
        matches!(outcome, Err(DomainError::Store(StoreError::Unavailable(_)))),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2_000),
        "{:?}",
        started.elapsed()
    );
    holder.await.unwrap().unwrap();
    store.ping().await.unwrap();
}

pub async fn access_token_lease_is_exclusive_and_tokens_are_shared(db: &TestDb) {
    use secrecy::{ExposeSecret, SecretString};
    let store = db.store().await;
    let a = app(1);
    assert!(store.shared_access_token(&a).await.unwrap().is_none());

    // Many nodes race for a free lease: exactly one wins.
    let mut racers = tokio::task::JoinSet::new();
    for node in 0..16 {
        let (store, a) = (store.clone(), a.clone());
        racers.spawn(async move {
            store
                .lease_access_token_refresh(&a, &format!("node-{node}"), 1_000, 10, 1_300)
                .await
                .unwrap()
        });
    }
    let winners = racers
        .join_all()
        .await
        .into_iter()
        .filter(|won| *won)
        .count();
    assert_eq!(winners, 1);
    // While held, others are refused; the lease lapses after its time.
    assert!(
        !store
            .lease_access_token_refresh(&a, "late", 1_005, 10, 1_305)
            .await
            .unwrap()
    );
    assert!(
        store
            .lease_access_token_refresh(&a, "late", 1_011, 10, 1_311)
            .await
            .unwrap()
    );

    // Storing releases the lease and shares the token, sealed.
    let token = SecretString::from("ACCESS-TOKEN-1".to_owned());
    store
        .store_access_token(&a, &token, 8_200, 1_012)
        .await
        .unwrap();
    let shared = store.shared_access_token(&a).await.unwrap().unwrap();
    assert_eq!(shared.token.expose_secret(), "ACCESS-TOKEN-1");
    assert_eq!(shared.expires_at, 8_200);
    // A fresh token needs no refresh: nobody takes the lease, until it nears expiry.
    let lease = |holder: &'static str, now: i64| {
        let (store, a) = (store.clone(), a.clone());
        async move {
            store
                .lease_access_token_refresh(&a, holder, now, 10, now + 300)
                .await
                .unwrap()
        }
    };
    assert!(!lease("other", 1_013).await);
    assert!(lease("other", 8_000).await);

    // Invalidation is a compare-and-swap on the current token.
    let stale = SecretString::from("ACCESS-TOKEN-0".to_owned());
    assert!(!store.invalidate_access_token(&a, &stale).await.unwrap());
    assert!(store.invalidate_access_token(&a, &token).await.unwrap());
    assert_eq!(
        store
            .shared_access_token(&a)
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        0
    );
}

pub async fn webhook_cursors_lease_and_advance(db: &TestDb) {
    let store = db.store().await;
    assert_eq!(
        store.lease_webhook("crm", "node-1", 100, 30).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        store.lease_webhook("crm", "node-2", 110, 30).await.unwrap(),
        None
    );
    assert!(store.advance_webhook("crm", "node-1", 7).await.unwrap());
    assert!(
        !store.advance_webhook("crm", "node-2", 9).await.unwrap(),
        "not the holder"
    );
    assert!(
        !store.advance_webhook("crm", "node-1", 5).await.unwrap(),
        "never backwards"
    );
    assert_eq!(
        store.lease_webhook("crm", "node-1", 120, 30).await.unwrap(),
        Some(7)
    );
    // The lease lapses; another node takes over at the acknowledged cursor.
    assert_eq!(
        store.lease_webhook("crm", "node-2", 151, 30).await.unwrap(),
        Some(7)
    );
    // Webhooks are independent.
    assert_eq!(
        store
            .lease_webhook("audit", "node-1", 151, 30)
            .await
            .unwrap(),
        Some(0)
    );
}
