//! `[tokens] format = "jwt"`: refresh tokens exchanged once, signing keys added once per
//! generation, sealed, and re-sealed with the data key.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretSlice};
use wxlink_crypto::Keyring;
use wxlink_domain::{IdentityStore, RefreshTokenRow, TokenHash, TxMode};
use wxlink_persistence::SigningKeyRecord;

use crate::support::*;

fn key(generation: i64, kid: &str) -> SigningKeyRecord {
    SigningKeyRecord {
        generation,
        kid: kid.to_owned(),
        algorithm: "ES256".to_owned(),
        private_key: SecretSlice::from(format!("private key of {kid}").into_bytes()),
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        created_at: 1_000,
        activates_at: 1_000 + generation,
    }
}

/// The refresh token `r` is stored for session `s`, `used` or not.
async fn assert_refresh_token(
    store: &wxlink_persistence::Store,
    r: TokenHash,
    s: TokenHash,
    used: bool,
) {
    let row = store
        .transact(TxMode::Read, move |tx| Ok(tx.refresh_token(&r)?))
        .await
        .unwrap();
    assert_eq!(row, Some(RefreshTokenRow { session: s, used }));
}

pub async fn a_refresh_token_is_exchanged_once_and_goes_with_its_session(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let (session_token, refresh) = (token(1), token(2));
    let (s, r) = (session_token.hash(), refresh.hash());
    store
        .transact(TxMode::Write, move |tx| {
            tx.insert_user(&user("u", None, 1))?;
            let new = session(&session_token, "u", &app(1), "o", "k");
            tx.insert_session(&new, &new.key)?;
            tx.insert_refresh_token(&r, &s, 1_000)?;
            Ok(())
        })
        .await
        .unwrap();
    assert_refresh_token(&store, r, s, false).await;

    // Many exchanges at once: exactly one marks it used.
    let store = Arc::new(store);
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let store = Arc::clone(&store);
        racers.spawn(async move {
            store
                .transact(
                    TxMode::Write,
                    move |tx| Ok(tx.use_refresh_token(&r, 1_001)?),
                )
                .await
                .unwrap()
        });
    }
    let won = racers
        .join_all()
        .await
        .into_iter()
        .filter(|won| *won)
        .count();
    assert_eq!(won, 1, "one exchange of one refresh token");
    assert_refresh_token(&store, r, s, true).await;

    // Purging the (revoked) session takes its refresh tokens with it.
    store
        .transact(TxMode::Write, move |tx| Ok(tx.revoke_session(&s, 1_002)?))
        .await
        .unwrap();
    store
        .purge_expired_sessions(1_002 + wxlink_persistence::SESSION_PURGE_GRACE_SECS + 1)
        .await
        .unwrap();
    let row = store
        .transact(TxMode::Read, move |tx| Ok(tx.refresh_token(&r)?))
        .await
        .unwrap();
    assert_eq!(row, None);
}

pub async fn one_signing_key_per_generation_sealed_and_resealed(backend: TestBackend) {
    let db = &backend.database();
    let store = Arc::new(db.store().await);
    assert!(store.signing_keys().await.unwrap().is_empty());
    // Two nodes rotating at once: one key of generation 1.
    let mut racers = tokio::task::JoinSet::new();
    for node in 0..4 {
        let store = Arc::clone(&store);
        racers.spawn(async move {
            store
                .add_signing_key(key(1, &format!("kid-of-node-{node}")))
                .await
                .unwrap()
        });
    }
    let added = racers.join_all().await.into_iter().filter(|a| *a).count();
    assert_eq!(added, 1);
    assert!(store.add_signing_key(key(2, "second")).await.unwrap());
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.generation).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        keys[1].private_key.expose_secret(),
        b"private key of second"
    );
    assert_eq!(keys[1].activates_at, 1_002);
    drop(store);

    // Sealed at rest: no private key in clear in the database file.
    if let Some(path) = db.sqlite_path() {
        let bytes = std::fs::read(path).unwrap();
        assert!(!bytes.windows(14).any(|w| w == b"private key of"));
    }

    // A data key rotation re-seals them; the old key is then unused and can go.
    let rotated = db
        .store_with(Keyring::new(key_b()).with_old_key(key_a()))
        .await;
    assert_eq!(rotated.reseal_signing_keys(1).await.unwrap(), 2);
    assert_eq!(rotated.reseal_signing_keys(1).await.unwrap(), 0);
    drop(rotated);
    let only_b = db.store_with(Keyring::new(key_b())).await;
    let keys = only_b.signing_keys().await.unwrap();
    assert_eq!(
        keys[0].private_key.expose_secret().len(),
        "private key of kid-of-node-0".len()
    );
    assert_eq!(
        keys[1].private_key.expose_secret(),
        b"private key of second"
    );
}
