//! The small adapters of the domain's ports: the clock, ids and tokens, and the user-data opener.

use rand::RngCore;
use wxlink_domain::{
    Clock, EncryptedUserData, ExpectedWatermark, IdSource, OpenId, OpenedUserData, SessionKey,
    SessionToken, UnionId, UnixTime, UserDataError, UserDataOpener, UserId,
};

use wxlink_crypto::WatermarkError;

/// Decrypts user data with wxlink-crypto and checks its signature and watermark.
///
/// Every way the data fails to open (padding, UTF-8, JSON, a missing or malformed field) is the
/// one [`UserDataError::DecryptFailed`]: telling them apart would make `user-info` a padding
/// oracle (AES-CBC has no integrity). The reason goes to a debug log line of the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct CryptoOpener;

impl UserDataOpener for CryptoOpener {
    fn open(
        &self,
        key: &SessionKey,
        data: &EncryptedUserData,
        expected: &ExpectedWatermark,
    ) -> Result<OpenedUserData, UserDataError> {
        let key_b64 = key.expose_secret();
        let not_opened = |reason: &dyn std::fmt::Display| {
            tracing::debug!(%reason, "user data does not open");
            UserDataError::DecryptFailed
        };
        // Decrypt first, as the contract orders it: a stale session_key then reads as
        // decrypt_failed (the client's cue to send a fresh code), not as a bad signature.
        let key = wxlink_crypto::session_key_bytes(key_b64).map_err(|e| not_opened(&e))?;
        let user = wxlink_crypto::decrypt_user_data_bytes(&key, &data.iv, &data.ciphertext)
            .map_err(|e| not_opened(&e))?;
        let openid =
            OpenId::parse(user.open_id).map_err(|e| not_opened(&format!("openId: {e}")))?;
        let unionid = user
            .union_id
            .filter(|u| !u.is_empty())
            .map(UnionId::parse)
            .transpose()
            .map_err(|e| not_opened(&format!("unionId: {e}")))?;
        // Only data that opened completely meets the signature check, so its answer cannot
        // tell one way of not opening from another.
        if let Some((raw_data, signature)) = &data.signed_raw_data
            && !wxlink_crypto::verify_raw_data_signature(raw_data, key_b64, signature)
        {
            return Err(UserDataError::SignatureMismatch);
        }
        wxlink_crypto::check_watermark(
            &user.watermark,
            expected.appid.as_str(),
            expected.now,
            expected.max_age_secs,
        )
        .map_err(|e| {
            tracing::debug!(reason = %e, "user data's watermark refused");
            match e {
                WatermarkError::AppMismatch { .. } => UserDataError::WatermarkMismatch,
                WatermarkError::InFuture { .. } => UserDataError::WatermarkInFuture,
                _ => UserDataError::WatermarkExpired,
            }
        })?;
        Ok(OpenedUserData { openid, unionid })
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// Tokens and user ids that begin with the time (UUIDv7), their random bits from the thread's
/// CSPRNG (no system call per login).
#[derive(Debug, Clone, Copy)]
pub struct RandomIds {
    /// Whether tokens carry their session's id (`[sessions] token_ids`); without it they are 32
    /// random bytes, the form nodes of earlier releases can look up, for a rolling upgrade.
    pub token_ids: bool,
}

impl Default for RandomIds {
    fn default() -> Self {
        Self { token_ids: true }
    }
}

/// A UUIDv7: 48 bits of Unix milliseconds, then 74 random bits.
fn uuid_v7() -> uuid::Uuid {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid()
}

impl IdSource for RandomIds {
    /// A session id that begins with the time, so the session lands on the rightmost page of
    /// the sessions' key, and 32 random bytes that are the token's secret (see
    /// [`SessionToken`]).
    fn new_token(&self) -> SessionToken {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        if self.token_ids {
            SessionToken::issue(uuid_v7().into_bytes(), secret)
        } else {
            use base64::Engine as _;
            SessionToken::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret))
        }
    }

    /// UUIDv7: a user id is a name, not a secret, so its first 48 bits are the time. New
    /// users' ids then land on the rightmost pages of the users' index instead of a random page
    /// each, and the 74 random bits keep ids unguessable all the same.
    fn new_user_id(&self) -> UserId {
        UserId::parse(uuid_v7().simple().to_string())
            .unwrap_or_else(|_| unreachable!("a simple uuid is 32 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_distinct_uuids_of_version_7_that_sort_by_time() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let ids: Vec<UserId> = (0..64)
            .map(|_| RandomIds::default().new_user_id())
            .collect();
        let distinct: std::collections::HashSet<&str> = ids.iter().map(UserId::as_str).collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id.as_str()).expect("32 hex digits");
            assert_eq!(uuid.get_version(), Some(uuid::Version::SortRand), "{id}");
            let (secs, nanos) = uuid.get_timestamp().expect("a time").to_unix();
            let millis = u128::from(secs) * 1000 + u128::from(nanos / 1_000_000);
            assert!(millis >= before, "{id} is older than the test");
        }
    }

    #[test]
    fn tokens_carry_a_session_id_that_sorts_by_time_and_a_secret() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let tokens: Vec<SessionToken> = (0..64).map(|_| RandomIds::default().new_token()).collect();
        for token in &tokens {
            assert_eq!(token.expose_secret().len(), SessionToken::LEN);
            let id = uuid::Uuid::from_bytes(token.hash().selector());
            assert_eq!(id.get_version(), Some(uuid::Version::SortRand));
            let (secs, nanos) = id.get_timestamp().expect("a time").to_unix();
            assert!(u128::from(secs) * 1000 + u128::from(nanos / 1_000_000) >= before);
        }
        let distinct: std::collections::HashSet<[u8; 32]> =
            tokens.iter().map(|t| *t.hash().as_bytes()).collect();
        assert_eq!(distinct.len(), tokens.len());
    }
}
