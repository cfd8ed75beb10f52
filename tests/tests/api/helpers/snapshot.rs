//! What the database holds, read directly (not through wxlink), and the invariants every
//! committed state must keep: the linking rules' "one person, one truth" as rows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use diesel::sql_types::{Nullable, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, SqliteConnection};

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct UserRow {
    /// `users.id`
    #[diesel(sql_type = Text)]
    pub id: String,
    /// `users.unionid`
    #[diesel(sql_type = Nullable<Text>)]
    pub unionid: Option<String>,
    /// `users.merged_into`
    #[diesel(sql_type = Nullable<Text>)]
    pub merged_into: Option<String>,
}

/// A row of `identities`.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct IdentityRow {
    /// `identities.appid`
    #[diesel(sql_type = Text)]
    pub appid: String,
    /// `identities.openid`
    #[diesel(sql_type = Text)]
    pub openid: String,
    /// `identities.user_id`
    #[diesel(sql_type = Text)]
    pub user_id: String,
}

/// A row of `sessions` (without the token hash and the sealed key).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct SessionRow {
    /// `sessions.user_id`
    #[diesel(sql_type = Text)]
    pub user_id: String,
    /// `sessions.appid`
    #[diesel(sql_type = Text)]
    pub appid: String,
    /// `sessions.openid`
    #[diesel(sql_type = Text)]
    pub openid: String,
}

/// A row of `events`.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct EventRow {
    /// `events.kind`
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// `events.user_id`
    #[diesel(sql_type = Text)]
    pub user_id: String,
    /// `events.other_user_id`
    #[diesel(sql_type = Nullable<Text>)]
    pub other_user_id: Option<String>,
    /// `events.appid`
    #[diesel(sql_type = Text)]
    pub appid: String,
    /// `events.openid`
    #[diesel(sql_type = Text)]
    pub openid: String,
}

/// Every user, identity, session and event of one database.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// `users`
    pub users: Vec<UserRow>,
    /// `identities`
    pub identities: Vec<IdentityRow>,
    /// `sessions`
    pub sessions: Vec<SessionRow>,
    /// `events`, in id order
    pub events: Vec<EventRow>,
}

macro_rules! read_all {
    ($conn:expr) => {
        Snapshot {
            users: diesel::sql_query("SELECT id, unionid, merged_into FROM users ORDER BY id")
                .load::<UserRow>($conn)
                .expect("read users"),
            identities: diesel::sql_query(
                "SELECT appid, openid, user_id FROM identities ORDER BY appid, openid",
            )
            .load::<IdentityRow>($conn)
            .expect("read identities"),
            sessions: diesel::sql_query("SELECT user_id, appid, openid FROM sessions")
                .load::<SessionRow>($conn)
                .expect("read sessions"),
            events: diesel::sql_query(
                "SELECT kind, user_id, other_user_id, appid, openid FROM events ORDER BY id",
            )
            .load::<EventRow>($conn)
            .expect("read events"),
        }
    };
}

impl Snapshot {
    /// Read everything from the database at `url` (`sqlite://PATH` or `postgres://…`), in one
    /// read transaction so that the tables agree with each other.
    pub fn load(url: &str) -> Self {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let mut conn =
                SqliteConnection::establish(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            diesel::sql_query("PRAGMA busy_timeout = 5000")
                .execute(&mut conn)
                .expect("set busy_timeout");
            conn.transaction(|conn| Ok::<_, diesel::result::Error>(read_all!(conn)))
                .expect("read the SQLite database")
        } else {
            let mut conn =
                PgConnection::establish(url).unwrap_or_else(|e| panic!("connect to {url}: {e}"));
            conn.build_transaction()
                .repeatable_read()
                .read_only()
                .run(|conn| Ok::<_, diesel::result::Error>(read_all!(conn)))
                .expect("read the PostgreSQL database")
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

    /// Every broken invariant, in words (empty when the state is consistent):
    /// one user per unionid; one identity per (appid, openid), owned by a user that exists and
    /// was not merged away; no user without an identity unless it was merged (a user is
    /// created with its first identity, in one transaction); every merged user merged into a
    /// live owner of a unionid, with exactly one `users_merged` event saying so, and no such
    /// event without its merge; exactly one `user_created` event per user and one
    /// `identity_linked` event per identity; every session and event naming a user that exists.
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
            match users.get(identity.user_id.as_str()) {
                None => found.push(format!(
                    "identity {key:?} belongs to {}, which does not exist",
                    identity.user_id
                )),
                Some(user) if user.merged_into.is_some() => found.push(format!(
                    "identity {key:?} is orphaned on {}, which was merged into {:?}",
                    user.id, user.merged_into
                )),
                Some(_) => {}
            }
            let linked = self
                .events
                .iter()
                .filter(|e| e.kind == "identity_linked" && e.appid == key.0 && e.openid == key.1)
                .count();
            if linked != 1 {
                found.push(format!(
                    "identity {key:?} has {linked} identity_linked events (expected 1)"
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
            let Some(into) = &user.merged_into else {
                if !with_identity.contains(user.id.as_str()) {
                    found.push(format!(
                        "user {} (unionid {:?}) owns no identity and was not merged: half-written",
                        user.id, user.unionid
                    ));
                }
                continue;
            };
            match users.get(into.as_str()) {
                None => found.push(format!("user {} merged into missing {into}", user.id)),
                Some(owner) if owner.merged_into.is_some() || owner.unionid.is_none() => found
                    .push(format!(
                        "user {} merged into {into}, which is not a live unionid owner: {owner:?}",
                        user.id
                    )),
                Some(_) => {}
            }
            let merges = self
                .events
                .iter()
                .filter(|e| {
                    e.kind == "users_merged"
                        && e.other_user_id.as_deref() == Some(user.id.as_str())
                        && e.user_id == *into
                })
                .count();
            if merges != 1 {
                found.push(format!(
                    "user {} merged into {into} has {merges} users_merged events (expected 1)",
                    user.id
                ));
            }
        }
        for event in self.events_of("users_merged") {
            let merged = event
                .other_user_id
                .as_deref()
                .and_then(|other| users.get(other))
                .and_then(|u| u.merged_into.as_deref());
            if merged != Some(event.user_id.as_str()) {
                found.push(format!(
                    "users_merged event {event:?} but the user is merged into {merged:?}"
                ));
            }
        }

        for session in &self.sessions {
            if !users.contains_key(session.user_id.as_str()) {
                found.push(format!(
                    "a session belongs to missing user {}",
                    session.user_id
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
