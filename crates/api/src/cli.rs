//! `wxlink user …`: support's repairs for operators without the internal API. Each command runs
//! the same domain use case as its internal route (one code path, the same transaction and
//! event), against the configured database.

use std::io::{BufRead, Write};
use std::path::Path;

use wxlink_domain::{Accounts, AppId, DomainError, OpenId, UserId};
use wxlink_persistence::Store;

use crate::adapters::SystemClock;
use crate::config::Settings;
use crate::state::WxlinkAccounts;

/// What `wxlink user` does.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum UserCommand {
    /// Show a user: unionid, merge target, identities, phone number.
    Show {
        /// wxlink's user id.
        user_id: String,
    },
    /// Revoke every live session of the user and of the users merged into it.
    RevokeSessions {
        /// wxlink's user id.
        user_id: String,
    },
    /// Unlink one identity from the user; its sessions are revoked and its next login makes a
    /// new provisional user.
    Unlink {
        /// wxlink's user id.
        user_id: String,
        /// The identity's app.
        appid: String,
        /// The identity's openid.
        openid: String,
    },
    /// Merge user FROM into user INTO by the rules of a unionid merge.
    Merge {
        /// The user that stays.
        into: String,
        /// The user merged away.
        from: String,
    },
    /// Give an (appid, openid) its day's budget of failed decryptions back, for a real user
    /// locked out with `too_many_attempts`.
    ResetDecryptBudget {
        /// The identity's app.
        appid: String,
        /// The identity's openid.
        openid: String,
    },
    /// Delete (cancel) an account: sessions revoked, identities released, unionid, phone number
    /// and session_keys erased; the id stays as a tombstone.
    Delete {
        /// wxlink's user id.
        user_id: String,
    },
}

impl UserCommand {
    /// What a confirmation prompt says, for the commands that change something.
    fn destructive(&self) -> Option<String> {
        match self {
            UserCommand::Show { .. } => None,
            UserCommand::RevokeSessions { user_id } => {
                Some(format!("revoke every session of user {user_id}"))
            }
            UserCommand::Unlink {
                user_id,
                appid,
                openid,
            } => Some(format!(
                "unlink identity ({appid}, {openid}) from user {user_id}"
            )),
            UserCommand::Merge { into, from } => {
                Some(format!("merge user {from} into user {into}"))
            }
            UserCommand::ResetDecryptBudget { appid, openid } => Some(format!(
                "reset the budget of failed decryptions of ({appid}, {openid})"
            )),
            UserCommand::Delete { user_id } => {
                Some(format!("delete user {user_id} and erase its personal data"))
            }
        }
    }
}

/// How `wxlink user` prints and confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserOptions {
    /// One JSON object on stdout, for scripts.
    pub json: bool,
    /// Do not ask before changing anything.
    pub yes: bool,
}

/// Run one `wxlink user` command with the configuration in `config`.
///
/// # Errors
/// A message for the operator: bad ids, unknown users, refusals, an unanswered confirmation,
/// database failures.
pub async fn run_user(
    config: &Path,
    key_file: &Path,
    command: UserCommand,
    options: UserOptions,
) -> Result<(), String> {
    if let Some(action) = command.destructive().filter(|_| !options.yes) {
        confirm(&action)?;
    }
    let settings = Settings::load(Some(config)).map_err(|e| e.to_string())?;
    let valid = settings.validate().map_err(|e| e.to_string())?;
    let store = crate::open_store(
        valid.database,
        valid.data_keys,
        key_file,
        2,
        settings.database.migrate_on_start,
    )
    .await
    .map_err(|e| e.to_string())?;
    let accounts: WxlinkAccounts = Accounts::new(store.clone(), SystemClock);
    let output = execute(&store, &accounts, command).await?;
    if options.json {
        println!("{}", output.json);
    } else {
        println!("{}", output.text);
    }
    Ok(())
}

struct Output {
    json: serde_json::Value,
    text: String,
}

async fn execute(
    store: &Store,
    accounts: &WxlinkAccounts,
    command: UserCommand,
) -> Result<Output, String> {
    match command {
        UserCommand::Show { user_id } => {
            let id = user_id_arg(&user_id)?;
            show(store, &id).await
        }
        UserCommand::RevokeSessions { user_id } => {
            let id = user_id_arg(&user_id)?;
            let revoked = accounts
                .revoke_sessions(id.clone())
                .await
                .map_err(|e| refused(&id, &e))?;
            Ok(Output {
                json: serde_json::json!({ "revoked": revoked }),
                text: format!("revoked {revoked} sessions of user {id}"),
            })
        }
        UserCommand::Unlink {
            user_id,
            appid,
            openid,
        } => {
            let id = user_id_arg(&user_id)?;
            let appid = AppId::parse(appid).map_err(|e| format!("appid: {e}"))?;
            let openid = OpenId::parse(openid).map_err(|e| format!("openid: {e}"))?;
            accounts
                .unlink_identity(id.clone(), appid.clone(), openid.clone())
                .await
                .map_err(|e| refused(&id, &e))?;
            Ok(Output {
                json: serde_json::json!({
                    "user_id": id.to_string(),
                    "unlinked": {"appid": appid.to_string(), "openid": openid.to_string()},
                }),
                text: format!("unlinked ({appid}, {openid}) from user {id}"),
            })
        }
        UserCommand::Merge { into, from } => {
            let into = user_id_arg(&into)?;
            let from = user_id_arg(&from)?;
            let survivor = accounts
                .merge(into.clone(), from.clone())
                .await
                .map_err(|e| format!("cannot merge user {from} into user {into}: {e}"))?;
            let shown = show(store, &survivor).await?;
            Ok(Output {
                text: format!("merged user {from} into user {into}\n{}", shown.text),
                json: shown.json,
            })
        }
        UserCommand::ResetDecryptBudget { appid, openid } => {
            let appid = AppId::parse(appid).map_err(|e| format!("appid: {e}"))?;
            let openid = OpenId::parse(openid).map_err(|e| format!("openid: {e}"))?;
            let reset = store
                .reset_decrypt_budget(&appid, &openid)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Output {
                json: serde_json::json!({ "reset": reset }),
                text: if reset {
                    format!("reset the budget of failed decryptions of ({appid}, {openid})")
                } else {
                    format!("({appid}, {openid}) spent none of its budget today: nothing to reset")
                },
            })
        }
        UserCommand::Delete { user_id } => {
            let id = user_id_arg(&user_id)?;
            let cancelled = accounts
                .delete_user(id.clone())
                .await
                .map_err(|e| refused(&id, &e))?;
            Ok(Output {
                json: serde_json::json!({
                    "deleted": id.to_string(),
                    "sessions": cancelled.sessions,
                    "identities": cancelled.identities,
                }),
                text: format!(
                    "deleted user {id}: revoked {} sessions, released {} identities",
                    cancelled.sessions, cancelled.identities
                ),
            })
        }
    }
}

async fn show(store: &Store, id: &UserId) -> Result<Output, String> {
    let record = store
        .user_by_id(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| refused(id, &DomainError::UserNotFound))?;
    let user = crate::http::internal::internal_user(record);
    let mut text = format!(
        "user {}\n  unionid: {}\n  merged into: {}\n  created at: {}",
        user.user_id,
        user.unionid.as_deref().unwrap_or("-"),
        user.merged_into.as_deref().unwrap_or("-"),
        user.created_at,
    );
    for identity in &user.identities {
        text.push_str(&format!(
            "\n  identity: {} {}",
            identity.appid, identity.openid
        ));
    }
    if let Some(phone) = &user.phone_number {
        text.push_str(&format!("\n  phone number: {}", phone.phone_number));
    }
    let json = serde_json::to_value(&user).map_err(|e| e.to_string())?;
    Ok(Output { json, text })
}

fn user_id_arg(text: &str) -> Result<UserId, String> {
    UserId::parse(text.to_owned()).map_err(|e| format!("user id {text:?}: {e}"))
}

fn refused(id: &UserId, error: &DomainError) -> String {
    format!("user {id}: {error}")
}

/// Ask on stderr, read one line from stdin: only `y` or `yes` goes ahead. No terminal and
/// nothing piped in is a refusal.
fn confirm(action: &str) -> Result<(), String> {
    eprint!("wxlink: {action}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let read = std::io::stdin().lock().read_line(&mut answer);
    match (read, answer.trim().to_ascii_lowercase().as_str()) {
        (Ok(_), "y" | "yes") => Ok(()),
        _ => Err(format!(
            "not confirmed: nothing changed (answer y, or pass --yes to {action})"
        )),
    }
}
