//! What wxlink remembers: users, their app identities, sessions, and the events that changed them.

use crate::ids::{AppId, IdError, OpenId, UnionId, UserId};
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
    /// The user's unionid was released: the last identity vouching for it left (an unlink, a
    /// split, a cancellation).
    UnionidReleased,
    /// Support split identities off `other_user_id` onto `user_id` (a new user, or one that had
    /// been merged into `other_user_id` and is restored).
    UserSplit,
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
            EventKind::UnionidReleased => "unionid_released",
            EventKind::UserSplit => "user_split",
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
            EventKind::UnionidReleased,
            EventKind::UserSplit,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDetail {
    /// Who or what caused it.
    pub by: Actor,
    /// For support's changes: who in support did it (the internal API client's name, or
    /// `cli:` and the operator's).
    pub actor: Option<ActorName>,
    /// For a merge or a split: what became of the phone number.
    pub phone: Option<PhoneMerge>,
    /// For a merge: how many live sessions of the merged user act as the owner from now on;
    /// for a revocation, an unlink or a cancellation: how many sessions were revoked; for a
    /// split: how many live sessions moved with the identities.
    pub sessions: Option<u64>,
    /// For a cancellation: how many identities were released; for a split: how many moved.
    pub identities: Option<u64>,
    /// For a split: what became of the unionid.
    pub unionid: Option<UnionidSplit>,
}

impl EventDetail {
    /// A detail saying who caused the event, and nothing else yet.
    pub fn by(by: Actor) -> Self {
        Self {
            by,
            actor: None,
            phone: None,
            sessions: None,
            identities: None,
            unionid: None,
        }
    }

    /// A detail of a support action done by `actor`.
    pub fn support(actor: &ActorName) -> Self {
        Self {
            actor: Some(actor.clone()),
            ..Self::by(Actor::Support)
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

    /// With what a merge or split did with the phone number.
    #[must_use]
    pub fn phone(self, phone: PhoneMerge) -> Self {
        Self {
            phone: Some(phone),
            ..self
        }
    }

    /// With what a split did with the unionid.
    #[must_use]
    pub fn unionid(self, unionid: UnionidSplit) -> Self {
        Self {
            unionid: Some(unionid),
            ..self
        }
    }
}

/// Who in support did something: the internal API client's name, or `cli:` and the operator's
/// name. Recorded in events, so it is bounded: 1 to 64 characters, none of them a control
/// character or a line or paragraph separator, so it cannot forge lines in logs or feeds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActorName(String);

impl ActorName {
    /// The longest name kept.
    pub const MAX_CHARS: usize = 64;

    /// Check a name.
    ///
    /// # Errors
    /// [`IdError`] when it is empty, too long, or has a character that is not printable.
    pub fn parse(name: impl Into<String>) -> Result<Self, IdError> {
        let name = name.into();
        let kind = "actor name";
        if name.is_empty() {
            return Err(IdError::Empty { kind });
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(IdError::TooLong {
                kind,
                max: Self::MAX_CHARS,
            });
        }
        // Whitespace other than a plain space is refused too: tabs and odd spaces make names
        // that look alike.
        let printable = |c: char| {
            !c.is_control()
                && (c == ' ' || !c.is_whitespace())
                && c != '\u{2028}'
                && c != '\u{2029}'
        };
        if !name.chars().all(printable) {
            return Err(IdError::Malformed {
                kind,
                expected: "printable characters without control characters or line breaks",
            });
        }
        Ok(Self(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ActorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a split did with the user's unionid (rule: a user holds a unionid only while one of its
/// identities vouches for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnionidSplit {
    /// The user had none.
    None,
    /// Every identity vouching for it moved: the new (or restored) user holds it now.
    Moved,
    /// An identity that vouches for it stays: so does the unionid.
    Stayed,
}

impl UnionidSplit {
    /// The name used in storage and in the event feed.
    pub fn as_str(self) -> &'static str {
        match self {
            UnionidSplit::None => "none",
            UnionidSplit::Moved => "moved",
            UnionidSplit::Stayed => "stayed",
        }
    }

    /// Inverse of [`UnionidSplit::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [
            UnionidSplit::None,
            UnionidSplit::Moved,
            UnionidSplit::Stayed,
        ]
        .into_iter()
        .find(|u| u.as_str() == text)
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

/// What a merge (or a split) did with the phone number. The more recently verified number
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
    /// A split: the number stays with the user, whose identity verified it (or, for a number
    /// verified before wxlink recorded by which identity, whose identity may have).
    Stayed,
}

impl PhoneMerge {
    /// The name used in storage and in the event feed.
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneMerge::None => "none",
            PhoneMerge::Moved => "moved",
            PhoneMerge::ReplacedOwner => "replaced_owner",
            PhoneMerge::KeptOwner => "kept_owner",
            PhoneMerge::Stayed => "stayed",
        }
    }

    /// Inverse of [`PhoneMerge::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [
            PhoneMerge::None,
            PhoneMerge::Moved,
            PhoneMerge::ReplacedOwner,
            PhoneMerge::KeptOwner,
            PhoneMerge::Stayed,
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
