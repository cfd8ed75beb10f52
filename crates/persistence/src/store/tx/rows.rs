//! Rows as read back, and the checks that turn stored text into the domain's values.

use wxlink_domain::{
    AppId, OpenId, PhoneNumber, StoreError, TokenHash, UnionId, UnixTime, User, UserId,
};

use crate::store::schema::users;

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored {what} is invalid: {e}"))
}

pub(crate) fn parse_user_id(text: String) -> Result<UserId, StoreError> {
    UserId::parse(text).map_err(|e| corrupt("user id", e))
}

pub(crate) fn parse_appid(text: String) -> Result<AppId, StoreError> {
    AppId::parse(text).map_err(|e| corrupt("appid", e))
}

pub(crate) fn parse_openid(text: String) -> Result<OpenId, StoreError> {
    OpenId::parse(text).map_err(|e| corrupt("openid", e))
}

pub(crate) fn token_hash(bytes: &[u8]) -> Result<TokenHash, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(TokenHash::from_bytes)
        .map_err(|_| corrupt("token hash", format!("{} bytes, not 32", bytes.len())))
}

/// `users` columns as read.
pub(super) type UserRow = (String, Option<String>, Option<String>, i64);
/// A phone number to store: the number, when it was verified, and the (appid, openid) that
/// verified it, if known.
pub(super) type StoredPhone<'a> = (&'a PhoneNumber, UnixTime, Option<(&'a str, &'a str)>);
/// A sealed phone number, when it was verified, and the app and openid that verified it.
pub(super) type PhoneRow = (Option<Vec<u8>>, Option<i64>, Option<String>, Option<String>);

pub(super) const USER_COLUMNS: (
    users::id,
    users::unionid,
    users::merged_into,
    users::created_at,
) = (
    users::id,
    users::unionid,
    users::merged_into,
    users::created_at,
);

pub(super) fn user_from_row(
    (id, unionid, merged_into, created_at): UserRow,
) -> Result<User, StoreError> {
    Ok(User {
        id: parse_user_id(id)?,
        unionid: unionid
            .map(|u| UnionId::parse(u).map_err(|e| corrupt("unionid", e)))
            .transpose()?,
        merged_into: merged_into.map(parse_user_id).transpose()?,
        created_at,
    })
}

/// `sessions` columns as read; the sealed session_key only as whether there is one.
pub(super) type SessionRow = (Vec<u8>, String, String, String, bool, i64, i64, Option<i64>);
