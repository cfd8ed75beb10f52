//! Every life-cycle rule and refusal against a mock transaction; a write the mock does not
//! expect fails the test, so "a refused request writes nothing" is checked by expecting none.

use std::sync::Mutex;

use mockall::predicate::eq;

use super::*;
use crate::error::StoreError;
use crate::model::{EventKind, PhoneMerge};
use crate::ports::{MockClock, MockStoreTx};
use crate::service::tests::{
    FakeSigner, MockStore, NOW, app, expect_merge_holds, expect_merge_holds_in, expect_session,
    expect_user, live_session, oid, other_app, token, uid, union, user,
};

fn accounts(tx: MockStoreTx) -> Accounts<MockStore, MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(NOW);
    Accounts::new(MockStore(Mutex::new(tx)), clock)
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
                && e.detail == Some(detail)
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

fn no_such_user(tx: &mut MockStoreTx, id: &str) {
    tx.expect_user().with(eq(uid(id))).returning(|_| Ok(None));
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
    expect_detailed_event(
        &mut tx,
        EventKind::UserDeleted,
        "u-o",
        None,
        EventDetail::by(Actor::User).sessions(3).identities(2),
    );
    let done = accounts(tx).cancel(&token()).await.unwrap();
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
        let err = accounts(tx).cancel(&token()).await.unwrap_err();
        assert_eq!(err, DomainError::InvalidToken);
    }
}

#[tokio::test]
async fn support_deletes_only_existing_unmerged_users() {
    let mut tx = MockStoreTx::new();
    no_such_user(&mut tx, "u-x");
    let err = accounts(tx).delete_user(uid("u-x")).await.unwrap_err();
    assert_eq!(err, DomainError::UserNotFound);

    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-p", None, Some("u-o")));
    let err = accounts(tx).delete_user(uid("u-p")).await.unwrap_err();
    assert_eq!(err, DomainError::UserMerged(uid("u-o")));

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
        EventDetail::by(Actor::Support).sessions(0).identities(1),
    );
    accounts(tx).delete_user(uid("u-o")).await.unwrap();
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
        EventDetail::by(Actor::Support).sessions(2),
    );
    assert_eq!(accounts(tx).revoke_sessions(uid("u-o")).await, Ok(2));
}

#[tokio::test]
async fn revoking_sessions_of_unknown_or_merged_users_writes_nothing() {
    let mut tx = MockStoreTx::new();
    no_such_user(&mut tx, "u-x");
    assert_eq!(
        accounts(tx).revoke_sessions(uid("u-x")).await,
        Err(DomainError::UserNotFound)
    );
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-p", None, Some("u-o")));
    assert_eq!(
        accounts(tx).revoke_sessions(uid("u-p")).await,
        Err(DomainError::UserMerged(uid("u-o")))
    );
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
                && e.detail == Some(EventDetail::by(Actor::Support).sessions(1))
        })
        .times(1)
        .returning(|_| Ok(()));
    accounts(tx)
        .unlink_identity(uid("u-o"), other_app(), oid("o2"))
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
        svc.unlink_identity(uid("u-o"), app(), oid("o9")).await,
        Err(DomainError::IdentityNotFound)
    );
    assert_eq!(
        svc.unlink_identity(uid("u-o"), app(), oid("o1")).await,
        Err(DomainError::LastIdentity)
    );
    let mut tx = MockStoreTx::new();
    no_such_user(&mut tx, "u-x");
    assert_eq!(
        accounts(tx)
            .unlink_identity(uid("u-x"), app(), oid("o1"))
            .await,
        Err(DomainError::UserNotFound)
    );
}

// ---- merge ----

#[tokio::test]
async fn a_support_merge_moves_identities_and_takes_the_unionid() {
    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-into", None, None));
    expect_user(&mut tx, user("u-from", Some("union-1"), None));
    expect_identities(&mut tx, "u-from", &[(other_app(), oid("o2"))]);
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
        .withf(|e| e.kind == EventKind::UnionidLinked && e.user_id == uid("u-into"))
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
        EventDetail::by(Actor::Support)
            .phone(PhoneMerge::Moved)
            .sessions(2),
    );
    assert_eq!(
        accounts(tx).merge(uid("u-into"), uid("u-from")).await,
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
        EventDetail::by(Actor::Support)
            .phone(PhoneMerge::None)
            .sessions(0),
    );
    accounts(tx)
        .merge(uid("u-into"), uid("u-from"))
        .await
        .unwrap();
}

#[tokio::test]
async fn support_merges_that_break_a_rule_write_nothing() {
    let svc = accounts(MockStoreTx::new());
    assert_eq!(
        svc.merge(uid("u-a"), uid("u-a")).await,
        Err(DomainError::SameUser)
    );

    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-into", Some("union-1"), None));
    expect_user(&mut tx, user("u-from", Some("union-2"), None));
    expect_identities(&mut tx, "u-from", &[(app(), oid("o1"))]);
    assert_eq!(
        accounts(tx).merge(uid("u-into"), uid("u-from")).await,
        Err(DomainError::UnionidConflict)
    );

    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-into", None, Some("u-o")));
    assert_eq!(
        accounts(tx).merge(uid("u-into"), uid("u-from")).await,
        Err(DomainError::UserMerged(uid("u-o")))
    );

    let mut tx = MockStoreTx::new();
    expect_user(&mut tx, user("u-into", None, None));
    no_such_user(&mut tx, "u-from");
    assert_eq!(
        accounts(tx).merge(uid("u-into"), uid("u-from")).await,
        Err(DomainError::UserNotFound)
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
    let with_signer =
        |tx, valid| accounts(tx).with_access_tokens(std::sync::Arc::new(FakeSigner { valid }));
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
