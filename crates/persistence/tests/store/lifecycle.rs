//! What cancellation and support's repairs need from the store, on both backends.

use wxlink_domain::{
    Actor, ActorName, DomainError, EventDetail, EventKind, IdentityStore, PhoneMerge, StoreError,
    StoreTx, TxMode, UnionidSplit,
};

use crate::support::*;

async fn write<T, F>(store: &wxlink_persistence::Store, work: F) -> T
where
    T: Send + 'static,
    F: FnMut(&mut dyn StoreTx) -> Result<T, DomainError> + Send + 'static,
{
    store
        .transact(TxMode::Write, work)
        .await
        .expect("write transaction")
}

/// How many rows match `condition`, counted outside the store (an update that changes nothing
/// reports the rows it matched on both backends).
fn count(db: &TestDb, table: &str, condition: &str) -> usize {
    let column = match table {
        "sessions" => "expires_at",
        _ => "updated_at",
    };
    db.raw_execute(&format!(
        "UPDATE {table} SET {column} = {column} WHERE {condition}"
    ))
    .unwrap()
}

pub async fn a_tombstone_keeps_the_id_and_erases_the_person(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    write(&store, |tx| {
        tx.insert_user(&user("owner", Some("gone-union"), 1))?;
        tx.insert_user(&user("prov", None, 1))?;
        tx.insert_user(&user("bystander", Some("other-union"), 1))?;
        tx.insert_identity(&app(1), &openid("o1"), &user_id("owner"), 1)?;
        tx.insert_identity(&app(2), &openid("o2"), &user_id("prov"), 1)?;
        tx.insert_identity(&app(1), &openid("ob"), &user_id("bystander"), 1)?;
        insert_new_session(tx, session(&token(1), "owner", &app(1), "o1", "k1"))?;
        insert_new_session(tx, session(&token(2), "prov", &app(2), "o2", "k2"))?;
        insert_new_session(tx, session(&token(3), "bystander", &app(1), "ob", "k3"))?;
        tx.move_identities(&user_id("prov"), &user_id("owner"), 2)?;
        tx.mark_merged(&user_id("prov"), &user_id("owner"), 2)?;
        tx.set_phone_number(&user_id("owner"), &phone(), &app(1), &openid("o1"), 2)?;
        Ok(())
    })
    .await;

    let (revoked, released) = write(&store, |tx| {
        let revoked = tx.revoke_user_sessions(&user_id("owner"), 10)?;
        let released = tx.delete_identities(&user_id("owner"))?;
        tx.tombstone_user(&user_id("owner"), 10)?;
        Ok((revoked, released))
    })
    .await;
    assert_eq!((revoked, released), (2, 2), "its own and the merged user's");

    let (owner, prov, by_union, s1, s2, s3) = write(&store, |tx| {
        Ok((
            tx.user(&user_id("owner"))?,
            tx.user(&user_id("prov"))?,
            tx.user_by_unionid(&unionid("gone-union"))?,
            tx.session(&token(1).hash())?,
            tx.session(&token(2).hash())?,
            tx.session(&token(3).hash())?,
        ))
    })
    .await;
    assert_eq!((owner, prov, by_union), (None, None, None));
    let (s1, s2, s3) = (s1.unwrap(), s2.unwrap(), s3.unwrap());
    assert!(s1.revoked && s2.revoked && !s3.revoked);
    assert_eq!((s1.has_session_key, s2.has_session_key), (false, false));
    assert!(s3.has_session_key, "another user's key stays");
    assert_eq!(count(db, "users", "deleted_at IS NOT NULL"), 2);
    assert_eq!(
        count(
            db,
            "users",
            "deleted_at IS NOT NULL AND (unionid IS NOT NULL OR phone_number IS NOT NULL)"
        ),
        0
    );
    assert_eq!(count(db, "identities", "user_id IN ('owner', 'prov')"), 0);
    assert!(store.user_by_id(&user_id("owner")).await.unwrap().is_none());

    // The unionid is free again: the same person can come back as a new user.
    write(&store, |tx| {
        tx.insert_user(&user("again", Some("gone-union"), 11))?;
        tx.insert_identity(&app(1), &openid("o1"), &user_id("again"), 11)?;
        Ok(())
    })
    .await;

    // A tombstone cannot be deleted twice.
    let twice = store
        .transact(TxMode::Write, |tx| {
            Ok(tx.tombstone_user(&user_id("nobody"), 12)?)
        })
        .await;
    assert!(
        matches!(twice, Err(DomainError::Store(StoreError::Corrupt(_)))),
        "{twice:?}"
    );
}

pub async fn support_repairs_move_unionids_merges_and_identities(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    write(&store, |tx| {
        tx.insert_user(&user("a", Some("union-a"), 1))?;
        tx.insert_user(&user("b", None, 1))?;
        tx.insert_user(&user("c", None, 1))?;
        tx.insert_identity(&app(1), &openid("oa"), &user_id("a"), 1)?;
        tx.insert_identity(&app(1), &openid("ob"), &user_id("b"), 1)?;
        tx.insert_identity(&app(2), &openid("ob2"), &user_id("b"), 1)?;
        tx.insert_identity(&app(1), &openid("oc"), &user_id("c"), 1)?;
        tx.mark_merged(&user_id("c"), &user_id("a"), 2)?;
        insert_new_session(tx, session(&token(1), "b", &app(2), "ob2", "k1"))?;
        insert_new_session(tx, session(&token(2), "b", &app(1), "ob", "k2"))?;
        Ok(())
    })
    .await;

    // The unionid moves from a to b, in this order under the unique constraint.
    write(&store, |tx| {
        tx.release_unionid(&user_id("a"), 3)?;
        tx.set_unionid(&user_id("b"), &unionid("union-a"), 3)?;
        tx.mark_merged(&user_id("a"), &user_id("b"), 3)?;
        Ok(())
    })
    .await;
    let (a, c, owner) = write(&store, |tx| {
        Ok((
            tx.user(&user_id("a"))?.unwrap(),
            tx.user(&user_id("c"))?.unwrap(),
            tx.user_by_unionid(&unionid("union-a"))?.unwrap(),
        ))
    })
    .await;
    assert_eq!(owner.id, user_id("b"));
    assert_eq!(a.unionid, None);
    assert_eq!(a.merged_into, Some(user_id("b")));
    assert_eq!(
        c.merged_into,
        Some(user_id("b")),
        "merge chains stay one hop"
    );

    let (revoked, again) = write(&store, |tx| {
        let revoked = tx.revoke_identity_sessions(&app(2), &openid("ob2"), 4)?;
        tx.delete_identity(&app(2), &openid("ob2"))?;
        Ok((
            revoked,
            tx.revoke_identity_sessions(&app(2), &openid("ob2"), 4)?,
        ))
    })
    .await;
    assert_eq!((revoked, again), (1, 0));
    let (gone, other) = write(&store, |tx| {
        Ok((
            tx.identity_owner(&app(2), &openid("ob2"))?,
            tx.session(&token(2).hash())?.unwrap(),
        ))
    })
    .await;
    assert_eq!(gone, None);
    assert!(!other.revoked, "only the unlinked identity's sessions");
    let missing = store
        .transact(TxMode::Write, |tx| {
            Ok(tx.delete_identity(&app(2), &openid("ob2"))?)
        })
        .await;
    assert!(
        matches!(missing, Err(DomainError::Store(StoreError::Corrupt(_)))),
        "{missing:?}"
    );
}

pub async fn identities_vouch_and_a_split_moves_them_with_sessions_and_phone(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    // b (union-b, vouched by ob) had a and c merged into it; a's identity oa came along.
    write(&store, |tx| {
        tx.insert_user(&user("b", Some("union-b"), 1))?;
        tx.insert_user(&user("a", None, 1))?;
        tx.insert_user(&user("c", None, 1))?;
        tx.insert_identity(&app(1), &openid("ob"), &user_id("b"), 1)?;
        tx.insert_identity(&app(2), &openid("oa"), &user_id("b"), 1)?;
        tx.vouch(&app(1), &openid("ob"), &unionid("union-b"), 1)?;
        tx.vouch(&app(2), &openid("oa"), &unionid("union-b"), 1)?;
        // Vouching again for the same unionid changes nothing.
        tx.vouch(&app(2), &openid("oa"), &unionid("union-b"), 2)?;
        tx.mark_merged(&user_id("a"), &user_id("b"), 2)?;
        tx.mark_merged(&user_id("c"), &user_id("b"), 2)?;
        // Sessions of oa: issued to a before the merge, to b after it; one of ob issued to a
        // (ob belonged to a once), and one of ob issued to b.
        insert_new_session(tx, session(&token(1), "a", &app(2), "oa", "k1"))?;
        insert_new_session(tx, session(&token(2), "b", &app(2), "oa", "k2"))?;
        insert_new_session(tx, session(&token(3), "a", &app(1), "ob", "k3"))?;
        insert_new_session(tx, session(&token(4), "b", &app(1), "ob", "k4"))?;
        tx.set_phone_number(&user_id("b"), &phone(), &app(2), &openid("oa"), 2)?;
        Ok(())
    })
    .await;
    let (both, verifier) = write(&store, |tx| {
        Ok((
            tx.vouchers(&user_id("b"), &unionid("union-b"))?,
            tx.phone_verified_by(&user_id("b"))?,
        ))
    })
    .await;
    assert_eq!(both, 2);
    assert_eq!(verifier, Some((app(2), openid("oa"))));

    // Split oa back to a: its sessions go with it, a's session through ob stays with b.
    let live = write(&store, |tx| {
        tx.restore_user(&user_id("a"), &user_id("b"), 3)?;
        let live = tx.split_sessions(&user_id("b"), &user_id("a"), &[(app(2), openid("oa"))], 3)?;
        tx.move_identity(&app(2), &openid("oa"), &user_id("a"), 3)?;
        tx.move_phone_number(&user_id("b"), &user_id("a"), 3)?;
        Ok(live)
    })
    .await;
    assert_eq!(live, 2);
    let seen = write(&store, |tx| {
        Ok((
            tx.user(&user_id("a"))?.unwrap().merged_into,
            tx.user(&user_id("c"))?.unwrap().merged_into,
            tx.identity_owner(&app(2), &openid("oa"))?,
            [1, 2, 3, 4].map(|n| tx.session(&token(n).hash()).unwrap().unwrap().user_id),
            tx.vouchers(&user_id("a"), &unionid("union-b"))?,
            tx.vouchers(&user_id("b"), &unionid("union-b"))?,
            tx.phone_verified_by(&user_id("a"))?,
            tx.phone_verified_at(&user_id("b"))?,
        ))
    })
    .await;
    assert_eq!(seen.0, None, "a is restored");
    assert_eq!(seen.1, Some(user_id("b")), "c stays merged");
    assert_eq!(seen.2, Some(user_id("a")));
    assert_eq!(
        seen.3,
        [user_id("a"), user_id("a"), user_id("b"), user_id("b")]
    );
    assert_eq!((seen.4, seen.5), (1, 1), "oa took its vouch along");
    assert_eq!(
        seen.6,
        Some((app(2), openid("oa"))),
        "the number and its verifier"
    );
    assert_eq!(seen.7, None);

    // Dropping a's vouches, and restoring a user that is not merged there, as the rules ask.
    write(&store, |tx| {
        tx.drop_vouches(&user_id("a"), 4).map_err(Into::into)
    })
    .await;
    let (dropped, refused) = write(&store, |tx| {
        Ok((
            tx.vouchers(&user_id("a"), &unionid("union-b"))?,
            tx.restore_user(&user_id("a"), &user_id("b"), 4).is_err(),
        ))
    })
    .await;
    assert_eq!((dropped, refused), (0, true));
}

/// Data from before vouching: the identities of a user that holds a unionid count as vouching
/// for it once the migration ran, those of a provisional user vouch for nothing.
pub async fn the_migration_counts_existing_identities_as_vouching(backend: TestBackend) {
    let db = &backend.database();
    drop(db.store().await);
    // Back to the schema before the migration, with rows an older release wrote.
    db.raw_execute(
        "DELETE FROM __diesel_schema_migrations \
         WHERE REPLACE(version, '-', '') = '20261207100011'",
    )
    .unwrap();
    for statement in [
        "ALTER TABLE users DROP COLUMN phone_openid",
        "ALTER TABLE users DROP COLUMN phone_appid",
        "ALTER TABLE identities DROP COLUMN unionid",
        "INSERT INTO users (id, unionid, merged_into, created_at, updated_at) \
         VALUES ('old', 'old-union', NULL, 1, 1), ('prov', NULL, NULL, 1, 1)",
        &format!(
            "INSERT INTO identities (appid, openid, user_id, created_at, updated_at) \
             VALUES ('{a1}', 'o1', 'old', 1, 1), ('{a2}', 'o2', 'old', 1, 1), \
             ('{a1}', 'op', 'prov', 1, 1)",
            a1 = app(1),
            a2 = app(2)
        ),
    ] {
        db.raw_execute(statement)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let store = db.store().await;
    let (vouching, provisional) = write(&store, |tx| {
        Ok((
            tx.vouchers(&user_id("old"), &unionid("old-union"))?,
            tx.identities(&user_id("prov"))?.len(),
        ))
    })
    .await;
    assert_eq!(vouching, 2);
    assert_eq!(provisional, 1);
    assert_eq!(
        count(db, "identities", "user_id = 'prov' AND unionid IS NULL"),
        1
    );
}

pub async fn event_details_round_trip(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    write(&store, |tx| {
        tx.insert_user(&user("d", None, 1))?;
        let mut event = wxlink_domain::Event {
            kind: EventKind::UserDeleted,
            user_id: user_id("d"),
            other_user_id: None,
            appid: app(1),
            openid: openid("od"),
            at: 5,
            detail: Some(EventDetail::by(Actor::User).sessions(1)),
        };
        tx.append_event(&event)?;
        event.kind = EventKind::UserSplit;
        event.detail = Some(split_detail());
        tx.append_event(&event)?;
        event.kind = EventKind::SessionsRevoked;
        event.detail = None;
        tx.append_event(&event)?;
        Ok(())
    })
    .await;
    let events = store.events_after(0, 10).await.unwrap();
    assert_eq!(events[0].1.kind, EventKind::UserDeleted);
    assert_eq!(
        events[0].1.detail,
        Some(EventDetail::by(Actor::User).sessions(1))
    );
    assert_eq!(events[1].1.detail, Some(split_detail()));
    assert_eq!(events[2].1.kind, EventKind::SessionsRevoked);
    assert_eq!(events[2].1.detail, None);
}

fn split_detail() -> EventDetail {
    EventDetail::support(&ActorName::parse("cli:alice").unwrap())
        .identities(2)
        .sessions(1)
        .unionid(UnionidSplit::Moved)
        .phone(PhoneMerge::Stayed)
}

fn phone() -> wxlink_domain::PhoneNumber {
    wxlink_domain::PhoneNumber {
        phone_number: "13800138000".to_owned(),
        pure_phone_number: "13800138000".to_owned(),
        country_code: "86".to_owned(),
    }
}
