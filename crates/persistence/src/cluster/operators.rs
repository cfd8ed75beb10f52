//! The support console's operators: their accounts, TOTP secrets (sealed), sessions, and
//! failed sign-ins, counted in the database so that limits hold across nodes.

use diesel::prelude::*;
use secrecy::zeroize::Zeroizing;
use wxlink_domain::{StoreError, TxMode, UnixTime};

use crate::store::Store;
use crate::store::schema::{operator_sessions, operators, sign_in_failures};
use crate::store::tx::Tx;

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
}

/// Delete every session of an operator.
fn end_sessions(tx: &mut Tx<'_>, name: &str) -> Result<(), StoreError> {
    let deleted =
        diesel::delete(operator_sessions::table.filter(operator_sessions::operator.eq(name)))
            .execute(tx.conn);
    tx.db(deleted).map(drop)
}
