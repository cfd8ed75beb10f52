//! The benchmark's bulk seeding (`wxlink_persistence::testing::seed_users`) leaves users the
//! store finds as it would have written them.

use wxlink_persistence::testing::{SeedUser, read_rows, seed_users};

use crate::support::*;

pub async fn seeded_users_are_found_as_the_store_writes_them(backend: TestBackend) {
    let db = &backend.database();
    let seeded = |range: std::ops::Range<u32>| {
        range.map(|i| SeedUser {
            id: format!("seeded-{i:05}"),
            openid: format!("open-{i:05}"),
            unionid: (i % 2 == 0).then(|| format!("union-{i:05}")),
        })
    };
    let target = db.target();
    // More than one batch of rows.
    seed_users(&target, app(1).as_str(), seeded(0..2_500), 7).unwrap();
    let rows = read_rows(&target).unwrap();
    assert_eq!((rows.users.len(), rows.identities.len()), (2_500, 2_500));

    let store = db.store().await;
    let record = store
        .user_by_unionid(&unionid("union-00042"))
        .await
        .unwrap()
        .expect("a seeded unionid owner");
    assert_eq!(record.user.id, user_id("seeded-00042"));
    assert_eq!(record.identities.len(), 1);

    // A user seeded twice breaks the primary key, and nothing of that load is written.
    let again = seed_users(&target, app(1).as_str(), seeded(2_499..2_600), 7);
    assert!(again.is_err(), "{again:?}");
    assert_eq!(read_rows(&target).unwrap().users.len(), 2_500);
}
