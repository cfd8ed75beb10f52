//! What is sealed at rest with the keyring, each bound to its row, and the keyed hashes that
//! find sealed values without opening them.

use secrecy::zeroize::Zeroizing;
use wxlink_crypto::Keyring;
use wxlink_domain::{PhoneNumber, SessionKey, StoreError, TokenHash, UserId};

/// Seal a session_key, bound to its token hash (see [`open_key`]).
pub(crate) fn seal_key(keyring: &Keyring, token: &TokenHash, key: &SessionKey) -> Vec<u8> {
    keyring.seal_with_aad(key.expose_secret().as_bytes(), token.as_bytes())
}

/// Open a stored session_key; it is bound to its token hash, so a sealed key copied to another
/// row does not open.
pub(crate) fn open_key(
    keyring: &Keyring,
    token: &TokenHash,
    sealed: &[u8],
) -> Result<SessionKey, StoreError> {
    let plain = Zeroizing::new(
        keyring
            .open_with_aad(sealed, token.as_bytes())
            .map_err(|e| StoreError::Key(format!("session key of {token:?}: {e}")))?,
    );
    let text = std::str::from_utf8(&plain)
        .map_err(|_| StoreError::Corrupt(format!("session key of {token:?} is not text")))?;
    Ok(SessionKey::new(text))
}

/// Phone numbers are sealed as `country_code`, `phone_number`, `pure_phone_number` on three
/// lines, bound to the user id.
pub(crate) fn seal_phone(keyring: &Keyring, user: &UserId, phone: &PhoneNumber) -> Vec<u8> {
    let text = Zeroizing::new(format!(
        "{}\n{}\n{}",
        phone.country_code, phone.phone_number, phone.pure_phone_number
    ));
    keyring.seal_with_aad(text.as_bytes(), user.as_str().as_bytes())
}

/// The purpose of [`wxlink_crypto::DataKey::keyed_hash`] for `users.phone_hash`.
const PHONE_HASH_CONTEXT: &str = "phone number";

/// The keyed hash that finds a user by phone number without opening sealed ones: of the
/// number without country code (WeChat's `purePhoneNumber`).
pub(crate) fn phone_hash(key: &wxlink_crypto::DataKey, phone: &PhoneNumber) -> [u8; 32] {
    phone_digits_hash(key, &phone.pure_phone_number)
}

/// [`phone_hash`] of a number as digits, the form a search gives.
pub(crate) fn phone_digits_hash(key: &wxlink_crypto::DataKey, digits: &str) -> [u8; 32] {
    key.keyed_hash(PHONE_HASH_CONTEXT, digits.as_bytes())
}

/// Inverse of [`seal_phone`].
pub(crate) fn open_phone(
    keyring: &Keyring,
    user: &UserId,
    sealed: &[u8],
) -> Result<PhoneNumber, StoreError> {
    let plain = Zeroizing::new(
        keyring
            .open_with_aad(sealed, user.as_str().as_bytes())
            .map_err(|e| StoreError::Key(format!("phone number of {user}: {e}")))?,
    );
    let text = std::str::from_utf8(&plain)
        .map_err(|_| StoreError::Corrupt(format!("phone number of {user} is not text")))?;
    let mut lines = text.splitn(3, '\n').map(str::to_owned);
    match (lines.next(), lines.next(), lines.next()) {
        (Some(country_code), Some(phone_number), Some(pure_phone_number)) => Ok(PhoneNumber {
            phone_number,
            pure_phone_number,
            country_code,
        }),
        _ => Err(StoreError::Corrupt(format!(
            "phone number of {user} is malformed"
        ))),
    }
}
