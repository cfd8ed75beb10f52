//! The domain's [`StoreTx`] as plain diesel queries.

use diesel::prelude::*;
use wxlink_domain::{
    AppId, DecryptBudget, Event, OpenId, PhoneNumber, RefreshTokenRow, Reservation, Session,
    SessionKey, StoreError, StoreTx, TokenHash, TxMode, UnionId, UnixTime, User, UserId,
};

use super::rows::{PhoneRow, SessionRow, USER_COLUMNS, UserRow, user_from_row};
use super::{Tx, open_key, open_phone, parse_appid, parse_openid, parse_user_id, token_hash};
use crate::cluster::feed;
use crate::store::connection::DbConnection;
use crate::store::schema::{events, identities, refresh_tokens, sessions, users};

impl StoreTx for Tx<'_> {
    fn identity_owner(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Option<UserId>, StoreError> {
        let owner = identities::table
            .filter(identities::appid.eq(appid.as_str()))
            .filter(identities::openid.eq(openid.as_str()))
            .select(identities::user_id)
            .get_result::<String>(self.conn)
            .optional();
        self.db(owner)?.map(parse_user_id).transpose()
    }

    fn user(&mut self, id: &UserId) -> Result<Option<User>, StoreError> {
        let row = users::table
            .filter(users::id.eq(id.as_str()))
            .filter(users::deleted_at.is_null())
            .select(USER_COLUMNS)
            .get_result::<UserRow>(self.conn)
            .optional();
        match self.db(row)? {
            Some(row) => user_from_row(row).map(Some),
            // Below serializable isolation an identity read a statement earlier can point at a
            // user that a cancellation has made a tombstone since: a race, run it again.
            None if self.mode == TxMode::WriteGuarded => {
                Err(self.unchanged(id, format!("user {id} is referenced but missing")))
            }
            None => Ok(None),
        }
    }

    fn user_by_unionid(&mut self, unionid: &UnionId) -> Result<Option<User>, StoreError> {
        let row = users::table
            .filter(users::unionid.eq(unionid.as_str()))
            .select(USER_COLUMNS)
            .get_result::<UserRow>(self.conn)
            .optional();
        self.db(row)?.map(user_from_row).transpose()
    }

    fn insert_user(&mut self, user: &User) -> Result<(), StoreError> {
        self.writing()?;
        let inserted = diesel::insert_into(users::table)
            .values((
                users::id.eq(user.id.as_str()),
                users::unionid.eq(user.unionid.as_ref().map(UnionId::as_str)),
                users::merged_into.eq(user.merged_into.as_ref().map(UserId::as_str)),
                users::created_at.eq(user.created_at),
                users::updated_at.eq(user.created_at),
            ))
            .execute(self.conn);
        self.db(inserted).map(drop)
    }

    fn set_unionid(
        &mut self,
        user: &UserId,
        unionid: &UnionId,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        self.writing()?;
        let updated = diesel::update(
            users::table
                .filter(users::id.eq(user.as_str()))
                .filter(users::unionid.is_null())
                .filter(users::merged_into.is_null()),
        )
        .set((
            users::unionid.eq(unionid.as_str()),
            users::updated_at.eq(at),
        ))
        .execute(self.conn);
        self.guarded(updated, user, || {
            format!("user {user} does not exist, already has a unionid or is merged")
        })
    }

    fn insert_identity(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
        user: &UserId,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        self.writing()?;
        let inserted = diesel::insert_into(identities::table)
            .values((
                identities::appid.eq(appid.as_str()),
                identities::openid.eq(openid.as_str()),
                identities::user_id.eq(user.as_str()),
                identities::created_at.eq(at),
                identities::updated_at.eq(at),
            ))
            .execute(self.conn);
        self.db(inserted).map(drop)
    }

    fn move_identities(
        &mut self,
        from: &UserId,
        into: &UserId,
        at: UnixTime,
    ) -> Result<u64, StoreError> {
        self.writing()?;
        let moved = diesel::update(identities::table.filter(identities::user_id.eq(from.as_str())))
            .set((
                identities::user_id.eq(into.as_str()),
                identities::updated_at.eq(at),
            ))
            .execute(self.conn);
        let moved = self.db(moved)?;
        Ok(u64::try_from(moved).unwrap_or(u64::MAX))
    }

    fn mark_merged(
        &mut self,
        from: &UserId,
        into: &UserId,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        self.writing()?;
        // Users merged into `from` earlier follow it, so merge chains stay one hop long.
        let earlier = diesel::update(users::table.filter(users::merged_into.eq(from.as_str())))
            .set((
                users::merged_into.eq(into.as_str()),
                users::updated_at.eq(at),
            ))
            .execute(self.conn);
        self.db(earlier)?;
        // Only a provisional, unmerged user is merged: the guard is what makes a concurrent
        // merge or unionid of the same user a conflict in a `WriteGuarded` transaction.
        let updated = diesel::update(
            users::table
                .filter(users::id.eq(from.as_str()))
                .filter(users::unionid.is_null())
                .filter(users::merged_into.is_null()),
        )
        .set((
            users::merged_into.eq(into.as_str()),
            users::updated_at.eq(at),
        ))
        .execute(self.conn);
        self.guarded(updated, from, || {
            format!("cannot merge user {from}: it does not exist, has a unionid or is merged")
        })
    }

    fn identities(&mut self, user: &UserId) -> Result<Vec<(AppId, OpenId)>, StoreError> {
        let rows = identities::table
            .filter(identities::user_id.eq(user.as_str()))
            .order((identities::appid.asc(), identities::openid.asc()))
            .select((identities::appid, identities::openid))
            .load::<(String, String)>(self.conn);
        self.db(rows)?
            .into_iter()
            .map(|(appid, openid)| Ok((parse_appid(appid)?, parse_openid(openid)?)))
            .collect()
    }

    fn hold_user(&mut self, user: &UserId) -> Result<(), StoreError> {
        // SQLite has one writer: no transaction can change the user in between.
        if !matches!(&*self.conn, DbConnection::Pg(_)) {
            return Ok(());
        }
        // A no-op update takes the row's lock and makes a new version of it: a cancellation or
        // merge committed first leaves nothing to match (the login reruns and sees it), one
        // still running makes this wait for it, and a serializable one that comes later fails
        // on the concurrent update and reruns, seeing this transaction's session.
        let held = diesel::update(
            users::table
                .filter(users::id.eq(user.as_str()))
                .filter(users::deleted_at.is_null())
                .filter(users::merged_into.is_null()),
        )
        .set(users::updated_at.eq(users::updated_at))
        .execute(self.conn);
        self.guarded(held, user, || {
            format!("cannot hold user {user}: it does not exist, is deleted or is merged")
        })
    }

    fn insert_session(
        &mut self,
        session: &Session,
        key: &Option<SessionKey>,
    ) -> Result<(), StoreError> {
        self.writing()?;
        let sealed = key
            .as_ref()
            .map(|key| self.seal_key(&session.token_hash, key));
        let inserted = diesel::insert_into(sessions::table)
            .values((
                sessions::token_hash.eq(session.token_hash.as_bytes().as_slice()),
                sessions::user_id.eq(session.user_id.as_str()),
                sessions::appid.eq(session.appid.as_str()),
                sessions::openid.eq(session.openid.as_str()),
                sessions::session_key.eq(sealed),
                sessions::created_at.eq(session.created_at),
                sessions::expires_at.eq(session.expires_at),
                sessions::revoked_at.eq(session.revoked.then_some(session.created_at)),
            ))
            .execute(self.conn);
        self.db(inserted).map(drop)
    }

    fn session(&mut self, token: &TokenHash) -> Result<Option<Session>, StoreError> {
        // Found by its selector (an issued token's time-ordered session id), the rest compared
        // in constant time (`TokenHash::matches`): the index walk does not time the secret.
        let (mut low, mut high) = ([0x00u8; 32], [0xffu8; 32]);
        low[..16].copy_from_slice(&token.selector());
        high[..16].copy_from_slice(&token.selector());
        let rows = sessions::table
            .filter(sessions::token_hash.between(low.as_slice(), high.as_slice()))
            .select((
                sessions::token_hash,
                sessions::user_id,
                sessions::appid,
                sessions::openid,
                sessions::session_key.is_not_null(),
                sessions::created_at,
                sessions::expires_at,
                sessions::revoked_at,
            ))
            .load::<SessionRow>(self.conn);
        let mut found = None;
        // Every row of the selector is compared (there is one but for a 74-bit coincidence).
        for row in self.db(rows)? {
            let stored = token_hash(&row.0)?;
            if token.matches(&stored) {
                found = Some((stored, row));
            }
        }
        let Some((
            stored,
            (_, user_id, appid, openid, has_key, created_at, expires_at, revoked_at),
        )) = found
        else {
            return Ok(None);
        };
        Ok(Some(Session {
            token_hash: stored,
            has_session_key: has_key,
            user_id: parse_user_id(user_id)?,
            appid: parse_appid(appid)?,
            openid: parse_openid(openid)?,
            created_at,
            expires_at,
            revoked: revoked_at.is_some(),
        }))
    }

    fn session_key(&mut self, token: &TokenHash) -> Result<Option<SessionKey>, StoreError> {
        let sealed = sessions::table
            .filter(sessions::token_hash.eq(token.as_bytes().as_slice()))
            .select(sessions::session_key)
            .get_result::<Option<Vec<u8>>>(self.conn)
            .optional();
        self.db(sealed)?
            .flatten()
            .map(|sealed| open_key(self.keyring, token, &sealed))
            .transpose()
    }

    fn replace_session_key(
        &mut self,
        token: &TokenHash,
        key: &SessionKey,
    ) -> Result<(), StoreError> {
        self.writing()?;
        let sealed = self.seal_key(token, key);
        let updated = diesel::update(
            sessions::table.filter(sessions::token_hash.eq(token.as_bytes().as_slice())),
        )
        .set(sessions::session_key.eq(Some(sealed)))
        .execute(self.conn);
        match self.db(updated)? {
            0 => Err(StoreError::Corrupt(format!(
                "cannot replace the key of session {token:?}: it does not exist"
            ))),
            _ => Ok(()),
        }
    }

    fn reserve_decrypt_attempt(
        &mut self,
        token: &TokenHash,
        appid: &AppId,
        openid: &OpenId,
        now: UnixTime,
        budget: DecryptBudget,
    ) -> Result<Reservation, StoreError> {
        self.reserve_budgets(token, appid, openid, now, budget)
    }

    fn release_decrypt_attempt(
        &mut self,
        token: &TokenHash,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<(), StoreError> {
        self.release_budgets(token, appid, openid)
    }

    fn revoke_session(&mut self, token: &TokenHash, at: UnixTime) -> Result<(), StoreError> {
        self.writing()?;
        let this = sessions::token_hash.eq(token.as_bytes().as_slice());
        // The first revocation's time is the one kept.
        let updated = diesel::update(
            sessions::table
                .filter(this)
                .filter(sessions::revoked_at.is_null()),
        )
        .set(sessions::revoked_at.eq(at))
        .execute(self.conn);
        if self.db(updated)? > 0 {
            return Ok(());
        }
        let exists = sessions::table
            .filter(sessions::token_hash.eq(token.as_bytes().as_slice()))
            .select(sessions::created_at)
            .get_result::<i64>(self.conn)
            .optional();
        match self.db(exists)? {
            Some(_) => Ok(()),
            None => Err(StoreError::Corrupt(format!(
                "cannot revoke session {token:?}: it does not exist"
            ))),
        }
    }

    fn set_phone_number(
        &mut self,
        user: &UserId,
        phone: &PhoneNumber,
        appid: &AppId,
        openid: &OpenId,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        self.writing()?;
        self.store_phone(
            user,
            Some((phone, at, Some((appid.as_str(), openid.as_str())))),
            at,
        )
    }

    fn phone_verified_by(&mut self, user: &UserId) -> Result<Option<(AppId, OpenId)>, StoreError> {
        let row = users::table
            .filter(users::id.eq(user.as_str()))
            .filter(users::phone_number.is_not_null())
            .select((users::phone_appid, users::phone_openid))
            .get_result::<(Option<String>, Option<String>)>(self.conn)
            .optional();
        match self.db(row)? {
            Some((Some(appid), Some(openid))) => {
                Ok(Some((parse_appid(appid)?, parse_openid(openid)?)))
            }
            _ => Ok(None),
        }
    }

    fn phone_verified_at(&mut self, user: &UserId) -> Result<Option<UnixTime>, StoreError> {
        let row = users::table
            .filter(users::id.eq(user.as_str()))
            .filter(users::phone_number.is_not_null())
            .select(users::phone_verified_at)
            .get_result::<Option<i64>>(self.conn)
            .optional();
        // A number without a time predates the column's backfill: the oldest possible.
        Ok(self.db(row)?.map(|at| at.unwrap_or(0)))
    }

    fn move_phone_number(
        &mut self,
        from: &UserId,
        into: &UserId,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        self.writing()?;
        let row = users::table
            .filter(users::id.eq(from.as_str()))
            .select((
                users::phone_number,
                users::phone_verified_at,
                users::phone_appid,
                users::phone_openid,
            ))
            .get_result::<PhoneRow>(self.conn)
            .optional();
        let Some((Some(sealed), verified_at, by_appid, by_openid)) = self.db(row)? else {
            return Err(StoreError::Corrupt(format!(
                "cannot move the phone number of user {from}: it has none"
            )));
        };
        // Sealed numbers are bound to their user id, so moving one is opening and sealing again.
        let phone = open_phone(self.keyring, from, &sealed)?;
        let by = by_appid.as_deref().zip(by_openid.as_deref());
        self.store_phone(into, Some((&phone, verified_at.unwrap_or(0), by)), at)?;
        self.store_phone(from, None, at)
    }

    fn clear_phone_number(&mut self, user: &UserId, at: UnixTime) -> Result<(), StoreError> {
        self.writing()?;
        self.store_phone(user, None, at)
    }

    fn live_sessions(&mut self, user: &UserId, now: UnixTime) -> Result<u64, StoreError> {
        let count = sessions::table
            .filter(sessions::user_id.eq(user.as_str()))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .count()
            .get_result::<i64>(self.conn);
        Ok(u64::try_from(self.db(count)?).unwrap_or(0))
    }

    fn release_unionid(&mut self, user: &UserId, at: UnixTime) -> Result<(), StoreError> {
        self.writing()?;
        let updated = diesel::update(users::table.filter(users::id.eq(user.as_str())))
            .set((users::unionid.eq(None::<String>), users::updated_at.eq(at)))
            .execute(self.conn);
        match self.db(updated)? {
            0 => Err(StoreError::Corrupt(format!(
                "cannot release the unionid of user {user}: it does not exist"
            ))),
            _ => Ok(()),
        }
    }

    fn revoke_user_sessions(&mut self, user: &UserId, at: UnixTime) -> Result<u64, StoreError> {
        self.writing()?;
        let merged = users::table
            .filter(users::merged_into.eq(user.as_str()))
            .select(users::id);
        let revoked = diesel::update(
            sessions::table
                .filter(
                    sessions::user_id
                        .eq(user.as_str())
                        .or(sessions::user_id.eq_any(merged)),
                )
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(at)),
        )
        .set(sessions::revoked_at.eq(at))
        .execute(self.conn);
        let revoked = self.db(revoked)?;
        Ok(u64::try_from(revoked).unwrap_or(u64::MAX))
    }

    fn revoke_identity_sessions(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
        at: UnixTime,
    ) -> Result<u64, StoreError> {
        self.writing()?;
        let revoked = diesel::update(
            sessions::table
                .filter(sessions::appid.eq(appid.as_str()))
                .filter(sessions::openid.eq(openid.as_str()))
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(at)),
        )
        .set(sessions::revoked_at.eq(at))
        .execute(self.conn);
        let revoked = self.db(revoked)?;
        Ok(u64::try_from(revoked).unwrap_or(u64::MAX))
    }

    fn delete_identity(&mut self, appid: &AppId, openid: &OpenId) -> Result<(), StoreError> {
        self.writing()?;
        let deleted = diesel::delete(
            identities::table
                .filter(identities::appid.eq(appid.as_str()))
                .filter(identities::openid.eq(openid.as_str())),
        )
        .execute(self.conn);
        match self.db(deleted)? {
            0 => Err(StoreError::Corrupt(format!(
                "cannot delete identity ({appid}, {openid}): it does not exist"
            ))),
            _ => Ok(()),
        }
    }

    fn delete_identities(&mut self, user: &UserId) -> Result<u64, StoreError> {
        self.writing()?;
        let deleted =
            diesel::delete(identities::table.filter(identities::user_id.eq(user.as_str())))
                .execute(self.conn);
        let deleted = self.db(deleted)?;
        Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
    }

    fn tombstone_user(&mut self, user: &UserId, at: UnixTime) -> Result<(), StoreError> {
        self.writing()?;
        let ids = users::table
            .filter(
                users::id
                    .eq(user.as_str())
                    .or(users::merged_into.eq(user.as_str())),
            )
            .select(users::id)
            .load::<String>(self.conn);
        let ids = self.db(ids)?;
        if !ids.iter().any(|id| id == user.as_str()) {
            return Err(StoreError::Corrupt(format!(
                "cannot delete user {user}: it does not exist"
            )));
        }
        let keys = diesel::update(sessions::table.filter(sessions::user_id.eq_any(&ids)))
            .set(sessions::session_key.eq(None::<Vec<u8>>))
            .execute(self.conn);
        self.db(keys)?;
        let users = diesel::update(users::table.filter(users::id.eq_any(&ids)))
            .set((
                users::unionid.eq(None::<String>),
                users::phone_number.eq(None::<Vec<u8>>),
                users::phone_hash.eq(None::<Vec<u8>>),
                users::phone_appid.eq(None::<String>),
                users::phone_openid.eq(None::<String>),
                users::deleted_at.eq(at),
                users::updated_at.eq(at),
            ))
            .execute(self.conn);
        self.db(users).map(drop)
    }

    fn vouch(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
        unionid: &UnionId,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        self.writing()?;
        // Only a change is written: a returning login, which tells the same unionid every
        // time, takes no row lock for it. Read first: diesel prepares every UPDATE anew (it
        // caches no update statement), the SELECT once per connection. A login holds the
        // identity before it vouches and user-info runs serializable, so the identity cannot
        // change unseen between the read and the update.
        let told = identities::table
            .filter(identities::appid.eq(appid.as_str()))
            .filter(identities::openid.eq(openid.as_str()))
            .select(identities::unionid)
            .get_result::<Option<String>>(self.conn)
            .optional();
        if self.db(told)?.flatten().as_deref() == Some(unionid.as_str()) {
            return Ok(());
        }
        let updated = diesel::update(
            identities::table
                .filter(identities::appid.eq(appid.as_str()))
                .filter(identities::openid.eq(openid.as_str()))
                .filter(
                    identities::unionid
                        .is_null()
                        .or(identities::unionid.ne(unionid.as_str())),
                ),
        )
        .set((
            identities::unionid.eq(unionid.as_str()),
            identities::updated_at.eq(at),
        ))
        .execute(self.conn);
        self.db(updated).map(drop)
    }

    fn vouchers(&mut self, user: &UserId, unionid: &UnionId) -> Result<u64, StoreError> {
        let count = identities::table
            .filter(identities::user_id.eq(user.as_str()))
            .filter(identities::unionid.eq(unionid.as_str()))
            .count()
            .get_result::<i64>(self.conn);
        Ok(u64::try_from(self.db(count)?).unwrap_or(0))
    }

    fn vouching_identities(
        &mut self,
        user: &UserId,
        unionid: &UnionId,
    ) -> Result<Vec<(AppId, OpenId)>, StoreError> {
        let rows = identities::table
            .filter(identities::user_id.eq(user.as_str()))
            .filter(identities::unionid.eq(unionid.as_str()))
            .order((identities::appid.asc(), identities::openid.asc()))
            .select((identities::appid, identities::openid))
            .load::<(String, String)>(self.conn);
        self.db(rows)?
            .into_iter()
            .map(|(appid, openid)| Ok((parse_appid(appid)?, parse_openid(openid)?)))
            .collect()
    }

    fn drop_vouches(&mut self, user: &UserId, at: UnixTime) -> Result<(), StoreError> {
        self.writing()?;
        let updated = diesel::update(
            identities::table
                .filter(identities::user_id.eq(user.as_str()))
                .filter(identities::unionid.is_not_null()),
        )
        .set((
            identities::unionid.eq(None::<String>),
            identities::updated_at.eq(at),
        ))
        .execute(self.conn);
        self.db(updated).map(drop)
    }

    fn hold_identity(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
        owner: &UserId,
    ) -> Result<(), StoreError> {
        // SQLite has one writer: no transaction can move the identity in between.
        if !matches!(&*self.conn, DbConnection::Pg(_)) {
            return Ok(());
        }
        // As `hold_user`: a no-op update takes the row's lock. A split committed first leaves
        // nothing to match (the login reruns and sees where the identity went); one still
        // running makes this wait, and a serializable one that comes later fails and reruns,
        // moving this login's session too.
        let held = diesel::update(
            identities::table
                .filter(identities::appid.eq(appid.as_str()))
                .filter(identities::openid.eq(openid.as_str()))
                .filter(identities::user_id.eq(owner.as_str())),
        )
        .set(identities::updated_at.eq(identities::updated_at))
        .execute(self.conn);
        self.guarded(held, owner, || {
            format!("cannot hold identity ({appid}, {openid}) of user {owner}: it is not theirs")
        })
    }

    fn move_identity(
        &mut self,
        appid: &AppId,
        openid: &OpenId,
        to: &UserId,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        self.writing()?;
        let moved = diesel::update(
            identities::table
                .filter(identities::appid.eq(appid.as_str()))
                .filter(identities::openid.eq(openid.as_str())),
        )
        .set((
            identities::user_id.eq(to.as_str()),
            identities::updated_at.eq(at),
        ))
        .execute(self.conn);
        match self.db(moved)? {
            0 => Err(StoreError::Corrupt(format!(
                "cannot move identity ({appid}, {openid}): it does not exist"
            ))),
            _ => Ok(()),
        }
    }

    fn split_sessions(
        &mut self,
        from: &UserId,
        to: &UserId,
        moved: &[(AppId, OpenId)],
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        self.writing()?;
        let is_moved = |appid: &str, openid: &str| {
            moved
                .iter()
                .any(|(a, o)| a.as_str() == appid && o.as_str() == openid)
        };
        // The sessions acting as `from` (issued to it, or to a user merged into it) and those
        // of `to`, which is restored before this when it was merged into `from`.
        let merged = users::table
            .filter(users::merged_into.eq(from.as_str()))
            .select(users::id);
        let acting = sessions::table
            .filter(
                sessions::user_id
                    .eq(from.as_str())
                    .or(sessions::user_id.eq(to.as_str()))
                    .or(sessions::user_id.eq_any(merged)),
            )
            .select((
                sessions::token_hash,
                sessions::user_id,
                sessions::appid,
                sessions::openid,
                sessions::revoked_at.is_null(),
                sessions::expires_at,
            ))
            .load::<(Vec<u8>, String, String, String, bool, i64)>(self.conn);
        let mut live = 0_u64;
        let (mut going, mut staying) = (Vec::new(), Vec::new());
        for (hash, user, appid, openid, unrevoked, expires_at) in self.db(acting)? {
            if is_moved(&appid, &openid) {
                live += u64::from(unrevoked && expires_at > now);
                going.push(hash);
            } else if user == to.as_str() {
                // A restored user's session through an identity that stays acts as `from`.
                staying.push(hash);
            }
        }
        for (hashes, user) in [(going, to), (staying, from)] {
            for chunk in hashes.chunks(500) {
                let updated =
                    diesel::update(sessions::table.filter(sessions::token_hash.eq_any(chunk)))
                        .set(sessions::user_id.eq(user.as_str()))
                        .execute(self.conn);
                self.db(updated)?;
            }
        }
        Ok(live)
    }

    fn restore_user(
        &mut self,
        user: &UserId,
        merged_into: &UserId,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        self.writing()?;
        let updated = diesel::update(
            users::table
                .filter(users::id.eq(user.as_str()))
                .filter(users::merged_into.eq(merged_into.as_str()))
                .filter(users::deleted_at.is_null()),
        )
        .set((
            users::merged_into.eq(None::<String>),
            users::updated_at.eq(at),
        ))
        .execute(self.conn);
        self.guarded(updated, user, || {
            format!("cannot restore user {user}: it is not merged into {merged_into}")
        })
    }

    fn insert_refresh_token(
        &mut self,
        token: &TokenHash,
        session: &TokenHash,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        self.writing()?;
        let inserted = diesel::insert_into(refresh_tokens::table)
            .values((
                refresh_tokens::token_hash.eq(token.as_bytes().as_slice()),
                refresh_tokens::session_hash.eq(session.as_bytes().as_slice()),
                refresh_tokens::created_at.eq(at),
            ))
            .execute(self.conn);
        self.db(inserted).map(drop)
    }

    fn refresh_token(&mut self, token: &TokenHash) -> Result<Option<RefreshTokenRow>, StoreError> {
        let row = refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(token.as_bytes().as_slice()))
            .select((refresh_tokens::session_hash, refresh_tokens::used_at))
            .get_result::<(Vec<u8>, Option<i64>)>(self.conn)
            .optional();
        let Some((session, used_at)) = self.db(row)? else {
            return Ok(None);
        };
        let session = <[u8; 32]>::try_from(session.as_slice()).map_err(|_| {
            StoreError::Corrupt(format!("refresh token {token:?} names a malformed session"))
        })?;
        Ok(Some(RefreshTokenRow {
            session: TokenHash::from_bytes(session),
            used: used_at.is_some(),
        }))
    }

    fn use_refresh_token(&mut self, token: &TokenHash, at: UnixTime) -> Result<bool, StoreError> {
        self.writing()?;
        let updated = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(token.as_bytes().as_slice()))
                .filter(refresh_tokens::used_at.is_null()),
        )
        .set(refresh_tokens::used_at.eq(at))
        .execute(self.conn);
        Ok(self.db(updated)? == 1)
    }

    fn append_event(&mut self, event: &Event) -> Result<(), StoreError> {
        self.writing()?;
        let inserted = diesel::insert_into(events::table)
            .values((
                events::kind.eq(event.kind.as_str()),
                events::user_id.eq(event.user_id.as_str()),
                events::other_user_id.eq(event.other_user_id.as_ref().map(UserId::as_str)),
                events::appid.eq(event.appid.as_str()),
                events::openid.eq(event.openid.as_str()),
                events::at.eq(event.at),
                events::detail.eq(event.detail.as_ref().map(feed::detail_json)),
            ))
            .execute(self.conn);
        self.db(inserted).map(drop)
    }
}
