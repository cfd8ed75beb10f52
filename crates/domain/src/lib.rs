//! wxlink's identity-linking rules: one person, one [`UserId`], across every WeChat app of one
//! open platform account — even though WeChat tells the unionid only sometimes.
//!
//! The crate holds the entities, the use cases ([`Service`]) and the ports (traits) they need:
//! [`IdentityStore`] and its [`StoreTx`], [`WeChatSessions`], [`UserDataOpener`], [`Clock`] and
//! [`IdSource`]. It does no I/O and depends on no async runtime, database or HTTP library;
//! adapters in other crates implement the ports. With the `mock` feature, mockall mocks of the
//! ports (`MockStoreTx`, `MockWeChatSessions`, …) are exported for other crates' tests.
//!
//! # Example
//! ```
//! use wxlink_domain::{AppId, OpenId, UnionId};
//!
//! let app = AppId::parse("wx4f4bc4dec97d474b".to_string())?;
//! let openid = OpenId::parse("oGZUI0egBJY1zhBYw2KhdUfwVJJE".to_string())?;
//! let unionid: UnionId = "ocMvos6NjeKLIBqg5Mr9QjxrP1FA".parse()?;
//! assert_eq!(app.as_str(), "wx4f4bc4dec97d474b");
//! # let _ = (openid, unionid);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The linking rules
//! 1. A login with a unionid lands on the unionid's owner (created if none); a known identity
//!    whose provisional user lacks the unionid gets it, or is merged into its owner (rule 3).
//! 2. A login without a unionid lands on the identity's user, or on a new provisional user.
//! 3. When a provisional user learns a unionid that nobody owns, it becomes the owner; if another
//!    user owns it, the provisional user is merged into the owner: its identities move, its tokens
//!    act as the owner, and an event records the merge.
//! 4. One unionid is one user and one (appid, openid) is one identity: the store enforces it with
//!    constraints and transactions.
//! 5. Every creation, link and merge is recorded as an [`Event`].
//!
//! # The rest of an account's life
//! [`Accounts`] holds cancellation (the user's own, or support's), support's repairs (revoke
//! sessions, unlink an identity, merge two users by the same merge as rule 3, split a merge)
//! and token introspection; each is one transaction with its events. The user's own cancellation takes a
//! [`Presence`], which only [`Service::prove_presence`] makes from a fresh login code that WeChat
//! says is of the token's identity: a bearer token alone cannot cancel.
//!
//! # Vouching
//! 6. An identity vouches for the unionid WeChat told for it (at login or in its user data). A
//!    user holds a unionid only while one of its identities vouches for it: whatever removes
//!    identities (unlink, split, cancellation) releases the unionid with the last of them, and
//!    a merge or split moves identities with what they vouch for.

mod access;
mod accounts;
mod error;
mod ids;
mod linking;
mod model;
mod ports;
mod secrets;
mod service;

pub use access::{AccessGrant, AccessTokens, IssuedAccess, RefreshTokenRow, VerifiedAccess};
pub use accounts::{Accounts, Cancelled, Introspection, MergePlan, Presence, Split, SplitPlan};
pub use error::{DomainError, StoreError, UserDataError, WeChatError};
pub use ids::{Alphabet, AppId, Grammar, IdError, JsCode, OpenId, UnionId, UserId};
pub use model::{
    Actor, ActorName, AppKind, DecryptBudget, Event, EventDetail, EventKind, LoginOutcome,
    PhoneMerge, PhoneNumber, Reservation, Session, SpentBudget, UnionidSplit, UnixTime, User,
};
pub use ports::{
    Clock, EncryptedUserData, ExpectedWatermark, IdSource, IdentityStore, LoginRecord,
    LoginRequest, OpenedUserData, StoreTx, TxMode, UserDataOpener, WeChatSession, WeChatSessions,
};
#[cfg(test)]
pub use ports::{MockClock, MockIdSource, MockStoreTx, MockUserDataOpener, MockWeChatSessions};
pub use secrets::{MalformedToken, SessionKey, SessionToken, TokenHash};
pub use service::{
    CurrentUser, LoggedIn, Policy, Refreshed, Service, UserInfoLinked, UserInfoSubmission,
};
