//! Every life-cycle rule and refusal against a mock transaction; a write the mock does not
//! expect fails the test, so "a refused request writes nothing" is checked by expecting none.

use std::sync::{Arc, Mutex};

use mockall::predicate::eq;

use super::*;
use crate::error::StoreError;
use crate::model::{EventKind, PhoneMerge};
use crate::ports::{MockClock, MockIdSource, MockStoreTx};
use crate::service::tests::{
    FakeSigner, MockStore, NOW, app, expect_merge_holds, expect_merge_holds_in, expect_session,
    expect_user, live_session, oid, other_app, token, uid, union, user,
};

fn accounts(tx: MockStoreTx) -> Accounts<MockStore> {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(NOW);
    let mut ids = MockIdSource::new();
    ids.expect_new_user_id().returning(|| uid("u-new"));
    Accounts::new(MockStore(Mutex::new(tx)), Arc::new(clock), Arc::new(ids))
}

/// The support agent of these tests.
fn agent() -> ActorName {
    ActorName::parse("crm").unwrap()
}

fn support() -> EventDetail {
    EventDetail::support(&agent())
}

fn expect_identities(tx: &mut MockStoreTx, of: &str, list: &[(AppId, OpenId)]) {
    let list = list.to_vec();
    tx.expect_identities()
        .with(eq(uid(of)))
        .returning(move |_| Ok(list.clone()));
}

fn expect_detailed_event(
    tx: &mut MockStoreTx,
    kind: EventKind,
    user: &str,
    other: Option<&str>,
    detail: EventDetail,
) {
    let (user, other) = (uid(user), other.map(uid));
    tx.expect_append_event()
        .withf(move |e| {
            e.kind == kind
                && e.user_id == user
                && e.other_user_id == other
                && e.at == NOW
                && e.detail.as_ref() == Some(&detail)
        })
        .times(1)
        .returning(|_| Ok(()));
}

/// When `u-from` and `u-into` verified their phone numbers.
fn expect_phones(tx: &mut MockStoreTx, from: Option<i64>, into: Option<i64>) {
    tx.expect_phone_verified_at()
        .with(eq(uid("u-from")))
        .returning(move |_| Ok(from));
    tx.expect_phone_verified_at()
        .with(eq(uid("u-into")))
        .returning(move |_| Ok(into));
}

fn expect_live_sessions(tx: &mut MockStoreTx, user: &str, n: u64) {
    tx.expect_live_sessions()
        .with(eq(uid(user)), eq(NOW))
        .times(1)
        .returning(move |_, _| Ok(n));
}

/// The merges' two users: `u-into` without a unionid, `u-from` with `union-1` and `o2` of
/// the other app.
fn expect_merge_pair(tx: &mut MockStoreTx) {
    expect_user(tx, user("u-into", None, None));
    expect_user(tx, user("u-from", Some("union-1"), None));
    expect_identities(tx, "u-from", &[(other_app(), oid("o2"))]);
}

fn no_such_user(tx: &mut MockStoreTx, id: &str) {
    tx.expect_user().with(eq(uid(id))).returning(|_| Ok(None));
}

/// A split records the identity leaving `u-src` and joining `to`, naming support.
fn expect_identity_moved(tx: &mut MockStoreTx, to: &str) {
    expect_detailed_event(tx, EventKind::IdentityUnlinked, "u-src", None, support());
    expect_detailed_event(tx, EventKind::IdentityLinked, to, None, support());
}

/// Support's refusals of the user it names, expecting no write: an unknown user (`u-x`),
/// and one merged into another (`u-p` into `u-o`).
fn unknown_and_merged() -> [(MockStoreTx, UserId, DomainError); 2] {
    let mut unknown = MockStoreTx::new();
    no_such_user(&mut unknown, "u-x");
    let mut merged = MockStoreTx::new();
    expect_user(&mut merged, user("u-p", None, Some("u-o")));
    [
        (unknown, uid("u-x"), DomainError::UserNotFound),
        (merged, uid("u-p"), DomainError::UserMerged(uid("u-o"))),
    ]
}

// ---- cancellation ----

#[tokio::test]
async fn cancelling_revokes_releases_erases_and_records_it() {
    let mut tx = MockStoreTx::new();
    expect_session(&mut tx, Some(live_session("u-p", "o1")));
    expect_user(&mut tx, user("u-p", None, Some("u-o")));
    expect_user(&mut tx, user("u-o", Some("union-1"), None));
    tx.expect_revoke_user_sessions()
        .with(eq(uid("u-o")), eq(NOW))
        .times(1)
        .returning(|_, _| Ok(3));
    expect_identities(
        &mut tx,
        "u-o",
        &[(app(), oid("o1")), (other_app(), oid("o2"))],
    );
    tx.expect_append_event()
        .withf(|e| {
            e.kind == EventKind::IdentityUnlinked
                && e.user_id == uid("u-o")
                && e.detail == Some(EventDetail::by(Actor::User))
        })
        .times(2)
        .returning(|_| Ok(()));
    tx.expect_delete_identities()
        .with(eq(uid("u-o")))
        .times(1)
        .returning(|_| Ok(2));
    tx.expect_tombstone_user()
        .with(eq(uid("u-o")), eq(NOW))
        .times(1)
        .returning(|_, _| Ok(()));
    // The unionid goes with the last identity vouching for it.
    expect_detailed_event(
        &mut tx,
        EventKind::UnionidReleased,
        "u-o",
        None,
        EventDetail::by(Actor::User),
    );
    expect_detailed_event(
        &mut tx,
        EventKind::UserDeleted,
        "u-o",
        None,
        EventDetail::by(Actor::User).sessions(3).identities(2),
    );
    let done = accounts(tx)
        .cancel(Presence::proven(token().hash()))
        .await
        .unwrap();
    assert_eq!(
        done,
        Cancelled {
            sessions: 3,
            identities: 2
        }
    );
}

#[tokio::test]
async fn cancelling_with_a_dead_token_writes_nothing() {
    for session in [None, {
        let mut s = live_session("u-p", "o1");
        s.revoked = true;
        Some(s)
    }] {
        let mut tx = MockStoreTx::new();
        expect_session(&mut tx, session);
        let err = accounts(tx)
            .cancel(Presence::proven(token().hash()))
            .await
            .unwrap_err();
        assert_eq!(err, DomainError::InvalidToken);
    }
}

#[tokio::test]
async fn support_deletes_only_existing_unmerged_users() {
    for (tx, id, refused) in unknown_and_merged() {
        let err = accounts(tx).delete_user(id, agent()).await.unwrap_err();
        assert_eq!(err, refused);
    }

    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-o", None, None));
    expect_identities(&mut tx, "u-o", &[(app(), oid("o1"))]);
    tx.expect_revoke_user_sessions().returning(|_, _| Ok(0));
    tx.expect_delete_identities().returning(|_| Ok(1));
    tx.expect_tombstone_user().times(1).returning(|_, _| Ok(()));
    tx.expect_append_event()
        .withf(|e| e.kind == EventKind::IdentityUnlinked)
        .times(1)
        .returning(|_| Ok(()));
    expect_detailed_event(
        &mut tx,
        EventKind::UserDeleted,
        "u-o",
        None,
        support().sessions(0).identities(1),
    );
    accounts(tx).delete_user(uid("u-o"), agent()).await.unwrap();
}

// ---- revoke sessions ----

#[tokio::test]
async fn revoking_sessions_counts_them_in_the_event() {
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-o", Some("union-1"), None));
    expect_identities(&mut tx, "u-o", &[(app(), oid("o1"))]);
    tx.expect_revoke_user_sessions()
        .with(eq(uid("u-o")), eq(NOW))
        .times(1)
        .returning(|_, _| Ok(2));
    expect_detailed_event(
        &mut tx,
        EventKind::SessionsRevoked,
        "u-o",
        None,
        support().sessions(2),
    );
    assert_eq!(
        accounts(tx).revoke_sessions(uid("u-o"), agent()).await,
        Ok(2)
    );
}

#[tokio::test]
async fn revoking_sessions_of_unknown_or_merged_users_writes_nothing() {
    for (tx, id, refused) in unknown_and_merged() {
        assert_eq!(
            accounts(tx).revoke_sessions(id, agent()).await,
            Err(refused)
        );
    }
}

// ---- unlink ----

#[tokio::test]
async fn unlinking_revokes_the_identitys_sessions_and_detaches_it() {
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-o", Some("union-1"), None));
    expect_identities(
        &mut tx,
        "u-o",
        &[(app(), oid("o1")), (other_app(), oid("o2"))],
    );
    tx.expect_revoke_identity_sessions()
        .with(eq(other_app()), eq(oid("o2")), eq(NOW))
        .times(1)
        .returning(|_, _, _| Ok(1));
    tx.expect_delete_identity()
        .with(eq(other_app()), eq(oid("o2")))
        .times(1)
        .returning(|_, _| Ok(()));
    tx.expect_append_event()
        .withf(|e| {
            e.kind == EventKind::IdentityUnlinked
                && e.appid == other_app()
                && e.openid == oid("o2")
                && e.detail == Some(support().sessions(1))
        })
        .times(1)
        .returning(|_| Ok(()));
    // o1 still vouches for the unionid: it stays.
    tx.expect_vouchers()
        .with(eq(uid("u-o")), eq(union("union-1")))
        .times(1)
        .returning(|_, _| Ok(1));
    accounts(tx)
        .unlink_identity(uid("u-o"), other_app(), oid("o2"), agent())
        .await
        .unwrap();
}

#[tokio::test]
async fn unlinking_the_last_identity_vouching_for_the_unionid_releases_it() {
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-o", Some("union-1"), None));
    expect_identities(
        &mut tx,
        "u-o",
        &[(app(), oid("o1")), (other_app(), oid("o2"))],
    );
    tx.expect_revoke_identity_sessions()
        .returning(|_, _, _| Ok(0));
    tx.expect_delete_identity()
        .with(eq(other_app()), eq(oid("o2")))
        .times(1)
        .returning(|_, _| Ok(()));
    expect_detailed_event(
        &mut tx,
        EventKind::IdentityUnlinked,
        "u-o",
        None,
        support().sessions(0),
    );
    tx.expect_vouchers()
        .with(eq(uid("u-o")), eq(union("union-1")))
        .times(1)
        .returning(|_, _| Ok(0));
    tx.expect_release_unionid()
        .with(eq(uid("u-o")), eq(NOW))
        .times(1)
        .returning(|_, _| Ok(()));
    expect_detailed_event(&mut tx, EventKind::UnionidReleased, "u-o", None, support());
    accounts(tx)
        .unlink_identity(uid("u-o"), other_app(), oid("o2"), agent())
        .await
        .unwrap();
}

#[tokio::test]
async fn unlinking_a_foreign_or_the_last_identity_writes_nothing() {
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-o", None, None));
    expect_identities(&mut tx, "u-o", &[(app(), oid("o1"))]);
    let svc = accounts(tx);
    assert_eq!(
        svc.unlink_identity(uid("u-o"), app(), oid("o9"), agent())
            .await,
        Err(DomainError::IdentityNotFound)
    );
    assert_eq!(
        svc.unlink_identity(uid("u-o"), app(), oid("o1"), agent())
            .await,
        Err(DomainError::LastIdentity)
    );
    for (tx, id, refused) in unknown_and_merged() {
        assert_eq!(
            accounts(tx)
                .unlink_identity(id, app(), oid("o1"), agent())
                .await,
            Err(refused)
        );
    }
}

// ---- merge ----

#[tokio::test]
async fn a_support_merge_moves_identities_and_takes_the_unionid() {
    let mut tx = MockStoreTx::new();
    expect_merge_pair(&mut tx);
    // Both users are held, in id order, before the unionid moves: its writes lock them too,
    // and a racing unionid merge locks them in id order.
    let mut order = mockall::Sequence::new();
    expect_merge_holds_in(&mut tx, "u-from", "u-into", &mut order);
    tx.expect_release_unionid()
        .with(eq(uid("u-from")), eq(NOW))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _| Ok(()));
    tx.expect_set_unionid()
        .with(eq(uid("u-into")), eq(union("union-1")), eq(NOW))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| Ok(()));
    tx.expect_move_identities()
        .with(eq(uid("u-from")), eq(uid("u-into")), eq(NOW))
        .times(1)
        .returning(|_, _, _| Ok(1));
    tx.expect_mark_merged()
        .with(eq(uid("u-from")), eq(uid("u-into")), eq(NOW))
        .times(1)
        .returning(|_, _, _| Ok(()));
    tx.expect_append_event()
        .withf(|e| {
            e.kind == EventKind::UnionidLinked
                && e.user_id == uid("u-into")
                && e.detail == Some(support())
        })
        .times(1)
        .returning(|_| Ok(()));
    // The phone moves by the rule of a unionid merge.
    expect_phones(&mut tx, Some(NOW - 10), None);
    tx.expect_move_phone_number()
        .with(eq(uid("u-from")), eq(uid("u-into")), eq(NOW))
        .times(1)
        .returning(|_, _, _| Ok(()));
    expect_live_sessions(&mut tx, "u-from", 2);
    expect_detailed_event(
        &mut tx,
        EventKind::UsersMerged,
        "u-into",
        Some("u-from"),
        support().phone(PhoneMerge::Moved).sessions(2),
    );
    assert_eq!(
        accounts(tx)
            .merge(uid("u-into"), uid("u-from"), agent())
            .await,
        Ok(uid("u-into"))
    );
}

#[tokio::test]
async fn a_support_merge_keeps_the_survivors_unionid() {
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-into", Some("union-1"), None));
    expect_user(&mut tx, user("u-from", None, None));
    expect_identities(&mut tx, "u-from", &[(app(), oid("o1"))]);
    tx.expect_move_identities()
        .times(1)
        .returning(|_, _, _| Ok(1));
    tx.expect_mark_merged().times(1).returning(|_, _, _| Ok(()));
    expect_merge_holds(&mut tx, "u-from", "u-into");
    expect_phones(&mut tx, None, Some(NOW - 10));
    expect_live_sessions(&mut tx, "u-from", 0);
    expect_detailed_event(
        &mut tx,
        EventKind::UsersMerged,
        "u-into",
        Some("u-from"),
        support().phone(PhoneMerge::None).sessions(0),
    );
    accounts(tx)
        .merge(uid("u-into"), uid("u-from"), agent())
        .await
        .unwrap();
}

#[tokio::test]
async fn support_merges_that_break_a_rule_write_nothing() {
    let svc = accounts(MockStoreTx::new());
    assert_eq!(
        svc.merge(uid("u-a"), uid("u-a"), agent()).await,
        Err(DomainError::SameUser)
    );

    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-into", Some("union-1"), None));
    expect_user(&mut tx, user("u-from", Some("union-2"), None));
    expect_identities(&mut tx, "u-from", &[(app(), oid("o1"))]);
    assert_eq!(
        accounts(tx)
            .merge(uid("u-into"), uid("u-from"), agent())
            .await,
        Err(DomainError::UnionidConflict)
    );

    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-into", None, Some("u-o")));
    assert_eq!(
        accounts(tx)
            .merge(uid("u-into"), uid("u-from"), agent())
            .await,
        Err(DomainError::UserMerged(uid("u-o")))
    );

    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-into", None, None));
    no_such_user(&mut tx, "u-from");
    assert_eq!(
        accounts(tx)
            .merge(uid("u-into"), uid("u-from"), agent())
            .await,
        Err(DomainError::UserNotFound)
    );
}

#[tokio::test]
async fn a_merge_preview_says_what_the_merge_would_move_and_writes_nothing() {
    let mut tx = MockStoreTx::new();
    expect_merge_pair(&mut tx);
    expect_phones(&mut tx, Some(NOW - 10), None);
    expect_live_sessions(&mut tx, "u-from", 2);
    // No write is expected: one would fail the test.
    let plan = accounts(tx)
        .preview_merge(uid("u-into"), uid("u-from"))
        .await
        .expect("a plan");
    assert_eq!(plan.into.id, uid("u-into"));
    assert_eq!(plan.from.id, uid("u-from"));
    assert_eq!(plan.identities, vec![(other_app(), oid("o2"))]);
    assert_eq!(plan.sessions, 2);
    assert_eq!(plan.phone, PhoneMerge::Moved);
    assert_eq!(plan.unionid, Some(union("union-1")));
}

#[tokio::test]
async fn a_merge_preview_is_refused_as_the_merge_would_be() {
    let svc = accounts(MockStoreTx::new());
    assert_eq!(
        svc.preview_merge(uid("u-a"), uid("u-a")).await,
        Err(DomainError::SameUser)
    );
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-into", Some("union-1"), None));
    expect_user(&mut tx, user("u-from", Some("union-2"), None));
    expect_identities(&mut tx, "u-from", &[(app(), oid("o1"))]);
    assert_eq!(
        accounts(tx)
            .preview_merge(uid("u-into"), uid("u-from"))
            .await,
        Err(DomainError::UnionidConflict)
    );
}

// ---- split ----

/// `u-src` (holding union-1) with identities o1 (app) and o2 (other_app).
fn expect_split_source(tx: &mut MockStoreTx) {
    expect_user(tx, user("u-src", Some("union-1"), None));
    expect_identities(tx, "u-src", &[(app(), oid("o1")), (other_app(), oid("o2"))]);
    tx.expect_hold_user()
        .with(eq(uid("u-src")))
        .times(1)
        .returning(|_| Ok(()));
}

fn expect_vouchers(tx: &mut MockStoreTx, user: &str, n: u64) {
    tx.expect_vouchers()
        .with(eq(uid(user)), eq(union("union-1")))
        .times(1)
        .returning(move |_, _| Ok(n));
}

fn expect_moved(tx: &mut MockStoreTx, to: &str, sessions: u64) {
    let to = uid(to);
    let to_sessions = to.clone();
    tx.expect_split_sessions()
        .withf(move |from, t, moved, now| {
            *from == uid("u-src")
                && *t == to_sessions
                && moved == [(other_app(), oid("o2"))].as_slice()
                && *now == NOW
        })
        .times(1)
        .returning(move |_, _, _, _| Ok(sessions));
    tx.expect_move_identity()
        .with(eq(other_app()), eq(oid("o2")), eq(to), eq(NOW))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
}

#[tokio::test]
async fn a_split_onto_a_new_user_takes_the_sessions_unionid_and_phone_of_its_identities() {
    let mut tx = MockStoreTx::new();
    expect_split_source(&mut tx);
    tx.expect_insert_user()
        .withf(|u| u.id == uid("u-new") && u.unionid.is_none() && u.merged_into.is_none())
        .times(1)
        .returning(|_| Ok(()));
    expect_detailed_event(&mut tx, EventKind::UserCreated, "u-new", None, support());
    expect_moved(&mut tx, "u-new", 2);
    expect_identity_moved(&mut tx, "u-new");
    // o2 was the only identity vouching for union-1: it moves, released first.
    expect_vouchers(&mut tx, "u-new", 1);
    expect_vouchers(&mut tx, "u-src", 0);
    let mut order = mockall::Sequence::new();
    tx.expect_release_unionid()
        .with(eq(uid("u-src")), eq(NOW))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _| Ok(()));
    tx.expect_set_unionid()
        .with(eq(uid("u-new")), eq(union("union-1")), eq(NOW))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| Ok(()));
    expect_detailed_event(
        &mut tx,
        EventKind::UnionidReleased,
        "u-src",
        None,
        support(),
    );
    expect_detailed_event(&mut tx, EventKind::UnionidLinked, "u-new", None, support());
    // o2 verified the phone number: it moves too.
    tx.expect_phone_verified_at()
        .with(eq(uid("u-src")))
        .returning(|_| Ok(Some(NOW - 5)));
    tx.expect_phone_verified_by()
        .with(eq(uid("u-src")))
        .returning(|_| Ok(Some((other_app(), oid("o2")))));
    tx.expect_move_phone_number()
        .with(eq(uid("u-src")), eq(uid("u-new")), eq(NOW))
        .times(1)
        .returning(|_, _, _| Ok(()));
    expect_detailed_event(
        &mut tx,
        EventKind::UserSplit,
        "u-new",
        Some("u-src"),
        support()
            .identities(1)
            .sessions(2)
            .unionid(UnionidSplit::Moved)
            .phone(PhoneMerge::Moved),
    );
    let split = accounts(tx)
        .split(uid("u-src"), vec![(other_app(), oid("o2"))], None, agent())
        .await
        .unwrap();
    assert_eq!(
        split,
        Split {
            user: uid("u-new"),
            remaining: uid("u-src")
        }
    );
}

#[tokio::test]
async fn a_split_into_a_merged_user_restores_it_and_leaves_what_stays_vouched() {
    let mut tx = MockStoreTx::new();
    expect_split_source(&mut tx);
    expect_user(&mut tx, user("u-old", None, Some("u-src")));
    tx.expect_restore_user()
        .with(eq(uid("u-old")), eq(uid("u-src")), eq(NOW))
        .times(1)
        .returning(|_, _, _| Ok(()));
    expect_moved(&mut tx, "u-old", 0);
    expect_identity_moved(&mut tx, "u-old");
    // o1 vouches for union-1 as well as o2: it stays, and o2 vouches for nothing now.
    expect_vouchers(&mut tx, "u-old", 1);
    expect_vouchers(&mut tx, "u-src", 1);
    tx.expect_drop_vouches()
        .with(eq(uid("u-old")), eq(NOW))
        .times(1)
        .returning(|_, _| Ok(()));
    // The phone number was verified through o1, which stays.
    tx.expect_phone_verified_at()
        .with(eq(uid("u-src")))
        .returning(|_| Ok(Some(NOW - 5)));
    tx.expect_phone_verified_by()
        .with(eq(uid("u-src")))
        .returning(|_| Ok(Some((app(), oid("o1")))));
    expect_detailed_event(
        &mut tx,
        EventKind::UserSplit,
        "u-old",
        Some("u-src"),
        support()
            .identities(1)
            .sessions(0)
            .unionid(UnionidSplit::Stayed)
            .phone(PhoneMerge::Stayed),
    );
    let split = accounts(tx)
        .split(
            uid("u-src"),
            vec![(other_app(), oid("o2"))],
            Some(uid("u-old")),
            agent(),
        )
        .await
        .unwrap();
    assert_eq!(split.user, uid("u-old"));
}

#[tokio::test]
async fn splits_that_break_a_rule_write_nothing() {
    let o2 = || vec![(other_app(), oid("o2"))];
    // An identity the user does not have.
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-src", None, None));
    expect_identities(&mut tx, "u-src", &[(app(), oid("o1")), (app(), oid("o3"))]);
    assert_eq!(
        accounts(tx).split(uid("u-src"), o2(), None, agent()).await,
        Err(DomainError::IdentityNotFound)
    );
    // No identity would remain (listing one twice does not count twice).
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-src", None, None));
    expect_identities(&mut tx, "u-src", &[(other_app(), oid("o2"))]);
    let twice = [o2(), o2()].concat();
    assert_eq!(
        accounts(tx).split(uid("u-src"), twice, None, agent()).await,
        Err(DomainError::LastIdentity)
    );
    // `into` was merged elsewhere, is not merged, or does not exist.
    for into in [
        Some(user("u-old", None, Some("u-other"))),
        Some(user("u-old", None, None)),
        None,
    ] {
        let mut tx = MockStoreTx::new();
        expect_user(&mut tx, user("u-src", None, None));
        expect_identities(
            &mut tx,
            "u-src",
            &[(app(), oid("o1")), (other_app(), oid("o2"))],
        );
        tx.expect_hold_user().returning(|_| Ok(()));
        tx.expect_user()
            .with(eq(uid("u-old")))
            .returning(move |_| Ok(into.clone()));
        assert_eq!(
            accounts(tx)
                .split(uid("u-src"), o2(), Some(uid("u-old")), agent())
                .await,
            Err(DomainError::NotMergedHere)
        );
    }
    // A merged-away user is not split: its owner is.
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-src", None, Some("u-o")));
    assert_eq!(
        accounts(tx).split(uid("u-src"), o2(), None, agent()).await,
        Err(DomainError::UserMerged(uid("u-o")))
    );
}

#[test]
fn actor_names_are_short_and_printable() {
    assert!(ActorName::parse("cli:alice").is_ok());
    assert!(ActorName::parse("客服 小王").is_ok());
    for bad in [
        String::new(),
        "a".repeat(ActorName::MAX_CHARS + 1),
        "crm\nby: unionid".to_owned(),
        "crm\u{85}x".to_owned(),
        "crm\u{2028}x".to_owned(),
        "crm\tx".to_owned(),
        "crm\u{1b}[31m".to_owned(),
    ] {
        assert!(ActorName::parse(bad.clone()).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn a_split_preview_says_where_each_fact_goes_and_writes_nothing() {
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-src", Some("union-1"), None));
    expect_identities(
        &mut tx,
        "u-src",
        &[(app(), oid("o1")), (other_app(), oid("o2"))],
    );
    expect_user(&mut tx, user("u-old", None, Some("u-src")));
    tx.expect_vouching_identities()
        .with(eq(uid("u-src")), eq(union("union-1")))
        .times(1)
        .returning(|_, _| Ok(vec![(other_app(), oid("o2"))]));
    tx.expect_phone_verified_at()
        .with(eq(uid("u-src")))
        .returning(|_| Ok(Some(NOW - 10)));
    tx.expect_phone_verified_by()
        .with(eq(uid("u-src")))
        .returning(|_| Ok(Some((app(), oid("o1")))));
    // No write is expected: one would fail the test.
    let plan = accounts(tx)
        .preview_split(
            uid("u-src"),
            vec![(other_app(), oid("o2"))],
            Some(uid("u-old")),
        )
        .await
        .expect("a plan");
    assert_eq!(plan.identities, vec![(other_app(), oid("o2"))]);
    assert_eq!(plan.remaining, vec![(app(), oid("o1"))]);
    assert_eq!(plan.into, Some(uid("u-old")));
    // Every identity vouching for the unionid moves: so does the unionid; the phone number
    // stays with the identity that verified it.
    assert_eq!(plan.unionid, UnionidSplit::Moved);
    assert_eq!(plan.phone, PhoneMerge::Stayed);
}

#[tokio::test]
async fn a_split_preview_is_refused_as_the_split_would_be() {
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-src", Some("union-1"), None));
    expect_identities(
        &mut tx,
        "u-src",
        &[(app(), oid("o1")), (other_app(), oid("o2"))],
    );
    assert_eq!(
        accounts(tx)
            .preview_split(
                uid("u-src"),
                vec![(app(), oid("o1")), (other_app(), oid("o2"))],
                None
            )
            .await,
        Err(DomainError::LastIdentity)
    );
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-src", Some("union-1"), None));
    expect_identities(
        &mut tx,
        "u-src",
        &[(app(), oid("o1")), (other_app(), oid("o2"))],
    );
    expect_user(&mut tx, user("u-stranger", None, None));
    assert_eq!(
        accounts(tx)
            .preview_split(
                uid("u-src"),
                vec![(app(), oid("o1"))],
                Some(uid("u-stranger"))
            )
            .await,
        Err(DomainError::NotMergedHere)
    );
}

// ---- introspection ----

#[tokio::test]
async fn introspection_names_the_user_the_token_acts_as() {
    let mut tx = MockStoreTx::new();
    expect_session(&mut tx, Some(live_session("u-p", "o1")));
    expect_user(&mut tx, user("u-p", None, Some("u-o")));
    expect_user(&mut tx, user("u-o", Some("union-1"), None));
    let seen = accounts(tx)
        .introspect(token().expose_secret())
        .await
        .unwrap();
    assert_eq!(
        seen,
        Some(Introspection {
            sub: uid("u-o"),
            client_id: app(),
            iat: NOW - 10,
            exp: NOW + 10,
            unionid_linked: true,
        })
    );
}

#[tokio::test]
async fn introspection_of_dead_or_malformed_tokens_is_inactive() {
    let mut expired = live_session("u-p", "o1");
    expired.expires_at = NOW;
    let mut revoked = live_session("u-p", "o1");
    revoked.revoked = true;
    for session in [None, Some(expired), Some(revoked)] {
        let mut tx = MockStoreTx::new();
        expect_session(&mut tx, session);
        assert_eq!(
            accounts(tx).introspect(token().expose_secret()).await,
            Ok(None)
        );
    }
    // A malformed token is not even looked up.
    let svc = accounts(MockStoreTx::new());
    assert_eq!(svc.introspect("not a token").await, Ok(None));
}

#[tokio::test]
async fn introspection_of_a_signed_token_is_exact_about_its_session() {
    let signed = format!("signed.{}.u-p", token().hash().to_hex());
    let with_signer = |tx, valid| accounts(tx).with_access_tokens(Arc::new(FakeSigner { valid }));
    let mut tx = MockStoreTx::new();
    expect_session(&mut tx, Some(live_session("u-p", "o1")));
    expect_user(&mut tx, user("u-p", None, Some("u-o")));
    expect_user(&mut tx, user("u-o", Some("union-1"), None));
    assert_eq!(
        with_signer(tx, true).introspect(&signed).await,
        Ok(Some(Introspection {
            sub: uid("u-o"),
            client_id: app(),
            // The token's own `iat`; its `exp` (NOW + 900) is cut to the session's end.
            iat: NOW,
            exp: NOW + 10,
            unionid_linked: true,
        }))
    );
    // A revoked session: inactive, though the signature holds.
    let mut revoked = live_session("u-p", "o1");
    revoked.revoked = true;
    let mut tx = MockStoreTx::new();
    expect_session(&mut tx, Some(revoked));
    assert_eq!(with_signer(tx, true).introspect(&signed).await, Ok(None));
    // A signature that does not hold: inactive without a lookup.
    assert_eq!(
        with_signer(MockStoreTx::new(), false)
            .introspect(&signed)
            .await,
        Ok(None)
    );
}

#[tokio::test]
async fn store_failures_are_not_answered_as_inactive() {
    let mut tx = MockStoreTx::new();
    tx.expect_session()
        .returning(|_| Err(StoreError::Unavailable("down".into())));
    assert!(matches!(
        accounts(tx).introspect(token().expose_secret()).await,
        Err(DomainError::Store(StoreError::Unavailable(_)))
    ));
}
