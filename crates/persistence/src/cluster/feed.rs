//! The event feed other teams follow, and webhook delivery reads: every event exactly once, in
//! one order that never changes, so a follower's cursor never moves past an event that has yet
//! to appear.
//!
//! Event ids come from a sequence, taken when a transaction inserts and not when it commits.
//! On PostgreSQL a transaction can take id 10, stay open, and commit after one that took id 11
//! was already read: a feed ordered by id would skip 10 for good. So the feed is not ordered by
//! id but by a position `seq` that an event gets only once it is committed: whoever reads the
//! feed first *places* the committed events that have none yet, numbering them in id order
//! after the highest position so far, in the same transaction as the read.
//!
//! Why this never skips: a position is only ever given to a committed event, and every position
//! given later is higher, so an event that commits late lands after the cursor of every
//! follower instead of behind it. Placements are serialised by a transaction-level advisory
//! lock, and each placement's statements run with a snapshot taken after the lock was granted,
//! so a placer sees every earlier placement (the unique index on `seq` would refuse a position
//! handed out twice anyway). A follower therefore always sees a prefix of the positions. Logins
//! never wait for the feed: they only insert, and an event is handed out by the first read
//! after its commit; readers wait only for a placement in progress, a few milliseconds.
//!
//! The order follows causality: an event written by a transaction that began after another
//! committed has a higher id and is placed no earlier, so it comes later in the feed.
//!
//! SQLite has one writer at a time, so events commit in id order and `seq` is a generated
//! column equal to the id; placement is a no-op there and the feed reads by the id. Events
//! from before positions existed have their id as their position, so old cursors keep their
//! meaning.

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use wxlink_domain::{
    Actor, ActorName, Event, EventDetail, EventKind, PhoneMerge, StoreError, TxMode, UnionidSplit,
};

use crate::store::Store;
use crate::store::connection::DbConnection;
use crate::store::schema::events;
use crate::store::tx::{self, Tx};
use crate::store::url::Backend;

/// The most events one [`Store::events_after`] call returns.
pub const MAX_EVENTS_PAGE: u32 = 1000;

/// The most events one placement numbers, so that a long backlog is placed in steps.
const MAX_PLACED: i64 = 10_000;

/// How long a placer waits for the one before it.
const PLACEMENT_LOCK_WAIT_MS: u32 = 5_000;

/// The advisory lock key of placement ("wxfeed" in ASCII).
const PLACEMENT_LOCK: i64 = 0x7778_6665_6564;

/// The columns an [`EventRow`] reads, after the event's `position` (the feed's `seq`, or the
/// console's `id`). A macro: the tuple's type would list the columns a second time.
macro_rules! event_columns {
    ($position:expr) => {
        (
            $position,
            crate::store::schema::events::kind,
            crate::store::schema::events::user_id,
            crate::store::schema::events::other_user_id,
            crate::store::schema::events::appid,
            crate::store::schema::events::openid,
            crate::store::schema::events::at,
            crate::store::schema::events::detail,
        )
    };
}
pub(crate) use event_columns;

pub(crate) type EventRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    Option<String>,
);

impl Store {
    /// The event feed: events with a position greater than `cursor`, in feed order, at most
    /// `limit` (capped at [`MAX_EVENTS_PAGE`]). Start with cursor 0 and pass the last position
    /// seen. An event that commits late gets a position after every one handed out before (see
    /// the module docs), so a follower never has to re-read.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or an event row is invalid.
    pub async fn events_after(
        &self,
        cursor: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Event)>, StoreError> {
        let limit = i64::from(limit.min(MAX_EVENTS_PAGE));
        let mode = match self.backend() {
            Backend::Postgres => TxMode::Write,
            Backend::Sqlite => TxMode::Read,
        };
        self.run(mode, move |tx: &mut Tx<'_>| {
            place(tx)?;
            let columns = event_columns!(events::seq.assume_not_null());
            let rows = match &*tx.conn {
                // SQLite's position is the rowid (`seq` is generated from it): read by the
                // rowid, which needs no index of its own.
                DbConnection::Sqlite(_) => events::table
                    .filter(events::id.gt(cursor))
                    .order(events::id.asc())
                    .limit(limit)
                    .select(columns)
                    .load::<EventRow>(tx.conn),
                DbConnection::Pg(_) => events::table
                    .filter(events::seq.gt(cursor))
                    .order(events::seq.asc())
                    .limit(limit)
                    .select(columns)
                    .load::<EventRow>(tx.conn),
            };
            tx.db(rows)?.into_iter().map(event_from_row).collect()
        })
        .await
    }
}

/// Give the committed events without a position theirs (PostgreSQL; SQLite's are positioned
/// as they are written).
fn place(tx: &mut Tx<'_>) -> Result<(), StoreError> {
    let DbConnection::Pg(conn) = &mut *tx.conn else {
        return Ok(());
    };
    // Under SERIALIZABLE the snapshot would be taken by the statement that waits for the lock,
    // before the previous placer committed. READ COMMITTED (allowed before the first query)
    // gives each later statement a snapshot taken after the lock was granted, and a placer
    // releases the lock only once its commit is visible. A placer that never finishes (a
    // connection left hanging) makes the others give up as unavailable instead of waiting on.
    let placed = conn.batch_execute(&format!(
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; \
         SET LOCAL lock_timeout = '{PLACEMENT_LOCK_WAIT_MS}ms'; \
         SELECT pg_advisory_xact_lock({PLACEMENT_LOCK}); \
         WITH top AS (SELECT COALESCE(MAX(seq), 0) AS seq FROM events), \
         next AS ( \
             SELECT id, row_number() OVER (ORDER BY id) AS n FROM events \
             WHERE seq IS NULL ORDER BY id LIMIT {MAX_PLACED}) \
         UPDATE events SET seq = top.seq + next.n FROM next, top WHERE events.id = next.id"
    ));
    tx.db(placed)
}

/// An event's detail as stored: a JSON object of the fields it has.
pub(crate) fn detail_json(detail: &EventDetail) -> String {
    let mut object = serde_json::Map::new();
    object.insert("by".into(), detail.by.as_str().into());
    if let Some(actor) = &detail.actor {
        object.insert("actor".into(), actor.as_str().into());
    }
    if let Some(unionid) = detail.unionid {
        object.insert("unionid".into(), unionid.as_str().into());
    }
    if let Some(phone) = detail.phone {
        object.insert("phone".into(), phone.as_str().into());
    }
    if let Some(n) = detail.sessions {
        object.insert("sessions".into(), n.into());
    }
    if let Some(n) = detail.identities {
        object.insert("identities".into(), n.into());
    }
    serde_json::Value::Object(object).to_string()
}

/// Inverse of [`detail_json`]; fields it does not know are ignored, so a newer node's detail
/// does not stop an older node's feed.
fn detail_from_json(seq: i64, text: &str) -> Result<EventDetail, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("event {seq} has an invalid detail"));
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| corrupt())?;
    let text_field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
    let count = |name: &str| value.get(name).and_then(serde_json::Value::as_u64);
    let phone = match text_field("phone") {
        Some(phone) => Some(PhoneMerge::parse(phone).ok_or_else(corrupt)?),
        None => None,
    };
    let actor = match text_field("actor") {
        Some(actor) => Some(ActorName::parse(actor).map_err(|_| corrupt())?),
        None => None,
    };
    let unionid = match text_field("unionid") {
        Some(unionid) => Some(UnionidSplit::parse(unionid).ok_or_else(corrupt)?),
        None => None,
    };
    Ok(EventDetail {
        by: text_field("by")
            .and_then(Actor::parse)
            .ok_or_else(corrupt)?,
        actor,
        unionid,
        phone,
        sessions: count("sessions"),
        identities: count("identities"),
    })
}

pub(crate) fn event_from_row(
    (seq, kind, user_id, other_user_id, appid, openid, at, detail): EventRow,
) -> Result<(i64, Event), StoreError> {
    let kind = EventKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("event {seq} has unknown kind {kind:?}")))?;
    Ok((
        seq,
        Event {
            kind,
            user_id: tx::parse_user_id(user_id)?,
            other_user_id: other_user_id.map(tx::parse_user_id).transpose()?,
            appid: tx::parse_appid(appid)?,
            openid: tx::parse_openid(openid)?,
            at,
            detail: detail
                .map(|text| detail_from_json(seq, &text))
                .transpose()?,
        },
    ))
}
