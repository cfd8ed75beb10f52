//! The domain's [`StoreTx`] over one open transaction, written once for both backends: the
//! attempt and its conflicts (here), its queries (`queries`), how rows are read back
//! (`rows`), and what is sealed at rest (`sealing`).

use diesel::prelude::*;
use wxlink_crypto::Keyring;
use wxlink_domain::{AppId, OpenId, SessionKey, StoreError, TokenHash, TxMode, UnixTime, UserId};

use crate::store::connection::DbConnection;
use crate::store::error::{Failure, Retry};
use crate::store::schema::users;

mod queries;
mod rows;
mod sealing;

pub(crate) use rows::{parse_appid, parse_openid, parse_user_id, token_hash};
pub(crate) use sealing::{
    open_key, open_phone, phone_digits_hash, phone_hash, seal_key, seal_phone,
};

use rows::StoredPhone;

/// How long an identity's count of failed decryptions lasts.
pub(crate) const IDENTITY_WINDOW_SECS: i64 = 24 * 3600;
/// The purpose of [`wxlink_crypto::DataKey::keyed_hash`] for `decrypt_budgets`.
const DECRYPT_BUDGET_CONTEXT: &str = "decrypt budget";

/// One attempt of one transaction. Remembers whether any statement met a conflict, because
/// after that the transaction is doomed (PostgreSQL aborts it) whatever `work` makes of the
/// error, and the store must run it again.
pub(crate) struct Tx<'c> {
    pub(crate) conn: &'c mut DbConnection,
    pub(crate) keyring: &'c Keyring,
    mode: TxMode,
    conflict: Option<Retry>,
}

impl<'c> Tx<'c> {
    pub(crate) fn new(conn: &'c mut DbConnection, keyring: &'c Keyring, mode: TxMode) -> Self {
        Self {
            conn,
            keyring,
            mode,
            conflict: None,
        }
    }

    /// The first conflict a statement of this attempt met, if any.
    pub(crate) fn conflict(&self) -> Option<Retry> {
        self.conflict
    }

    /// Translate a statement's outcome into the domain's terms.
    pub(crate) fn db<T>(&mut self, result: QueryResult<T>) -> Result<T, StoreError> {
        result.map_err(|e| self.failure(&e))
    }

    pub(crate) fn failure(&mut self, error: &diesel::result::Error) -> StoreError {
        match Failure::of(error) {
            Failure::Conflict(_) => {
                self.conflict.get_or_insert(Retry::Clash);
                StoreError::Conflict
            }
            // A writer met SQLite's lock: contention, so run it again.
            Failure::Busy(_) if self.mode.writes() => {
                self.conflict.get_or_insert(Retry::Busy);
                StoreError::Conflict
            }
            // A reader never waits for a lock in WAL mode; if it did, the database is stuck.
            Failure::Busy(message) | Failure::Unavailable(message) => {
                StoreError::Unavailable(message)
            }
            Failure::Corrupt(message) => StoreError::Corrupt(message),
        }
    }

    /// A guarded update of `user` changed no row. In a `WriteGuarded` transaction (isolated
    /// per statement) another transaction may have changed the user since it was read: a
    /// conflict, so the work runs again on what is there now. Otherwise the caller broke the
    /// rule it states: `corrupt`.
    fn unchanged(&mut self, user: &UserId, corrupt: String) -> StoreError {
        if self.mode == TxMode::WriteGuarded {
            let exists = users::table
                .filter(users::id.eq(user.as_str()))
                .select(users::id)
                .get_result::<String>(self.conn)
                .optional();
            match self.db(exists) {
                Ok(Some(_)) => {
                    self.conflict.get_or_insert(Retry::Clash);
                    return StoreError::Conflict;
                }
                Ok(None) => {}
                Err(e) => return e,
            }
        }
        StoreError::Corrupt(corrupt)
    }

    /// The outcome of a guarded update of `user`: a row changed, or [`Tx::unchanged`].
    fn guarded(
        &mut self,
        updated: QueryResult<usize>,
        user: &UserId,
        corrupt: impl FnOnce() -> String,
    ) -> Result<(), StoreError> {
        match self.db(updated)? {
            0 => Err(self.unchanged(user, corrupt())),
            _ => Ok(()),
        }
    }

    /// Writes in a read transaction are a bug in the caller; refuse them the same way on both
    /// backends (PostgreSQL would refuse, SQLite would not).
    fn writing(&self) -> Result<(), StoreError> {
        match self.mode {
            TxMode::Write | TxMode::WriteGuarded => Ok(()),
            TxMode::Read => Err(StoreError::Corrupt(
                "write attempted in a read-only transaction".to_owned(),
            )),
        }
    }

    /// Set (or with `None` remove) a user's phone number, when it was verified and through
    /// which identity (if known).
    fn store_phone(
        &mut self,
        user: &UserId,
        phone: Option<StoredPhone<'_>>,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        let hash =
            phone.map(|(phone, _, _)| phone_hash(self.keyring.current_key(), phone).to_vec());
        let (sealed, verified_at, by) = match phone {
            Some((phone, verified_at, by)) => (
                Some(seal_phone(self.keyring, user, phone)),
                Some(verified_at),
                by,
            ),
            None => (None, None, None),
        };
        let (by_appid, by_openid) = by.unzip();
        let updated = diesel::update(users::table.filter(users::id.eq(user.as_str())))
            .set((
                users::phone_number.eq(sealed),
                users::phone_hash.eq(hash),
                users::phone_verified_at.eq(verified_at),
                users::phone_appid.eq(by_appid),
                users::phone_openid.eq(by_openid),
                users::updated_at.eq(at),
            ))
            .execute(self.conn);
        match self.db(updated)? {
            0 => Err(StoreError::Corrupt(format!(
                "cannot set the phone number of user {user}: it does not exist"
            ))),
            _ => Ok(()),
        }
    }

    /// PostgreSQL: run this transaction under READ COMMITTED instead of SERIALIZABLE; only for
    /// transactions of single-row conditional updates, and before their first statement.
    fn read_committed(&mut self) -> Result<(), StoreError> {
        if let DbConnection::Pg(conn) = &mut *self.conn {
            let weaker = diesel::sql_query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                .execute(conn)
                .map(|_| ());
            self.db(weaker)?;
        }
        Ok(())
    }

    /// The key of an identity's row in `decrypt_budgets`: a keyed hash, so that the rows,
    /// which outlive the identity, hold no openid.
    pub(crate) fn identity_hash(&self, appid: &AppId, openid: &OpenId) -> [u8; 32] {
        let identity = format!("{appid}\n{openid}");
        self.keyring
            .current_key()
            .keyed_hash(DECRYPT_BUDGET_CONTEXT, identity.as_bytes())
    }

    fn seal_key(&self, token: &TokenHash, key: &SessionKey) -> Vec<u8> {
        seal_key(self.keyring, token, key)
    }
}
