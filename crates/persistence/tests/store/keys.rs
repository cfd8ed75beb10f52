//! The cluster's data keys: checked at start, recorded by id and fingerprint, retired after a
//! re-seal.

use secrecy::ExposeSecret as _;
use wxlink_crypto::{DataKey, Keyring};
use wxlink_domain::{IdentityStore as _, PhoneNumber, TxMode};
use wxlink_persistence::{PersistenceError, Store};

use crate::support::*;

const NOW: i64 = 1_700_000_000;

async fn login_sealed_under(store: &Store, n: u32) {
    store
        .transact(TxMode::Write, move |tx| {
            if tx.user(&user_id("u"))?.is_none() {
                tx.insert_user(&user("u", None, 1))?;
            }
            let s = session(&token(n), "u", &app(1), "o", "session-key");
            Ok(tx.insert_session(&s, &s.key)?)
        })
        .await
        .unwrap();
}

/// The problems a refused check names; panics when the check passed.
async fn refused(store: &Store) -> String {
    match store.check_keyring(NOW).await {
        Err(PersistenceError::Keyring(problems)) => problems,
        other => panic!("expected the keyring to be refused, got {other:?}"),
    }
}

fn id(key: &DataKey) -> String {
    key.id().to_string()
}

pub async fn keyring_check_refuses_what_cannot_open_the_database_and_follows_a_rotation(
    backend: TestBackend,
) {
    let db = &backend.database();
    let a = db.store_with(keyring_a()).await;
    a.check_keyring(NOW).await.unwrap();
    login_sealed_under(&a, 1).await;

    // Another node with its own key: refused, naming the cluster's key, never a key.
    let own_key = db.store_with(Keyring::new(key_b())).await;
    let problems = refused(&own_key).await;
    assert!(problems.contains(&id(&key_a())), "{problems}");
    assert!(problems.contains(&key_a().fingerprint()), "{problems}");
    assert!(!problems.contains(key_b().to_base64().expose_secret()));

    // Rotation step 1: the new key as a previous key changes nothing.
    let a_then_b = db
        .store_with(Keyring::new(key_a()).with_old_key(key_b()))
        .await;
    a_then_b.check_keyring(NOW).await.unwrap();
    // Step 2: a node makes B current; from now on a node without B is refused.
    let b_then_a = db
        .store_with(Keyring::new(key_b()).with_old_key(key_a()))
        .await;
    b_then_a.check_keyring(NOW).await.unwrap();
    login_sealed_under(&b_then_a, 2).await;
    let problems = refused(&a).await;
    assert!(
        problems.contains("current data key") && problems.contains(&id(&key_b())),
        "{problems}"
    );
    // Another node switched to B starts too.
    db.store_with(Keyring::new(key_b()).with_old_key(key_a()))
        .await
        .check_keyring(NOW)
        .await
        .unwrap();

    // Step 3: re-seal; A holds nothing any more and is retired, so B alone starts.
    assert!(refused(&own_key).await.contains(&id(&key_a())));
    assert_eq!(b_then_a.reseal_session_keys(10).await.unwrap(), 1);
    assert_eq!(
        b_then_a.retire_unused_data_keys().await.unwrap(),
        [id(&key_a())]
    );
    own_key.check_keyring(NOW).await.unwrap();
    assert!(refused(&a).await.contains(&id(&key_b())));
}

pub async fn a_node_behind_the_rotation_or_on_a_retired_key_refuses_to_start(backend: TestBackend) {
    let db = &backend.database();
    let a_then_b = db
        .store_with(Keyring::new(key_a()).with_old_key(key_b()))
        .await;
    a_then_b.check_keyring(NOW).await.unwrap();
    login_sealed_under(&a_then_b, 1).await;
    // The first node switched to B makes it the cluster's current key.
    let b_then_a = db
        .store_with(Keyring::new(key_b()).with_old_key(key_a()))
        .await;
    b_then_a.check_keyring(NOW).await.unwrap();

    // A straggler that was not switched would keep sealing under A: refused, naming the key
    // to configure and the procedure.
    let problems = refused(&a_then_b).await;
    assert!(
        problems.contains("older than the cluster's current data key")
            && problems.contains(&id(&key_b()))
            && problems.contains("WXLINK__SECURITY__DATA_KEY")
            && problems.contains("rotating the key"),
        "{problems}"
    );
    // Its refusal did not make A current again: a node with B current still starts.
    b_then_a.check_keyring(NOW).await.unwrap();

    b_then_a.reseal_session_keys(10).await.unwrap();
    assert_eq!(
        b_then_a.retire_unused_data_keys().await.unwrap(),
        [id(&key_a())]
    );
    // A retired key as current is refused, and leaves B the cluster's current key, so a node
    // with only B still starts.
    let problems = refused(&a_then_b).await;
    assert!(
        problems.contains("is retired") && problems.contains(&id(&key_b())),
        "{problems}"
    );
    db.store_with(Keyring::new(key_b()))
        .await
        .check_keyring(NOW)
        .await
        .unwrap();
}

pub async fn keyring_check_derives_the_keys_of_an_older_database(backend: TestBackend) {
    let db = &backend.database();
    // Values sealed before the check existed: only their headers tell the key.
    let a = db.store_with(keyring_a()).await;
    login_sealed_under(&a, 1).await;
    let b = db.store_with(Keyring::new(key_b())).await;
    let problems = refused(&b).await;
    assert!(
        problems.contains(&id(&key_a())) && problems.contains("not recorded"),
        "{problems}"
    );
    a.check_keyring(NOW).await.unwrap();
    assert!(refused(&b).await.contains(&key_a().fingerprint()));

    // The same key id recorded with another fingerprint is another key: a mix-up.
    db.raw_execute("UPDATE data_keys SET fingerprint = '0000000000000000'")
        .unwrap();
    let problems = refused(&a).await;
    assert!(
        problems.contains("a different key with the same id")
            && problems.contains(&key_a().fingerprint()),
        "{problems}"
    );
}

pub async fn nodes_starting_at_once_with_different_keys_cannot_both_start(backend: TestBackend) {
    let db = &backend.database();
    let a = db.store_with(keyring_a()).await;
    let b = db.store_with(Keyring::new(key_b())).await;
    let (checked_a, checked_b) = tokio::join!(a.check_keyring(NOW), b.check_keyring(NOW));
    assert!(
        checked_a.is_ok() != checked_b.is_ok(),
        "exactly one of two different keys is the cluster's: {checked_a:?} {checked_b:?}"
    );
}

pub async fn a_lookup_answers_without_a_phone_number_it_cannot_unseal(backend: TestBackend) {
    let db = &backend.database();
    let a = db.store_with(keyring_a()).await;
    let phone = PhoneNumber {
        phone_number: "13800138000".into(),
        pure_phone_number: "13800138000".into(),
        country_code: "86".into(),
    };
    let stored = phone.clone();
    a.transact(TxMode::Write, move |tx| {
        tx.insert_user(&user("u", None, 1))?;
        Ok(tx.set_phone_number(&user_id("u"), &stored, &app(1), &openid("o1"), 2)?)
    })
    .await
    .unwrap();
    let found = a.user_by_id(&user_id("u")).await.unwrap().unwrap();
    assert_eq!(found.phone_number, Some(phone));

    // A node without the key still finds the user; only the phone number is left out.
    let b = db.store_with(Keyring::new(key_b())).await;
    let found = b.user_by_id(&user_id("u")).await.unwrap().unwrap();
    assert_eq!(found.user.id, user_id("u"));
    assert_eq!(found.phone_number, None);
}

/// An operator's command checks the keys without recording anything: with a key the cluster
/// never had as current it is refused and the cluster's current key stays; with the current
/// key it passes; a serving node's check afterwards sees nothing changed.
pub async fn an_operators_check_records_nothing(backend: TestBackend) {
    let db = &backend.database();
    let a = db.store_with(keyring_a()).await;
    a.check_keyring(NOW).await.unwrap();
    login_sealed_under(&a, 1).await;
    a.verify_keyring().await.unwrap();

    // A command run with B current (A still in its ring) would make B the cluster's current
    // key if it recorded; it is refused instead.
    let b_then_a = db
        .store_with(Keyring::new(key_b()).with_old_key(key_a()))
        .await;
    match b_then_a.verify_keyring().await {
        Err(PersistenceError::Keyring(problems)) => {
            assert!(problems.contains(&id(&key_a())), "{problems}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Nothing was recorded: a node with only A still starts (it would be behind the
    // rotation if B had become current).
    let only_a = db.store_with(keyring_a()).await;
    only_a.check_keyring(NOW).await.unwrap();
    only_a.verify_keyring().await.unwrap();
}
