//! The rest of an account's life, after linking: cancellation (账号注销), support's repairs
//! (revoke sessions, unlink an identity, merge two users, split a merge) and token
//! introspection. Support's use cases take who did it ([`ActorName`]) for their events.
//!
//! Each use case is one store transaction, like the linking rules, and writes one event. They
//! need no WeChat, so the command line runs them with just a store and a clock.

use std::sync::Arc;

use crate::access::{self, AccessTokens, Signer};
use crate::error::DomainError;
use crate::ids::{AppId, OpenId, UnionId, UserId};
use crate::linking::{self, Origin};
use crate::model::{
    Actor, ActorName, EventDetail, EventKind, PhoneMerge, UnionidSplit, UnixTime, User,
};
use crate::ports::{Clock, IdSource, IdentityStore, StoreTx, TxMode};
use crate::secrets::{SessionToken, TokenHash};

/// What a valid token stands for (RFC 7662 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    /// The user the token acts as now (after merges).
    pub sub: UserId,
    /// The app of the login.
    pub client_id: AppId,
    /// When the token was issued (a signed token's own `iat`).
    pub iat: UnixTime,
    /// When it stops working (a signed token's own `exp`, or its session's end if sooner).
    pub exp: UnixTime,
    /// Whether the user's unionid is known.
    pub unionid_linked: bool,
}

/// What a cancellation removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled {
    /// Live sessions revoked.
    pub sessions: u64,
    /// Identities released.
    pub identities: u64,
}

/// Proof that the person behind a session is there: a fresh login code that WeChat says is of
/// the identity the session logged in through. Only [`Service::prove_presence`] makes one, so
/// a use case that takes it cannot run on a (stolen) bearer token alone.
///
/// [`Service::prove_presence`]: crate::Service::prove_presence
#[derive(Debug)]
pub struct Presence {
    token_hash: TokenHash,
}

impl Presence {
    /// The session (by its hash) was proven: only the proof's maker calls this.
    pub(crate) fn proven(token_hash: TokenHash) -> Self {
        Self { token_hash }
    }
}

/// What a split did: the user the identities went to, and the user they left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The new user, or the restored one (`into`).
    pub user: UserId,
    /// The user that was split, with the identities that stayed.
    pub remaining: UserId,
}

/// The account life-cycle use cases over a store, a clock and a source of ids. Cheap to share.
#[derive(Debug, Clone)]
pub struct Accounts<Store> {
    store: Store,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    signer: Signer,
}

impl<Store: IdentityStore> Accounts<Store> {
    /// Wire the use cases to their ports.
    pub fn new(store: Store, clock: Arc<dyn Clock>, ids: Arc<dyn IdSource>) -> Self {
        Self {
            store,
            clock,
            ids,
            signer: None,
        }
    }

    /// Accept signed access tokens (JWTs) too, as [`crate::Service::with_access_tokens`].
    #[must_use]
    pub fn with_access_tokens(mut self, signer: Arc<dyn AccessTokens>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The user cancels their own account (`DELETE /v1/me`), proven present with a fresh code.
    pub async fn cancel(&self, presence: Presence) -> Result<Cancelled, DomainError> {
        let now = self.clock.now();
        let token_hash = presence.token_hash;
        self.store
            .transact(TxMode::Write, move |tx| {
                let (session, user) = linking::session_user(tx, &token_hash, now)?;
                let origin = Origin::of_session(&session, now);
                cancel(tx, origin, &user, &EventDetail::by(Actor::User))
            })
            .await
    }

    /// Support (`actor`) deletes an account, with the same effects as the user's cancellation.
    pub async fn delete_user(
        &self,
        user: UserId,
        actor: ActorName,
    ) -> Result<Cancelled, DomainError> {
        let now = self.clock.now();
        self.store
            .transact(TxMode::Write, move |tx| {
                let (user, appid, openid) = support_target(tx, &user)?;
                let origin = Origin::new(&appid, &openid, now);
                cancel(tx, origin, &user, &EventDetail::support(&actor))
            })
            .await
    }

    /// Revoke every live session of a user (and of the users merged into it): a stolen token.
    pub async fn revoke_sessions(
        &self,
        user: UserId,
        actor: ActorName,
    ) -> Result<u64, DomainError> {
        let now = self.clock.now();
        self.store
            .transact(TxMode::Write, move |tx| {
                let (user, appid, openid) = support_target(tx, &user)?;
                let origin = Origin::new(&appid, &openid, now);
                let revoked = tx.revoke_user_sessions(&user.id, now)?;
                let mut event = origin.event(EventKind::SessionsRevoked, &user.id, None);
                event.detail = Some(EventDetail::support(&actor).sessions(revoked));
                tx.append_event(&event)?;
                Ok(revoked)
            })
            .await
    }

    /// Detach an identity linked by mistake; its sessions are revoked. If it was the last
    /// identity vouching for the user's unionid, the unionid is released, so the identity's
    /// next login makes or finds the user its own unionid belongs to (a new provisional user
    /// when WeChat tells none). A user's only identity cannot be unlinked: cancel instead.
    pub async fn unlink_identity(
        &self,
        user: UserId,
        appid: AppId,
        openid: OpenId,
        actor: ActorName,
    ) -> Result<(), DomainError> {
        let now = self.clock.now();
        self.store
            .transact(TxMode::Write, move |tx| {
                let user = unmerged_user(tx, &user)?;
                let identities = tx.identities(&user.id)?;
                if !identities.iter().any(|(a, o)| *a == appid && *o == openid) {
                    return Err(DomainError::IdentityNotFound);
                }
                if identities.len() == 1 {
                    return Err(DomainError::LastIdentity);
                }
                let revoked = tx.revoke_identity_sessions(&appid, &openid, now)?;
                tx.delete_identity(&appid, &openid)?;
                let origin = Origin::new(&appid, &openid, now);
                let mut event = origin.event(EventKind::IdentityUnlinked, &user.id, None);
                event.detail = Some(EventDetail::support(&actor).sessions(revoked));
                tx.append_event(&event)?;
                linking::release_if_unvouched(tx, origin, &user, &EventDetail::support(&actor))?;
                Ok(())
            })
            .await
    }

    /// Support merges `from` into `into` by the rules of a unionid merge: identities move with
    /// what they vouch for, so if only `from` holds a unionid, `into` holds it afterwards; two
    /// different unionids are a conflict.
    pub async fn merge(
        &self,
        into: UserId,
        from: UserId,
        actor: ActorName,
    ) -> Result<UserId, DomainError> {
        let now = self.clock.now();
        self.store
            .transact(TxMode::Write, move |tx| {
                let plan = check_merge(tx, &into, &from)?;
                let (appid, openid) = plan.first_identity;
                let origin = Origin::new(&appid, &openid, now);
                // Held before the unionid moves: its writes lock the users too, and in another
                // order than a racing unionid merge would.
                let held = linking::hold_pair(tx, &plan.from.id, &plan.into.id)?;
                if let Some(unionid) = &plan.unionid {
                    // The identities vouching for it move to `into` below, so it goes with
                    // them; released first: one user per unionid holds at every statement.
                    tx.release_unionid(&plan.from.id, now)?;
                    tx.set_unionid(&plan.into.id, unionid, now)?;
                    let mut event = origin.event(EventKind::UnionidLinked, &plan.into.id, None);
                    event.detail = Some(EventDetail::support(&actor));
                    tx.append_event(&event)?;
                }
                linking::merge(tx, origin, held, EventDetail::support(&actor))?;
                Ok(plan.into.id)
            })
            .await
    }

    /// What [`Accounts::merge`] of the same users would do now, computed by the same rules
    /// and refused for the same reasons, in a read-only transaction: nothing changes.
    pub async fn preview_merge(
        &self,
        into: UserId,
        from: UserId,
    ) -> Result<MergePlan, DomainError> {
        let now = self.clock.now();
        self.store
            .transact(TxMode::Read, move |tx| {
                let checked = check_merge(tx, &into, &from)?;
                // What `linking::merge` counts and moves, by its own functions.
                let sessions = tx.live_sessions(&checked.from.id, now)?;
                let phone = linking::phone_merge_outcome(tx, &checked.from.id, &checked.into.id)?;
                Ok(MergePlan {
                    into: checked.into,
                    from: checked.from,
                    identities: checked.identities,
                    sessions,
                    phone,
                    unionid: checked.unionid,
                })
            })
            .await
    }

    /// Undo a merge: the listed identities of `user` move to a new user or, with `into`, back
    /// to a user that was merged into `user`, which is restored. Sessions follow the identity
    /// they logged in through, the phone number the identity that verified it, and the
    /// unionid the identities vouching for it (when none of them stays).
    pub async fn split(
        &self,
        user: UserId,
        identities: Vec<(AppId, OpenId)>,
        into: Option<UserId>,
        actor: ActorName,
    ) -> Result<Split, DomainError> {
        let now = self.clock.now();
        let new_user_id = self.ids.new_user_id();
        self.store
            .transact(TxMode::Write, move |tx| {
                split(
                    tx,
                    SplitRequest {
                        user: &user,
                        moved: &identities,
                        into: into.as_ref(),
                        new_user_id: &new_user_id,
                        actor: &actor,
                        at: now,
                    },
                )
            })
            .await
    }

    /// What [`Accounts::split`] of the same identities would do now, computed by the same
    /// rules and refused for the same reasons, in a read-only transaction: nothing changes.
    pub async fn preview_split(
        &self,
        user: UserId,
        identities: Vec<(AppId, OpenId)>,
        into: Option<UserId>,
    ) -> Result<SplitPlan, DomainError> {
        self.store
            .transact(TxMode::Read, move |tx| {
                let checked = check_split(tx, &user, &identities)?;
                if let Some(into) = &into {
                    restorable(tx, into, &checked.source.id)?;
                }
                let unionid = match &checked.source.unionid {
                    None => UnionidSplit::None,
                    Some(unionid) => {
                        let vouching = tx.vouching_identities(&checked.source.id, unionid)?;
                        let count = |moving: bool| {
                            let n = vouching
                                .iter()
                                .filter(|v| checked.moved.contains(v) == moving)
                                .count();
                            u64::try_from(n).unwrap_or(u64::MAX)
                        };
                        unionid_follows(count(true), count(false))
                    }
                };
                let phone = split_phone_outcome(tx, &checked.source.id, &checked.moved)?;
                Ok(SplitPlan {
                    user: checked.source.id,
                    into: into.clone(),
                    identities: checked.moved,
                    remaining: checked.remaining,
                    unionid,
                    phone,
                })
            })
            .await
    }

    /// What a bearer token stands for; `None` for a malformed, unknown, expired or revoked
    /// token (a deleted user's tokens are revoked). A signed access token is active while its
    /// signature and lifetime hold and its session is live: exact, unlike offline checks.
    pub async fn introspect(&self, token: &str) -> Result<Option<Introspection>, DomainError> {
        let Ok(token) = SessionToken::parse(token) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let Some((token_hash, signed)) = access::session_of(&self.signer, &token, now) else {
            return Ok(None);
        };
        self.store
            .transact(TxMode::Read, move |tx| {
                let session = match linking::live_session(tx, &token_hash, now) {
                    Ok(session) => session,
                    Err(DomainError::InvalidToken) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let user = linking::resolve(tx, &session.user_id)?;
                let (iat, exp) = match signed {
                    Some(claims) => (claims.iat, claims.exp.min(session.expires_at)),
                    None => (session.created_at, session.expires_at),
                };
                Ok(Some(Introspection {
                    sub: user.id,
                    client_id: session.appid,
                    iat,
                    exp,
                    unionid_linked: user.unionid.is_some(),
                }))
            })
            .await
    }
}

/// What a support merge does: [`Accounts::preview_merge`] shows it, [`Accounts::merge`] runs
/// it.
#[derive(Debug, Clone, PartialEq)]
pub struct MergePlan {
    /// The user that stays.
    pub into: User,
    /// The user merged away.
    pub from: User,
    /// The identities that move from `from` to `into`.
    pub identities: Vec<(AppId, OpenId)>,
    /// The live sessions of `from` that act as `into` from then on.
    pub sessions: u64,
    /// What becomes of `from`'s phone number.
    pub phone: PhoneMerge,
    /// The unionid that moves from `from` to `into`, if one does.
    pub unionid: Option<UnionId>,
}

/// A support merge that its rules allow, before anything moves.
struct CheckedMerge {
    into: User,
    from: User,
    identities: Vec<(AppId, OpenId)>,
    first_identity: (AppId, OpenId),
    unionid: Option<UnionId>,
}

/// The rules of a support merge, read-only: who may be merged, which identities and which
/// unionid move. [`Accounts::merge`] and [`Accounts::preview_merge`] both start here.
fn check_merge(
    tx: &mut dyn StoreTx,
    into: &UserId,
    from: &UserId,
) -> Result<CheckedMerge, DomainError> {
    if into == from {
        return Err(DomainError::SameUser);
    }
    let into = unmerged_user(tx, into)?;
    let from = unmerged_user(tx, from)?;
    let identities = tx.identities(&from.id)?;
    let first_identity = identities.first().cloned().ok_or_else(|| {
        DomainError::from(crate::error::StoreError::Corrupt(format!(
            "user {} has no identity",
            from.id
        )))
    })?;
    let unionid = match (&from.unionid, &into.unionid) {
        (Some(a), Some(b)) if a != b => return Err(DomainError::UnionidConflict),
        (Some(a), None) => Some(a.clone()),
        _ => None,
    };
    Ok(CheckedMerge {
        into,
        from,
        identities,
        first_identity,
        unionid,
    })
}

/// A cancellation: sessions revoked, identities released (an `identity_unlinked` event each, so
/// that every identity's links and releases pair up in the log), the unionid released with the
/// last of them (`unionid_released`), the tombstone, `user_deleted`.
fn cancel(
    tx: &mut dyn StoreTx,
    origin: Origin<'_>,
    user: &User,
    detail: &EventDetail,
) -> Result<Cancelled, DomainError> {
    let sessions = tx.revoke_user_sessions(&user.id, origin.at)?;
    for (appid, openid) in tx.identities(&user.id)? {
        let released = Origin::new(&appid, &openid, origin.at);
        let mut event = released.event(EventKind::IdentityUnlinked, &user.id, None);
        event.detail = Some(detail.clone());
        tx.append_event(&event)?;
    }
    let identities = tx.delete_identities(&user.id)?;
    if user.unionid.is_some() {
        // The tombstone erases it.
        let mut event = origin.event(EventKind::UnionidReleased, &user.id, None);
        event.detail = Some(detail.clone());
        tx.append_event(&event)?;
    }
    tx.tombstone_user(&user.id, origin.at)?;
    let mut event = origin.event(EventKind::UserDeleted, &user.id, None);
    event.detail = Some(detail.clone().sessions(sessions).identities(identities));
    tx.append_event(&event)?;
    Ok(Cancelled {
        sessions,
        identities,
    })
}

/// What [`split`] is asked to do.
struct SplitRequest<'a> {
    user: &'a UserId,
    moved: &'a [(AppId, OpenId)],
    into: Option<&'a UserId>,
    new_user_id: &'a UserId,
    actor: &'a ActorName,
    at: UnixTime,
}

fn split(tx: &mut dyn StoreTx, request: SplitRequest<'_>) -> Result<Split, DomainError> {
    let SplitRequest {
        user,
        moved,
        into,
        new_user_id,
        actor,
        at,
    } = request;
    let CheckedSplit {
        source,
        moved,
        remaining: _,
    } = check_split(tx, user, moved)?;
    let (appid, openid) = moved
        .first()
        .cloned()
        .ok_or(DomainError::IdentityNotFound)?;
    let origin = Origin::new(&appid, &openid, at);
    // Users before identities, as merges and logins hold them.
    tx.hold_user(&source.id)?;
    let target = match into {
        Some(into) => {
            let restored = restorable(tx, into, &source.id)?;
            tx.restore_user(&restored.id, &source.id, at)?;
            restored.id
        }
        None => {
            let created = User {
                id: new_user_id.clone(),
                unionid: None,
                merged_into: None,
                created_at: at,
            };
            tx.insert_user(&created)?;
            let mut event = origin.event(EventKind::UserCreated, &created.id, None);
            event.detail = Some(EventDetail::support(actor));
            tx.append_event(&event)?;
            created.id
        }
    };
    let sessions = tx.split_sessions(&source.id, &target, &moved, at)?;
    for (appid, openid) in &moved {
        tx.move_identity(appid, openid, &target, at)?;
        // Unlinked from one user and linked to the other, so that every identity's links and
        // releases pair up in the log.
        let here = Origin { appid, openid, at };
        for (kind, user) in [
            (EventKind::IdentityUnlinked, &source.id),
            (EventKind::IdentityLinked, &target),
        ] {
            let mut event = here.event(kind, user, None);
            event.detail = Some(EventDetail::support(actor));
            tx.append_event(&event)?;
        }
    }
    let unionid = split_unionid(tx, origin, &source, &target, actor)?;
    let phone = split_phone(tx, &source.id, &target, &moved, at)?;
    let mut event = origin.event(EventKind::UserSplit, &target, Some(&source.id));
    event.detail = Some(
        EventDetail::support(actor)
            .identities(u64::try_from(moved.len()).unwrap_or(u64::MAX))
            .sessions(sessions)
            .unionid(unionid)
            .phone(phone),
    );
    tx.append_event(&event)?;
    Ok(Split {
        user: target,
        remaining: source.id,
    })
}

/// The unionid follows the identities vouching for it: it moves when none of them stays. When
/// some stay, it stays, and the moved ones vouch for nothing until their next login tells it
/// again (WeChat says they are the same person: such a login joins them to its holder again).
fn split_unionid(
    tx: &mut dyn StoreTx,
    origin: Origin<'_>,
    source: &User,
    target: &UserId,
    actor: &ActorName,
) -> Result<UnionidSplit, DomainError> {
    let Some(unionid) = &source.unionid else {
        return Ok(UnionidSplit::None);
    };
    let moved = tx.vouchers(target, unionid)?;
    let staying = if moved == 0 {
        0
    } else {
        tx.vouchers(&source.id, unionid)?
    };
    if unionid_follows(moved, staying) == UnionidSplit::Stayed {
        if moved > 0 {
            tx.drop_vouches(target, origin.at)?;
        }
        return Ok(UnionidSplit::Stayed);
    }
    // Released first: one user per unionid holds at every statement.
    tx.release_unionid(&source.id, origin.at)?;
    let mut event = origin.event(EventKind::UnionidReleased, &source.id, None);
    event.detail = Some(EventDetail::support(actor));
    tx.append_event(&event)?;
    tx.set_unionid(target, unionid, origin.at)?;
    let mut event = origin.event(EventKind::UnionidLinked, target, None);
    event.detail = Some(EventDetail::support(actor));
    tx.append_event(&event)?;
    Ok(UnionidSplit::Moved)
}

/// The phone number follows the identity that verified it.
fn split_phone(
    tx: &mut dyn StoreTx,
    source: &UserId,
    target: &UserId,
    moved: &[(AppId, OpenId)],
    at: UnixTime,
) -> Result<PhoneMerge, DomainError> {
    let outcome = split_phone_outcome(tx, source, moved)?;
    if outcome == PhoneMerge::Moved {
        tx.move_phone_number(source, target, at)?;
    }
    Ok(outcome)
}

/// Where a split sends the phone number: with the identity that verified it. Reads only.
fn split_phone_outcome(
    tx: &mut dyn StoreTx,
    source: &UserId,
    moved: &[(AppId, OpenId)],
) -> Result<PhoneMerge, DomainError> {
    if tx.phone_verified_at(source)?.is_none() {
        return Ok(PhoneMerge::None);
    }
    Ok(match tx.phone_verified_by(source)? {
        Some(verifier) if moved.contains(&verifier) => PhoneMerge::Moved,
        _ => PhoneMerge::Stayed,
    })
}

/// The rule of a split's unionid: it follows the identities vouching for it when none of
/// them stays (counts of vouching identities that move and that stay).
fn unionid_follows(moved: u64, staying: u64) -> UnionidSplit {
    if moved > 0 && staying == 0 {
        UnionidSplit::Moved
    } else {
        UnionidSplit::Stayed
    }
}

/// A split its rules allow, before anything moves.
struct CheckedSplit {
    source: User,
    /// Sorted, without duplicates, never empty.
    moved: Vec<(AppId, OpenId)>,
    remaining: Vec<(AppId, OpenId)>,
}

/// The rules of a split, read-only: the user exists and is not merged, it has every listed
/// identity, and one stays. [`Accounts::split`] and [`Accounts::preview_split`] start here.
fn check_split(
    tx: &mut dyn StoreTx,
    user: &UserId,
    moved: &[(AppId, OpenId)],
) -> Result<CheckedSplit, DomainError> {
    let source = unmerged_user(tx, user)?;
    let owned = tx.identities(&source.id)?;
    let mut moved: Vec<(AppId, OpenId)> = moved.to_vec();
    moved.sort();
    moved.dedup();
    if moved.is_empty() || moved.iter().any(|identity| !owned.contains(identity)) {
        return Err(DomainError::IdentityNotFound);
    }
    if moved.len() >= owned.len() {
        return Err(DomainError::LastIdentity);
    }
    let remaining = owned.into_iter().filter(|i| !moved.contains(i)).collect();
    Ok(CheckedSplit {
        source,
        moved,
        remaining,
    })
}

/// The user a split may restore: one merged into `source` (merges keep chains one hop long,
/// so a user merged into it through a chain points at it directly).
fn restorable(tx: &mut dyn StoreTx, into: &UserId, source: &UserId) -> Result<User, DomainError> {
    tx.user(into)?
        .filter(|u| u.merged_into.as_ref() == Some(source))
        .ok_or(DomainError::NotMergedHere)
}

/// What a split does: [`Accounts::preview_split`] shows it, [`Accounts::split`] runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPlan {
    /// The user that is split.
    pub user: UserId,
    /// The user restored (`into`), or `None` for a new user.
    pub into: Option<UserId>,
    /// The identities that move, with the sessions they logged in through.
    pub identities: Vec<(AppId, OpenId)>,
    /// The identities that stay.
    pub remaining: Vec<(AppId, OpenId)>,
    /// What becomes of the unionid.
    pub unionid: UnionidSplit,
    /// What becomes of the phone number (`moved` with the identity that verified it).
    pub phone: PhoneMerge,
}

/// The user support acts on: it must exist and not be merged into another.
fn unmerged_user(tx: &mut dyn StoreTx, id: &UserId) -> Result<User, DomainError> {
    let user = tx.user(id)?.ok_or(DomainError::UserNotFound)?;
    match user.merged_into {
        Some(into) => Err(DomainError::UserMerged(into)),
        None => Ok(user),
    }
}

/// The unmerged user support acts on, and the identity its events name: support's changes
/// have no app request behind them, so they name the user's first identity (every unmerged
/// user has one: the last cannot be unlinked).
fn support_target(tx: &mut dyn StoreTx, id: &UserId) -> Result<(User, AppId, OpenId), DomainError> {
    let user = unmerged_user(tx, id)?;
    let (appid, openid) = tx.identities(&user.id)?.into_iter().next().ok_or_else(|| {
        crate::error::StoreError::Corrupt(format!("user {} has no identity", user.id))
    })?;
    Ok((user, appid, openid))
}

#[cfg(test)]
mod tests;
