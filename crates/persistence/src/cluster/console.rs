//! What the support console's pages read besides the domain's port: users by phone or openid,
//! possible duplicates, a user with its sessions, merges and events. Adapter features, not
//! domain rules: the console's repairs run the domain's use cases.

use diesel::prelude::*;
use wxlink_domain::{
    AppId, Event, OpenId, StoreError, StoreTx as _, TxMode, UnionId, UnixTime, UserId,
};

use crate::cluster::admin::UserRecord;
use crate::store::Store;
use crate::store::schema::{events, identities, sessions, users};
use crate::store::tx::{self, Tx};

/// A user as the console shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleUser {
    /// The user, identities and phone number.
    pub record: UserRecord,
    /// Unix seconds; set for a cancelled account.
    pub deleted_at: Option<UnixTime>,
    /// Unix seconds: when WeChat verified the phone number.
    pub phone_verified_at: Option<UnixTime>,
    /// Live sessions per identity they logged in through (also those issued to users merged
    /// into this one).
    pub live_sessions: Vec<((AppId, OpenId), u64)>,
    /// The users merged into this one.
    pub merged_from: Vec<UserId>,
    /// Its identities that vouch for its unionid.
    pub vouching: Vec<(AppId, OpenId)>,
}

impl Store {
    /// The users (merged ones included) whose verified phone number is `digits` (without
    /// country code), found through the keyed hash under every key of the ring: no sealed
    /// number is opened but theirs.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn users_by_phone(&self, digits: &str) -> Result<Vec<UserRecord>, StoreError> {
        let digits = digits.to_owned();
        self.run(TxMode::Read, move |tx: &mut Tx<'_>| {
            let hashes: Vec<Vec<u8>> = tx
                .keyring
                .keys()
                .map(|key| tx::phone_digits_hash(key, &digits).to_vec())
                .collect();
            let ids = users::table
                .filter(users::phone_hash.eq_any(hashes))
                .filter(users::deleted_at.is_null())
                .order(users::created_at.desc())
                .select(users::id)
                .load::<String>(tx.conn);
            let ids = tx.db(ids)?;
            records(tx, ids)
        })
        .await
    }

    /// The users with an identity of this openid, in any app.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn users_by_openid(&self, openid: &OpenId) -> Result<Vec<UserRecord>, StoreError> {
        let openid = openid.clone();
        self.run(TxMode::Read, move |tx: &mut Tx<'_>| {
            let ids = identities::table
                .filter(identities::openid.eq(openid.as_str()))
                .order(identities::appid.asc())
                .select(identities::user_id)
                .load::<String>(tx.conn);
            let mut ids = tx.db(ids)?;
            ids.dedup();
            records(tx, ids)
        })
        .await
    }

    /// Possible duplicates: groups of users (not merged, not cancelled) that share a verified
    /// phone number, each group newest user first, the groups by their newest user, newest
    /// first; at most `limit` groups.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn possible_duplicates(
        &self,
        limit: u32,
    ) -> Result<Vec<Vec<UserRecord>>, StoreError> {
        self.run(TxMode::Read, move |tx: &mut Tx<'_>| {
            let live = users::table
                .filter(users::phone_hash.is_not_null())
                .filter(users::merged_into.is_null())
                .filter(users::deleted_at.is_null());
            let shared = live
                .group_by(users::phone_hash)
                .having(diesel::dsl::count_star().gt(1))
                .select((
                    users::phone_hash.assume_not_null(),
                    diesel::dsl::max(users::created_at),
                ))
                .load::<(Vec<u8>, Option<i64>)>(tx.conn);
            let mut shared = tx.db(shared)?;
            shared.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            shared.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            let mut groups = Vec::with_capacity(shared.len());
            for (hash, _) in shared {
                let ids = live
                    .filter(users::phone_hash.eq(hash))
                    .order((users::created_at.desc(), users::id.asc()))
                    .select(users::id)
                    .load::<String>(tx.conn);
                let ids = tx.db(ids)?;
                groups.push(records(tx, ids)?);
            }
            Ok(groups)
        })
        .await
    }

    /// A user as the console's page shows it, tombstones included.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn console_user(
        &self,
        id: &UserId,
        now: UnixTime,
    ) -> Result<Option<ConsoleUser>, StoreError> {
        let id = id.clone();
        self.run(TxMode::Read, move |tx: &mut Tx<'_>| {
            let row = users::table
                .filter(users::id.eq(id.as_str()))
                .select((
                    users::unionid,
                    users::merged_into,
                    users::created_at,
                    users::deleted_at,
                    users::phone_verified_at,
                ))
                .first::<(
                    Option<String>,
                    Option<String>,
                    i64,
                    Option<i64>,
                    Option<i64>,
                )>(tx.conn)
                .optional();
            let Some((unionid, merged_into, created_at, deleted_at, phone_verified_at)) =
                tx.db(row)?
            else {
                return Ok(None);
            };
            let user = wxlink_domain::User {
                id: id.clone(),
                unionid: unionid
                    .map(|u| {
                        UnionId::parse(u)
                            .map_err(|e| StoreError::Corrupt(format!("unionid of {id}: {e}")))
                    })
                    .transpose()?,
                merged_into: merged_into.map(tx::parse_user_id).transpose()?,
                created_at,
            };
            let Some(record) = crate::cluster::admin::with_identities(tx, Some(user))? else {
                return Ok(None);
            };
            let merged_from = users::table
                .filter(users::merged_into.eq(id.as_str()))
                .order(users::id.asc())
                .select(users::id)
                .load::<String>(tx.conn);
            let merged_from = tx
                .db(merged_from)?
                .into_iter()
                .map(tx::parse_user_id)
                .collect::<Result<Vec<_>, _>>()?;
            let mut owners = merged_from.iter().map(UserId::as_str).collect::<Vec<_>>();
            owners.push(id.as_str());
            let live = sessions::table
                .filter(sessions::user_id.eq_any(owners))
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(now))
                .group_by((sessions::appid, sessions::openid))
                .select((sessions::appid, sessions::openid, diesel::dsl::count_star()))
                .order((sessions::appid.asc(), sessions::openid.asc()))
                .load::<(String, String, i64)>(tx.conn);
            let live_sessions = tx
                .db(live)?
                .into_iter()
                .map(|(appid, openid, n)| {
                    Ok((
                        (tx::parse_appid(appid)?, tx::parse_openid(openid)?),
                        u64::try_from(n).unwrap_or(0),
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let vouching = match &record.user.unionid {
                Some(unionid) => tx.vouching_identities(&id, unionid)?,
                None => Vec::new(),
            };
            Ok(Some(ConsoleUser {
                vouching,
                record,
                deleted_at,
                phone_verified_at: phone_verified_at.filter(|_| deleted_at.is_none()),
                live_sessions,
                merged_from,
            }))
        })
        .await
    }

    /// The latest `limit` events that name `user` (as the user or as the other user), newest
    /// first, each with its id in the log.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or an event row is invalid.
    pub async fn events_of_user(
        &self,
        user: &UserId,
        limit: u32,
    ) -> Result<Vec<(i64, Event)>, StoreError> {
        let user = user.clone();
        self.run(TxMode::Read, move |tx: &mut Tx<'_>| {
            let rows = events::table
                .filter(
                    events::user_id
                        .eq(user.as_str())
                        .or(events::other_user_id.eq(user.as_str())),
                )
                .order(events::id.desc())
                .limit(i64::from(limit))
                .select(crate::cluster::feed::event_columns!(events::id))
                .load::<crate::cluster::feed::EventRow>(tx.conn);
            tx.db(rows)?
                .into_iter()
                .map(crate::cluster::feed::event_from_row)
                .collect()
        })
        .await
    }
}

/// Users by id as [`UserRecord`]s, in the order given; ids of missing users are skipped.
fn records(tx: &mut Tx<'_>, ids: Vec<String>) -> Result<Vec<UserRecord>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let id = tx::parse_user_id(id)?;
        let user = tx.user(&id)?;
        if let Some(record) = crate::cluster::admin::with_identities(tx, user)? {
            out.push(record);
        }
    }
    Ok(out)
}
