//! The support console's operators: sessions that end when idle, too old or disabled, and
//! failed sign-ins counted in the database so that two nodes together cannot overshoot.

use wxlink_domain::UnixTime;
use wxlink_persistence::{NewOperator, SignInFailures};

use crate::support::{TestBackend, TestDbExt as _};

const T0: UnixTime = 1_700_000_000;

fn operator(name: &str) -> NewOperator {
    NewOperator {
        name: name.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        scopes: vec!["users:read".to_owned()],
        totp_secret: Some(vec![7u8; 20].into()),
    }
}

pub async fn operator_sessions_end_when_idle_too_old_or_disabled(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    assert!(store.add_operator(operator("ann"), T0).await.unwrap());
    assert!(
        !store.add_operator(operator("ann"), T0).await.unwrap(),
        "taken"
    );
    let stored = store.operator("ann").await.unwrap().unwrap();
    assert!(stored.password_expired && !stored.disabled);
    assert_eq!(
        stored.totp_secret.as_deref().map(Vec::as_slice),
        Some([7u8; 20].as_slice())
    );

    let live = [1u8; 32];
    store
        .create_operator_session(live, "ann", T0)
        .await
        .unwrap();
    // Used within the idle timeout: it lives on, and its idle time starts again.
    let seen = store
        .operator_session(live, T0 + 10, T0 + 5 - 10, T0 - 100)
        .await
        .unwrap();
    assert_eq!(seen.map(|o| o.name), Some("ann".to_owned()));
    assert!(
        store
            .operator_session(live, T0 + 20, T0 + 5, T0 - 100)
            .await
            .unwrap()
            .is_some()
    );
    // Idle since before the cut: gone, for good.
    assert!(
        store
            .operator_session(live, T0 + 40, T0 + 30, T0 - 100)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .operator_session(live, T0 + 41, T0, T0 - 100)
            .await
            .unwrap()
            .is_none()
    );

    let old = [2u8; 32];
    store.create_operator_session(old, "ann", T0).await.unwrap();
    assert!(
        store
            .operator_session(old, T0 + 1, T0, T0 + 1)
            .await
            .unwrap()
            .is_none(),
        "too old"
    );

    let other = [3u8; 32];
    store
        .create_operator_session(other, "ann", T0)
        .await
        .unwrap();
    assert!(store.disable_operator("ann", T0 + 1).await.unwrap());
    assert!(
        store
            .operator_session(other, T0 + 2, T0, T0)
            .await
            .unwrap()
            .is_none(),
        "disabled"
    );
    assert!(!store.disable_operator("nobody", T0).await.unwrap());
    // A reset enables the operator again with a one-time password.
    assert!(
        store
            .set_operator_password("ann", "new".to_owned(), true, T0 + 3)
            .await
            .unwrap()
    );
    let reset = store.operator("ann").await.unwrap().unwrap();
    assert!(!reset.disabled && reset.password_expired && reset.password_hash == "new");

    // Housekeeping deletes sessions idle for a day, whatever the console's timeout says.
    let stale = [4u8; 32];
    let fresh = [5u8; 32];
    let day = wxlink_persistence::SESSION_PURGE_GRACE_SECS;
    store
        .create_operator_session(stale, "ann", T0)
        .await
        .unwrap();
    store
        .create_operator_session(fresh, "ann", T0 + day)
        .await
        .unwrap();
    store.purge_expired_sessions(T0 + day + 10).await.unwrap();
    let now = T0 + day + 11;
    assert!(
        store
            .operator_session(stale, now, 0, 0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .operator_session(fresh, now, 0, 0)
            .await
            .unwrap()
            .is_some()
    );
}

/// Refuse once a key has failed `limit` times.
fn at_most(limit: i64) -> impl Fn(&[SignInFailures]) -> Result<(), ()> + Send + Sync + 'static {
    move |counts| {
        if counts.iter().any(|c| c.failures >= limit) {
            Err(())
        } else {
            Ok(())
        }
    }
}

pub async fn failed_sign_ins_are_counted_across_nodes(backend: TestBackend) {
    let db = &backend.database();
    const LIMIT: i64 = 3;
    const ATTEMPTS: usize = 12;
    // Two nodes on one database, attempting at once.
    let nodes = [db.store().await, db.store().await];
    let keys = || vec!["operator:eve".to_owned(), "address:192.0.2.1".to_owned()];
    let mut attempts = tokio::task::JoinSet::new();
    for n in 0..ATTEMPTS {
        let node = nodes[n % 2].clone();
        let keys = keys();
        attempts.spawn(async move { node.reserve_sign_in(keys, T0, at_most(LIMIT)).await });
    }
    let mut allowed = 0;
    while let Some(outcome) = attempts.join_next().await {
        if outcome.unwrap().unwrap().is_ok() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, LIMIT, "exactly the limit went through");
    // A success forgives the failures.
    nodes[0].sign_in_succeeded(keys()).await.unwrap();
    assert!(
        nodes[1]
            .reserve_sign_in(keys(), T0, at_most(LIMIT))
            .await
            .unwrap()
            .is_ok()
    );
}
