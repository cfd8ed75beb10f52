//! The rest of an account's life, after linking: cancellation (账号注销), support's repairs
//! (revoke sessions, unlink an identity, merge two users) and token introspection.
//!
//! Each use case is one store transaction, like the linking rules, and writes one event. They
//! need no WeChat, so the command line runs them with just a store and a clock.

use std::sync::Arc;

use crate::access::{self, AccessTokens, Signer};
use crate::error::DomainError;
use crate::ids::{AppId, OpenId, UserId};
use crate::linking::{self, Origin};
use crate::model::{Actor, EventDetail, EventKind, UnixTime, User};
use crate::ports::{Clock, IdentityStore, StoreTx, TxMode};
use crate::secrets::SessionToken;

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

/// The account life-cycle use cases over a store and a clock. Cheap to share.
#[derive(Debug, Clone)]
pub struct Accounts<S, C> {
    store: S,
    clock: C,
    signer: Signer,
}

impl<S: IdentityStore, C: Clock> Accounts<S, C> {
    /// Wire the use cases to their ports.
    pub fn new(store: S, clock: C) -> Self {
        Self {
            store,
            clock,
            signer: None,
        }
    }

    /// Accept signed access tokens (JWTs) too, as [`crate::Service::with_access_tokens`].
    #[must_use]
    pub fn with_access_tokens(mut self, signer: Arc<dyn AccessTokens>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The user cancels their own account with their token (`DELETE /v1/me`).
    pub async fn cancel(&self, token: &SessionToken) -> Result<Cancelled, DomainError> {
        let now = self.clock.now();
        let token_hash = access::session_hash(&self.signer, token, now)?;
        self.store
            .transact(TxMode::Write, move |tx| {
                let session = linking::live_session(tx, &token_hash, now)?;
                let user = linking::resolve(tx, &session.user_id)?;
                let origin = Origin {
                    appid: &session.appid,
                    openid: &session.openid,
                    at: now,
                };
                cancel(tx, origin, &user, Actor::User)
            })
            .await
    }

    /// Support deletes an account, with the same effects as the user's cancellation.
    pub async fn delete_user(&self, user: UserId) -> Result<Cancelled, DomainError> {
        let now = self.clock.now();
        self.store
            .transact(TxMode::Write, move |tx| {
                let user = unmerged_user(tx, &user)?;
                let (appid, openid) = first_identity(tx, &user.id)?;
                let origin = Origin {
                    appid: &appid,
                    openid: &openid,
                    at: now,
                };
                cancel(tx, origin, &user, Actor::Support)
            })
            .await
    }

    /// Revoke every live session of a user (and of the users merged into it): a stolen token.
    pub async fn revoke_sessions(&self, user: UserId) -> Result<u64, DomainError> {
        let now = self.clock.now();
        self.store
            .transact(TxMode::Write, move |tx| {
                let user = unmerged_user(tx, &user)?;
                let (appid, openid) = first_identity(tx, &user.id)?;
                let origin = Origin {
                    appid: &appid,
                    openid: &openid,
                    at: now,
                };
                let revoked = tx.revoke_user_sessions(&user.id, now)?;
                let mut event = origin.event(EventKind::SessionsRevoked, &user.id, None);
                event.detail = Some(EventDetail::by(Actor::Support).sessions(revoked));
                tx.append_event(&event)?;
                Ok(revoked)
            })
            .await
    }

    /// Detach an identity linked by mistake; its sessions are revoked, and its next login makes
    /// a new provisional user. A user's only identity cannot be unlinked: cancel instead.
    pub async fn unlink_identity(
        &self,
        user: UserId,
        appid: AppId,
        openid: OpenId,
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
                let origin = Origin {
                    appid: &appid,
                    openid: &openid,
                    at: now,
                };
                let mut event = origin.event(EventKind::IdentityUnlinked, &user.id, None);
                event.detail = Some(EventDetail::by(Actor::Support).sessions(revoked));
                tx.append_event(&event)?;
                Ok(())
            })
            .await
    }

    /// Support merges `from` into `into` by the rules of a unionid merge. If only `from` has a
    /// unionid, `into` takes it; two different unionids are a conflict.
    pub async fn merge(&self, into: UserId, from: UserId) -> Result<UserId, DomainError> {
        let now = self.clock.now();
        self.store
            .transact(TxMode::Write, move |tx| {
                if into == from {
                    return Err(DomainError::SameUser);
                }
                let into = unmerged_user(tx, &into)?;
                let from = unmerged_user(tx, &from)?;
                let (appid, openid) = first_identity(tx, &from.id)?;
                let origin = Origin {
                    appid: &appid,
                    openid: &openid,
                    at: now,
                };
                if let (Some(a), Some(b)) = (&from.unionid, &into.unionid)
                    && a != b
                {
                    return Err(DomainError::UnionidConflict);
                }
                // Held before the unionid moves: its writes lock the users too, and in another
                // order than a racing unionid merge would.
                let held = linking::hold_pair(tx, &from.id, &into.id)?;
                if let (Some(unionid), None) = (&from.unionid, &into.unionid) {
                    // Released first: one user per unionid holds at every statement.
                    tx.release_unionid(&from.id, now)?;
                    tx.set_unionid(&into.id, unionid, now)?;
                    tx.append_event(&origin.event(EventKind::UnionidLinked, &into.id, None))?;
                }
                linking::merge(tx, origin, held, Actor::Support)?;
                Ok(into.id)
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

/// A cancellation: sessions revoked, identities released (an `identity_unlinked` event each, so
/// that every identity's links and releases pair up in the log), the tombstone, `user_deleted`.
fn cancel(
    tx: &mut dyn StoreTx,
    origin: Origin<'_>,
    user: &User,
    by: Actor,
) -> Result<Cancelled, DomainError> {
    let sessions = tx.revoke_user_sessions(&user.id, origin.at)?;
    for (appid, openid) in tx.identities(&user.id)? {
        let released = Origin {
            appid: &appid,
            openid: &openid,
            at: origin.at,
        };
        let mut event = released.event(EventKind::IdentityUnlinked, &user.id, None);
        event.detail = Some(EventDetail::by(by));
        tx.append_event(&event)?;
    }
    let identities = tx.delete_identities(&user.id)?;
    tx.tombstone_user(&user.id, origin.at)?;
    let mut event = origin.event(EventKind::UserDeleted, &user.id, None);
    event.detail = Some(
        EventDetail::by(by)
            .sessions(sessions)
            .identities(identities),
    );
    tx.append_event(&event)?;
    Ok(Cancelled {
        sessions,
        identities,
    })
}

/// The user support acts on: it must exist and not be merged into another.
fn unmerged_user(tx: &mut dyn StoreTx, id: &UserId) -> Result<User, DomainError> {
    let user = tx.user(id)?.ok_or(DomainError::UserNotFound)?;
    match user.merged_into {
        Some(into) => Err(DomainError::UserMerged(into)),
        None => Ok(user),
    }
}

/// Support's changes have no app request behind them; their events name the user's first
/// identity (every unmerged user has one: the last cannot be unlinked).
fn first_identity(tx: &mut dyn StoreTx, user: &UserId) -> Result<(AppId, OpenId), DomainError> {
    tx.identities(user)?.into_iter().next().ok_or_else(|| {
        crate::error::StoreError::Corrupt(format!("user {user} has no identity")).into()
    })
}

#[cfg(test)]
mod tests;
