//! The cluster's record of its data keys, so that a node whose keyring cannot open what the
//! database holds refuses to start instead of failing request by request.
//!
//! `data_keys` holds each key's id and fingerprint ([`DataKey::fingerprint`]), never the key.
//! A key is `in_use` while values may be sealed under it and `retired` once a re-seal left
//! none; the key with the greatest `current_seq` is the cluster's current key.
//! A database from before this table gets its rows once, from the key ids in the headers of
//! its sealed values.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Binary;
use wxlink_crypto::{DataKey, KeyId, Keyring};
use wxlink_domain::{StoreError, TxMode, UnixTime};

use crate::store::Store;
use crate::store::error::PersistenceError;
use crate::store::schema::{access_tokens, data_keys, sessions, signing_keys, users};
use crate::store::tx::Tx;

const IN_USE: &str = "in_use";
const RETIRED: &str = "retired";

/// `data_keys` columns as read: key id, fingerprint, state, current_seq.
type KeyRow = (String, Option<String>, String, Option<i64>);

impl Store {
    /// Check this store's keyring against the keys the database records, and record this
    /// node's current key; run it at start, before serving.
    ///
    /// Refused, with every problem named by key id and fingerprint: a key recorded as in use
    /// that the keyring lacks, a key of the keyring whose fingerprint differs from the recorded
    /// one (the same id, another key), and a cluster current key the keyring lacks.
    /// One write transaction, so nodes starting at once see each other's records.
    ///
    /// # Errors
    /// [`PersistenceError::Keyring`] when refused, [`PersistenceError::Connect`] when the
    /// database fails.
    pub async fn check_keyring(&self, now: UnixTime) -> Result<(), PersistenceError> {
        self.check_keys(TxMode::Write, Check::Record, now).await
    }

    /// [`Store::check_keyring`] for an operator's command, which writes nothing: the same
    /// refusals, no record of this node's key, and also refused when this keyring's current
    /// key is not the cluster's current one (what the command seals must be under the key
    /// every node has).
    ///
    /// # Errors
    /// As [`Store::check_keyring`].
    pub async fn verify_keyring(&self) -> Result<(), PersistenceError> {
        self.check_keys(TxMode::Read, Check::Verify, 0).await
    }

    async fn check_keys(
        &self,
        mode: TxMode,
        how: Check,
        now: UnixTime,
    ) -> Result<(), PersistenceError> {
        let keyring = Arc::clone(&self.inner.keyring);
        let problems = self
            .run(mode, move |tx: &mut Tx<'_>| check(tx, &keyring, how, now))
            .await
            .map_err(|e| self.setup_error(&e))?;
        if problems.is_empty() {
            let current = self.inner.keyring.current_key();
            tracing::info!(
                key_id = %current.id(),
                fingerprint = %current.fingerprint(),
                "the data keys open what the database holds"
            );
            Ok(())
        } else {
            for problem in &problems {
                tracing::error!(%problem, "data key problem");
            }
            Err(PersistenceError::Keyring(problems.join("; ")))
        }
    }

    /// Mark as retired every key, other than the current one, under which no value is sealed
    /// any more; returns their ids (8 hex digits). Run after re-sealing, so that nodes without those keys can
    /// start.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn retire_unused_data_keys(&self) -> Result<Vec<String>, StoreError> {
        let current = self.inner.keyring.current_key_id().to_string();
        let retired = self
            .run(TxMode::Write, move |tx: &mut Tx<'_>| {
                let used = sealed_key_ids(tx)?;
                let rows = load(tx)?;
                let mut retired = Vec::new();
                for (id, _, state, _) in rows {
                    if state == IN_USE && id != current && !used.contains(&id) {
                        let updated = diesel::update(data_keys::table.find(&id))
                            .set(data_keys::state.eq(RETIRED))
                            .execute(tx.conn);
                        tx.db(updated)?;
                        retired.push(id);
                    }
                }
                Ok::<_, StoreError>(retired)
            })
            .await?;
        for id in &retired {
            tracing::info!(key_id = %id, "retired a data key: no value is sealed under it");
        }
        Ok(retired)
    }

    /// The database failing is a connection problem; a key that cannot open a stored value,
    /// or a corrupt one, is a key problem.
    fn setup_error(&self, error: &StoreError) -> PersistenceError {
        match error {
            StoreError::Unavailable(_) | StoreError::Conflict | StoreError::Contention { .. } => {
                PersistenceError::Connect {
                    url: self.inner.url.clone(),
                    message: format!("checking the data keys: {error}"),
                }
            }
            _ => PersistenceError::Keyring(format!("checking the data keys: {error}")),
        }
    }
}

/// Whether a check records what it found (a node that serves) or only looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Record,
    Verify,
}

fn check(
    tx: &mut Tx<'_>,
    keyring: &Keyring,
    how: Check,
    now: UnixTime,
) -> Result<Vec<String>, StoreError> {
    let mut rows = load(tx)?;
    if rows.is_empty() {
        // First start since the table exists (or a new database): the keys the sealed values
        // are under, which the values' headers tell; recorded when the check records.
        for id in sealed_key_ids(tx)? {
            if how == Check::Record {
                let inserted = diesel::insert_into(data_keys::table)
                    .values((
                        data_keys::key_id.eq(&id),
                        data_keys::state.eq(IN_USE),
                        data_keys::recorded_at.eq(now),
                    ))
                    .execute(tx.conn);
                tx.db(inserted)?;
            }
            rows.push((id, None, IN_USE.to_owned(), None));
        }
    }
    let ring: BTreeMap<String, String> = keyring
        .keys()
        .map(|key| (key.id().to_string(), key.fingerprint()))
        .collect();
    let newest = rows
        .iter()
        .filter(|row| row.3.is_some())
        .max_by_key(|row| row.3)
        .map(|row| row.0.clone());
    let mut problems = Vec::new();
    for (id, fingerprint, state, _) in &rows {
        let shown = fingerprint.as_deref().unwrap_or("not recorded");
        match ring.get(id) {
            None if newest.as_ref() == Some(id) => problems.push(format!(
                "the cluster's current data key {id} (fingerprint {shown}) is not in this \
                 node's keyring"
            )),
            None if state == IN_USE => problems.push(format!(
                "values are sealed under data key {id} (fingerprint {shown}), which is not in \
                 this node's keyring"
            )),
            Some(ours) if fingerprint.as_ref().is_some_and(|theirs| theirs != ours) => {
                problems.push(format!(
                    "this node's data key {id} has fingerprint {ours}, but the cluster's key \
                     {id} has fingerprint {shown}: a different key with the same id"
                ));
            }
            _ => {}
        }
    }
    if let Some(problem) = behind_the_rotation(keyring.current_key(), &rows, newest.as_deref()) {
        problems.push(problem);
    }
    let current = keyring.current_key().id().to_string();
    if how == Check::Verify
        && let Some(newest) = newest.as_ref().filter(|newest| **newest != current)
    {
        problems.push(format!(
            "this command's current data key {current} (security.data_key) is not the \
             cluster's current data key {newest}; run it with the cluster's current key"
        ));
    }
    if !problems.is_empty() || how == Check::Verify {
        return Ok(problems);
    }
    for (id, fingerprint, _, _) in &rows {
        if let (None, Some(ours)) = (fingerprint, ring.get(id)) {
            let updated = diesel::update(data_keys::table.find(id))
                .set(data_keys::fingerprint.eq(ours))
                .execute(tx.conn);
            tx.db(updated)?;
        }
    }
    record_current(tx, keyring.current_key(), &rows, now)?;
    Ok(problems)
}

/// Why this node's current key must not seal, if it must not: it is retired, or it was the
/// cluster's current key before the one that is current now (a node that was not switched in
/// the rotation's "make it current" step). Values it sealed would sit under a key the other
/// nodes are about to drop, and starting with a retired key would make it current again and
/// lock out every node that has only the new key. A key that was never current is the first
/// node of a rotation making its new key the cluster's current, and passes.
fn behind_the_rotation(current: &DataKey, rows: &[KeyRow], newest: Option<&str>) -> Option<String> {
    let id = current.id().to_string();
    let (_, _, state, seq) = rows.iter().find(|row| row.0 == id)?;
    let newest = newest.unwrap_or("not recorded");
    let newest_seq = rows.iter().filter_map(|row| row.3).max();
    let why = if state == RETIRED {
        "is retired: no value is sealed under it any more"
    } else if seq.is_some() && *seq < newest_seq {
        "is older than the cluster's current data key"
    } else {
        return None;
    };
    Some(format!(
        "this node's current data key {id} (security.data_key) {why}; the cluster's current \
         data key is {newest}: make that this node's security.data_key \
         (WXLINK__SECURITY__DATA_KEY), as step 3 of rotating the key in docs/operations.md \
         says"
    ))
}

/// Record the node's current key as in use; it becomes the cluster's current key unless it
/// already was current once ([`behind_the_rotation`] refuses a node whose key is older).
fn record_current(
    tx: &mut Tx<'_>,
    current: &DataKey,
    rows: &[KeyRow],
    now: UnixTime,
) -> Result<(), StoreError> {
    let id = current.id().to_string();
    let next_seq = rows.iter().filter_map(|row| row.3).max().unwrap_or(0) + 1;
    let written = match rows.iter().find(|row| row.0 == id) {
        None => diesel::insert_into(data_keys::table)
            .values((
                data_keys::key_id.eq(&id),
                data_keys::fingerprint.eq(current.fingerprint()),
                data_keys::state.eq(IN_USE),
                data_keys::current_seq.eq(next_seq),
                data_keys::recorded_at.eq(now),
            ))
            .execute(tx.conn),
        Some((_, _, _, None)) => diesel::update(data_keys::table.find(&id))
            .set((
                data_keys::state.eq(IN_USE),
                data_keys::current_seq.eq(next_seq),
            ))
            .execute(tx.conn),
        Some(_) => return Ok(()),
    };
    // Two nodes recording at once clash on the key id or on current_seq; the retry sees the
    // other's row.
    tx.db(written).map(drop)
}

fn load(tx: &mut Tx<'_>) -> Result<Vec<KeyRow>, StoreError> {
    let rows = data_keys::table
        .select((
            data_keys::key_id,
            data_keys::fingerprint,
            data_keys::state,
            data_keys::current_seq,
        ))
        .load::<KeyRow>(tx.conn);
    tx.db(rows)
}

/// The ids of the keys the stored sealed values are under, from their headers
/// (`[version][4-byte key id]…`); `substr` on bytes means the same on SQLite and PostgreSQL.
fn sealed_key_ids(tx: &mut Tx<'_>) -> Result<BTreeSet<String>, StoreError> {
    let sessions = sessions::table
        .filter(sessions::session_key.is_not_null())
        .select(sql::<Binary>("substr(session_key, 2, 4)"))
        .distinct()
        .load::<Vec<u8>>(tx.conn);
    let mut ids = tx.db(sessions)?;
    let phones = users::table
        .filter(users::phone_number.is_not_null())
        .select(sql::<Binary>("substr(phone_number, 2, 4)"))
        .distinct()
        .load::<Vec<u8>>(tx.conn);
    ids.extend(tx.db(phones)?);
    let tokens = access_tokens::table
        .filter(access_tokens::token.is_not_null())
        .select(sql::<Binary>("substr(token, 2, 4)"))
        .distinct()
        .load::<Vec<u8>>(tx.conn);
    ids.extend(tx.db(tokens)?);
    let signing = signing_keys::table
        .select(sql::<Binary>("substr(private_key, 2, 4)"))
        .distinct()
        .load::<Vec<u8>>(tx.conn);
    ids.extend(tx.db(signing)?);
    Ok(ids
        .into_iter()
        .filter_map(|bytes| <[u8; 4]>::try_from(bytes.as_slice()).ok())
        .map(|bytes| KeyId::from_bytes(bytes).to_string())
        .collect())
}
