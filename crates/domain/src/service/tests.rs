//! The linking rules and every failure path, against mocks of the ports. A mock with no
//! expectation for a write panics if the write happens, so "a refused request writes nothing" is
//! checked by simply not expecting writes.

use std::future::Future;
use std::sync::{Arc, Mutex};

use mockall::predicate::eq;

use super::*;
use crate::error::{StoreError, UserDataError, WeChatError};
use crate::ids::UnionId;
use crate::model::{
    Actor, DecryptBudget, EventDetail, EventKind, LoginOutcome, PhoneMerge, PhoneNumber,
    Reservation, SpentBudget, User,
};
use crate::ports::{
    ExpectedWatermark, LoginRecord, LoginRequest, MockClock, MockIdSource, MockStoreTx,
    MockUserDataOpener, MockWeChatSessions, OpenedUserData, StoreTx, WeChatSession,
};
use crate::secrets::SessionKey;

pub(crate) const NOW: i64 = 1_700_000_000;
const TTL: u64 = 3600;
const TOKEN: &str = "tok_abcdefghijklmnopqrstuvwxyz0123456789ABCD";

/// Runs each transaction once against one shared mock transaction.
pub(crate) struct MockStore(pub(crate) Mutex<MockStoreTx>);

impl IdentityStore for MockStore {
    fn transact<T, F>(
        &self,
        _mode: TxMode,
        mut work: F,
    ) -> impl Future<Output = Result<T, DomainError>> + Send
    where
        T: Send + 'static,
        F: FnMut(&mut dyn StoreTx) -> Result<T, DomainError> + Send + 'static,
    {
        let mut tx = self.0.lock().unwrap();
        std::future::ready(work(&mut *tx))
    }
}

type TestService = Service<MockStore, MockWeChatSessions, MockUserDataOpener>;

fn service(tx: MockStoreTx, wechat: MockWeChatSessions, opener: MockUserDataOpener) -> TestService {
    service_minting(tx, wechat, opener, 0..)
}

/// A service whose id source mints `user_ids` user ids ("u-new"), as many as it is asked for.
fn service_minting(
    tx: MockStoreTx,
    wechat: MockWeChatSessions,
    opener: MockUserDataOpener,
    user_ids: impl Into<mockall::TimesRange>,
) -> TestService {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(NOW);
    let mut ids = MockIdSource::new();
    ids.expect_new_token()
        .returning(|| SessionToken::new(TOKEN));
    ids.expect_new_user_id()
        .times(user_ids)
        .returning(|| uid("u-new"));
    Service::new(
        MockStore(Mutex::new(tx)),
        wechat,
        opener,
        Arc::new(clock),
        Arc::new(ids),
        Policy {
            session_ttl_secs: TTL,
            max_watermark_age_secs: Some(600),
            decrypt_budget: DecryptBudget::default(),
        },
    )
}

pub(crate) fn app() -> AppId {
    "wx4f4bc4dec97d474b".parse().unwrap()
}
pub(crate) fn other_app() -> AppId {
    "wx0000000000000002".parse().unwrap()
}
pub(crate) fn oid(s: &str) -> OpenId {
    s.parse().unwrap()
}
pub(crate) fn uid(s: &str) -> UserId {
    s.parse().unwrap()
}
pub(crate) fn union(s: &str) -> UnionId {
    s.parse().unwrap()
}
fn code(s: &str) -> JsCode {
    s.parse().unwrap()
}
pub(crate) fn token() -> SessionToken {
    SessionToken::new(TOKEN)
}

pub(crate) fn user(id: &str, unionid: Option<&str>, merged_into: Option<&str>) -> User {
    User {
        id: uid(id),
        unionid: unionid.map(union),
        merged_into: merged_into.map(uid),
        created_at: NOW - 100,
    }
}

fn wechat_answers(openid: &str, key: &str, unionid: Option<&str>) -> MockWeChatSessions {
    let session = WeChatSession {
        openid: oid(openid),
        session_key: Some(SessionKey::new(key)),
        unionid: unionid.map(union),
    };
    let mut wechat = MockWeChatSessions::new();
    wechat
        .expect_code2session()
        .times(1)
        .returning(move |_, _| Box::pin(std::future::ready(Ok(session.clone()))));
    wechat
}

/// A login on `appid` whose code WeChat answers for `openid` (telling `unionid`), against `tx`.
async fn login_as(
    tx: MockStoreTx,
    appid: AppId,
    openid: &str,
    unionid: Option<&str>,
) -> Result<LoggedIn, DomainError> {
    let svc = service(tx, wechat_answers(openid, "key-1", unionid), no_opener());
    svc.login(appid, code("c1")).await
}

fn wechat_fails(error: WeChatError) -> MockWeChatSessions {
    let mut wechat = MockWeChatSessions::new();
    wechat
        .expect_code2session()
        .times(1)
        .returning(move |_, _| Box::pin(std::future::ready(Err(error.clone()))));
    wechat
}

fn no_opener() -> MockUserDataOpener {
    MockUserDataOpener::new()
}

pub(crate) fn expect_user(tx: &mut MockStoreTx, u: User) {
    tx.expect_user()
        .with(eq(u.id.clone()))
        .returning(move |_| Ok(Some(u.clone())));
}

fn expect_event(tx: &mut MockStoreTx, kind: EventKind, user: &str, other: Option<&str>) {
    let (user, other) = (uid(user), other.map(uid));
    tx.expect_append_event()
        .withf(move |e| {
            e.kind == kind && e.user_id == user && e.other_user_id == other && e.at == NOW
        })
        .times(1)
        .returning(|_| Ok(()));
}

/// A merge of `from` into `into` where each had a phone number verified at the given time (or
/// none) and `from` had `sessions` live sessions: expects exactly the phone writes the rule
/// calls for and the merge event with its detail.
fn expect_merge(
    tx: &mut MockStoreTx,
    (from, into): (&str, &str),
    (from_phone, into_phone): (Option<i64>, Option<i64>),
    sessions: u64,
    phone: PhoneMerge,
) {
    expect_merge_holds(tx, from, into);
    let (from_id, into_id) = (uid(from), uid(into));
    tx.expect_phone_verified_at()
        .with(eq(from_id.clone()))
        .returning(move |_| Ok(from_phone));
    tx.expect_phone_verified_at()
        .with(eq(into_id.clone()))
        .returning(move |_| Ok(into_phone));
    tx.expect_live_sessions()
        .with(eq(from_id.clone()), eq(NOW))
        .times(1)
        .returning(move |_, _| Ok(sessions));
    match phone {
        PhoneMerge::None => {}
        PhoneMerge::Moved | PhoneMerge::ReplacedOwner => {
            tx.expect_move_phone_number()
                .with(eq(from_id.clone()), eq(into_id.clone()), eq(NOW))
                .times(1)
                .returning(|_, _, _| Ok(()));
        }
        PhoneMerge::Stayed => unreachable!("a merge never leaves the number"),
        PhoneMerge::KeptOwner => {
            tx.expect_clear_phone_number()
                .with(eq(from_id.clone()), eq(NOW))
                .times(1)
                .returning(|_, _| Ok(()));
        }
    }
    let detail = EventDetail::by(Actor::Unionid)
        .phone(phone)
        .sessions(sessions);
    tx.expect_append_event()
        .withf(move |e| {
            e.kind == EventKind::UsersMerged
                && e.user_id == into_id
                && e.other_user_id.as_ref() == Some(&from_id)
                && e.at == NOW
                && e.detail.as_ref() == Some(&detail)
        })
        .times(1)
        .returning(|_| Ok(()));
}

/// A merge holds both users, in id order, before it reads their phone numbers.
pub(crate) fn expect_merge_holds(tx: &mut MockStoreTx, from: &str, into: &str) {
    expect_merge_holds_in(tx, from, into, &mut mockall::Sequence::new());
}

/// [`expect_merge_holds`] as the next steps of `order`.
pub(crate) fn expect_merge_holds_in(
    tx: &mut MockStoreTx,
    from: &str,
    into: &str,
    order: &mut mockall::Sequence,
) {
    let mut ids = [uid(from), uid(into)];
    ids.sort();
    for id in ids {
        tx.expect_hold_user()
            .with(eq(id))
            .times(1)
            .in_sequence(order)
            .returning(|_| Ok(()));
    }
}

/// The login holds the existing user it lands on until it commits.
fn expect_held(tx: &mut MockStoreTx, user: &str) {
    tx.expect_hold_user()
        .with(eq(uid(user)))
        .times(1)
        .returning(|_| Ok(()));
}

/// A login lands on the existing `user`: it is held, then the identity until the session
/// is in.
fn expect_lands_on(tx: &mut MockStoreTx, user: &str, openid: &str) {
    expect_held(tx, user);
    expect_session_for(tx, user, openid);
}

fn expect_session_for(tx: &mut MockStoreTx, user: &str, openid: &str) {
    expect_session_held_as(tx, user, user, openid);
}

/// The identity is held as `held`'s until the session is in, which goes to `user`.
fn expect_session_held_as(tx: &mut MockStoreTx, held: &str, user: &str, openid: &str) {
    let (held_user, held_openid) = (uid(held), oid(openid));
    tx.expect_hold_identity()
        .withf(move |_, o, u| *o == held_openid && *u == held_user)
        .times(1)
        .returning(|_, _, _| Ok(()));
    let (user, openid) = (uid(user), oid(openid));
    tx.expect_insert_session()
        .withf(move |s, _| {
            s.user_id == user
                && s.openid == openid
                && s.token_hash == token().hash()
                && s.expires_at == NOW + TTL as i64
                && s.has_session_key
                && !s.revoked
        })
        .withf(|_, k| *k == Some(SessionKey::new("key-1")))
        .times(1)
        .returning(|_, _| Ok(()));
}

// ---- login ----

#[tokio::test]
async fn login_without_unionid_creates_a_provisional_user() {
    let mut tx = MockStoreTx::new();
    tx.expect_identity_owner().returning(|_, _| Ok(None));
    tx.expect_insert_user()
        .withf(|u| u.id == uid("u-new") && u.unionid.is_none() && u.merged_into.is_none())
        .times(1)
        .returning(|_| Ok(()));
    tx.expect_insert_identity()
        .withf(|a, o, u, _| *a == app() && *o == oid("o1") && *u == uid("u-new"))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    expect_event(&mut tx, EventKind::UserCreated, "u-new", None);
    expect_event(&mut tx, EventKind::IdentityLinked, "u-new", None);
    expect_session_for(&mut tx, "u-new", "o1");

    let svc = service_minting(tx, wechat_answers("o1", "key-1", None), no_opener(), 1);
    let out = svc.login(app(), code("c1")).await.unwrap();
    assert_eq!(out.user_id, uid("u-new"));
    assert!(!out.unionid_linked);
    assert_eq!(out.expires_in, TTL);
    assert_eq!(out.token.expose_secret(), TOKEN);
    assert_eq!(out.outcome, LoginOutcome::Provisional);
}

/// A store that decides every login at once (as the PostgreSQL adapter does), remembering
/// what it was asked; any transaction would panic on the mock's missing expectations.
struct DecidingStore {
    tx: Mutex<MockStoreTx>,
    asked: Mutex<Vec<LoginRequest>>,
    decides: Option<LoginRecord>,
}

impl IdentityStore for DecidingStore {
    fn transact<T, F>(
        &self,
        _mode: TxMode,
        mut work: F,
    ) -> impl Future<Output = Result<T, DomainError>> + Send
    where
        T: Send + 'static,
        F: FnMut(&mut dyn StoreTx) -> Result<T, DomainError> + Send + 'static,
    {
        let mut tx = self.tx.lock().unwrap();
        std::future::ready(work(&mut *tx))
    }

    fn login_at_once(
        &self,
        login: &LoginRequest,
    ) -> impl Future<Output = Result<Option<LoginRecord>, DomainError>> + Send {
        self.asked.lock().unwrap().push(login.clone());
        std::future::ready(Ok(self.decides.clone()))
    }
}

fn deciding_service(
    store: DecidingStore,
    unionid: Option<&str>,
) -> Service<DecidingStore, MockWeChatSessions, MockUserDataOpener> {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(NOW);
    let mut ids = MockIdSource::new();
    ids.expect_new_token()
        .returning(|| SessionToken::new(TOKEN));
    // The store decides or the login lands on a known user: no user id is minted.
    ids.expect_new_user_id().never();
    Service::new(
        store,
        wechat_answers("o1", "key-1", unionid),
        no_opener(),
        Arc::new(clock),
        Arc::new(ids),
        Policy {
            session_ttl_secs: TTL,
            ..Policy::default()
        },
    )
}

#[tokio::test]
async fn a_login_the_store_decides_at_once_runs_no_transaction_and_answers_its_decision() {
    let decided = LoginRecord {
        user_id: uid("u-owner"),
        unionid_linked: true,
        outcome: LoginOutcome::Linked,
    };
    let svc = deciding_service(
        DecidingStore {
            tx: Mutex::new(MockStoreTx::new()),
            asked: Mutex::new(Vec::new()),
            decides: Some(decided),
        },
        Some("un-1"),
    );
    let out = svc.login(app(), code("c1")).await.unwrap();
    assert_eq!(
        (out.user_id.clone(), out.unionid_linked, out.outcome),
        (uid("u-owner"), true, LoginOutcome::Linked)
    );
    assert_eq!(out.token.expose_secret(), TOKEN);
    assert_eq!(out.expires_in, TTL);
    let asked = svc.store.asked.lock().unwrap();
    let [login] = &asked[..] else {
        panic!("asked {} times", asked.len())
    };
    assert_eq!(
        (&login.appid, &login.openid, login.unionid.as_ref()),
        (&app(), &oid("o1"), Some(&"un-1".parse().unwrap()))
    );
    assert_eq!(login.session_key, Some(SessionKey::new("key-1")));
    assert_eq!(login.token_hash, token().hash());
    assert_eq!(login.expires_at, NOW + TTL as i64);
    assert_eq!(login.refresh_token, None);
}

#[tokio::test]
async fn a_login_the_store_does_not_decide_runs_the_rules_in_a_transaction() {
    let mut tx = MockStoreTx::new();
    tx.expect_identity_owner()
        .returning(|_, _| Ok(Some(uid("u-p"))));
    expect_user(&mut tx, user("u-p", None, None));
    expect_lands_on(&mut tx, "u-p", "o1");
    let svc = deciding_service(
        DecidingStore {
            tx: Mutex::new(tx),
            asked: Mutex::new(Vec::new()),
            decides: None,
        },
        None,
    );
    let out = svc.login(app(), code("c1")).await.unwrap();
    assert_eq!(out.user_id, uid("u-p"));
    assert_eq!(out.outcome, LoginOutcome::Returning);
    assert_eq!(svc.store.asked.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn login_of_a_known_identity_lands_on_its_user_and_creates_nothing() {
    let mut tx = MockStoreTx::new();
    tx.expect_identity_owner()
        .returning(|_, _| Ok(Some(uid("u-p"))));
    expect_user(&mut tx, user("u-p", None, None));
    expect_lands_on(&mut tx, "u-p", "o1");

    // Nor does it mint a user id: only a new user needs one.
    let svc = service_minting(tx, wechat_answers("o1", "key-1", None), no_opener(), 0);
    let out = svc.login(app(), code("c1")).await.unwrap();
    assert_eq!(
        (out.user_id, out.unionid_linked, out.outcome),
        (uid("u-p"), false, LoginOutcome::Returning)
    );
}

#[tokio::test]
async fn login_of_an_identity_whose_user_was_merged_acts_as_the_owner() {
    let mut tx = MockStoreTx::new();
    tx.expect_identity_owner()
        .returning(|_, _| Ok(Some(uid("u-p"))));
    expect_user(&mut tx, user("u-p", None, Some("u-o")));
    expect_user(&mut tx, user("u-o", Some("un1"), None));
    expect_lands_on(&mut tx, "u-o", "o1");

    let out = login_as(tx, app(), "o1", None).await.unwrap();
    assert_eq!(out.user_id, uid("u-o"));
    assert!(out.unionid_linked);
}

#[tokio::test]
async fn login_with_a_new_unionid_creates_its_owner() {
    let mut tx = MockStoreTx::new();
    expect_vouch(&mut tx, "o1", "un1");
    tx.expect_identity_owner().returning(|_, _| Ok(None));
    tx.expect_user_by_unionid()
        .with(eq(union("un1")))
        .returning(|_| Ok(None));
    tx.expect_insert_user()
        .withf(|u| u.id == uid("u-new") && u.unionid == Some(union("un1")))
        .times(1)
        .returning(|_| Ok(()));
    tx.expect_insert_identity()
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    expect_event(&mut tx, EventKind::UserCreated, "u-new", None);
    expect_event(&mut tx, EventKind::IdentityLinked, "u-new", None);
    expect_session_for(&mut tx, "u-new", "o1");

    let out = login_as(tx, app(), "o1", Some("un1")).await.unwrap();
    assert!(out.unionid_linked);
    assert_eq!(out.outcome, LoginOutcome::NewUser);
}

#[tokio::test]
async fn login_with_a_known_unionid_from_another_app_joins_its_owner() {
    let mut tx = MockStoreTx::new();
    expect_vouch(&mut tx, "o2", "un1");
    tx.expect_identity_owner().returning(|_, _| Ok(None));
    tx.expect_user_by_unionid()
        .returning(|_| Ok(Some(user("u-o", Some("un1"), None))));
    tx.expect_insert_identity()
        .withf(|a, o, u, _| *a == other_app() && *o == oid("o2") && *u == uid("u-o"))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    expect_event(&mut tx, EventKind::IdentityLinked, "u-o", None);
    expect_lands_on(&mut tx, "u-o", "o2");

    let out = login_as(tx, other_app(), "o2", Some("un1")).await.unwrap();
    assert_eq!(
        (out.user_id, out.unionid_linked, out.outcome),
        (uid("u-o"), true, LoginOutcome::Linked)
    );
}

#[tokio::test]
async fn login_with_unionid_links_a_provisional_user_nobody_else_owns() {
    let mut tx = MockStoreTx::new();
    expect_vouch(&mut tx, "o1", "un1");
    tx.expect_identity_owner()
        .returning(|_, _| Ok(Some(uid("u-p"))));
    expect_user(&mut tx, user("u-p", None, None));
    tx.expect_user_by_unionid().returning(|_| Ok(None));
    tx.expect_set_unionid()
        .with(eq(uid("u-p")), eq(union("un1")), eq(NOW))
        .times(1)
        .returning(|_, _, _| Ok(()));
    expect_event(&mut tx, EventKind::UnionidLinked, "u-p", None);
    expect_lands_on(&mut tx, "u-p", "o1");

    let out = login_as(tx, app(), "o1", Some("un1")).await.unwrap();
    assert_eq!(
        (out.user_id, out.unionid_linked, out.outcome),
        (uid("u-p"), true, LoginOutcome::Linked)
    );
}

#[tokio::test]
async fn login_with_unionid_merges_a_provisional_user_into_the_owner() {
    let mut tx = MockStoreTx::new();
    expect_vouch(&mut tx, "o1", "un1");
    tx.expect_identity_owner()
        .returning(|_, _| Ok(Some(uid("u-p"))));
    expect_user(&mut tx, user("u-p", None, None));
    // The identity's user and the identity are held before the rules decide; the merge then
    // holds both users in id order.
    expect_held(&mut tx, "u-p");
    tx.expect_user_by_unionid()
        .returning(|_| Ok(Some(user("u-o", Some("un1"), None))));
    tx.expect_move_identities()
        .with(eq(uid("u-p")), eq(uid("u-o")), eq(NOW))
        .times(1)
        .returning(|_, _, _| Ok(1));
    tx.expect_mark_merged()
        .with(eq(uid("u-p")), eq(uid("u-o")), eq(NOW))
        .times(1)
        .returning(|_, _, _| Ok(()));
    expect_merge(&mut tx, ("u-p", "u-o"), (None, None), 2, PhoneMerge::None);
    // Held as u-p's when it was read; the merge moves it to the owner with the session.
    expect_session_held_as(&mut tx, "u-p", "u-o", "o1");

    let out = login_as(tx, app(), "o1", Some("un1")).await.unwrap();
    assert_eq!(out.user_id, uid("u-o"));
    assert_eq!(out.outcome, LoginOutcome::Merged);
}

#[tokio::test]
async fn login_naming_another_unionid_than_the_users_is_refused_and_writes_nothing() {
    let mut tx = MockStoreTx::new();
    tx.expect_identity_owner()
        .returning(|_, _| Ok(Some(uid("u-a"))));
    expect_user(&mut tx, user("u-a", Some("un-a"), None));
    // Holds take locks and change nothing.
    expect_held(&mut tx, "u-a");
    tx.expect_hold_identity()
        .times(1)
        .returning(|_, _, _| Ok(()));

    let err = login_as(tx, app(), "o1", Some("un-b")).await.unwrap_err();
    assert_eq!(err, DomainError::UnionidConflict);
}

#[tokio::test]
async fn login_refused_by_wechat_never_touches_the_store() {
    for error in [
        WeChatError::InvalidCode,
        WeChatError::UserBlocked,
        WeChatError::RateLimited,
        WeChatError::Timeout,
        WeChatError::SnapshotUser,
        WeChatError::Errcode(-1),
        WeChatError::Upstream("system busy".into()),
    ] {
        let svc = service(MockStoreTx::new(), wechat_fails(error.clone()), no_opener());
        let err = svc.login(app(), code("c1")).await.unwrap_err();
        assert_eq!(err, DomainError::WeChat(error));
    }
}

#[tokio::test]
async fn store_failures_surface_as_store_errors() {
    let mut tx = MockStoreTx::new();
    tx.expect_identity_owner()
        .returning(|_, _| Err(StoreError::Unavailable("connection refused".into())));
    let err = login_as(tx, app(), "o1", None).await.unwrap_err();
    assert!(matches!(
        err,
        DomainError::Store(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_merge_loop_in_stored_data_is_reported_not_followed_forever() {
    let mut tx = MockStoreTx::new();
    tx.expect_identity_owner()
        .returning(|_, _| Ok(Some(uid("u-a"))));
    expect_user(&mut tx, user("u-a", None, Some("u-b")));
    expect_user(&mut tx, user("u-b", None, Some("u-a")));
    let err = login_as(tx, app(), "o1", None).await.unwrap_err();
    assert!(matches!(err, DomainError::Store(StoreError::Corrupt(_))));
}

// ---- user info ----

pub(crate) fn live_session(user: &str, openid: &str) -> Session {
    Session {
        token_hash: token().hash(),
        user_id: uid(user),
        appid: app(),
        openid: oid(openid),
        has_session_key: true,
        created_at: NOW - 10,
        expires_at: NOW + 10,
        revoked: false,
    }
}

pub(crate) fn expect_session(tx: &mut MockStoreTx, session: Option<Session>) {
    tx.expect_session()
        .with(eq(token().hash()))
        .returning(move |_| Ok(session.clone()));
}

fn submission(code: Option<&str>) -> UserInfoSubmission {
    UserInfoSubmission {
        data: EncryptedUserData {
            ciphertext: b"enc".to_vec(),
            iv: [7; 16],
            signed_raw_data: None,
        },
        code: code.map(self::code),
    }
}

fn opened(openid: &str, unionid: Option<&str>) -> OpenedUserData {
    OpenedUserData {
        openid: oid(openid),
        unionid: unionid.map(union),
    }
}

fn opener_gives(
    expected_key: &'static str,
    result: Result<OpenedUserData, UserDataError>,
) -> MockUserDataOpener {
    let mut opener = MockUserDataOpener::new();
    opener
        .expect_open()
        .withf(move |k, _, _| *k == SessionKey::new(expected_key))
        .times(1)
        .returning(move |_, _, _| result.clone());
    opener
}

/// A session that reads fine, with session_key "key-1", but expects no writes.
fn read_only_tx(session: Session) -> MockStoreTx {
    let mut tx = MockStoreTx::new();
    expect_session(&mut tx, Some(session));
    tx.expect_session_key()
        .with(eq(token().hash()))
        .returning(|_| Ok(Some(SessionKey::new("key-1"))));
    tx
}

/// A session whose user-info request reserves one attempt of its budget (and writes nothing
/// else unless the test expects it).
fn reserving_tx(session: Session) -> MockStoreTx {
    let mut tx = read_only_tx(session);
    expect_reservation(&mut tx);
    tx
}

/// One attempt of the session's budget is reserved, once.
fn expect_reservation(tx: &mut MockStoreTx) {
    tx.expect_reserve_decrypt_attempt()
        .withf(|t, a, o, now, budget| {
            *t == token().hash()
                && *a == app()
                && *o == oid("o1")
                && *now == NOW
                && *budget == DecryptBudget::default()
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(Reservation::Granted));
}

/// The attempt is given back, once.
fn expect_release(tx: &mut MockStoreTx) {
    tx.expect_release_decrypt_attempt()
        .withf(|t, a, o| *t == token().hash() && *a == app() && *o == oid("o1"))
        .times(1)
        .returning(|_, _, _| Ok(()));
}

#[tokio::test]
async fn user_info_links_a_provisional_user_to_a_new_unionid() {
    let mut tx = reserving_tx(live_session("u-p", "o1"));
    expect_vouch(&mut tx, "o1", "un1");
    expect_release(&mut tx);
    expect_user(&mut tx, user("u-p", None, None));
    tx.expect_user_by_unionid().returning(|_| Ok(None));
    tx.expect_set_unionid().times(1).returning(|_, _, _| Ok(()));
    expect_event(&mut tx, EventKind::UnionidLinked, "u-p", None);

    let opener = opener_gives("key-1", Ok(opened("o1", Some("un1"))));
    let svc = service(tx, MockWeChatSessions::new(), opener);
    let out = svc
        .submit_user_info(&token(), submission(None))
        .await
        .unwrap();
    assert_eq!(
        out,
        UserInfoLinked {
            user_id: uid("u-p"),
            unionid_linked: true,
            merged: false
        }
    );
}

#[tokio::test]
async fn user_info_merges_a_provisional_user_into_the_unionids_owner() {
    let mut tx = reserving_tx(live_session("u-p", "o1"));
    expect_vouch(&mut tx, "o1", "un1");
    expect_release(&mut tx);
    expect_user(&mut tx, user("u-p", None, None));
    tx.expect_user_by_unionid()
        .returning(|_| Ok(Some(user("u-o", Some("un1"), None))));
    tx.expect_move_identities()
        .times(1)
        .returning(|_, _, _| Ok(1));
    tx.expect_mark_merged().times(1).returning(|_, _, _| Ok(()));
    expect_merge(&mut tx, ("u-p", "u-o"), (None, None), 1, PhoneMerge::None);

    let opener = opener_gives("key-1", Ok(opened("o1", Some("un1"))));
    let svc = service(tx, MockWeChatSessions::new(), opener);
    let out = svc
        .submit_user_info(&token(), submission(None))
        .await
        .unwrap();
    assert_eq!(out.user_id, uid("u-o"));
    assert!(out.merged && out.unionid_linked);
}

/// A merge through user info where the provisional and the owner had phone numbers verified
/// at the given times; returns after checking the merge wrote what `expected` says.
async fn merge_with_phones(phones: (Option<i64>, Option<i64>), expected: PhoneMerge) {
    let mut tx = reserving_tx(live_session("u-p", "o1"));
    expect_vouch(&mut tx, "o1", "un1");
    expect_release(&mut tx);
    expect_user(&mut tx, user("u-p", None, None));
    tx.expect_user_by_unionid()
        .returning(|_| Ok(Some(user("u-o", Some("un1"), None))));
    tx.expect_move_identities()
        .times(1)
        .returning(|_, _, _| Ok(1));
    tx.expect_mark_merged().times(1).returning(|_, _, _| Ok(()));
    expect_merge(&mut tx, ("u-p", "u-o"), phones, 1, expected);

    let opener = opener_gives("key-1", Ok(opened("o1", Some("un1"))));
    let svc = service(tx, MockWeChatSessions::new(), opener);
    let out = svc
        .submit_user_info(&token(), submission(None))
        .await
        .unwrap();
    assert!(out.merged);
}

#[tokio::test]
async fn a_merge_moves_the_provisional_users_phone_to_an_owner_without_one() {
    merge_with_phones((Some(NOW - 10), None), PhoneMerge::Moved).await;
}

#[tokio::test]
async fn a_merge_replaces_the_owners_phone_with_a_more_recently_verified_one() {
    merge_with_phones((Some(NOW - 10), Some(NOW - 50)), PhoneMerge::ReplacedOwner).await;
}

#[tokio::test]
async fn a_merge_keeps_the_owners_phone_when_it_was_verified_later_or_at_the_same_time() {
    merge_with_phones((Some(NOW - 50), Some(NOW - 10)), PhoneMerge::KeptOwner).await;
    merge_with_phones((Some(NOW - 10), Some(NOW - 10)), PhoneMerge::KeptOwner).await;
}

#[tokio::test]
async fn a_merge_of_a_user_without_a_phone_leaves_the_owners_alone() {
    merge_with_phones((None, Some(NOW - 10)), PhoneMerge::None).await;
}

#[tokio::test]
async fn user_info_for_an_already_linked_user_with_the_same_unionid_changes_nothing() {
    let mut tx = reserving_tx(live_session("u-o", "o1"));
    expect_vouch(&mut tx, "o1", "un1");
    expect_release(&mut tx);
    expect_user(&mut tx, user("u-o", Some("un1"), None));
    let opener = opener_gives("key-1", Ok(opened("o1", Some("un1"))));
    let svc = service(tx, MockWeChatSessions::new(), opener);
    let out = svc
        .submit_user_info(&token(), submission(None))
        .await
        .unwrap();
    assert!(!out.merged && out.unionid_linked);
}

#[tokio::test]
async fn user_info_naming_another_unionid_is_a_conflict_and_writes_nothing() {
    let mut tx = reserving_tx(live_session("u-o", "o1"));
    expect_user(&mut tx, user("u-o", Some("un1"), None));
    let opener = opener_gives("key-1", Ok(opened("o1", Some("un2"))));
    let svc = service(tx, MockWeChatSessions::new(), opener);
    let err = svc
        .submit_user_info(&token(), submission(None))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::UnionidConflict);
}

#[tokio::test]
async fn user_info_without_a_unionid_in_the_data_links_nothing() {
    let mut tx = reserving_tx(live_session("u-p", "o1"));
    expect_release(&mut tx);
    expect_user(&mut tx, user("u-p", None, None));
    let opener = opener_gives("key-1", Ok(opened("o1", None)));
    let svc = service(tx, MockWeChatSessions::new(), opener);
    let out = svc
        .submit_user_info(&token(), submission(None))
        .await
        .unwrap();
    assert!(!out.unionid_linked && !out.merged);
}

/// Every refusal of the data keeps its reservation: no release is expected.
#[tokio::test]
async fn user_info_refusals_write_nothing_but_keep_the_reserved_attempt() {
    let cases: Vec<(Result<OpenedUserData, UserDataError>, DomainError)> = vec![
        (
            Err(UserDataError::SignatureMismatch),
            DomainError::UserData(UserDataError::SignatureMismatch),
        ),
        (
            Err(UserDataError::WatermarkMismatch),
            DomainError::UserData(UserDataError::WatermarkMismatch),
        ),
        (
            Err(UserDataError::WatermarkExpired),
            DomainError::UserData(UserDataError::WatermarkExpired),
        ),
        (
            Err(UserDataError::WatermarkInFuture),
            DomainError::UserData(UserDataError::WatermarkInFuture),
        ),
        (
            Ok(opened("someone-else", Some("un1"))),
            DomainError::IdentityMismatch,
        ),
    ];
    for (opened, expected) in cases {
        let tx = reserving_tx(live_session("u-p", "o1"));
        let svc = service(tx, MockWeChatSessions::new(), opener_gives("key-1", opened));
        let err = svc
            .submit_user_info(&token(), submission(None))
            .await
            .unwrap_err();
        assert_eq!(err, expected);
    }
}

fn opener_expects_watermark(expected: ExpectedWatermark) -> MockUserDataOpener {
    let mut opener = MockUserDataOpener::new();
    opener
        .expect_open()
        .withf(move |_, _, e| *e == expected)
        .times(1)
        .returning(|_, _, _| Ok(opened("o1", Some("un1"))));
    opener
}

/// The one watermark check is the opener's; the service tells it the session's app, the time
/// and the configured age limit.
#[tokio::test]
async fn the_opener_checks_the_watermark_against_the_session_app_and_the_policy() {
    for max_age_secs in [Some(600), None] {
        let mut tx = reserving_tx(live_session("u-o", "o1"));
        expect_vouch(&mut tx, "o1", "un1");
        expect_release(&mut tx);
        expect_user(&mut tx, user("u-o", Some("un1"), None));
        let opener = opener_expects_watermark(ExpectedWatermark {
            appid: app(),
            now: NOW,
            max_age_secs,
        });
        let mut svc = service(tx, MockWeChatSessions::new(), opener);
        svc.policy.max_watermark_age_secs = max_age_secs;
        assert!(
            svc.submit_user_info(&token(), submission(None))
                .await
                .is_ok()
        );
    }
}

// ---- the failed-decryption budget ----

#[tokio::test]
async fn a_spent_budget_refuses_without_decrypting_or_asking_wechat() {
    // The session's budget, then the identity's of the day (which starts again in 90 s).
    for (reservation, spent) in [
        (Reservation::SessionSpent, SpentBudget::Session),
        (
            Reservation::IdentitySpent { until: NOW + 90 },
            SpentBudget::IdentityDay {
                retry_after_secs: 90,
            },
        ),
    ] {
        let mut tx = read_only_tx(live_session("u-p", "o1"));
        tx.expect_reserve_decrypt_attempt()
            .times(2)
            .returning(move |_, _, _, _, _| Ok(reservation));
        // No expectation on the opener or on WeChat: a call to either fails the test.
        let svc = service(tx, MockWeChatSessions::new(), no_opener());
        for code in [None, Some("c2")] {
            let err = svc
                .submit_user_info(&token(), submission(code))
                .await
                .unwrap_err();
            assert_eq!(err, DomainError::TooManyAttempts(spent));
        }
    }
}

#[test]
fn only_the_sessions_spent_budget_tells_the_client_to_log_in_again() {
    let session = DomainError::TooManyAttempts(SpentBudget::Session).to_string();
    assert!(session.contains("log in again"), "{session}");
    let day = DomainError::TooManyAttempts(SpentBudget::IdentityDay {
        retry_after_secs: 3600,
    })
    .to_string();
    assert!(
        day.contains("does not help") && day.contains("3600"),
        "{day}"
    );
}

#[tokio::test]
async fn data_that_links_gives_its_attempt_back() {
    let mut tx = reserving_tx(live_session("u-p", "o1"));
    expect_release(&mut tx);
    expect_user(&mut tx, user("u-p", None, None));
    let opener = opener_gives("key-1", Ok(opened("o1", None)));
    let svc = service(tx, MockWeChatSessions::new(), opener);
    svc.submit_user_info(&token(), submission(None))
        .await
        .unwrap();
}

#[tokio::test]
async fn data_that_does_not_open_keeps_its_attempt() {
    // reserving_tx expects no release: a release would fail the test.
    let tx = reserving_tx(live_session("u-p", "o1"));
    let svc = service(tx, wechat_says_key_valid(Ok(true)), decrypt_fails());
    let err = svc
        .submit_user_info(&token(), submission(None))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::UserData(UserDataError::DecryptFailed));
}

#[tokio::test]
async fn user_info_with_an_unknown_expired_or_revoked_token_is_refused_before_anything_else() {
    let expired = Session {
        expires_at: NOW,
        ..live_session("u-p", "o1")
    };
    let revoked = Session {
        revoked: true,
        ..live_session("u-p", "o1")
    };
    for session in [None, Some(expired), Some(revoked)] {
        let mut tx = MockStoreTx::new();
        expect_session(&mut tx, session);
        let svc = service(tx, MockWeChatSessions::new(), no_opener());
        let err = svc
            .submit_user_info(&token(), submission(Some("c2")))
            .await
            .unwrap_err();
        assert_eq!(err, DomainError::InvalidToken);
    }
}

#[tokio::test]
async fn a_refreshing_code_replaces_the_session_key_used_to_decrypt() {
    let mut tx = reserving_tx(live_session("u-p", "o1"));
    expect_vouch(&mut tx, "o1", "un1");
    expect_release(&mut tx);
    expect_user(&mut tx, user("u-p", None, None));
    tx.expect_user_by_unionid().returning(|_| Ok(None));
    tx.expect_set_unionid().times(1).returning(|_, _, _| Ok(()));
    expect_event(&mut tx, EventKind::UnionidLinked, "u-p", None);
    tx.expect_replace_session_key()
        .withf(|t, k| *t == token().hash() && *k == SessionKey::new("key-2"))
        .times(1)
        .returning(|_, _| Ok(()));

    let opener = opener_gives("key-2", Ok(opened("o1", Some("un1"))));
    let svc = service(tx, wechat_answers("o1", "key-2", None), opener);
    let out = svc
        .submit_user_info(&token(), submission(Some("c2")))
        .await
        .unwrap();
    assert!(out.unionid_linked);
}

#[tokio::test]
async fn a_refreshing_code_of_another_user_is_refused_before_decrypting() {
    let tx = reserving_tx(live_session("u-p", "o1"));
    let svc = service(tx, wechat_answers("o-other", "key-2", None), no_opener());
    let err = svc
        .submit_user_info(&token(), submission(Some("c2")))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::IdentityMismatch);
}

#[tokio::test]
async fn a_refreshing_code_refused_by_wechat_changes_nothing() {
    // WeChat refused the code, nothing was decrypted: the attempt goes back.
    let mut tx = reserving_tx(live_session("u-p", "o1"));
    expect_release(&mut tx);
    let svc = service(tx, wechat_fails(WeChatError::InvalidCode), no_opener());
    let err = svc
        .submit_user_info(&token(), submission(Some("c2")))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::WeChat(WeChatError::InvalidCode));
}

#[tokio::test]
async fn a_refreshing_codes_unionid_counts_when_the_data_has_none() {
    let mut tx = reserving_tx(live_session("u-p", "o1"));
    expect_vouch(&mut tx, "o1", "un-code");
    expect_release(&mut tx);
    expect_user(&mut tx, user("u-p", None, None));
    tx.expect_user_by_unionid()
        .with(eq(union("un-code")))
        .returning(|_| Ok(None));
    tx.expect_set_unionid().times(1).returning(|_, _, _| Ok(()));
    expect_event(&mut tx, EventKind::UnionidLinked, "u-p", None);
    tx.expect_replace_session_key()
        .times(1)
        .returning(|_, _| Ok(()));

    let opener = opener_gives("key-2", Ok(opened("o1", None)));
    let svc = service(tx, wechat_answers("o1", "key-2", Some("un-code")), opener);
    let out = svc
        .submit_user_info(&token(), submission(Some("c2")))
        .await
        .unwrap();
    assert!(out.unionid_linked);
}

#[tokio::test]
async fn data_contradicting_the_codes_unionid_is_a_conflict() {
    let tx = reserving_tx(live_session("u-p", "o1"));
    let opener = opener_gives("key-2", Ok(opened("o1", Some("un-data"))));
    let svc = service(tx, wechat_answers("o1", "key-2", Some("un-code")), opener);
    let err = svc
        .submit_user_info(&token(), submission(Some("c2")))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::UnionidConflict);
}

// ---- current user, logout ----

#[tokio::test]
async fn current_user_follows_a_merge_and_lists_the_owners_identities() {
    let mut tx = read_only_tx(live_session("u-p", "o1"));
    expect_user(&mut tx, user("u-p", None, Some("u-o")));
    expect_user(&mut tx, user("u-o", Some("un1"), None));
    tx.expect_identities()
        .with(eq(uid("u-o")))
        .returning(|_| Ok(vec![(app(), oid("o1")), (other_app(), oid("o2"))]));
    let svc = service(tx, MockWeChatSessions::new(), no_opener());
    let me = svc.current_user(&token()).await.unwrap();
    assert_eq!(me.user_id, uid("u-o"));
    assert!(me.unionid_linked);
    assert_eq!(me.identities.len(), 2);
}

#[tokio::test]
async fn logout_revokes_a_live_token_and_refuses_a_dead_one() {
    let mut tx = read_only_tx(live_session("u-p", "o1"));
    tx.expect_revoke_session()
        .with(eq(token().hash()), eq(NOW))
        .times(1)
        .returning(|_, _| Ok(()));
    let svc = service(tx, MockWeChatSessions::new(), no_opener());
    svc.logout(&token()).await.unwrap();

    let mut tx = MockStoreTx::new();
    expect_session(&mut tx, None);
    let svc = service(tx, MockWeChatSessions::new(), no_opener());
    assert_eq!(svc.logout(&token()).await, Err(DomainError::InvalidToken));
}

// ---- proof of presence ----

#[tokio::test]
async fn presence_needs_a_code_and_a_live_token_and_asks_wechat_nothing_without_them() {
    // No code: refused before WeChat is asked (no expectation on it: a call fails the test).
    let mut tx = MockStoreTx::new();
    expect_session(&mut tx, Some(live_session("u-p", "o1")));
    let svc = service(tx, MockWeChatSessions::new(), no_opener());
    let err = svc.prove_presence(&token(), None).await.unwrap_err();
    assert_eq!(err, DomainError::ReauthenticationRequired);

    // A dead token with a code: the token is refused first.
    let mut tx = MockStoreTx::new();
    expect_session(&mut tx, None);
    let svc = service(tx, MockWeChatSessions::new(), no_opener());
    let err = svc
        .prove_presence(&token(), Some(code("c1")))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::InvalidToken);
}

#[tokio::test]
async fn presence_is_proven_only_by_a_code_of_the_sessions_own_identity() {
    // Another person's code: refused, and the store is only read (a write fails the test).
    let mut tx = MockStoreTx::new();
    expect_session(&mut tx, Some(live_session("u-p", "o1")));
    let svc = service(tx, wechat_answers("o-other", "key-9", None), no_opener());
    let err = svc
        .prove_presence(&token(), Some(code("c-other")))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::IdentityMismatch);

    // The code is exchanged for the session's own app.
    let mut tx = MockStoreTx::new();
    expect_session(&mut tx, Some(live_session("u-p", "o1")));
    let mut wechat = MockWeChatSessions::new();
    wechat
        .expect_code2session()
        .withf(|appid, code| *appid == app() && code.as_str() == "c1")
        .times(1)
        .returning(|_, _| {
            Box::pin(std::future::ready(Ok(WeChatSession {
                openid: oid("o1"),
                session_key: Some(SessionKey::new("key-2")),
                unionid: None,
            })))
        });
    let svc = service(tx, wechat, no_opener());
    svc.prove_presence(&token(), Some(code("c1")))
        .await
        .unwrap();

    // WeChat's refusal of the code is the answer, as for a login.
    let mut tx = MockStoreTx::new();
    expect_session(&mut tx, Some(live_session("u-p", "o1")));
    let svc = service(tx, wechat_fails(WeChatError::InvalidCode), no_opener());
    let err = svc
        .prove_presence(&token(), Some(code("used")))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::WeChat(WeChatError::InvalidCode));
}

/// A session whose stored session_key cannot be unsealed (its data key is missing).
fn unopenable_key_tx() -> MockStoreTx {
    let mut tx = MockStoreTx::new();
    expect_session(&mut tx, Some(live_session("u-p", "o1")));
    tx.expect_session_key()
        .returning(|_| Err(StoreError::Key("session key: needs key 0badbeef".into())));
    tx
}

#[tokio::test]
async fn me_logout_and_a_refreshing_code_work_when_the_stored_key_cannot_be_unsealed() {
    let mut tx = unopenable_key_tx();
    expect_user(&mut tx, user("u-p", None, None));
    tx.expect_identities()
        .returning(|_| Ok(vec![(app(), oid("o1"))]));
    let svc = service(tx, MockWeChatSessions::new(), no_opener());
    assert_eq!(
        svc.current_user(&token()).await.unwrap().user_id,
        uid("u-p")
    );

    let mut tx = unopenable_key_tx();
    tx.expect_revoke_session().times(1).returning(|_, _| Ok(()));
    let svc = service(tx, MockWeChatSessions::new(), no_opener());
    svc.logout(&token()).await.unwrap();

    // A fresh code brings its own key: the stored one is not needed.
    let mut tx = unopenable_key_tx();
    expect_reservation(&mut tx);
    expect_release(&mut tx);
    expect_user(&mut tx, user("u-p", None, None));
    tx.expect_replace_session_key()
        .times(1)
        .returning(|_, _| Ok(()));
    let opener = opener_gives("key-2", Ok(opened("o1", None)));
    let svc = service(tx, wechat_answers("o1", "key-2", None), opener);
    svc.submit_user_info(&token(), submission(Some("c2")))
        .await
        .unwrap();
}

#[tokio::test]
async fn user_info_that_needs_the_unsealable_key_is_a_key_error_and_changes_nothing() {
    let mut tx = unopenable_key_tx();
    expect_reservation(&mut tx);
    let svc = service(tx, MockWeChatSessions::new(), no_opener());
    let err = svc
        .submit_user_info(&token(), submission(None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DomainError::Store(StoreError::Key(_))),
        "{err:?}"
    );
}

// ---- session key health ----

fn wechat_says_key_valid(answer: Result<bool, WeChatError>) -> MockWeChatSessions {
    let mut wechat = MockWeChatSessions::new();
    wechat
        .expect_session_key_valid()
        .withf(|a, o, k| *a == app() && *o == oid("o1") && *k == SessionKey::new("key-1"))
        .times(1)
        .returning(move |_, _, _| Box::pin(std::future::ready(answer.clone().map_err(Into::into))));
    wechat
}

fn decrypt_fails() -> MockUserDataOpener {
    opener_gives("key-1", Err(UserDataError::DecryptFailed))
}

#[tokio::test]
async fn undecryptable_data_under_a_key_wechat_no_longer_accepts_is_session_key_expired() {
    let tx = reserving_tx(live_session("u-p", "o1"));
    let svc = service(tx, wechat_says_key_valid(Ok(false)), decrypt_fails());
    let err = svc
        .submit_user_info(&token(), submission(None))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::SessionKeyExpired);
}

#[tokio::test]
async fn undecryptable_data_under_a_valid_key_or_an_unanswered_check_stays_decrypt_failed() {
    for answer in [Ok(true), Err(WeChatError::Timeout)] {
        let tx = reserving_tx(live_session("u-p", "o1"));
        let svc = service(tx, wechat_says_key_valid(answer), decrypt_fails());
        let err = svc
            .submit_user_info(&token(), submission(None))
            .await
            .unwrap_err();
        assert_eq!(err, DomainError::UserData(UserDataError::DecryptFailed));
    }
}

#[tokio::test]
async fn undecryptable_data_with_a_fresh_code_is_not_checked_again() {
    let tx = reserving_tx(live_session("u-p", "o1"));
    let opener = opener_gives("key-2", Err(UserDataError::DecryptFailed));
    let svc = service(tx, wechat_answers("o1", "key-2", None), opener);
    let err = svc
        .submit_user_info(&token(), submission(Some("c2")))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::UserData(UserDataError::DecryptFailed));
}

#[tokio::test]
async fn user_info_for_a_login_without_session_key_is_unsupported() {
    let session = Session {
        has_session_key: false,
        ..live_session("u-p", "o1")
    };
    let svc = service(
        read_only_tx(session),
        MockWeChatSessions::new(),
        no_opener(),
    );
    let err = svc
        .submit_user_info(&token(), submission(None))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::UnsupportedForApp);
}

#[tokio::test]
async fn an_oauth_login_without_session_key_is_stored_without_one() {
    let mut wechat = MockWeChatSessions::new();
    wechat.expect_code2session().times(1).returning(|_, _| {
        Box::pin(std::future::ready(Ok(WeChatSession {
            openid: oid("o1"),
            session_key: None,
            unionid: None,
        })))
    });
    let mut tx = MockStoreTx::new();
    tx.expect_identity_owner()
        .returning(|_, _| Ok(Some(uid("u-p"))));
    expect_user(&mut tx, user("u-p", None, None));
    expect_held(&mut tx, "u-p");
    tx.expect_hold_identity()
        .times(1)
        .returning(|_, _, _| Ok(()));
    tx.expect_insert_session()
        .withf(|s, k| !s.has_session_key && k.is_none() && s.user_id == uid("u-p"))
        .times(1)
        .returning(|_, _| Ok(()));
    let svc = service(tx, wechat, no_opener());
    svc.login(app(), code("c1")).await.unwrap();
}

// ---- phone number ----

fn phone() -> PhoneNumber {
    PhoneNumber {
        phone_number: "13800138000".into(),
        pure_phone_number: "13800138000".into(),
        country_code: "86".into(),
    }
}

#[tokio::test]
async fn a_phone_number_is_stored_on_the_user_the_token_acts_as() {
    let mut tx = read_only_tx(live_session("u-p", "o1"));
    expect_user(&mut tx, user("u-p", None, Some("u-o")));
    expect_user(&mut tx, user("u-o", Some("un1"), None));
    tx.expect_set_phone_number()
        .withf(|u, p, a, o, at| {
            *u == uid("u-o") && *p == phone() && *a == app() && *o == oid("o1") && *at == NOW
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
    let mut wechat = MockWeChatSessions::new();
    wechat
        .expect_phone_number()
        .withf(|a, o, c| *a == app() && *o == oid("o1") && *c == code("p1"))
        .times(1)
        .returning(|_, _, _| Box::pin(std::future::ready(Ok(phone()))));
    let svc = service(tx, wechat, no_opener());
    assert_eq!(
        svc.attach_phone_number(&token(), code("p1")).await.unwrap(),
        phone()
    );
}

#[tokio::test]
async fn a_refused_phone_code_writes_nothing() {
    let tx = read_only_tx(live_session("u-p", "o1"));
    let mut wechat = MockWeChatSessions::new();
    wechat
        .expect_phone_number()
        .returning(|_, _, _| Box::pin(std::future::ready(Err(WeChatError::InvalidCode.into()))));
    let svc = service(tx, wechat, no_opener());
    let err = svc
        .attach_phone_number(&token(), code("p1"))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::WeChat(WeChatError::InvalidCode));
}

#[tokio::test]
async fn phone_numbers_are_for_mini_program_logins() {
    let session = Session {
        has_session_key: false,
        ..live_session("u-p", "o1")
    };
    let svc = service(
        read_only_tx(session),
        MockWeChatSessions::new(),
        no_opener(),
    );
    let err = svc
        .attach_phone_number(&token(), code("p1"))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::UnsupportedForApp);
}

#[test]
fn debug_of_a_phone_number_shows_only_its_last_digits() {
    assert_eq!(format!("{:?}", phone()), "PhoneNumber(+86 …00)");
}

/// The identity (app, `openid`) vouches for `unionid` from now on.
pub(crate) fn expect_vouch(tx: &mut MockStoreTx, openid: &str, unionid: &str) {
    let (openid, unionid) = (oid(openid), union(unionid));
    tx.expect_vouch()
        .withf(move |_, o, u, at| *o == openid && *u == unionid && *at == NOW)
        .times(1)
        .returning(|_, _, _, _| Ok(()));
}

// ---- signed access tokens and refresh tokens ----

/// A stand-in for the JOSE adapter: a "signed" token is `signed.<sid hex>.<sub>`, and verifies
/// while `valid`.
#[derive(Debug)]
pub(crate) struct FakeSigner {
    pub(crate) valid: bool,
}

impl crate::access::AccessTokens for FakeSigner {
    fn issue(
        &self,
        grant: &crate::access::AccessGrant,
    ) -> Result<crate::access::IssuedAccess, DomainError> {
        Ok(crate::access::IssuedAccess {
            token: SessionToken::new(format!("signed.{}.{}", grant.sid.to_hex(), grant.sub)),
            expires_in: 900,
        })
    }

    fn verify(&self, token: &str, _now: UnixTime) -> Option<crate::access::VerifiedAccess> {
        let sid = TokenHash::from_hex(token.split('.').nth(1)?)?;
        self.valid.then_some(crate::access::VerifiedAccess {
            sid,
            iat: NOW,
            exp: NOW + 900,
        })
    }
}

fn signed_service(tx: MockStoreTx, valid: bool) -> TestService {
    service(tx, MockWeChatSessions::new(), no_opener())
        .with_access_tokens(Arc::new(FakeSigner { valid }))
}

const REFRESH: &str = "refresh-presented-0123456789abcdefghijklmno";

fn session_of(user: &str, revoked: bool) -> Session {
    Session {
        token_hash: token().hash(),
        user_id: uid(user),
        appid: app(),
        openid: oid("o-1"),
        has_session_key: true,
        created_at: NOW - 10,
        expires_at: NOW + 3600,
        revoked,
    }
}

fn expect_refresh_row(tx: &mut MockStoreTx, used: bool) {
    let presented = SessionToken::new(REFRESH).hash();
    tx.expect_refresh_token()
        .with(eq(presented))
        .times(1)
        .returning(move |_| {
            Ok(Some(crate::access::RefreshTokenRow {
                session: token().hash(),
                used,
            }))
        });
}

#[tokio::test]
async fn a_refresh_uses_the_token_and_issues_for_whom_the_session_acts_as_now() {
    let mut tx = MockStoreTx::new();
    expect_refresh_row(&mut tx, false);
    tx.expect_session()
        .returning(|_| Ok(Some(session_of("u-merged", false))));
    tx.expect_use_refresh_token()
        .with(eq(SessionToken::new(REFRESH).hash()), eq(NOW))
        .times(1)
        .returning(|_, _| Ok(true));
    // The next refresh token (the id source's token) joins the same session.
    tx.expect_insert_refresh_token()
        .with(eq(token().hash()), eq(token().hash()), eq(NOW))
        .times(1)
        .returning(|_, _, _| Ok(()));
    tx.expect_user().returning(|id| {
        Ok(Some(if id.as_str() == "u-merged" {
            user("u-merged", None, Some("u-owner"))
        } else {
            user("u-owner", Some("un-1"), None)
        }))
    });
    let out = signed_service(tx, true)
        .refresh(&SessionToken::new(REFRESH))
        .await
        .unwrap();
    assert_eq!(out.user_id, uid("u-owner"));
    assert!(out.unionid_linked);
    assert_eq!(out.expires_in, 900);
    assert_eq!(
        out.token.expose_secret(),
        format!("signed.{}.u-owner", token().hash().to_hex())
    );
}

#[tokio::test]
async fn a_used_refresh_token_revokes_its_session_and_issues_nothing() {
    let mut tx = MockStoreTx::new();
    expect_refresh_row(&mut tx, true);
    tx.expect_session()
        .returning(|_| Ok(Some(session_of("u-1", false))));
    tx.expect_revoke_session()
        .with(eq(token().hash()), eq(NOW))
        .times(1)
        .returning(|_, _| Ok(()));
    let err = signed_service(tx, true)
        .refresh(&SessionToken::new(REFRESH))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::InvalidToken);
}

#[tokio::test]
async fn a_refresh_that_loses_the_race_for_its_token_revokes_the_session() {
    let mut tx = MockStoreTx::new();
    expect_refresh_row(&mut tx, false);
    tx.expect_session()
        .returning(|_| Ok(Some(session_of("u-1", false))));
    tx.expect_use_refresh_token().returning(|_, _| Ok(false));
    tx.expect_revoke_session().times(1).returning(|_, _| Ok(()));
    let err = signed_service(tx, true)
        .refresh(&SessionToken::new(REFRESH))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::InvalidToken);
}

#[tokio::test]
async fn unknown_refresh_tokens_and_those_of_dead_sessions_write_nothing() {
    let mut tx = MockStoreTx::new();
    tx.expect_refresh_token().times(1).returning(|_| Ok(None));
    let err = signed_service(tx, true)
        .refresh(&SessionToken::new(REFRESH))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::InvalidToken);

    let mut tx = MockStoreTx::new();
    expect_refresh_row(&mut tx, false);
    tx.expect_session()
        .returning(|_| Ok(Some(session_of("u-1", true))));
    let err = signed_service(tx, true)
        .refresh(&SessionToken::new(REFRESH))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::InvalidToken);

    // Opaque tokens have no refresh at all.
    let err = service(MockStoreTx::new(), MockWeChatSessions::new(), no_opener())
        .refresh(&SessionToken::new(REFRESH))
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::InvalidToken);
}

#[tokio::test]
async fn a_signed_token_acts_through_its_live_session_and_one_that_does_not_verify_reads_nothing() {
    let signed = SessionToken::new(format!("signed.{}.u-1", token().hash().to_hex()));
    let mut tx = MockStoreTx::new();
    tx.expect_session()
        .with(eq(token().hash()))
        .returning(|_| Ok(Some(session_of("u-1", false))));
    tx.expect_user()
        .returning(|_| Ok(Some(user("u-1", None, None))));
    tx.expect_identities().returning(|_| Ok(vec![]));
    let me = signed_service(tx, true)
        .current_user(&signed)
        .await
        .unwrap();
    assert_eq!(me.user_id, uid("u-1"));

    // Not verified: refused before any lookup (the mock expects none).
    let err = signed_service(MockStoreTx::new(), false)
        .current_user(&signed)
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::InvalidToken);
    // Signed tokens are not accepted where they are not configured.
    let err = service(MockStoreTx::new(), MockWeChatSessions::new(), no_opener())
        .current_user(&signed)
        .await
        .unwrap_err();
    assert_eq!(err, DomainError::InvalidToken);
}
