//! A login in one round trip on PostgreSQL: the function `wxlink_login` (migration
//! `login_in_one_statement`) runs the rules of the login's transaction in the database, called
//! as one prepared statement outside an explicit transaction. Where it does not decide (a
//! merge, a unionid conflict, damage) the domain runs its rules in a transaction as before.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use wxlink_domain::{DomainError, LoginOutcome, LoginRecord, LoginRequest, StoreError};

use crate::store::Store;
use crate::store::tx::{parse_user_id, seal_key};

#[diesel::declare_sql_function]
extern "SQL" {
    /// See the migration that installs it.
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per value of a login, as the SQL function takes them"
    )]
    fn wxlink_login(
        appid: Text,
        openid: Text,
        unionid: Nullable<Text>,
        new_user: Nullable<Text>,
        at: BigInt,
        token_hash: Binary,
        session_key: Nullable<Binary>,
        expires_at: BigInt,
        refresh_hash: Nullable<Binary>,
    ) -> diesel::sql_types::Record<(
        Nullable<Text>,
        Nullable<Text>,
        Nullable<diesel::sql_types::Bool>,
    )>;
}

/// The function's answer: the user, the outcome (`None`: not decided), whether the user holds
/// a unionid.
type Decided = (Option<String>, Option<String>, Option<bool>);

/// [`wxlink_domain::IdentityStore::login_at_once`] for [`Store`]: on PostgreSQL, one statement.
pub(crate) async fn login(
    store: &Store,
    request: &LoginRequest,
) -> Result<Option<LoginRecord>, DomainError> {
    if store.backend() != crate::Backend::Postgres {
        return Ok(None);
    }
    // Sealed once: a rerun after a conflict stores the same sealed value.
    let sealed = request
        .session_key
        .as_ref()
        .map(|key| seal_key(&store.inner.keyring, &request.token_hash, key));
    let appid = request.appid.as_str().to_owned();
    let openid = request.openid.as_str().to_owned();
    let unionid = request.unionid.as_ref().map(|u| u.as_str().to_owned());
    let at = request.at;
    let token_hash = request.token_hash.as_bytes().to_vec();
    let expires_at = request.expires_at;
    let refresh = request.refresh_token.map(|t| t.as_bytes().to_vec());
    let decided = store
        .run_statement(move |conn| {
            diesel::select(wxlink_login(
                &appid,
                &openid,
                unionid.as_deref(),
                // No id: the function mints one only for a new user (migration
                // `login_mints_user_ids`; a node of the previous version passes one).
                None::<&str>,
                at,
                &token_hash,
                sealed.as_deref(),
                expires_at,
                refresh.as_deref(),
            ))
            .get_result::<Decided>(conn)
        })
        .await?;
    match decided {
        Some((Some(user), Some(outcome), Some(linked))) => Ok(Some(LoginRecord {
            user_id: parse_user_id(user)?,
            unionid_linked: linked,
            outcome: parse_outcome(&outcome)?,
        })),
        _ => Ok(None),
    }
}

fn parse_outcome(text: &str) -> Result<LoginOutcome, StoreError> {
    Ok(match text {
        "new" => LoginOutcome::NewUser,
        "provisional" => LoginOutcome::Provisional,
        "linked" => LoginOutcome::Linked,
        "returning" => LoginOutcome::Returning,
        other => {
            return Err(StoreError::Corrupt(format!(
                "wxlink_login answered an unknown outcome {other:?}"
            )));
        }
    })
}
