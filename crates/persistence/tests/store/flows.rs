//! The domain's use cases end to end over the real store, with small fakes for WeChat, the
//! user-data opener, the clock and the id source.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wxlink_crypto::Keyring;
use wxlink_domain::{
    AppId, Clock, DomainError, EncryptedUserData, EventKind, ExpectedWatermark, IdSource,
    IdentityStore, JsCode, OpenId, OpenedUserData, PhoneNumber, Policy, Service, SessionKey,
    SessionToken, TxMode, UnionId, UnixTime, UserDataError, UserDataOpener, UserId, UserInfoLinked,
    UserInfoSubmission, WeChatError, WeChatSession, WeChatSessions,
};
use wxlink_persistence::Store;

use crate::support::*;

const NOW: UnixTime = 1_800_000_000;

/// WeChat that knows the codes a test gave it; each works once.
#[derive(Clone, Default)]
struct FakeWeChat {
    codes: Arc<Mutex<HashMap<(String, String), WeChatSession>>>,
}

impl FakeWeChat {
    fn will_answer(
        &self,
        appid: &AppId,
        code: &str,
        openid_: &str,
        key: &str,
        union: Option<&str>,
    ) {
        self.codes.lock().unwrap().insert(
            (appid.to_string(), code.to_owned()),
            WeChatSession {
                openid: openid(openid_),
                session_key: Some(SessionKey::new(key)),
                unionid: union.map(unionid),
            },
        );
    }
}

impl WeChatSessions for FakeWeChat {
    fn code2session(
        &self,
        appid: &AppId,
        code: &JsCode,
    ) -> impl Future<Output = Result<WeChatSession, WeChatError>> + Send {
        let answer = self
            .codes
            .lock()
            .unwrap()
            .remove(&(appid.to_string(), code.to_string()))
            .ok_or(WeChatError::InvalidCode);
        std::future::ready(answer)
    }

    fn session_key_valid(
        &self,
        _: &AppId,
        _: &OpenId,
        _: &SessionKey,
    ) -> impl Future<Output = Result<bool, DomainError>> + Send {
        std::future::ready(Ok(true))
    }

    fn phone_number(
        &self,
        _: &AppId,
        _: &OpenId,
        code: &JsCode,
    ) -> impl Future<Output = Result<PhoneNumber, DomainError>> + Send {
        // The code is the number, so tests can choose it.
        std::future::ready(Ok(PhoneNumber {
            phone_number: code.to_string(),
            pure_phone_number: code.to_string(),
            country_code: "86".into(),
        }))
    }
}

/// "Encrypted" data is `appid|openid|unionid|key`; it opens only with that key.
struct FakeOpener;

impl UserDataOpener for FakeOpener {
    fn open(
        &self,
        key: &SessionKey,
        data: &EncryptedUserData,
        expected: &ExpectedWatermark,
    ) -> Result<OpenedUserData, UserDataError> {
        let text = String::from_utf8_lossy(&data.ciphertext);
        let parts: Vec<&str> = text.split('|').collect();
        let [appid, openid_, union, expected_key] = parts[..] else {
            return Err(UserDataError::DecryptFailed);
        };
        if key.expose_secret() != expected_key {
            return Err(UserDataError::DecryptFailed);
        }
        if appid != expected.appid.as_str() {
            return Err(UserDataError::WatermarkMismatch);
        }
        Ok(OpenedUserData {
            openid: openid(openid_),
            unionid: (!union.is_empty()).then(|| unionid(union)),
        })
    }
}

#[derive(Debug)]
struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        NOW
    }
}

#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl IdSource for Counter {
    fn new_token(&self) -> SessionToken {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        SessionToken::new(format!("flow-token-{n:0>24}"))
    }

    fn new_user_id(&self) -> UserId {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        user_id(&format!("user-{n}"))
    }
}

/// A [`Counter`] that counts the user ids it mints.
#[derive(Debug, Default)]
struct CountedUserIds {
    ids: Counter,
    user_ids: AtomicU64,
}

impl IdSource for CountedUserIds {
    fn new_token(&self) -> SessionToken {
        self.ids.new_token()
    }

    fn new_user_id(&self) -> UserId {
        self.user_ids.fetch_add(1, Ordering::SeqCst);
        self.ids.new_user_id()
    }
}

type TestService = Service<Store, FakeWeChat, FakeOpener>;

fn service(store: &Store, wechat: &FakeWeChat) -> TestService {
    Service::new(
        store.clone(),
        wechat.clone(),
        FakeOpener,
        Arc::new(FixedClock),
        Arc::new(Counter::default()),
        Policy::default(),
    )
}

fn code(text: &str) -> JsCode {
    JsCode::parse(text.to_owned()).unwrap()
}

fn data(appid: &AppId, openid_: &str, union: &str, key: &str) -> EncryptedUserData {
    EncryptedUserData {
        ciphertext: format!("{appid}|{openid_}|{union}|{key}").into_bytes(),
        iv: [0; 16],
        signed_raw_data: None,
    }
}

async fn stored_key(store: &Store, token: &SessionToken) -> SessionKey {
    let h = token.hash();
    store
        .transact(TxMode::Read, move |tx| Ok(tx.session_key(&h)?))
        .await
        .unwrap()
        .expect("a mini program session has a key")
}

pub async fn service_logs_in_links_and_merges(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let wechat = FakeWeChat::default();
    let service = service(&store, &wechat);
    let (a, b) = (app(1), app(2));

    // Rule 2: no unionid, a provisional user.
    wechat.will_answer(&a, "code-a1", "open-a", "key-a1", None);
    let provisional = service.login(a.clone(), code("code-a1")).await.unwrap();
    assert!(!provisional.unionid_linked);
    let me = service.current_user(&provisional.token).await.unwrap();
    assert_eq!(me.user_id, provisional.user_id);
    assert_eq!(me.identities, vec![(a.clone(), openid("open-a"))]);

    // Rule 1: a unionid nobody owns, a new owner.
    wechat.will_answer(&b, "code-b1", "open-b", "key-b1", Some("union-1"));
    let owner = service.login(b.clone(), code("code-b1")).await.unwrap();
    assert!(owner.unionid_linked);
    assert_ne!(owner.user_id, provisional.user_id);

    // Rule 3: the provisional user learns the owner's unionid and is merged into it.
    let submission = UserInfoSubmission {
        data: data(&a, "open-a", "union-1", "key-a1"),
        code: None,
    };
    let linked = service
        .submit_user_info(&provisional.token, submission)
        .await
        .unwrap();
    assert_eq!(
        linked,
        UserInfoLinked {
            user_id: owner.user_id.clone(),
            unionid_linked: true,
            merged: true,
        }
    );
    let me = service.current_user(&provisional.token).await.unwrap();
    assert_eq!(me.user_id, owner.user_id, "the old token acts as the owner");
    assert_eq!(
        me.identities,
        vec![(a.clone(), openid("open-a")), (b.clone(), openid("open-b"))]
    );
    let merged = store
        .user_by_id(&provisional.user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(merged.user.merged_into, Some(owner.user_id.clone()));

    // Rule 5: every creation, link and merge is in the feed.
    let feed: Vec<_> = store
        .events_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| (e.kind, e.user_id, e.other_user_id))
        .collect();
    assert_eq!(
        feed,
        vec![
            (EventKind::UserCreated, provisional.user_id.clone(), None),
            (EventKind::IdentityLinked, provisional.user_id.clone(), None),
            (EventKind::UserCreated, owner.user_id.clone(), None),
            (EventKind::IdentityLinked, owner.user_id.clone(), None),
            (
                EventKind::UsersMerged,
                owner.user_id.clone(),
                Some(provisional.user_id.clone())
            ),
        ]
    );

    // Logout ends the token.
    service.logout(&provisional.token).await.unwrap();
    assert_eq!(
        service.current_user(&provisional.token).await,
        Err(DomainError::InvalidToken)
    );
    assert_eq!(
        service.logout(&provisional.token).await,
        Err(DomainError::InvalidToken)
    );

    // A later login in app A, now with the unionid, lands on the owner.
    wechat.will_answer(&a, "code-a2", "open-a", "key-a2", Some("union-1"));
    let again = service.login(a.clone(), code("code-a2")).await.unwrap();
    assert_eq!(again.user_id, owner.user_id);
    assert!(again.unionid_linked);

    // A used code is refused and writes nothing.
    let before = store.events_after(0, 100).await.unwrap().len();
    assert_eq!(
        service.login(a, code("code-a2")).await.map(|l| l.user_id),
        Err(DomainError::WeChat(WeChatError::InvalidCode))
    );
    assert_eq!(store.events_after(0, 100).await.unwrap().len(), before);
}

pub async fn service_refreshes_the_session_key(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let wechat = FakeWeChat::default();
    let service = service(&store, &wechat);
    let a = app(1);

    wechat.will_answer(&a, "c1", "open-x", "key-old", None);
    let login = service.login(a.clone(), code("c1")).await.unwrap();
    assert_eq!(
        stored_key(&store, &login.token).await,
        SessionKey::new("key-old")
    );

    // Stale key without a code: refused, nothing changes.
    let stale = service
        .submit_user_info(
            &login.token,
            UserInfoSubmission {
                data: data(&a, "open-x", "union-9", "key-new"),
                code: None,
            },
        )
        .await;
    assert!(matches!(stale, Err(DomainError::UserData(_))), "{stale:?}");

    // A refreshing code of another WeChat user: refused, the key stays.
    wechat.will_answer(&a, "c-other", "open-y", "key-y", None);
    let mismatch = service
        .submit_user_info(
            &login.token,
            UserInfoSubmission {
                data: data(&a, "open-y", "", "key-y"),
                code: Some(code("c-other")),
            },
        )
        .await;
    assert_eq!(mismatch, Err(DomainError::IdentityMismatch));
    assert_eq!(
        stored_key(&store, &login.token).await,
        SessionKey::new("key-old")
    );

    // With a fresh code: the new key decrypts, the unionid (owned by nobody) is linked to the
    // same user, and the stored key is replaced.
    wechat.will_answer(&a, "c2", "open-x", "key-new", None);
    let linked = service
        .submit_user_info(
            &login.token,
            UserInfoSubmission {
                data: data(&a, "open-x", "union-9", "key-new"),
                code: Some(code("c2")),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        linked,
        UserInfoLinked {
            user_id: login.user_id.clone(),
            unionid_linked: true,
            merged: false,
        }
    );
    assert_eq!(
        stored_key(&store, &login.token).await,
        SessionKey::new("key-new")
    );
    let union: UnionId = unionid("union-9");
    let record = store.user_by_unionid(&union).await.unwrap().unwrap();
    assert_eq!(record.user.id, login.user_id);
    let kinds: Vec<_> = store
        .events_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::UserCreated,
            EventKind::IdentityLinked,
            EventKind::UnionidLinked
        ]
    );
}

pub async fn phone_numbers_are_stored_sealed_and_rotate(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let wechat = FakeWeChat::default();
    let service = service(&store, &wechat);
    wechat.will_answer(&app(1), "code-p", "open-p", "key-p", Some("union-p"));
    let login = service.login(app(1), code("code-p")).await.unwrap();

    let phone = service
        .attach_phone_number(&login.token, code("13800138000"))
        .await
        .unwrap();
    assert_eq!(phone.pure_phone_number, "13800138000");
    let record = store.user_by_id(&login.user_id).await.unwrap().unwrap();
    assert_eq!(record.phone_number, Some(phone.clone()));

    // Rotation: the number is re-sealed under the new key and still reads back.
    let rotated = db
        .store_with(Keyring::new(key_b()).with_old_key(key_a()))
        .await;
    assert_eq!(rotated.reseal_phone_numbers(10).await.unwrap(), 1);
    assert_eq!(rotated.reseal_phone_numbers(10).await.unwrap(), 0);
    let only_b = db.store_with(Keyring::new(key_b())).await;
    let record = only_b.user_by_id(&login.user_id).await.unwrap().unwrap();
    assert_eq!(record.phone_number, Some(phone));
}

/// Support finds a user by phone number through the keyed hash beside the sealed number,
/// under each key of the ring; a rotation rewrites the hashes under the new key.
pub async fn phone_numbers_are_found_by_their_keyed_hash(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let wechat = FakeWeChat::default();
    let service = service(&store, &wechat);
    wechat.will_answer(&app(1), "code-h", "open-h", "key-h", None);
    let login = service.login(app(1), code("code-h")).await.unwrap();
    service
        .attach_phone_number(&login.token, code("13800138000"))
        .await
        .unwrap();
    let found = |records: Vec<wxlink_persistence::UserRecord>| {
        records.into_iter().map(|r| r.user.id).collect::<Vec<_>>()
    };
    assert_eq!(
        found(store.users_by_phone("13800138000").await.unwrap()),
        vec![login.user_id.clone()]
    );
    assert!(
        store
            .users_by_phone("13800138001")
            .await
            .unwrap()
            .is_empty()
    );

    let rotated = db
        .store_with(Keyring::new(key_b()).with_old_key(key_a()))
        .await;
    // Under the old key of the ring until the hashes are rewritten.
    assert_eq!(
        found(rotated.users_by_phone("13800138000").await.unwrap()).len(),
        1
    );
    let only_b = db.store_with(Keyring::new(key_b())).await;
    assert!(
        only_b
            .users_by_phone("13800138000")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(rotated.rehash_phone_numbers(10).await.unwrap(), 1);
    assert_eq!(rotated.rehash_phone_numbers(10).await.unwrap(), 0);
    assert_eq!(
        found(only_b.users_by_phone("13800138000").await.unwrap()),
        vec![login.user_id]
    );
}

pub async fn logins_without_a_session_key_are_stored_without_one(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let wechat = FakeWeChat::default();
    wechat.codes.lock().unwrap().insert(
        (app(3).to_string(), "oauth-code".to_owned()),
        WeChatSession {
            openid: openid("open-oa"),
            session_key: None,
            unionid: Some(unionid("union-oa")),
        },
    );
    let service = service(&store, &wechat);
    let login = service.login(app(3), code("oauth-code")).await.unwrap();
    assert!(login.unionid_linked);
    let h = login.token.hash();
    let session = store
        .transact(TxMode::Read, move |tx| Ok(tx.session(&h)?))
        .await
        .unwrap()
        .unwrap();
    assert!(!session.has_session_key);
    // Nothing to decrypt with: user info is refused, and so is a phone number.
    let submission = UserInfoSubmission {
        data: data(&app(3), "open-oa", "union-oa", "none"),
        code: None,
    };
    assert_eq!(
        service.submit_user_info(&login.token, submission).await,
        Err(DomainError::UnsupportedForApp)
    );
    assert_eq!(
        service
            .attach_phone_number(&login.token, code("13800138000"))
            .await,
        Err(DomainError::UnsupportedForApp)
    );
    // Re-sealing passes over sessions without a key.
    assert_eq!(store.reseal_session_keys(10).await.unwrap(), 0);
}

/// Rounds of each race in [`a_phone_number_attached_during_a_merge_is_kept`].
const PHONE_RACE_ROUNDS: usize = 20;

/// A merge (a login that tells the unionid, at `READ COMMITTED` on PostgreSQL) races a phone
/// number being attached: to the merged user, or to the owner while the merged user has an
/// older one. Whichever commits first, the owner ends with the number attached last and the
/// merged user with none.
pub async fn a_phone_number_attached_during_a_merge_is_kept(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let wechat = FakeWeChat::default();
    let service = Arc::new(service(&store, &wechat));
    let (a, b) = (app(1), app(2));
    for round in 0..2 * PHONE_RACE_ROUNDS {
        let to_the_owner = round % 2 == 1;
        let union = format!("union-{round}");
        let (open_a, open_b) = (format!("open-a{round}"), format!("open-b{round}"));
        wechat.will_answer(&a, &format!("a{round}"), &open_a, "key-a", None);
        let provisional = service
            .login(a.clone(), code(&format!("a{round}")))
            .await
            .unwrap();
        wechat.will_answer(&b, &format!("b{round}"), &open_b, "key-b", Some(&union));
        let owner = service
            .login(b.clone(), code(&format!("b{round}")))
            .await
            .unwrap();
        let attached_to = if to_the_owner {
            // The provisional user's older number, which the owner's new one must outlive.
            service
                .attach_phone_number(&provisional.token, code("13900000000"))
                .await
                .unwrap();
            owner.token
        } else {
            provisional.token
        };
        wechat.will_answer(&a, &format!("m{round}"), &open_a, "key-a2", Some(&union));

        let start = Arc::new(tokio::sync::Barrier::new(2));
        let merge = tokio::spawn({
            let (service, start, a) = (service.clone(), start.clone(), a.clone());
            async move {
                start.wait().await;
                service.login(a, code(&format!("m{round}"))).await
            }
        });
        let attach = tokio::spawn({
            let (service, start) = (service.clone(), start.clone());
            async move {
                start.wait().await;
                service
                    .attach_phone_number(&attached_to, code("13800000000"))
                    .await
            }
        });
        let merged = merge.await.unwrap().unwrap();
        assert_eq!(merged.user_id, owner.user_id, "round {round}");
        attach.await.unwrap().unwrap();

        let phone = |id: UserId| {
            let store = store.clone();
            async move {
                let record = store.user_by_id(&id).await.unwrap().unwrap();
                record.phone_number.map(|p| p.pure_phone_number)
            }
        };
        let side = if to_the_owner { "owner" } else { "merged user" };
        assert_eq!(
            phone(owner.user_id.clone()).await.as_deref(),
            Some("13800000000"),
            "round {round}: the number attached to the {side} during the merge is the owner's"
        );
        assert_eq!(
            phone(provisional.user_id.clone()).await,
            None,
            "round {round}: the merged user keeps no number"
        );
    }
}

/// Each kind of login, as the user sees it: provisional, new owner, linked to the owner,
/// learning a unionid, returning, merged, a unionid conflict. On PostgreSQL a login is one
/// statement (`wxlink_login`); the same logins again on a schema without it (a node whose
/// database was not migrated) take the rules' transaction and land the same way.
pub async fn every_kind_of_login_lands_by_the_rules(backend: TestBackend) {
    let db = &backend.database();
    let store = db.store().await;
    let wechat = FakeWeChat::default();
    let service = service(&store, &wechat);
    logins_of_every_kind(&service, &wechat, "one").await;
    if db.pg_name().is_some() {
        db.raw_execute("DROP FUNCTION wxlink_login").unwrap();
        logins_of_every_kind(&service, &wechat, "two").await;
    }
}

async fn logins_of_every_kind(service: &TestService, wechat: &FakeWeChat, round: &str) {
    use wxlink_domain::LoginOutcome;
    let (a, b) = (app(1), app(2));
    let login = |app: &AppId, code_: &str| service.login(app.clone(), code(code_));
    let oid = |name: &str| format!("{round}-{name}");
    let union = oid("union");
    let other_union = oid("other-union");

    wechat.will_answer(&a, &oid("c1"), &oid("open-a"), "k", None);
    let provisional = login(&a, &oid("c1")).await.unwrap();
    assert_eq!(
        (provisional.outcome, provisional.unionid_linked),
        (LoginOutcome::Provisional, false)
    );

    wechat.will_answer(&a, &oid("c2"), &oid("open-a"), "k", None);
    let again = login(&a, &oid("c2")).await.unwrap();
    assert_eq!(again.outcome, LoginOutcome::Returning);
    assert_eq!(again.user_id, provisional.user_id);

    wechat.will_answer(&a, &oid("c3"), &oid("open-a"), "k", Some(&union));
    let learned = login(&a, &oid("c3")).await.unwrap();
    assert_eq!(
        (learned.outcome, learned.unionid_linked),
        (LoginOutcome::Linked, true)
    );
    assert_eq!(learned.user_id, provisional.user_id);

    wechat.will_answer(&b, &oid("c4"), &oid("open-b"), "k", Some(&union));
    let linked = login(&b, &oid("c4")).await.unwrap();
    assert_eq!(
        (linked.outcome, linked.unionid_linked),
        (LoginOutcome::Linked, true)
    );
    assert_eq!(linked.user_id, provisional.user_id);

    wechat.will_answer(&b, &oid("c5"), &oid("open-b"), "k", Some(&union));
    let returning = login(&b, &oid("c5")).await.unwrap();
    assert_eq!(
        (returning.outcome, returning.unionid_linked),
        (LoginOutcome::Returning, true)
    );

    wechat.will_answer(&a, &oid("c6"), &oid("open-c"), "k", Some(&other_union));
    let owner = login(&a, &oid("c6")).await.unwrap();
    assert_eq!(owner.outcome, LoginOutcome::NewUser);
    assert_ne!(owner.user_id, provisional.user_id);

    wechat.will_answer(&b, &oid("c7"), &oid("open-d"), "k", None);
    let other = login(&b, &oid("c7")).await.unwrap();
    wechat.will_answer(&b, &oid("c8"), &oid("open-d"), "k", Some(&other_union));
    let merged = login(&b, &oid("c8")).await.unwrap();
    assert_eq!(merged.outcome, LoginOutcome::Merged);
    assert_eq!(merged.user_id, owner.user_id);
    let me = service.current_user(&other.token).await.unwrap();
    assert_eq!(
        me.user_id, owner.user_id,
        "the merged user's token acts as the owner"
    );

    wechat.will_answer(&a, &oid("c9"), &oid("open-a"), "k", Some(&other_union));
    let conflict = login(&a, &oid("c9")).await;
    assert!(
        matches!(conflict, Err(DomainError::UnionidConflict)),
        "{conflict:?}"
    );

    let me = service.current_user(&returning.token).await.unwrap();
    assert_eq!(me.user_id, provisional.user_id);
    assert_eq!(
        me.identities,
        vec![
            (a.clone(), openid(&oid("open-a"))),
            (b.clone(), openid(&oid("open-b")))
        ]
    );
}

fn unix_millis() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

pub async fn a_login_mints_a_user_id_only_for_a_new_user(backend: TestBackend) {
    use wxlink_domain::LoginOutcome;
    let db = &backend.database();
    let store = db.store().await;
    let wechat = FakeWeChat::default();
    let ids = Arc::new(CountedUserIds::default());
    let service = Service::new(
        store.clone(),
        wechat.clone(),
        FakeOpener,
        Arc::new(FixedClock),
        Arc::clone(&ids) as Arc<dyn IdSource>,
        Policy::default(),
    );
    let a = app(1);
    let mut logins = Vec::new();
    let before = unix_millis();
    for (code_, union) in [
        ("m1", None),
        ("m2", Some("union-m")),
        ("m3", Some("union-m")),
    ] {
        wechat.will_answer(&a, code_, "open-m", "k", union);
        logins.push(service.login(a.clone(), code(code_)).await.unwrap());
    }
    let after = unix_millis();
    let outcomes: Vec<_> = logins.iter().map(|l| (l.outcome, &l.user_id)).collect();
    let new = &logins[0].user_id;
    assert_eq!(
        outcomes,
        [
            (LoginOutcome::Provisional, new),
            (LoginOutcome::Linked, new),
            (LoginOutcome::Returning, new)
        ]
    );
    let minted = ids.user_ids.load(Ordering::SeqCst);
    if db.pg_name().is_some() {
        // The one-statement login mints the new user's id in the database, a UUIDv7 as the
        // nodes mint them (32 lowercase hex digits).
        assert_eq!(minted, 0);
        let id = new.as_str();
        assert!(
            id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{id}"
        );
        assert_eq!(
            (&id[12..13], "89ab".contains(&id[16..17])),
            ("7", true),
            "{id}"
        );
        let millis = u64::from_str_radix(&id[..12], 16).unwrap();
        assert!(
            (before..=after).contains(&millis),
            "{id}: {before}..={after}"
        );
    } else {
        assert_eq!(minted, 1, "one new user, one id");
    }
}
