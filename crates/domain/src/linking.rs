//! The linking rules as functions over one store transaction. They read what they need and
//! write the outcome; the store makes each call atomic and reruns it on conflict.

use crate::error::{DomainError, StoreError};
use crate::ids::{AppId, OpenId, UnionId, UserId};
use crate::model::{
    Actor, Event, EventDetail, EventKind, LoginOutcome, PhoneMerge, Session, UnixTime, User,
};
use crate::ports::{IdSource, StoreTx};
use crate::secrets::TokenHash;

/// Merges only ever point at a unionid owner, which is never merged itself, so chains are one
/// hop long; the bound guards against corrupt data looping forever.
const MAX_MERGE_HOPS: usize = 8;

/// Where an app request happened, for the events it causes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub appid: &'a AppId,
    pub openid: &'a OpenId,
    pub at: UnixTime,
}

impl<'a> Origin<'a> {
    pub(crate) fn new(appid: &'a AppId, openid: &'a OpenId, at: UnixTime) -> Self {
        Self { appid, openid, at }
    }

    /// A session's changes come from the identity it logged in through.
    pub(crate) fn of_session(session: &'a Session, at: UnixTime) -> Self {
        Self::new(&session.appid, &session.openid, at)
    }

    pub(crate) fn event(&self, kind: EventKind, user: &UserId, other: Option<&UserId>) -> Event {
        Event {
            kind,
            user_id: user.clone(),
            other_user_id: other.cloned(),
            appid: self.appid.clone(),
            openid: self.openid.clone(),
            at: self.at,
            detail: None,
        }
    }
}

/// The session of a token that still works: known, not revoked, not expired.
pub(crate) fn live_session(
    tx: &mut dyn StoreTx,
    token: &TokenHash,
    now: UnixTime,
) -> Result<Session, DomainError> {
    tx.session(token)?
        .filter(|s| s.is_live(now))
        .ok_or(DomainError::InvalidToken)
}

/// The live session of a token and the user it acts as now.
pub(crate) fn session_user(
    tx: &mut dyn StoreTx,
    token: &TokenHash,
    now: UnixTime,
) -> Result<(Session, User), DomainError> {
    let session = live_session(tx, token, now)?;
    let user = resolve(tx, &session.user_id)?;
    Ok((session, user))
}

/// The user `id` acts as now: itself, or the owner it was merged into.
pub(crate) fn resolve(tx: &mut dyn StoreTx, id: &UserId) -> Result<User, DomainError> {
    let mut current = id.clone();
    for _ in 0..MAX_MERGE_HOPS {
        let user = tx.user(&current)?.ok_or_else(|| {
            StoreError::Corrupt(format!("user {current} is referenced but missing"))
        })?;
        match &user.merged_into {
            Some(into) => current = into.clone(),
            None => return Ok(user),
        }
    }
    Err(StoreError::Corrupt(format!("merge chain from {id} is too long")).into())
}

/// Rules 1 and 2: the user an (appid, openid) login lands on, creating or linking as needed.
/// The identity vouches for the unionid WeChat told with the login (see [`release_if_unvouched`]).
pub(crate) fn login(
    tx: &mut dyn StoreTx,
    origin: Origin<'_>,
    unionid: Option<&UnionId>,
    ids: &dyn IdSource,
) -> Result<(User, LoginOutcome), DomainError> {
    let known = match tx.identity_owner(origin.appid, origin.openid)? {
        Some(owner) => {
            let user = resolve(tx, &owner)?;
            // Hold the user, then the identity, before deciding on what was read: each read sees
            // its own snapshot on PostgreSQL, so a split committing between the two reads would
            // show the identity where it was and its user without the unionid that left with it,
            // and the rules below would merge the user the identity just left. A split committed
            // since makes the hold of the identity fail and this login rerun.
            tx.hold_user(&user.id)?;
            tx.hold_identity(origin.appid, origin.openid, &user.id)?;
            Some(user)
        }
        None => None,
    };
    match (known, unionid) {
        (Some(user), None) => Ok((user, LoginOutcome::Returning)),
        (Some(user), Some(unionid)) => {
            let had_unionid = user.unionid.is_some();
            let (user, merged) = learn_unionid(tx, origin, user, unionid)?;
            tx.vouch(origin.appid, origin.openid, unionid, origin.at)?;
            let outcome = match (merged, had_unionid) {
                (true, _) => LoginOutcome::Merged,
                (false, true) => LoginOutcome::Returning,
                (false, false) => LoginOutcome::Linked,
            };
            Ok((user, outcome))
        }
        (None, unionid) => {
            let owner = match unionid {
                Some(u) => tx.user_by_unionid(u)?,
                None => None,
            };
            let (user, outcome) = match owner {
                Some(owner) => {
                    // A cancellation or merge of the owner committed since it was read makes
                    // this fail and the login rerun; one still running makes it wait.
                    tx.hold_user(&owner.id)?;
                    (owner, LoginOutcome::Linked)
                }
                None => {
                    let user = User {
                        // Minted here: only a new user needs one.
                        id: ids.new_user_id(),
                        unionid: unionid.cloned(),
                        merged_into: None,
                        created_at: origin.at,
                    };
                    tx.insert_user(&user)?;
                    tx.append_event(&origin.event(EventKind::UserCreated, &user.id, None))?;
                    let outcome = match user.unionid {
                        Some(_) => LoginOutcome::NewUser,
                        None => LoginOutcome::Provisional,
                    };
                    (user, outcome)
                }
            };
            tx.insert_identity(origin.appid, origin.openid, &user.id, origin.at)?;
            // The row is this transaction's own; held like a known one so that every login
            // holds its identity until its session is in.
            tx.hold_identity(origin.appid, origin.openid, &user.id)?;
            if let Some(unionid) = unionid {
                tx.vouch(origin.appid, origin.openid, unionid, origin.at)?;
            }
            tx.append_event(&origin.event(EventKind::IdentityLinked, &user.id, None))?;
            Ok((user, outcome))
        }
    }
}

/// Rule 3: `user` (already resolved) learns `unionid`. Returns the user it is now and whether
/// it was merged into another.
pub(crate) fn learn_unionid(
    tx: &mut dyn StoreTx,
    origin: Origin<'_>,
    user: User,
    unionid: &UnionId,
) -> Result<(User, bool), DomainError> {
    match &user.unionid {
        Some(existing) if existing == unionid => return Ok((user, false)),
        Some(_) => return Err(DomainError::UnionidConflict),
        None => {}
    }
    match tx.user_by_unionid(unionid)? {
        None => {
            tx.set_unionid(&user.id, unionid, origin.at)?;
            tx.append_event(&origin.event(EventKind::UnionidLinked, &user.id, None))?;
            Ok((
                User {
                    unionid: Some(unionid.clone()),
                    ..user
                },
                false,
            ))
        }
        Some(owner) => {
            let held = hold_pair(tx, &user.id, &owner.id)?;
            merge(tx, origin, held, EventDetail::by(Actor::Unionid))?;
            Ok((owner, true))
        }
    }
}

/// Two users held (see [`hold_pair`]) for a merge of `from` into `into`.
pub(crate) struct HeldPair {
    from: UserId,
    into: UserId,
}

/// Hold both users of a merge until the transaction ends, before anything of theirs is read
/// for the merge or written: below serializable isolation a phone number attached to either
/// meanwhile would be left on the merged user or overwritten by an older one. Always in id
/// order, so that two merges of the same users (a support merge racing a unionid merge) lock
/// them in the same order and cannot deadlock.
pub(crate) fn hold_pair(
    tx: &mut dyn StoreTx,
    from: &UserId,
    into: &UserId,
) -> Result<HeldPair, DomainError> {
    let (first, second) = if from < into {
        (from, into)
    } else {
        (into, from)
    };
    tx.hold_user(first)?;
    tx.hold_user(second)?;
    Ok(HeldPair {
        from: from.clone(),
        into: into.clone(),
    })
}

/// The one merge, for a unionid merge and a support merge alike: everything the person has
/// moves to `into` (identities, the phone number by the rule of [`PhoneMerge`]); `from` (and
/// whoever was merged into it) points at `into`, so its sessions act as `into`; one
/// `users_merged` event says by whom (`detail`) and what moved. Identities move with what they
/// vouch for. It takes the [`HeldPair`], so no merge runs on users it did not hold first.
pub(crate) fn merge(
    tx: &mut dyn StoreTx,
    origin: Origin<'_>,
    held: HeldPair,
    detail: EventDetail,
) -> Result<(), DomainError> {
    let HeldPair { from, into } = held;
    let (from, into) = (&from, &into);
    tx.move_identities(from, into, origin.at)?;
    let phone = merge_phone(tx, from, into, origin.at)?;
    let sessions = tx.live_sessions(from, origin.at)?;
    tx.mark_merged(from, into, origin.at)?;
    let event = Event {
        detail: Some(detail.phone(phone).sessions(sessions)),
        ..origin.event(EventKind::UsersMerged, into, Some(from))
    };
    tx.append_event(&event)?;
    Ok(())
}

/// Move the merged user's phone number to the owner by the rule of [`PhoneMerge`].
fn merge_phone(
    tx: &mut dyn StoreTx,
    from: &UserId,
    into: &UserId,
    at: UnixTime,
) -> Result<PhoneMerge, DomainError> {
    let outcome = phone_merge_outcome(tx, from, into)?;
    match outcome {
        PhoneMerge::None => {}
        PhoneMerge::KeptOwner => tx.clear_phone_number(from, at)?,
        _ => tx.move_phone_number(from, into, at)?,
    }
    Ok(outcome)
}

/// What a merge of `from` into `into` does with the phone numbers, by the rule of
/// [`PhoneMerge`]; reads only, so a preview shows what the merge will do.
pub(crate) fn phone_merge_outcome(
    tx: &mut dyn StoreTx,
    from: &UserId,
    into: &UserId,
) -> Result<PhoneMerge, DomainError> {
    let Some(theirs) = tx.phone_verified_at(from)? else {
        return Ok(PhoneMerge::None);
    };
    Ok(match tx.phone_verified_at(into)? {
        None => PhoneMerge::Moved,
        Some(owners) if theirs > owners => PhoneMerge::ReplacedOwner,
        Some(_) => PhoneMerge::KeptOwner,
    })
}

/// The rule of vouching: a user holds its unionid only while at least one of its identities
/// vouches for it (WeChat told that unionid for the identity). Called after identities left
/// `user` (an unlink, a split): if none vouches any more, the unionid is released and the
/// identity's next login with it makes or finds its true owner. Returns whether it released.
pub(crate) fn release_if_unvouched(
    tx: &mut dyn StoreTx,
    origin: Origin<'_>,
    user: &User,
    detail: &EventDetail,
) -> Result<bool, DomainError> {
    let Some(unionid) = &user.unionid else {
        return Ok(false);
    };
    if tx.vouchers(&user.id, unionid)? > 0 {
        return Ok(false);
    }
    tx.release_unionid(&user.id, origin.at)?;
    let event = Event {
        detail: Some(detail.clone()),
        ..origin.event(EventKind::UnionidReleased, &user.id, None)
    };
    tx.append_event(&event)?;
    Ok(true)
}
