//! What the support console needs from the database besides the domain's port: operators,
//! their sessions and failed sign-ins (counted here so that limits hold across nodes), and the
//! lookups of its pages (by phone, possible duplicates, a user's sessions, merges and events).
//! Adapter features, not domain rules: the console's repairs run the domain's use cases.

use diesel::prelude::*;
use secrecy::zeroize::Zeroizing;
use wxlink_domain::{
    AppId, Event, OpenId, PhoneNumber, StoreError, StoreTx as _, TxMode, UnionId, UnixTime, UserId,
};

use crate::cluster::admin::UserRecord;
use crate::store::Store;
use crate::store::schema::{
    events, identities, operator_sessions, operators, sessions, sign_in_failures, users,
};
use crate::store::tx::{self, Tx};

/// An operator as stored; the TOTP secret is opened.
#[derive(Clone, PartialEq, Eq)]
pub struct Operator {
    /// The name.
    pub name: String,
    /// Argon2id, PHC string format.
    pub password_hash: String,
    /// The password is a one-time one: it must be changed before anything else.
    pub password_expired: bool,
    /// Scope names.
    pub scopes: Vec<String>,
    /// The TOTP secret (raw bytes), if a second factor is set up.
    pub totp_secret: Option<Zeroizing<Vec<u8>>>,
    /// Disabled operators cannot sign in.
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: UnixTime,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("name", &self.name)
            .field("password_expired", &self.password_expired)
            .field("scopes", &self.scopes)
            .field("totp", &self.totp_secret.is_some())
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A new operator, as `wxlink operator add` makes it.
#[derive(Clone)]
pub struct NewOperator {
    /// The name.
    pub name: String,
    /// Argon2id, PHC string format.
    pub password_hash: String,
    /// Scope names.
    pub scopes: Vec<String>,
    /// The TOTP secret, if any.
    pub totp_secret: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for NewOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewOperator")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Failed sign-ins counted under one key since its last success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInFailures {
    /// `operator:NAME` or `address:IP`.
    pub key: String,
    /// How many.
    pub failures: i64,
    /// Unix seconds of the last one.
    pub last_failure_at: UnixTime,
}

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

type OperatorRow = (
    String,
    String,
    i64,
    String,
    Option<Vec<u8>>,
    Option<i64>,
    i64,
);

fn operator_from_row(tx: &Tx<'_>, row: OperatorRow) -> Result<Operator, StoreError> {
    let (name, password_hash, expired, scopes, totp, disabled_at, created_at) = row;
    let totp_secret = totp
        .map(|sealed| {
            tx.keyring
                .open_with_aad(&sealed, name.as_bytes())
                .map(Zeroizing::new)
                .map_err(|e| StoreError::Key(format!("TOTP secret of operator {name}: {e}")))
        })
        .transpose()?;
    Ok(Operator {
        password_hash,
        password_expired: expired != 0,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        totp_secret,
        disabled: disabled_at.is_some(),
        created_at,
        name,
    })
}

fn load_operator(tx: &mut Tx<'_>, name: &str) -> Result<Option<Operator>, StoreError> {
    let row = operators::table
        .filter(operators::name.eq(name))
        .select((
            operators::name,
            operators::password_hash,
            operators::password_expired,
            operators::scopes,
            operators::totp_secret,
            operators::disabled_at,
            operators::created_at,
        ))
        .first::<OperatorRow>(tx.conn)
        .optional();
    match tx.db(row)? {
        Some(row) => operator_from_row(tx, row).map(Some),
        None => Ok(None),
    }
}

impl Store {
    /// Add an operator; `false` when the name is taken (nothing changes then).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn add_operator(&self, new: NewOperator, now: UnixTime) -> Result<bool, StoreError> {
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            if load_operator(tx, &new.name)?.is_some() {
                return Ok(false);
            }
            let totp = new
                .totp_secret
                .as_ref()
                .map(|secret| tx.keyring.seal_with_aad(secret, new.name.as_bytes()));
            let inserted = diesel::insert_into(operators::table)
                .values((
                    operators::name.eq(&new.name),
                    operators::password_hash.eq(&new.password_hash),
                    operators::password_expired.eq(1_i64),
                    operators::scopes.eq(new.scopes.join(" ")),
                    operators::totp_secret.eq(totp),
                    operators::disabled_at.eq(None::<i64>),
                    operators::created_at.eq(now),
                    operators::updated_at.eq(now),
                ))
                .execute(tx.conn);
            tx.db(inserted)?;
            Ok(true)
        })
        .await
    }

    /// An operator by name.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or its TOTP secret cannot be opened.
    pub async fn operator(&self, name: &str) -> Result<Option<Operator>, StoreError> {
        let name = name.to_owned();
        self.run(TxMode::Read, move |tx: &mut Tx<'_>| {
            load_operator(tx, &name)
        })
        .await
    }

    /// Accept a TOTP code of time step `step` for the operator: `false` when a code of this
    /// step or a later one was accepted before (a replayed code, RFC 6238 §5.2). Atomic, so
    /// one code signs in once even on two nodes at once.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn accept_totp_step(&self, name: &str, step: i64) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let updated = diesel::update(
                operators::table.filter(operators::name.eq(&name)).filter(
                    operators::totp_last_step
                        .is_null()
                        .or(operators::totp_last_step.lt(step)),
                ),
            )
            .set(operators::totp_last_step.eq(Some(step)))
            .execute(tx.conn);
            Ok(tx.db(updated)? == 1)
        })
        .await
    }

    /// Every operator, by name.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        self.run(TxMode::Read, move |tx: &mut Tx<'_>| {
            let rows = operators::table
                .order(operators::name.asc())
                .select((
                    operators::name,
                    operators::password_hash,
                    operators::password_expired,
                    operators::scopes,
                    operators::totp_secret,
                    operators::disabled_at,
                    operators::created_at,
                ))
                .load::<OperatorRow>(tx.conn);
            tx.db(rows)?
                .into_iter()
                .map(|row| operator_from_row(tx, row))
                .collect()
        })
        .await
    }

    /// Disable an operator and end its sessions; `false` for an unknown name.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn disable_operator(&self, name: &str, now: UnixTime) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let updated = diesel::update(operators::table.filter(operators::name.eq(&name)))
                .set((
                    operators::disabled_at.eq(Some(now)),
                    operators::updated_at.eq(now),
                ))
                .execute(tx.conn);
            if tx.db(updated)? == 0 {
                return Ok(false);
            }
            end_sessions(tx, &name)?;
            Ok(true)
        })
        .await
    }

    /// Set an operator's password. `expired`: a one-time password (`wxlink operator
    /// reset-password`), which also ends its sessions, enables it again and forgives its
    /// failed sign-ins; otherwise the operator's own change. `false` for an unknown name.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn set_operator_password(
        &self,
        name: &str,
        password_hash: String,
        expired: bool,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let target = operators::table.filter(operators::name.eq(&name));
            let updated = if expired {
                diesel::update(target)
                    .set((
                        operators::password_hash.eq(&password_hash),
                        operators::password_expired.eq(1_i64),
                        operators::disabled_at.eq(None::<i64>),
                        operators::updated_at.eq(now),
                    ))
                    .execute(tx.conn)
            } else {
                diesel::update(target)
                    .set((
                        operators::password_hash.eq(&password_hash),
                        operators::password_expired.eq(0_i64),
                        operators::updated_at.eq(now),
                    ))
                    .execute(tx.conn)
            };
            if tx.db(updated)? == 0 {
                return Ok(false);
            }
            if expired {
                end_sessions(tx, &name)?;
                let forgiven = diesel::delete(
                    sign_in_failures::table
                        .filter(sign_in_failures::limit_key.eq(format!("operator:{name}"))),
                )
                .execute(tx.conn);
                tx.db(forgiven)?;
            }
            Ok(true)
        })
        .await
    }

    /// Count one failed sign-in under each key, atomically with the decision whether the
    /// attempt may go on: `decide` sees the counts before this attempt and returns `Err` to
    /// refuse it (nothing is counted then). The attempt is counted as failed before the
    /// password is checked, so concurrent attempts on several nodes cannot overshoot the
    /// limit; [`Store::sign_in_succeeded`] forgives them.
    ///
    /// # Errors
    /// `decide`'s refusal; [`StoreError`] when the database fails.
    pub async fn reserve_sign_in<R, F>(
        &self,
        keys: Vec<String>,
        now: UnixTime,
        decide: F,
    ) -> Result<Result<(), R>, StoreError>
    where
        R: Send + 'static,
        F: Fn(&[SignInFailures]) -> Result<(), R> + Send + Sync + 'static,
    {
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let rows = sign_in_failures::table
                .filter(sign_in_failures::limit_key.eq_any(&keys))
                .select((
                    sign_in_failures::limit_key,
                    sign_in_failures::failures,
                    sign_in_failures::last_failure_at,
                ))
                .load::<(String, i64, i64)>(tx.conn);
            let counts: Vec<SignInFailures> = tx
                .db(rows)?
                .into_iter()
                .map(|(key, failures, last_failure_at)| SignInFailures {
                    key,
                    failures,
                    last_failure_at,
                })
                .collect();
            if let Err(refused) = decide(&counts) {
                return Ok(Err(refused));
            }
            for key in &keys {
                let failures = counts
                    .iter()
                    .find(|c| &c.key == key)
                    .map_or(0, |c| c.failures);
                let written = if failures == 0 && !counts.iter().any(|c| &c.key == key) {
                    diesel::insert_into(sign_in_failures::table)
                        .values((
                            sign_in_failures::limit_key.eq(key),
                            sign_in_failures::failures.eq(1_i64),
                            sign_in_failures::last_failure_at.eq(now),
                        ))
                        .execute(tx.conn)
                } else {
                    diesel::update(
                        sign_in_failures::table.filter(sign_in_failures::limit_key.eq(key)),
                    )
                    .set((
                        sign_in_failures::failures.eq(failures + 1),
                        sign_in_failures::last_failure_at.eq(now),
                    ))
                    .execute(tx.conn)
                };
                tx.db(written)?;
            }
            Ok(Ok(()))
        })
        .await
    }

    /// A sign-in succeeded: forget the failures counted under `keys`.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn sign_in_succeeded(&self, keys: Vec<String>) -> Result<(), StoreError> {
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let deleted = diesel::delete(
                sign_in_failures::table.filter(sign_in_failures::limit_key.eq_any(&keys)),
            )
            .execute(tx.conn);
            tx.db(deleted).map(drop)
        })
        .await
    }

    /// Record a signed-in operator's session by its token's hash.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn create_operator_session(
        &self,
        token_hash: [u8; 32],
        operator: &str,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let operator = operator.to_owned();
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let inserted = diesel::insert_into(operator_sessions::table)
                .values((
                    operator_sessions::token_hash.eq(token_hash.as_slice()),
                    operator_sessions::operator.eq(&operator),
                    operator_sessions::created_at.eq(now),
                    operator_sessions::last_seen_at.eq(now),
                ))
                .execute(tx.conn);
            tx.db(inserted).map(drop)
        })
        .await
    }

    /// The operator of a live session, whose idle time starts again now. A session idle since
    /// before `idle_since`, or created before `created_since`, or of a disabled operator, is
    /// deleted and `None`.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn operator_session(
        &self,
        token_hash: [u8; 32],
        now: UnixTime,
        idle_since: UnixTime,
        created_since: UnixTime,
    ) -> Result<Option<Operator>, StoreError> {
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let this = operator_sessions::table
                .filter(operator_sessions::token_hash.eq(token_hash.as_slice()));
            let row = this
                .select((
                    operator_sessions::operator,
                    operator_sessions::created_at,
                    operator_sessions::last_seen_at,
                ))
                .first::<(String, i64, i64)>(tx.conn)
                .optional();
            let Some((name, created_at, last_seen_at)) = tx.db(row)? else {
                return Ok(None);
            };
            let operator = load_operator(tx, &name)?.filter(|o| !o.disabled);
            if operator.is_none() || last_seen_at < idle_since || created_at < created_since {
                let deleted = diesel::delete(this).execute(tx.conn);
                tx.db(deleted)?;
                return Ok(None);
            }
            let touched = diesel::update(this)
                .set(operator_sessions::last_seen_at.eq(now))
                .execute(tx.conn);
            tx.db(touched)?;
            Ok(operator)
        })
        .await
    }

    /// End one operator session (sign out).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn delete_operator_session(&self, token_hash: [u8; 32]) -> Result<(), StoreError> {
        self.run(TxMode::Write, move |tx: &mut Tx<'_>| {
            let deleted = diesel::delete(
                operator_sessions::table
                    .filter(operator_sessions::token_hash.eq(token_hash.as_slice())),
            )
            .execute(tx.conn);
            tx.db(deleted).map(drop)
        })
        .await
    }

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
                .select((
                    events::id,
                    events::kind,
                    events::user_id,
                    events::other_user_id,
                    events::appid,
                    events::openid,
                    events::at,
                    events::detail,
                ))
                .load::<crate::cluster::feed::EventRow>(tx.conn);
            tx.db(rows)?
                .into_iter()
                .map(crate::cluster::feed::event_from_row)
                .collect()
        })
        .await
    }

    /// Write the keyed hash beside every sealed phone number whose hash is missing (set by a
    /// node of an older release) or under another key than the current one (after a
    /// rotation); returns how many were written. Works in batches of `batch` users.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails; batches done before stay done.
    pub async fn rehash_phone_numbers(&self, batch: u32) -> Result<u64, StoreError> {
        let batch = i64::from(batch.max(1));
        let mut after = String::new();
        let mut written = 0u64;
        loop {
            let start = after.clone();
            let (count, last, full) = self
                .run(TxMode::Write, move |tx: &mut Tx<'_>| {
                    let rows = users::table
                        .filter(users::id.gt(&start))
                        .filter(users::phone_number.is_not_null())
                        .order(users::id.asc())
                        .limit(batch)
                        .select((
                            users::id,
                            users::phone_number.assume_not_null(),
                            users::phone_hash,
                        ))
                        .load::<(String, Vec<u8>, Option<Vec<u8>>)>(tx.conn);
                    let rows = tx.db(rows)?;
                    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= batch;
                    let mut count = 0u64;
                    let mut last = None;
                    for (id, sealed, hash) in rows {
                        let user = tx::parse_user_id(id.clone())?;
                        last = Some(id);
                        let phone: PhoneNumber = match tx::open_phone(tx.keyring, &user, &sealed) {
                            Ok(phone) => phone,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot hash a phone number");
                                continue;
                            }
                        };
                        let current = tx::phone_hash(tx.keyring.current_key(), &phone).to_vec();
                        if hash.as_deref() == Some(current.as_slice()) {
                            continue;
                        }
                        let updated =
                            diesel::update(users::table.filter(users::id.eq(user.as_str())))
                                .set(users::phone_hash.eq(Some(current)))
                                .execute(tx.conn);
                        tx.db(updated)?;
                        count += 1;
                    }
                    Ok::<_, StoreError>((count, last, full))
                })
                .await?;
            written += count;
            match last {
                Some(last) if full => after = last,
                _ => break,
            }
        }
        tracing::info!(
            written,
            "phone number hashes written under the current data key"
        );
        Ok(written)
    }
}

/// Delete every session of an operator.
fn end_sessions(tx: &mut Tx<'_>, name: &str) -> Result<(), StoreError> {
    let deleted =
        diesel::delete(operator_sessions::table.filter(operator_sessions::operator.eq(name)))
            .execute(tx.conn);
    tx.db(deleted).map(drop)
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
