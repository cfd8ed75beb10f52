//! What wxlink remembers: users, their app identities, sessions, and the events that changed them.

use crate::ids::{AppId, OpenId, UnionId, UserId};
use crate::secrets::TokenHash;

/// Seconds since the Unix epoch.
pub type UnixTime = i64;

/// A person as wxlink knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// wxlink's id for the person.
    pub id: UserId,
    /// Set once the person's unionid is known; one user per unionid.
    pub unionid: Option<UnionId>,
    /// Set when this (provisional) user was merged into the unionid's owner.
    pub merged_into: Option<UserId>,
    /// When the user was created.
    pub created_at: UnixTime,
}

/// One login: the bearer token's hash, who it acts for and the WeChat session behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// SHA-256 of the bearer token.
    pub token_hash: TokenHash,
    /// The user the token was issued to (follow `merged_into` to find who it acts as now).
    pub user_id: UserId,
    /// The app the user logged in through.
    pub appid: AppId,
    /// The user's openid in that app.
    pub openid: OpenId,
    /// Whether the login has a session_key (only mini program logins do). The key itself is
    /// read with [`StoreTx::session_key`](crate::StoreTx::session_key), by the use cases that
    /// decrypt with it, so that the others work even when it cannot be unsealed.
    pub has_session_key: bool,
    /// When it was issued.
    pub created_at: UnixTime,
    /// When it stops working.
    pub expires_at: UnixTime,
    /// Set by logout.
    pub revoked: bool,
}

impl Session {
    /// Whether the token still works at `now`.
    pub fn is_live(&self, now: UnixTime) -> bool {
        !self.revoked && now < self.expires_at
    }
}

/// What happened to a user; recorded for the teams downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A user was created (provisional, or already owning a unionid).
    UserCreated,
    /// An (appid, openid) identity was attached to a user.
    IdentityLinked,
    /// A provisional user learned its unionid and became its owner.
    UnionidLinked,
    /// A provisional user (`other_user_id`) was merged into the unionid's owner (`user_id`).
    UsersMerged,
}

impl EventKind {
    /// The name used in storage and in the event feed.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UserCreated => "user_created",
            EventKind::IdentityLinked => "identity_linked",
            EventKind::UnionidLinked => "unionid_linked",
            EventKind::UsersMerged => "users_merged",
        }
    }

    /// Inverse of [`EventKind::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [
            EventKind::UserCreated,
            EventKind::IdentityLinked,
            EventKind::UnionidLinked,
            EventKind::UsersMerged,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The user it happened to (for a merge: the surviving owner).
    pub user_id: UserId,
    /// For a merge: the user that was merged away.
    pub other_user_id: Option<UserId>,
    /// The app whose request caused it.
    pub appid: AppId,
    /// The openid in that app.
    pub openid: OpenId,
    /// When.
    pub at: UnixTime,
}

/// A phone number WeChat verified for a user (getPhoneNumber). Personal data: `Debug` shows only
/// the last two digits.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    /// With the country code for numbers outside mainland China, e.g. `+1 650…` or `13800138000`.
    pub phone_number: String,
    /// Without the country code.
    pub pure_phone_number: String,
    /// The country code, e.g. `86`.
    pub country_code: String,
}

impl std::fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail: String = self.pure_phone_number.chars().rev().take(2).collect();
        let tail: String = tail.chars().rev().collect();
        write!(f, "PhoneNumber(+{} …{tail})", self.country_code)
    }
}

/// What a login did, for the operators' metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginOutcome {
    /// A new user was created, owning the unionid WeChat told.
    NewUser,
    /// A new provisional user was created (no unionid yet).
    Provisional,
    /// The identity was linked to the unionid's owner, or its user learned the unionid.
    Linked,
    /// The identity's provisional user was merged into the unionid's owner.
    Merged,
    /// A known identity logged in again; nothing changed.
    Returning,
}

impl LoginOutcome {
    /// A short lowercase name, e.g. for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::NewUser => "new",
            LoginOutcome::Provisional => "provisional",
            LoginOutcome::Linked => "linked",
            LoginOutcome::Merged => "merged",
            LoginOutcome::Returning => "returning",
        }
    }
}
