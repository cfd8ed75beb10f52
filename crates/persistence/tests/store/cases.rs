//! The store's behaviour, written once; `main.rs` runs every case on both backends.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wxlink_crypto::{DataKey, Keyring};
use wxlink_domain::{
    Actor, DecryptBudget, DomainError, Event, EventDetail, EventKind, IdentityStore, PhoneMerge,
    PhoneNumber, Reservation, Session, SessionKey, SessionToken, StoreError, StoreTx, TxMode, User,
};
use wxlink_persistence::{
    Backend, MAX_ATTEMPTS, SESSION_PURGE_GRACE_SECS, Store, UserRecord, migrate, migrate_blocking,
};

use crate::support::*;

const MIGRATIONS: [&str; 18] = [
    "2026-11-26-000001_users_and_identities",
    "2026-11-26-000002_sessions_and_events",
    "2026-11-26-000003_app_kinds_phones_tokens",
    "2026-11-26-000004_webhook_cursors",
    "2026-12-01-000005_decrypt_budget",
    "2026-12-01-000006_data_keys",
    "2026-12-01-000007_event_feed",
    "2026-12-01-000008_rate_limit_windows",
    "2026-12-01-000009_account_lifecycle",
    "2026-12-01-000010_decrypt_budgets",
    "2026-12-07-000011_signed_access_tokens",
    "2026-12-07-100011_identity_vouchers",
    "2026-12-07-200012_console",
    "2026-12-07-300012_login_in_one_statement",
    "2026-12-07-300013_drop_unused_indexes",
    "2026-12-07-520000_indexes_without_nulls",
    "2026-12-07-600000_login_mints_user_ids",
    "2026-12-07-700000_login_holds_in_fewer_statements",
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

pub async fn ping_and_backend(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    assert_eq!(store.backend(), db.target().backend());
    store.ping().await.unwrap();
    let debug = format!("{store:?}");
    assert!(debug.contains("Store"), "{debug}");
}

pub async fn migrations_apply_once_and_report_names(backend: TestBackend) {
    let db = &backend.empty_database();
    assert_eq!(migrate(&db.target()).await.unwrap(), MIGRATIONS);
    assert_eq!(migrate(&db.target()).await.unwrap(), Vec::<String>::new());
    let target = db.target();
    let blocking = tokio::task::spawn_blocking(move || migrate_blocking(&target));
    assert_eq!(blocking.await.unwrap().unwrap(), Vec::<String>::new());
    // Connecting with migrate_on_start finds nothing to do either.
    let store = db.store().await;
    store.ping().await.unwrap();
}

pub async fn users_and_unionids(backend: TestBackend) {
    let db = &backend.database();
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

pub async fn identities_are_ordered_and_move(backend: TestBackend) {
    let db = &backend.database();
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

/// The failed-decryption budget: reservations stop at the session's limit and at the
/// identity's daily limit (across sessions), concurrent ones never overshoot, a release gives
/// one back, the identity's window starts again after a day, and deleting the identity does
/// not reset it.
/// The first attempts of an identity arrive at once, each on its own session: every one is
/// counted and granted (the budget is far from spent), none refused because another created
/// the identity's row meanwhile.
pub async fn first_decrypt_attempts_of_an_identity_at_once_are_all_granted(backend: TestBackend) {
    let db = &backend.database();
    const SESSIONS: u32 = 8;
    let store = db.store().await;
    let budget = DecryptBudget {
        per_session: 100,
        per_identity_per_day: 1_000,
    };
    for round in 0..10_u32 {
        let who = format!("o{round}");
        let first_token = round * SESSIONS;
        let (owner, openid_text) = (format!("u{round}"), who.clone());
        write(&store, move |tx| {
            tx.insert_user(&user(&owner, None, 1))?;
            tx.insert_identity(&app(1), &openid(&openid_text), &user_id(&owner), 1)?;
            for n in first_token..first_token + SESSIONS {
                insert_new_session(tx, session(&token(n), &owner, &app(1), &openid_text, "k"))?;
            }
            Ok(())
        })
        .await;
        let attempts: Vec<_> = (first_token..first_token + SESSIONS)
            .map(|n| {
                let (store, who) = (store.clone(), who.clone());
                tokio::spawn(async move {
                    write(&store, move |tx| {
                        Ok(tx
                            .reserve_decrypt_attempt(
                                &token(n).hash(),
                                &app(1),
                                &openid(&who),
                                2_000,
                                budget,
                            )?
                            .is_granted())
                    })
                    .await
                })
            })
            .collect();
        let mut granted = 0;
        for attempt in attempts {
            granted += u32::from(attempt.await.unwrap());
        }
        assert_eq!(
            granted, SESSIONS,
            "round {round}: a first attempt was refused"
        );
    }
}

pub async fn decrypt_attempts_are_reserved_within_the_budget(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let budget = DecryptBudget {
        per_session: 3,
        per_identity_per_day: 5,
    };
    write(&store, |tx| {
        tx.insert_user(&user("u1", None, 1))?;
        tx.insert_identity(&app(1), &openid("o1"), &user_id("u1"), 1)?;
        for n in 1..=3 {
            insert_new_session(tx, session(&token(n), "u1", &app(1), "o1", "k"))?;
        }
        Ok(())
    })
    .await;
    let reservation = |n: u32, now: i64| {
        let store = store.clone();
        async move {
            write(&store, move |tx| {
                Ok(tx.reserve_decrypt_attempt(
                    &token(n).hash(),
                    &app(1),
                    &openid("o1"),
                    now,
                    budget,
                )?)
            })
            .await
        }
    };
    let reserve = |n: u32, now: i64| {
        let attempt = reservation(n, now);
        async move { attempt.await.is_granted() }
    };
    // Ten concurrent attempts on one session: exactly its budget gets through.
    let attempts: Vec<_> = (0..10).map(|_| tokio::spawn(reserve(1, 2_000))).collect();
    let mut granted = 0;
    for attempt in attempts {
        granted += u32::from(attempt.await.unwrap());
    }
    assert_eq!(granted, budget.per_session);
    // A release gives one back.
    write(&store, |tx| {
        Ok(tx.release_decrypt_attempt(&token(1).hash(), &app(1), &openid("o1"))?)
    })
    .await;
    assert!(reserve(1, 2_000).await);
    assert_eq!(
        reservation(1, 2_000).await,
        Reservation::SessionSpent,
        "the session's budget is spent"
    );
    // Another session of the same identity has its own budget, up to the identity's (5 of
    // which session 1 holds 3).
    assert!(reserve(2, 2_000).await);
    assert!(reserve(2, 2_000).await);
    assert_eq!(
        reservation(2, 2_000).await,
        Reservation::IdentitySpent {
            until: 2_000 + 24 * 3600
        },
        "the identity's budget is spent until its day is over"
    );
    assert!(!reserve(3, 2_000).await, "also for a new session");
    // A refusal by the identity changed nothing: session 3 still has its whole budget.
    let day_later = 2_000 + 24 * 3600;
    for _ in 0..budget.per_session {
        assert!(
            reserve(3, day_later).await,
            "a new day, a new identity budget"
        );
    }
    assert!(!reserve(3, day_later).await);
    // The budget outlives the identity: unlinked (or cancelled) and back on a new session, it
    // is still spent.
    write(&store, move |tx| {
        tx.delete_identity(&app(1), &openid("o1"))?;
        tx.insert_identity(&app(1), &openid("o1"), &user_id("u1"), day_later)?;
        insert_new_session(tx, session(&token(4), "u1", &app(1), "o1", "k"))?;
        Ok(())
    })
    .await;
    // Session 3 holds 3 of the day's 5: a fresh identity row would let session 4 have 3.
    assert!(reserve(4, day_later).await);
    assert!(reserve(4, day_later).await);
    assert!(
        !reserve(4, day_later).await,
        "a new identity row starts no new budget"
    );
    // An operator gives a locked-out user the day's budget back.
    assert!(
        store
            .reset_decrypt_budget(&app(1), &openid("o1"))
            .await
            .unwrap()
    );
    assert!(reserve(4, day_later).await, "the reset budget counts again");
    assert!(
        !store
            .reset_decrypt_budget(&app(1), &openid("o2"))
            .await
            .unwrap(),
        "another identity spent nothing"
    );
    // Housekeeping deletes a budget whose day is over, so it outlives a cancelled person by a
    // day at most.
    store
        .purge_expired_sessions(day_later + 24 * 3600)
        .await
        .unwrap();
    assert!(
        !store
            .reset_decrypt_budget(&app(1), &openid("o1"))
            .await
            .unwrap(),
        "the purge deleted the budget of a day that is over"
    );
}

/// Issued tokens are found by their session id and their secret compared; tokens issued before
/// the id (hash-only) keep working; a token that names a session but not its secret finds none.
pub async fn sessions_are_found_by_their_id_and_secret(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let id = [0x01, 0x9b, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 7];
    let issued = SessionToken::issue(id, [1; 32]);
    // Two sessions whose ids coincide: each is its own token's.
    let twin = SessionToken::issue(id, [2; 32]);
    let old = token(1);
    let sessions = [
        session(&issued, "u1", &app(1), "o1", "tiihtNczf5v6AKRyjwEUhQ=="),
        session(&twin, "u1", &app(1), "o2", "tiihtNczf5v6AKRyjwEUhQ=="),
        session(&old, "u1", &app(1), "o3", "tiihtNczf5v6AKRyjwEUhQ=="),
    ];
    let inserted = sessions.clone();
    write(&store, move |tx| {
        tx.insert_user(&user("u1", None, 1))?;
        for s in &inserted {
            tx.insert_session(s, &s.key)?;
        }
        Ok(())
    })
    .await;
    let mut old_id = [0u8; 16];
    old_id.copy_from_slice(&old.hash().as_bytes()[..16]);
    let presented = [
        issued.hash(),
        twin.hash(),
        old.hash(),
        // The attacks: a known session id with a guessed secret, and a token shaped as
        // issued whose id is the first half of an old token's hash.
        SessionToken::issue(id, [3; 32]).hash(),
        SessionToken::issue(old_id, [1; 32]).hash(),
    ];
    let found = read(&store, move |tx| {
        presented
            .iter()
            .map(|h| Ok(tx.session(h)?))
            .collect::<Result<Vec<_>, DomainError>>()
    })
    .await;
    assert_eq!(found[0].as_ref(), Some(&sessions[0].session));
    assert_eq!(found[1].as_ref(), Some(&sessions[1].session));
    assert_eq!(found[2].as_ref(), Some(&sessions[2].session));
    assert_eq!(found[3], None);
    assert_eq!(found[4], None);
}

pub async fn sessions_round_trip(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let t1 = token(1);
    let s1 = session(&t1, "u1", &app(1), "o1", "tiihtNczf5v6AKRyjwEUhQ==");
    let inserted = s1.clone();
    write(&store, move |tx| {
        tx.insert_user(&user("u1", None, 1))?;
        tx.insert_session(&inserted, &inserted.key)?;
        Ok(())
    })
    .await;
    let h1 = t1.hash();
    let (found, unknown) = read(&store, move |tx| {
        Ok((tx.session(&h1)?, tx.session(&token(2).hash())?))
    })
    .await;
    assert_eq!(found.as_ref(), Some(&s1.session));
    assert_eq!(unknown, None);
    let stored = read(&store, move |tx| Ok(tx.session_key(&h1)?)).await;
    assert_eq!(stored, s1.key);

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
    let stored = read(&store, move |tx| Ok(tx.session_key(&h1)?)).await;
    assert_eq!(stored, Some(fresh));
    assert!(after.revoked);
    assert!(!after.is_live(1_001));
    assert_eq!(
        Session {
            revoked: false,
            ..after
        },
        s1.session
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
        detail: None,
    }
}

pub async fn events_feed_pages_in_order(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let events = vec![
        event(EventKind::UserCreated, "p", None, 1),
        event(EventKind::IdentityLinked, "p", None, 2),
        event(EventKind::UserCreated, "o", None, 3),
        event(EventKind::UnionidLinked, "o", None, 4),
        Event {
            detail: Some(
                EventDetail::by(Actor::Support)
                    .phone(PhoneMerge::Moved)
                    .sessions(2)
                    .identities(1),
            ),
            ..event(EventKind::UsersMerged, "o", Some("p"), 5)
        },
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

/// A transaction holds an event it has not committed while later ones commit and are read:
/// once it commits, the follower still gets it, after what it already read, and every event
/// exactly once. Also for a transaction that took its transaction id before the later ones but
/// its event id after them. PostgreSQL only: SQLite has one writer, so nothing commits around
/// a held transaction.
pub async fn the_feed_hands_out_a_late_commit_after_its_cursor(backend: TestBackend) {
    let db = &backend.database();
    use diesel::connection::SimpleConnection as _;
    use diesel::{Connection as _, PgConnection};

    let store = db.store().await;
    let logins = |first: u32| {
        let store = store.clone();
        async move {
            for n in first..first + 3 {
                let id = format!("u{n}");
                write(&store, move |tx| {
                    tx.insert_user(&user(&id, None, 1))?;
                    tx.append_event(&event(EventKind::UserCreated, &id, None, i64::from(n)))?;
                    Ok(())
                })
                .await;
            }
        }
    };
    let mut seen: Vec<(i64, Event)> = Vec::new();
    // Read as far as the feed goes, in small pages, like a follower.
    let follow = |seen: &mut Vec<(i64, Event)>| {
        let store = store.clone();
        let mut cursor = seen.last().map_or(0, |(seq, _)| *seq);
        async move {
            let mut read = Vec::new();
            loop {
                let page = store.events_after(cursor, 2).await.unwrap();
                let Some(&(last, _)) = page.last() else {
                    return read;
                };
                cursor = last;
                read.extend(page);
            }
        }
    };
    logins(0).await;
    let held_sql = "INSERT INTO events (kind, user_id, appid, openid, at) \
                    VALUES ('identity_linked', 'u0', 'wx00000000000000a1', 'o1', 100)";

    for takes_xid_first in [false, true] {
        let mut held = PgConnection::establish(db.url()).unwrap();
        held.batch_execute("BEGIN").unwrap();
        if takes_xid_first {
            held.batch_execute("SELECT pg_current_xact_id()").unwrap();
        } else {
            held.batch_execute(held_sql).unwrap();
        }
        logins(if takes_xid_first { 20 } else { 10 }).await;
        let read = follow(&mut seen).await;
        seen.extend(read);
        if takes_xid_first {
            held.batch_execute(held_sql).unwrap();
        }
        held.batch_execute("COMMIT").unwrap();
        let read = follow(&mut seen).await;
        seen.extend(read);
    }

    let ats: Vec<i64> = seen.iter().map(|(_, e)| e.at).collect();
    assert_eq!(
        ats,
        [0, 1, 2, 10, 11, 12, 100, 20, 21, 22, 100],
        "every event exactly once, each held one after what was read before it committed"
    );
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "positions increase"
    );
}

/// Followers reading while logins commit on several connections each get every event once,
/// all in the same order: concurrent placements never hand out one position twice or skip one.
pub async fn concurrent_followers_see_one_order(backend: TestBackend) {
    let db = &backend.database();
    const WRITERS: u32 = 3;
    const EACH: u32 = 10;
    let store = db.store().await;
    write(&store, |tx| Ok(tx.insert_user(&user("u", None, 1))?)).await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..EACH {
                    let at = i64::from(w * 100 + n);
                    write(&store, move |tx| {
                        Ok(tx.append_event(&event(EventKind::IdentityLinked, "u", None, at))?)
                    })
                    .await;
                }
            })
        })
        .collect();
    let followers: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let (mut cursor, mut seen) = (0, Vec::new());
                // Bounded: each round either reads something or waits for a writer.
                for _ in 0..10_000 {
                    if seen.len() == (WRITERS * EACH) as usize {
                        break;
                    }
                    let page = store.events_after(cursor, 4).await.unwrap();
                    match page.last() {
                        Some(&(last, _)) => cursor = last,
                        None => tokio::task::yield_now().await,
                    }
                    seen.extend(page.into_iter().map(|(seq, e)| (seq, e.at)));
                }
                seen
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut orders = Vec::new();
    for f in followers {
        orders.push(f.await.unwrap());
    }
    let mut ats: Vec<i64> = orders[0].iter().map(|(_, at)| *at).collect();
    ats.sort_unstable();
    let expected: Vec<i64> = (0..WRITERS)
        .flat_map(|w| (0..EACH).map(move |n| i64::from(w * 100 + n)))
        .collect();
    assert_eq!(ats, expected, "every event exactly once");
    assert!(orders.iter().all(|o| *o == orders[0]), "one order for all");
}

/// Events written before feed positions existed keep their id as their position, so a
/// follower's or webhook's cursor means the same place after the upgrade, and new events come
/// after them.
pub async fn events_from_before_positions_keep_their_ids_as_positions(backend: TestBackend) {
    let db = &backend.empty_database();
    use diesel::{Connection as _, PgConnection, RunQueryDsl as _, SqliteConnection};
    use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
    const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
    const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

    // The schema as it was before positions: the first four migrations.
    let before = [
        "INSERT INTO users (id, created_at, updated_at) VALUES ('old', 1, 1)",
        "INSERT INTO events (id, kind, user_id, appid, openid, at) \
         VALUES (5, 'user_created', 'old', 'wx00000000000000a1', 'o1', 1), \
                (9, 'identity_linked', 'old', 'wx00000000000000a1', 'o1', 2)",
    ];
    match db.sqlite_path() {
        Some(path) => {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
            for _ in 0..4 {
                conn.run_next_migration(SQLITE).unwrap();
            }
            for sql in before {
                diesel::sql_query(sql).execute(&mut conn).unwrap();
            }
        }
        None => {
            let mut conn = PgConnection::establish(db.url()).unwrap();
            for _ in 0..4 {
                conn.run_next_migration(POSTGRES).unwrap();
            }
            for sql in before {
                diesel::sql_query(sql).execute(&mut conn).unwrap();
            }
        }
    }
    let store = db.store().await;
    write(&store, |tx| {
        Ok(tx.append_event(&event(EventKind::UnionidLinked, "old", None, 3))?)
    })
    .await;
    let feed: Vec<(i64, i64)> = store
        .events_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(seq, e)| (seq, e.at))
        .collect();
    assert_eq!(&feed[..2], &[(5, 1), (9, 2)], "old events at their ids");
    assert!(
        feed[2].0 > 9 && feed[2].1 == 3,
        "a new event after them: {feed:?}"
    );
    let after_old_cursor = store.events_after(9, 10).await.unwrap();
    assert_eq!(
        after_old_cursor.len(),
        1,
        "an old cursor resumes where it was"
    );
}

/// A merge's phone number moves to the owner, re-sealed under the owner's id with its
/// verification time; a cleared one is gone; live sessions are counted.
pub async fn phone_numbers_move_between_users(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let number = |n: &str| PhoneNumber {
        phone_number: n.to_owned(),
        pure_phone_number: n.to_owned(),
        country_code: "86".to_owned(),
    };
    let (a, b) = (number("13800000001"), number("13800000002"));
    let (set_a, set_b) = (a.clone(), b.clone());
    let verified = write(&store, move |tx| {
        tx.insert_user(&user("p", None, 1))?;
        tx.insert_user(&user("o", None, 1))?;
        tx.set_phone_number(&user_id("p"), &set_a, &app(1), &openid("o1"), 5)?;
        let before = (
            tx.phone_verified_at(&user_id("p"))?,
            tx.phone_verified_at(&user_id("o"))?,
        );
        tx.move_phone_number(&user_id("p"), &user_id("o"), 9)?;
        let after = (
            tx.phone_verified_at(&user_id("p"))?,
            tx.phone_verified_at(&user_id("o"))?,
        );
        tx.set_phone_number(&user_id("p"), &set_b, &app(1), &openid("o1"), 10)?;
        tx.clear_phone_number(&user_id("p"), 11)?;
        Ok((before, after))
    })
    .await;
    assert_eq!(verified, ((Some(5), None), (None, Some(5))));
    let phone_of = |id: &str| {
        let store = store.clone();
        let id = user_id(id);
        async move { store.user_by_id(&id).await.unwrap().unwrap().phone_number }
    };
    assert_eq!(
        phone_of("o").await,
        Some(a),
        "the owner has it, and it opens"
    );
    assert_eq!(phone_of("p").await, None);
    let refused = store
        .transact(TxMode::Write, |tx| {
            Ok(tx.move_phone_number(&user_id("p"), &user_id("o"), 12)?)
        })
        .await;
    assert!(matches!(
        refused,
        Err(DomainError::Store(StoreError::Corrupt(_)))
    ));

    let live = write(&store, |tx| {
        let app_ = app(1);
        insert_new_session(tx, session(&token(1), "p", &app_, "o1", "k"))?;
        insert_new_session(tx, session(&token(2), "p", &app_, "o1", "k"))?;
        insert_new_session(tx, session(&token(3), "o", &app_, "o2", "k"))?;
        tx.revoke_session(&token(2).hash(), 1_001)?;
        Ok((
            tx.live_sessions(&user_id("p"), 1_002)?,
            tx.live_sessions(&user_id("p"), 1_000 + 3_600)?,
        ))
    })
    .await;
    assert_eq!(live, (1, 0), "revoked and expired sessions do not count");
}

pub async fn events_are_append_only(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    write(&store, |tx| {
        tx.insert_user(&user("p", None, 1))?;
        tx.append_event(&event(EventKind::UserCreated, "p", None, 1))?;
        Ok(())
    })
    .await;
    // The feed has placed it: its position cannot change either.
    assert_eq!(store.events_after(0, 10).await.unwrap().len(), 1);
    drop(store);
    assert!(db.raw_execute("UPDATE events SET kind = 'x'").is_err());
    if db.target().backend() == Backend::Postgres {
        assert!(db.raw_execute("UPDATE events SET seq = seq + 1").is_err());
        assert!(db.raw_execute("UPDATE events SET seq = NULL").is_err());
    }
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

pub async fn constraint_violations_are_conflicts(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let t = token(1);
    let s = session(&t, "owner", &app(1), "o1", "key");
    write(&store, move |tx| {
        tx.insert_user(&user("owner", Some("union-x"), 1))?;
        tx.insert_user(&user("prov", None, 1))?;
        tx.insert_identity(&app(1), &openid("o1"), &user_id("owner"), 1)?;
        tx.insert_session(&s, &s.key)?;
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
        let s = session(&token(1), "prov", &app(1), "o1", "other");
        tx.insert_session(&s, &s.key)
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

pub async fn rule_errors_roll_back_everything(backend: TestBackend) {
    let db = &backend.database();
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
            tx.insert_session(&s, &s.key)?;
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
pub async fn refused_writes_among_concurrent_ones_roll_back_alone(backend: TestBackend) {
    let db = &backend.database();
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
pub async fn racing_guarded_merges_of_one_user_merge_it_once(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    write(&store, |tx| {
        tx.insert_user(&user("prov", None, 1))?;
        tx.insert_user(&user("owner-1", Some("union-1"), 1))?;
        tx.insert_user(&user("owner-2", Some("union-2"), 1))?;
        tx.insert_identity(&app(1), &openid("p"), &user_id("prov"), 1)?;
        Ok(())
    })
    .await;
    // Both read the user before either writes, on PostgreSQL; SQLite's one writer runs them in
    // turn (a barrier there would wait for ever).
    let both_read =
        (db.target().backend() == Backend::Postgres).then(|| Arc::new(std::sync::Barrier::new(2)));
    let mut tasks = Vec::new();
    for owner in ["owner-1", "owner-2"] {
        let store = store.clone();
        let mut first_run = both_read.clone();
        tasks.push(tokio::spawn(async move {
            store
                .transact(TxMode::WriteGuarded, move |tx| {
                    let prov = tx.user(&user_id("prov"))?.expect("prov exists");
                    if prov.merged_into.is_some() {
                        return Err(DomainError::UnionidConflict);
                    }
                    if let Some(both_read) = first_run.take() {
                        both_read.wait();
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

pub async fn read_transactions_refuse_writes(backend: TestBackend) {
    let db = &backend.database();
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
pub async fn concurrent_logins_link_one_user(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let started = Instant::now();
    let runs = Arc::new(AtomicU32::new(0));
    // On PostgreSQL the first two racers both read "no owner" before either writes, so they
    // certainly collide (one insert meets the other's unique unionid and reruns). SQLite's one
    // writer runs them in turn (a barrier there would wait for ever).
    let pg = db.target().backend() == Backend::Postgres;
    let both_read = pg.then(|| Arc::new((std::sync::Barrier::new(2), AtomicU32::new(0))));
    let mut tasks = Vec::new();
    for i in 0..32u32 {
        let store = store.clone();
        let runs = Arc::clone(&runs);
        let mut first_run = both_read.clone();
        tasks.push(tokio::spawn(async move {
            store
                .transact(TxMode::Write, move |tx| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let union = unionid("shared-union");
                    let found = tx.user_by_unionid(&union)?;
                    if let Some(gate) = first_run.take()
                        && gate.1.fetch_add(1, Ordering::SeqCst) < 2
                    {
                        gate.0.wait();
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
    if db.target().backend() == Backend::Postgres {
        assert!(
            runs > 32,
            "the racers conflicted and were retried ({runs} runs)"
        );
    }
    eprintln!(
        "{:?}: 32 racing logins took {:?} and {} runs of the work",
        db.target().backend(),
        started.elapsed(),
        runs
    );
}

pub async fn session_keys_are_sealed_at_rest(backend: TestBackend) {
    let db = &backend.database();
    const KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    let store = db.store().await;
    let t1 = token(1);
    let t2 = token(2);
    let s1 = session(&t1, "u", &app(1), "o_one", KEY);
    let s2 = session(&t2, "u", &app(1), "o_two", "HyVFkGl5F5OQWJZZaNzBBg==");
    write(&store, move |tx| {
        tx.insert_user(&user("u", None, 1))?;
        tx.insert_session(&s1, &s1.key)?;
        tx.insert_session(&s2, &s2.key)?;
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
        let mut bytes = std::fs::read(path).unwrap();
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
        .transact(TxMode::Read, move |tx| Ok(tx.session_key(&h1)?))
        .await;
    assert!(
        matches!(moved, Err(DomainError::Store(StoreError::Key(_)))),
        "{moved:?}"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub async fn purge_deletes_only_old_sessions(backend: TestBackend) {
    let db = &backend.database();
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
            tx.insert_session(s, &s.key)?;
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

pub async fn reseal_rotates_the_data_key(backend: TestBackend) {
    let db = &backend.database();
    let keys: Vec<String> = (0..5).map(|n| format!("session-key-{n}")).collect();
    {
        let store_a = db.store().await;
        let written = keys.clone();
        write(&store_a, move |tx| {
            tx.insert_user(&user("u", None, 1))?;
            for (n, key) in written.iter().enumerate() {
                let n = u32::try_from(n).unwrap();
                {
                    let s = session(&token(n), "u", &app(1), "o", key);
                    tx.insert_session(&s, &s.key)
                }?;
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
            Ok({
                let s = session(&token(99), "u", &app(1), "o", "lost");
                tx.insert_session(&s, &s.key)
            }?)
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
        let stored = read(&only_b, move |tx| Ok(tx.session_key(&h)?)).await;
        assert_eq!(stored, Some(SessionKey::new(key.as_str())));
    }
    // A store without the new key still reads the session, as `/v1/me` and logout need, and
    // names the key problem only when the session_key itself is asked for.
    let only_a = db.store().await;
    let h = token(0).hash();
    let (session, stale) = only_a
        .transact(TxMode::Read, move |tx| {
            Ok((tx.session(&h)?, tx.session_key(&h)))
        })
        .await
        .unwrap();
    assert!(session.is_some_and(|s| s.has_session_key && s.user_id == user_id("u")));
    let needed = key_b().id().to_string();
    assert!(
        matches!(&stale, Err(StoreError::Key(problem)) if problem.contains(&needed)),
        "{stale:?}"
    );
}

pub async fn user_lookups(backend: TestBackend) {
    let db = &backend.database();
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
/// `Unavailable`, instead of queueing without bound. Ordering, not the clock, shows it: the
/// only connection stays held until the caller has its answer, so any answer came from the
/// timeout cutting the wait.
pub async fn a_saturated_store_answers_unavailable_in_bounded_time(backend: TestBackend) {
    let db = &backend.database();
    let store = wxlink_persistence::Store::connect(
        db.config(keyring_a())
            .max_connections(1)
            .connect_timeout(std::time::Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let busy = store.clone();
    let (holding, held) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = tokio::spawn(async move {
        busy.transact(TxMode::Read, move |_tx| {
            holding.send(()).unwrap();
            // Held until the waiter has its answer. The bound is only the test's give-up: a
            // waiter whose wait is not cut gets the connection then, and fails below.
            let _ = released.recv_timeout(GIVE_UP);
            Ok(())
        })
        .await
    });
    tokio::task::spawn_blocking(move || held.recv().unwrap())
        .await
        .unwrap();
    let outcome = store
        .transact(TxMode::Read, |tx| Ok(tx.user(&user_id("u"))?))
        .await;
    assert!(
        matches!(outcome, Err(DomainError::Store(StoreError::Unavailable(_)))),
        "the waiter should hear Unavailable while the only connection is held, got {outcome:?} \
         (Ok: it waited until the holder gave up after {GIVE_UP:?})"
    );
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();
    store.ping().await.unwrap();
}

pub async fn access_token_lease_is_exclusive_and_tokens_are_shared(backend: TestBackend) {
    let db = &backend.database();
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
    assert!(
        store
            .store_access_token(&a, "late", &token, 8_200, 1_012)
            .await
            .unwrap()
    );
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

/// A node whose stable_token call outlasted its lease stores nothing: the node that took the
/// lease over stored a newer token, which the late store would overwrite.
pub async fn a_late_store_after_the_lease_lapsed_changes_nothing(backend: TestBackend) {
    let db = &backend.database();
    use secrecy::{ExposeSecret, SecretString};
    let store = db.store().await;
    let a = app(1);
    let lease = |holder: &'static str, now: i64| {
        let (store, a) = (store.clone(), a.clone());
        async move {
            store
                .lease_access_token_refresh(&a, holder, now, 15, now + 300)
                .await
                .unwrap()
        }
    };
    assert!(lease("slow", 1_000).await);
    // The lease lapses while "slow" waits for WeChat; "fast" takes it and stores.
    assert!(lease("fast", 1_016).await);
    let newer = SecretString::from("ACCESS-TOKEN-NEWER".to_owned());
    assert!(
        store
            .store_access_token(&a, "fast", &newer, 8_217, 1_017)
            .await
            .unwrap()
    );
    let older = SecretString::from("ACCESS-TOKEN-OLDER".to_owned());
    assert!(
        !store
            .store_access_token(&a, "slow", &older, 8_218, 1_018)
            .await
            .unwrap()
    );
    let shared = store.shared_access_token(&a).await.unwrap().unwrap();
    assert_eq!(
        (shared.token.expose_secret(), shared.expires_at),
        ("ACCESS-TOKEN-NEWER", 8_217)
    );
}

/// WeChat rejects the token while another node stores its successor, which expires in the
/// same second (both fetched within one second, both 7,200 s): the successor must survive.
/// Invalidating it instead costs the cluster an extra stable_token call and every caller a
/// retry.
pub async fn invalidating_a_rejected_token_spares_its_successor(backend: TestBackend) {
    let db = &backend.database();
    use secrecy::{ExposeSecret, SecretString};
    let store = db.store().await;
    let a = app(1);
    assert!(
        store
            .lease_access_token_refresh(&a, "first", 1_000, 10, 1_300)
            .await
            .unwrap()
    );
    for round in 0..40 {
        let rejected = SecretString::from(format!("TOKEN-{round}"));
        let successor = SecretString::from(format!("TOKEN-{round}-NEXT"));
        assert!(
            store
                .store_access_token(&a, "first", &rejected, 8_200, 1_000)
                .await
                .unwrap()
        );
        assert!(
            store
                .lease_access_token_refresh(&a, "next", 1_000, 10, 9_000)
                .await
                .unwrap()
        );
        let invalidate = {
            let (store, a, rejected) = (store.clone(), a.clone(), rejected.clone());
            tokio::spawn(async move { store.invalidate_access_token(&a, &rejected).await })
        };
        assert!(
            store
                .store_access_token(&a, "next", &successor, 8_200, 1_000)
                .await
                .unwrap()
        );
        invalidate.await.unwrap().unwrap();
        let shared = store.shared_access_token(&a).await.unwrap().unwrap();
        assert_eq!(
            (shared.token.expose_secret(), shared.expires_at),
            (successor.expose_secret(), 8_200),
            "round {round}: the successor was invalidated"
        );
        assert!(
            store
                .lease_access_token_refresh(&a, "first", 1_000, 10, 9_000)
                .await
                .unwrap()
        );
    }
}

pub async fn rate_limit_hits_add_up_across_nodes(backend: TestBackend) {
    let db = &backend.database();
    use wxlink_persistence::WindowHits;
    let hits = |key: &str, window_start: i64, hits: i64| WindowHits {
        key: key.to_owned(),
        window_start,
        hits,
    };
    // Four nodes (stores on one database) add their batches at once.
    let mut nodes = Vec::new();
    for _ in 0..4 {
        let store = db.store().await;
        nodes.push(tokio::spawn(async move {
            let mut last = Vec::new();
            for _ in 0..3 {
                last = store
                    .add_rate_limit_hits(vec![hits("ip:a", 60, 2), hits("app:b", 60, 1)])
                    .await
                    .unwrap();
            }
            last
        }));
    }
    for node in nodes {
        let totals = node.await.unwrap();
        assert_eq!(totals.len(), 2);
        assert!(totals[0].hits >= 6 && totals[0].hits <= 24, "{totals:?}");
    }
    let store = db.store().await;
    let totals = store
        .add_rate_limit_hits(vec![
            hits("ip:a", 60, 0),
            hits("app:b", 60, 1),
            hits("ip:a", 120, 5),
            hits("ip:never", 60, 0),
        ])
        .await
        .unwrap();
    assert_eq!(
        totals,
        vec![
            hits("ip:a", 60, 24),
            hits("app:b", 60, 13),
            hits("ip:a", 120, 5),
            hits("ip:never", 60, 0),
        ],
        "every node's hits count once; windows and keys are apart"
    );
    assert!(
        store
            .add_rate_limit_hits(Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.purge_rate_limit_windows(120).await.unwrap(), 2);
    let left = store
        .add_rate_limit_hits(vec![hits("ip:a", 60, 0), hits("ip:a", 120, 0)])
        .await
        .unwrap();
    assert_eq!(left, vec![hits("ip:a", 60, 0), hits("ip:a", 120, 5)]);
}

pub async fn webhook_cursors_lease_and_advance(backend: TestBackend) {
    let db = &backend.database();
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
