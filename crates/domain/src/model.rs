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

/// How many failed decryptions of user data are allowed before `user-info` is refused without
/// decrypting: an honest client needs one retry, an oracle attack needs thousands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecryptBudget {
    /// Per session (bearer token).
    pub per_session: u32,
    /// Per (appid, openid) identity and day, across its sessions: WeChat only says a new
    /// `wx.login` "may" rotate the session_key.
    pub per_identity_per_day: u32,
}

/// What reserving one failed decryption got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved: the data may be decrypted.
    Granted,
    /// The session's budget is spent; a new login starts a new one.
    SessionSpent,
    /// The identity's budget of the day is spent (nothing was reserved): no login helps until
    /// `until`, when its window starts again.
    IdentitySpent {
        /// When the identity's window starts again.
        until: UnixTime,
    },
}

impl Reservation {
    /// Whether the attempt was reserved.
    pub fn is_granted(self) -> bool {
        self == Reservation::Granted
    }
}

/// Which budget of failed decryptions a refused user-info spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpentBudget {
    /// The session's: the client logs in again for a new session.
    Session,
    /// The identity's daily one: logging in again cannot help.
    IdentityDay {
        /// Seconds until the identity's window starts again (at least 1).
        retry_after_secs: u64,
    },
}

impl std::fmt::Display for SpentBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpentBudget::Session => f.write_str(
                "too many failed attempts to open user data on this session; call wx.login and log in again",
            ),
            SpentBudget::IdentityDay { retry_after_secs } => write!(
                f,
                "this WeChat user's daily budget of failed attempts to open user data is spent; \
                 logging in again does not help: retry in {retry_after_secs} s"
            ),
        }
    }
}

impl Default for DecryptBudget {
    fn default() -> Self {
        Self {
            per_session: 5,
            per_identity_per_day: 20,
        }
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
    /// A user (`other_user_id`) was merged into another (`user_id`); the detail's `by` says
    /// whether a unionid or support did it.
    UsersMerged,
    /// The user cancelled the account (or support deleted it); the id stays as a tombstone.
    UserDeleted,
    /// Every live session of the user was revoked; the detail has the count.
    SessionsRevoked,
    /// The identity (`appid`, `openid`) was detached from the user.
    IdentityUnlinked,
}

impl EventKind {
    /// The name used in storage and in the event feed.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UserCreated => "user_created",
            EventKind::IdentityLinked => "identity_linked",
            EventKind::UnionidLinked => "unionid_linked",
            EventKind::UsersMerged => "users_merged",
            EventKind::UserDeleted => "user_deleted",
            EventKind::SessionsRevoked => "sessions_revoked",
            EventKind::IdentityUnlinked => "identity_unlinked",
        }
    }

    /// Inverse of [`EventKind::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [
            EventKind::UserCreated,
            EventKind::IdentityLinked,
            EventKind::UnionidLinked,
            EventKind::UsersMerged,
            EventKind::UserDeleted,
            EventKind::SessionsRevoked,
            EventKind::IdentityUnlinked,
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
    /// Facts of the event that are not columns (who caused it, what a merge moved, counts).
    pub detail: Option<EventDetail>,
}

/// Facts of an event beyond its columns, recorded in its `detail` for the teams downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDetail {
    /// Who or what caused it.
    pub by: Actor,
    /// For a merge: what became of the merged user's phone number.
    pub phone: Option<PhoneMerge>,
    /// For a merge: how many live sessions of the merged user act as the owner from now on;
    /// for a revocation, an unlink or a cancellation: how many sessions were revoked.
    pub sessions: Option<u64>,
    /// For a cancellation: how many identities were released.
    pub identities: Option<u64>,
}

impl EventDetail {
    /// A detail saying who caused the event, and nothing else yet.
    pub fn by(by: Actor) -> Self {
        Self {
            by,
            phone: None,
            sessions: None,
            identities: None,
        }
    }

    /// With a session count.
    #[must_use]
    pub fn sessions(self, n: u64) -> Self {
        Self {
            sessions: Some(n),
            ..self
        }
    }

    /// With an identity count.
    #[must_use]
    pub fn identities(self, n: u64) -> Self {
        Self {
            identities: Some(n),
            ..self
        }
    }

    /// With what a merge did with the phone number.
    #[must_use]
    pub fn phone(self, phone: PhoneMerge) -> Self {
        Self {
            phone: Some(phone),
            ..self
        }
    }
}

/// Who or what caused a change (an event's `by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A unionid that WeChat told (the linking rules).
    Unionid,
    /// The user, through their own token.
    User,
    /// Support staff, through the internal API or the command line.
    Support,
}

impl Actor {
    /// The name used in storage and in the event feed.
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Unionid => "unionid",
            Actor::User => "user",
            Actor::Support => "support",
        }
    }

    /// Inverse of [`Actor::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [Actor::Unionid, Actor::User, Actor::Support]
            .into_iter()
            .find(|a| a.as_str() == text)
    }
}

/// What a merge did with the merged user's phone number. The more recently verified number
/// wins: a person who verifies a number in a new app tells us the number they use now. On a tie
/// the owner's stays, since other teams already know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneMerge {
    /// The merged user had none.
    None,
    /// The owner had none and now has the merged user's.
    Moved,
    /// Both had one; the merged user's was verified later and replaced the owner's.
    ReplacedOwner,
    /// Both had one; the owner's was verified later (or at the same time) and stays, the merged
    /// user's is dropped.
    KeptOwner,
}

impl PhoneMerge {
    /// The name used in storage and in the event feed.
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneMerge::None => "none",
            PhoneMerge::Moved => "moved",
            PhoneMerge::ReplacedOwner => "replaced_owner",
            PhoneMerge::KeptOwner => "kept_owner",
        }
    }

    /// Inverse of [`PhoneMerge::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [
            PhoneMerge::None,
            PhoneMerge::Moved,
            PhoneMerge::ReplacedOwner,
            PhoneMerge::KeptOwner,
        ]
        .into_iter()
        .find(|p| p.as_str() == text)
    }
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

/// The kinds of WeChat app, and so how a user of each logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AppKind {
    /// A mini program: login codes go through code2Session.
    #[default]
    MiniProgram,
    /// An official account (web pages opened in WeChat): OAuth.
    OfficialAccount,
    /// A mobile app (Open Platform): OAuth.
    MobileApp,
    /// A website (QR login): OAuth.
    Website,
}

impl AppKind {
    /// Every kind.
    pub const ALL: [AppKind; 4] = [
        AppKind::MiniProgram,
        AppKind::OfficialAccount,
        AppKind::MobileApp,
        AppKind::Website,
    ];

    /// The rule: only mini programs have a session_key (code2Session gives one, OAuth does
    /// not), so only their users can send encrypted user data or a phone-number code.
    pub const fn has_session_key(self) -> bool {
        matches!(self, AppKind::MiniProgram)
    }

    /// The snake_case name the configuration uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            AppKind::MiniProgram => "mini_program",
            AppKind::OfficialAccount => "official_account",
            AppKind::MobileApp => "mobile_app",
            AppKind::Website => "website",
        }
    }
}

impl std::str::FromStr for AppKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<String> = Self::ALL
                    .iter()
                    .map(|k| format!("`{}`", k.as_str()))
                    .collect();
                format!(
                    "unknown app kind `{name}`, expected one of {}",
                    names.join(", ")
                )
            })
    }
}
