//! What the database holds, read directly (not through wxlink), and the invariants every
//! committed state must keep: the linking rules' "one person, one truth" as rows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

pub use wxlink_persistence::testing::{EventRow, IdentityRow, SessionRow, UserRow};

/// Every user, identity, session and event of one database.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// `users`, by id
    pub users: Vec<UserRow>,
    /// `identities`, by (appid, openid)
    pub identities: Vec<IdentityRow>,
    /// `sessions`
    pub sessions: Vec<SessionRow>,
    /// `events`, in id order
    pub events: Vec<EventRow>,
}

impl Snapshot {
    /// Read everything from a test's database, in one read transaction so that the tables
    /// agree with each other.
    pub fn load(database: &crate::database::TestDatabase) -> Self {
        let rows = wxlink_persistence::testing::read_rows(&database.target())
            .unwrap_or_else(|e| panic!("read the database: {e}"));
        Self {
            users: rows.users,
            identities: rows.identities,
            sessions: rows.sessions,
            events: rows.events,
        }
    }

    /// The user row of `id`.
    pub fn user(&self, id: &str) -> Option<&UserRow> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The user `id` acts as: itself, or the owner it was merged into.
    pub fn resolve<'a>(&'a self, id: &'a str) -> &'a str {
        let mut current = id;
        for _ in 0..=self.users.len() {
            match self.user(current).and_then(|u| u.merged_into.as_deref()) {
                Some(into) => current = into,
                None => return current,
            }
        }
        panic!("a merge cycle from {id}")
    }

    /// The users owning `unionid` (one, if the rules held).
    pub fn owners_of(&self, unionid: &str) -> Vec<&UserRow> {
        self.users
            .iter()
            .filter(|u| u.unionid.as_deref() == Some(unionid))
            .collect()
    }

    /// The users that were merged away.
    pub fn merged_users(&self) -> Vec<&UserRow> {
        self.users
            .iter()
            .filter(|u| u.merged_into.is_some())
            .collect()
    }

    /// The identity rows of (appid, openid) (one, if the rules held).
    pub fn identity_rows(&self, appid: &str, openid: &str) -> Vec<&IdentityRow> {
        self.identities
            .iter()
            .filter(|i| i.appid == appid && i.openid == openid)
            .collect()
    }

    /// The events of `kind`.
    pub fn events_of(&self, kind: &str) -> Vec<&EventRow> {
        self.events.iter().filter(|e| e.kind == kind).collect()
    }

    /// How often a split restored `user` after a merge (a `user_split` into it, once it had
    /// been merged).
    fn restorations(&self, user: &str) -> usize {
        let merged_before = |at: usize| {
            self.events[..at]
                .iter()
                .any(|e| e.kind == "users_merged" && e.other_user_id.as_deref() == Some(user))
        };
        self.events
            .iter()
            .enumerate()
            .filter(|(at, e)| e.kind == "user_split" && e.user_id == user && merged_before(*at))
            .count()
    }

    /// Every broken invariant, in words (empty when the state is consistent):
    /// one user per unionid; one identity per (appid, openid), owned by a user that exists and
    /// was neither merged away nor deleted; no user without an identity unless it was merged or
    /// deleted (a user is created with its first identity, in one transaction); every merged user
    /// merged into a user that was not merged itself (a unionid owner, unless support merged
    /// it), with exactly one `users_merged` event saying so, and no such event without its
    /// merge; a deleted user keeps no unionid and no user merged into it stays undeleted;
    /// exactly one `user_created` event per user, and per identity one `identity_linked` event
    /// more than `identity_unlinked` ones; every session and event naming a user that exists,
    /// and no live session acting as a deleted user; a user holds a unionid only while one of
    /// its identities vouches for it, and an identity vouches only for its user's unionid; a
    /// merge that a split undid (`user_split` into the merged user) no longer counts.
    pub fn violations(&self) -> Vec<String> {
        let mut found = Vec::new();
        let users: BTreeMap<&str, &UserRow> =
            self.users.iter().map(|u| (u.id.as_str(), u)).collect();

        let mut by_unionid: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for user in &self.users {
            if let Some(unionid) = &user.unionid {
                by_unionid.entry(unionid).or_default().push(&user.id);
            }
        }
        for (unionid, owners) in &by_unionid {
            if owners.len() > 1 {
                found.push(format!(
                    "unionid {unionid} has {} users: {owners:?}",
                    owners.len()
                ));
            }
        }

        let mut seen = BTreeSet::new();
        let mut with_identity = BTreeSet::new();
        for identity in &self.identities {
            let key = (identity.appid.as_str(), identity.openid.as_str());
            if !seen.insert(key) {
                found.push(format!("identity {key:?} appears twice"));
            }
            with_identity.insert(identity.user_id.as_str());
            if let Some(vouched) = &identity.unionid
                && users
                    .get(identity.user_id.as_str())
                    .is_some_and(|u| u.unionid.as_ref() != Some(vouched))
            {
                found.push(format!(
                    "identity {key:?} vouches for {vouched}, which its user {} does not hold",
                    identity.user_id
                ));
            }
            match users.get(identity.user_id.as_str()) {
                None => found.push(format!(
                    "identity {key:?} belongs to {}, which does not exist",
                    identity.user_id
                )),
                Some(user) if user.merged_into.is_some() => found.push(format!(
                    "identity {key:?} is orphaned on {}, which was merged into {:?}",
                    user.id, user.merged_into
                )),
                Some(user) if user.deleted_at.is_some() => found.push(format!(
                    "identity {key:?} is attached to {}, which was deleted",
                    user.id
                )),
                Some(_) => {}
            }
            let count = |kind: &str| {
                self.events
                    .iter()
                    .filter(|e| e.kind == kind && e.appid == key.0 && e.openid == key.1)
                    .count()
            };
            let (linked, unlinked) = (count("identity_linked"), count("identity_unlinked"));
            if linked != unlinked + 1 {
                found.push(format!(
                    "identity {key:?} has {linked} identity_linked and {unlinked} identity_unlinked events (expected one more link)"
                ));
            }
        }

        for user in &self.users {
            let created = self
                .events
                .iter()
                .filter(|e| e.kind == "user_created" && e.user_id == user.id)
                .count();
            if created != 1 {
                found.push(format!(
                    "user {} has {created} user_created events (expected 1)",
                    user.id
                ));
            }
            if user.deleted_at.is_some() && user.unionid.is_some() {
                found.push(format!("deleted user {} keeps its unionid", user.id));
            }
            if let Some(unionid) = &user.unionid
                && !self
                    .identities
                    .iter()
                    .any(|i| i.user_id == user.id && i.unionid.as_ref() == Some(unionid))
            {
                found.push(format!(
                    "user {} holds unionid {unionid} but none of its identities vouches for it",
                    user.id
                ));
            }
            let restorations = self.restorations(&user.id);
            let Some(into) = &user.merged_into else {
                if user.deleted_at.is_none() && !with_identity.contains(user.id.as_str()) {
                    found.push(format!(
                        "user {} (unionid {:?}) owns no identity and was not merged: half-written",
                        user.id, user.unionid
                    ));
                }
                continue;
            };
            let merge_events: Vec<&EventRow> = self
                .events
                .iter()
                .filter(|e| {
                    e.kind == "users_merged" && e.other_user_id.as_deref() == Some(user.id.as_str())
                })
                .collect();
            let by_support = merge_events
                .iter()
                .any(|e| e.detail.as_deref().is_some_and(|d| d.contains("support")));
            match users.get(into.as_str()) {
                None => found.push(format!("user {} merged into missing {into}", user.id)),
                Some(owner) if owner.merged_into.is_some() => found.push(format!(
                    "user {} merged into {into}, which was merged itself: {owner:?}",
                    user.id
                )),
                Some(owner) if owner.deleted_at.is_some() && user.deleted_at.is_none() => found
                    .push(format!(
                        "user {} merged into deleted {into} but is not deleted",
                        user.id
                    )),
                Some(owner)
                    if owner.deleted_at.is_none() && owner.unionid.is_none() && !by_support =>
                {
                    found.push(format!(
                        "user {} merged into {into}, which is not a unionid owner: {owner:?}",
                        user.id
                    ))
                }
                Some(_) => {}
            }
            // A later merge of the owner re-points this user, so the event's survivor resolves
            // to the user's owner.
            let matching = merge_events
                .iter()
                .filter(|e| self.resolve(&e.user_id) == into)
                .count();
            if merge_events.len() != restorations + 1 || matching == 0 {
                found.push(format!(
                    "user {} merged into {into} has {} users_merged events, {matching} resolving to it (expected 1)",
                    user.id,
                    merge_events.len()
                ));
            }
        }
        for event in self.events_of("users_merged") {
            // A merge that a split undid (the user restored as often as it was merged).
            if let Some(other) = event.other_user_id.as_deref()
                && users.get(other).is_some_and(|u| u.merged_into.is_none())
            {
                let merges = self
                    .events_of("users_merged")
                    .iter()
                    .filter(|e| e.other_user_id.as_deref() == Some(other))
                    .count();
                if merges == self.restorations(other) {
                    continue;
                }
            }
            let merged = event
                .other_user_id
                .as_deref()
                .and_then(|other| users.get(other))
                .and_then(|u| u.merged_into.as_deref());
            if merged != Some(self.resolve(&event.user_id)) {
                found.push(format!(
                    "users_merged event {event:?} but the user is merged into {merged:?}"
                ));
            }
        }

        let now = crate::now_unix();
        for session in &self.sessions {
            if !users.contains_key(session.user_id.as_str()) {
                found.push(format!(
                    "a session belongs to missing user {}",
                    session.user_id
                ));
                continue;
            }
            let live = session.revoked_at.is_none() && session.expires_at > now;
            let acts_as = self.resolve(&session.user_id);
            let deleted = users.get(acts_as).is_some_and(|u| u.deleted_at.is_some())
                || users
                    .get(session.user_id.as_str())
                    .is_some_and(|u| u.deleted_at.is_some());
            if live && deleted {
                found.push(format!(
                    "a live session of ({}, {}) acts as deleted user {acts_as}",
                    session.appid, session.openid
                ));
            }
        }
        for event in &self.events {
            let named = [Some(&event.user_id), event.other_user_id.as_ref()];
            for id in named.into_iter().flatten() {
                if !users.contains_key(id.as_str()) {
                    found.push(format!("event {event:?} names missing user {id}"));
                }
            }
        }
        found
    }

    /// Fail with every broken invariant and the whole state.
    #[track_caller]
    pub fn assert_consistent(&self, what: &str) {
        let violations = self.violations();
        if !violations.is_empty() {
            let mut text = String::new();
            for v in &violations {
                let _ = writeln!(text, "  - {v}");
            }
            panic!(
                "{what}: the database breaks {} invariant(s):\n{text}users: {:#?}\nidentities: {:#?}",
                violations.len(),
                self.users,
                self.identities
            );
        }
    }
}

/// Everything `database` holds, as bytes to search for what must not be stored in clear: the
/// SQLite files as they are on disk (with the WAL and journal), or every PostgreSQL table as
/// text.
pub fn stored_bytes(database: &crate::database::TestDatabase) -> Vec<u8> {
    let Some(path) = database.sqlite_path() else {
        return crate::database::dump(database.url()).into_bytes();
    };
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        if let Ok(bytes) = std::fs::read(&file) {
            all.extend(bytes);
        }
    }
    assert!(!all.is_empty(), "no SQLite files at {}", path.display());
    all
}
