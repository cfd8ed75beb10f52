//! `wxlink user …`: support's repairs for operators without the internal API. Each command runs
//! the same domain use case as its internal route (one code path, the same transaction and
//! event), against the configured database.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use wxlink_domain::{Accounts, ActorName, AppId, DomainError, OpenId, UserId};
use wxlink_persistence::{PersistenceError, Store};

use crate::StartError;
use crate::adapters::{RandomIds, SystemClock};
use crate::config::Settings;
use crate::http::error::{ApiError, ErrorCode};
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
    /// Unlink one identity from the user; its sessions are revoked, and the unionid is released
    /// with the last identity vouching for it.
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
    /// Undo a merge: move identities of the user to a new user, or with --into back to a user
    /// that was merged into it (restored). Sessions follow their identity, the phone number
    /// the identity that verified it, the unionid the identities vouching for it.
    Split {
        /// wxlink's user id.
        user_id: String,
        /// The identities to move, each as APPID/OPENID.
        #[arg(required = true, value_name = "APPID/OPENID")]
        identities: Vec<String>,
        /// A user that was merged into USER_ID: the identities go back to it.
        #[arg(long, value_name = "USER_ID")]
        into: Option<String>,
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

/// A [`UserCommand`] whose arguments parsed: what runs once the operator confirmed.
enum Action {
    Show(UserId),
    RevokeSessions(UserId),
    Unlink(UserId, AppId, OpenId),
    Merge {
        into: UserId,
        from: UserId,
    },
    Split {
        user: UserId,
        identities: Vec<(AppId, OpenId)>,
        into: Option<UserId>,
    },
    ResetDecryptBudget(AppId, OpenId),
    Delete(UserId),
}

impl Action {
    /// Every argument checked before anything else, so an operator never confirms a command
    /// that then fails on a typo.
    fn parse(command: UserCommand) -> Result<Self, UserError> {
        Ok(match command {
            UserCommand::Show { user_id } => Action::Show(user_id_arg(&user_id)?),
            UserCommand::RevokeSessions { user_id } => {
                Action::RevokeSessions(user_id_arg(&user_id)?)
            }
            UserCommand::Unlink {
                user_id,
                appid,
                openid,
            } => Action::Unlink(
                user_id_arg(&user_id)?,
                AppId::parse(appid).map_err(|e| UserError::argument(format!("appid: {e}")))?,
                OpenId::parse(openid).map_err(|e| UserError::argument(format!("openid: {e}")))?,
            ),
            UserCommand::Merge { into, from } => Action::Merge {
                into: user_id_arg(&into)?,
                from: user_id_arg(&from)?,
            },
            UserCommand::Split {
                user_id,
                identities,
                into,
            } => Action::Split {
                user: user_id_arg(&user_id)?,
                identities: identities
                    .iter()
                    .map(|i| identity_arg(i))
                    .collect::<Result<_, _>>()?,
                into: into.as_deref().map(user_id_arg).transpose()?,
            },
            UserCommand::ResetDecryptBudget { appid, openid } => Action::ResetDecryptBudget(
                AppId::parse(appid).map_err(|e| UserError::argument(format!("appid: {e}")))?,
                OpenId::parse(openid).map_err(|e| UserError::argument(format!("openid: {e}")))?,
            ),
            UserCommand::Delete { user_id } => Action::Delete(user_id_arg(&user_id)?),
        })
    }

    /// What a confirmation prompt says, for the commands that change something.
    fn destructive(&self) -> Option<String> {
        match self {
            Action::Show(_) => None,
            Action::RevokeSessions(id) => Some(format!("revoke every session of user {id}")),
            Action::Unlink(id, appid, openid) => Some(format!(
                "unlink identity ({appid}, {openid}) from user {id}"
            )),
            Action::Merge { into, from } => Some(format!("merge user {from} into user {into}")),
            Action::Split {
                user,
                identities,
                into,
            } => {
                let listed: Vec<String> = identities
                    .iter()
                    .map(|(appid, openid)| format!("({appid}, {openid})"))
                    .collect();
                let target = match into {
                    Some(into) => format!("back to user {into}"),
                    None => "to a new user".to_owned(),
                };
                Some(format!(
                    "move {} of user {user} {target}",
                    listed.join(", ")
                ))
            }
            Action::ResetDecryptBudget(appid, openid) => Some(format!(
                "reset the budget of failed decryptions of ({appid}, {openid})"
            )),
            Action::Delete(id) => Some(format!("delete user {id} and erase its personal data")),
        }
    }
}

/// How `wxlink user` prints and confirms, and who runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserOptions {
    /// One JSON object on stdout, for scripts.
    pub json: bool,
    /// Do not ask before changing anything.
    pub yes: bool,
    /// The operator's name for the events (`cli:NAME`); `None`: the OS user's login name.
    pub actor: Option<String>,
}

/// The events' actor for the command line: `cli:` and the operator's name.
fn cli_actor(given: Option<&str>) -> Result<ActorName, UserError> {
    let name = match given {
        Some(name) => name.to_owned(),
        None => whoami::fallible::username().map_err(|e| {
            UserError::argument(format!(
                "cannot tell the operator's login name ({e}); pass --actor NAME"
            ))
        })?,
    };
    ActorName::parse(format!("cli:{name}"))
        .map_err(|e| UserError::argument(format!("--actor {name:?}: {e}")))
}

/// Why a `wxlink user` command failed: a category that fixes its `code` and exit status, and a
/// message for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError {
    failure: Failure,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// A failure the service answers too, with the contract's code.
    Contract(ErrorCode),
    /// The operator did not confirm.
    NotConfirmed,
    /// The configuration, or its data keys, cannot be used.
    Configuration,
}

impl UserError {
    fn argument(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            failure: Failure::Contract(ErrorCode::InvalidRequest),
            message,
        }
    }

    fn configuration(message: String) -> Self {
        Self {
            failure: Failure::Configuration,
            message,
        }
    }

    /// A use case's refusal or failure, under the code the internal API answers it with.
    fn domain(context: &str, error: DomainError) -> Self {
        let message = format!("{context}: {error}");
        Self {
            failure: Failure::Contract(ApiError::from(error).code),
            message,
        }
    }

    /// The contract's error code (`not_found`, `last_identity`, `unionid_conflict`, …), or
    /// `not_confirmed` and `invalid_configuration`, which only the command line has.
    pub fn code(&self) -> &'static str {
        match self.failure {
            Failure::Contract(code) => code.as_str(),
            Failure::NotConfirmed => "not_confirmed",
            Failure::Configuration => "invalid_configuration",
        }
    }

    /// The exit status of the category, as docs/operations.md lists them: a script can tell a
    /// typo from an unknown user, a refused rule or a database to retry.
    pub fn exit_code(&self) -> u8 {
        use ErrorCode as C;
        match self.failure {
            Failure::Contract(C::InvalidRequest) => 2,
            Failure::NotConfirmed => 3,
            Failure::Contract(C::NotFound) => 4,
            Failure::Contract(
                C::LastIdentity
                | C::UserMerged
                | C::SameUser
                | C::UnionidConflict
                | C::NotMergedHere,
            ) => 5,
            Failure::Configuration => 6,
            Failure::Contract(C::DatabaseUnavailable | C::DatabaseContention) => 7,
            Failure::Contract(_) => 1,
        }
    }

    /// The error as `--json` prints it, in the shape of the service's error bodies.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code(), "message": self.message}})
    }
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Run one `wxlink user` command with the configuration in `config` (`None`: none was given).
/// Arguments, configuration and data keys are checked before the confirmation is asked.
///
/// # Errors
/// [`UserError`]: bad arguments, configuration or data keys, unknown users, refusals, an
/// unanswered confirmation, database failures.
pub async fn run_user(
    config: Option<&Path>,
    key_file: &Path,
    command: UserCommand,
    options: UserOptions,
) -> Result<(), UserError> {
    let action = Action::parse(command)?;
    let actor = cli_actor(options.actor.as_deref())?;
    let store = command_store("user", config, key_file).await?;
    if let Some(what) = action.destructive().filter(|_| !options.yes) {
        confirm(&what)?;
    }
    let accounts: WxlinkAccounts = Accounts::new(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(RandomIds::default()),
    );
    let output = execute(&store, &accounts, action, actor).await?;
    if options.json {
        println!("{}", output.json);
    } else {
        println!("{}", output.text);
    }
    Ok(())
}

/// The configured store, for a command of an operator at the command line. It writes only
/// what it was asked to: no migration, no record of its key (a key it would make the
/// cluster's current one could lock nodes out).
async fn command_store(
    command: &str,
    config: Option<&Path>,
    key_file: &Path,
) -> Result<Store, UserError> {
    let config =
        config.ok_or_else(|| UserError::configuration(format!("{command} needs --config FILE")))?;
    let settings =
        Settings::load(Some(config)).map_err(|e| UserError::configuration(e.to_string()))?;
    let valid = settings
        .validate()
        .map_err(|e| UserError::configuration(e.to_string()))?;
    crate::open_store(
        valid.database,
        valid.data_keys,
        key_file,
        crate::StorePool {
            max_connections: 2,
            migrate_on_start: false,
            key_check: crate::KeyCheck::Verify,
        },
    )
    .await
    .map_err(start_error)
}

/// What `wxlink operator` does: the support console's operators.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum OperatorCommand {
    /// Add an operator; prints a one-time password, to be changed at the first sign-in.
    Add {
        /// The operator's name (letters, digits, '.', '_', '-'); events name it
        /// `console:NAME`.
        name: String,
        /// What the operator may see and do: scope names of the internal API's clients,
        /// comma-separated (users:read, users:phone, events:read, tokens:introspect,
        /// support:write).
        #[arg(long, value_name = "SCOPES")]
        scopes: String,
        /// Also require a TOTP code (RFC 6238) at sign-in; prints the otpauth:// URI to scan.
        #[arg(long)]
        totp: bool,
    },
    /// List the operators: name, scopes, second factor, state.
    List,
    /// Disable an operator: it cannot sign in, its sessions end.
    Disable {
        /// The operator's name.
        name: String,
    },
    /// Give an operator a new one-time password (it ends its sessions, enables it again and
    /// lifts a lock after failed sign-ins).
    ResetPassword {
        /// The operator's name.
        name: String,
    },
}

/// Run one `wxlink operator` command with the configuration in `config`.
///
/// # Errors
/// [`UserError`]: bad arguments or configuration, an unknown or taken name, database
/// failures.
pub async fn run_operator(
    config: Option<&Path>,
    key_file: &Path,
    command: OperatorCommand,
    json: bool,
) -> Result<(), UserError> {
    use crate::console::operators;
    use wxlink_domain::Clock as _;
    let name_arg = |name: &str| operators::parse_name(name).map_err(UserError::argument);
    // Arguments are checked before the database is opened.
    match &command {
        OperatorCommand::Add { name, scopes, .. } => {
            name_arg(name)?;
            operators::parse_scopes(scopes).map_err(UserError::argument)?;
        }
        OperatorCommand::Disable { name } | OperatorCommand::ResetPassword { name } => {
            name_arg(name)?;
        }
        OperatorCommand::List => {}
    }
    let store = command_store("operator", config, key_file).await?;
    let now = SystemClock.now();
    let db = |e: wxlink_domain::StoreError| UserError::domain("operator", DomainError::Store(e));
    let unknown = |name: &str| UserError {
        failure: Failure::Contract(ErrorCode::NotFound),
        message: format!("no operator {name}"),
    };
    let hash = |password: &str| {
        operators::hash_password(password).map_err(|e| UserError {
            failure: Failure::Contract(ErrorCode::InternalError),
            message: e,
        })
    };
    let output = match command {
        OperatorCommand::Add { name, scopes, totp } => {
            let added = operators::add_operator(&store, &name, &scopes, totp, now)
                .await
                .map_err(|e| match e {
                    operators::AddError::Invalid(message) => UserError::argument(message),
                    operators::AddError::Store(e) => db(e),
                })?;
            let scopes = operators::parse_scopes(&scopes).map_err(UserError::argument)?;
            let password = added.one_time_password;
            let mut text = format!(
                "added operator {name} with scopes {}\none-time password (change it at the \
                 first sign-in): {}",
                scopes.join(","),
                password.as_str()
            );
            if let Some(uri) = &added.totp_uri {
                text.push_str(&format!("\nTOTP: scan {uri}"));
            }
            Output {
                json: serde_json::json!({
                    "name": name,
                    "scopes": scopes,
                    "one_time_password": password.as_str(),
                    "totp_uri": added.totp_uri,
                }),
                text,
            }
        }
        OperatorCommand::List => {
            let all = store.operators().await.map_err(db)?;
            let text = if all.is_empty() {
                "no operators".to_owned()
            } else {
                all.iter()
                    .map(|o| {
                        format!(
                            "{}\t{}\t{}\t{}",
                            o.name,
                            o.scopes.join(","),
                            if o.totp_secret.is_some() { "totp" } else { "-" },
                            if o.disabled {
                                "disabled"
                            } else if o.password_expired {
                                "one-time password"
                            } else {
                                "active"
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Output {
                json: serde_json::json!({
                    "operators": all.iter().map(|o| serde_json::json!({
                        "name": o.name,
                        "scopes": o.scopes,
                        "totp": o.totp_secret.is_some(),
                        "disabled": o.disabled,
                        "password_expired": o.password_expired,
                    })).collect::<Vec<_>>(),
                }),
                text,
            }
        }
        OperatorCommand::Disable { name } => {
            if !store.disable_operator(&name, now).await.map_err(db)? {
                return Err(unknown(&name));
            }
            Output {
                json: serde_json::json!({ "disabled": name }),
                text: format!("disabled operator {name}; its sessions ended"),
            }
        }
        OperatorCommand::ResetPassword { name } => {
            let password = operators::one_time_password();
            if !store
                .set_operator_password(&name, hash(&password)?, true, now)
                .await
                .map_err(db)?
            {
                return Err(unknown(&name));
            }
            Output {
                json: serde_json::json!({ "name": name, "one_time_password": password.as_str() }),
                text: format!(
                    "new one-time password of operator {name} (change it at the next sign-in): {}",
                    password.as_str()
                ),
            }
        }
    };
    if json {
        println!("{}", output.json);
    } else {
        println!("{}", output.text);
    }
    Ok(())
}

/// A database that does not answer is worth a retry; anything else about opening the store
/// (a URL, a migration, the data keys) is the configuration's.
fn start_error(error: StartError) -> UserError {
    let message = error.to_string();
    match error {
        StartError::Database(PersistenceError::Connect { .. }) => UserError {
            failure: Failure::Contract(ErrorCode::DatabaseUnavailable),
            message,
        },
        _ => UserError::configuration(message),
    }
}

struct Output {
    json: serde_json::Value,
    text: String,
}

async fn execute(
    store: &Store,
    accounts: &WxlinkAccounts,
    action: Action,
    actor: ActorName,
) -> Result<Output, UserError> {
    match action {
        Action::Show(id) => show(store, &id).await,
        Action::RevokeSessions(id) => {
            let revoked = accounts
                .revoke_sessions(id.clone(), actor)
                .await
                .map_err(|e| refused(&id, e))?;
            Ok(Output {
                json: serde_json::json!({ "revoked": revoked }),
                text: format!("revoked {revoked} sessions of user {id}"),
            })
        }
        Action::Unlink(id, appid, openid) => {
            accounts
                .unlink_identity(id.clone(), appid.clone(), openid.clone(), actor)
                .await
                .map_err(|e| refused(&id, e))?;
            Ok(Output {
                json: serde_json::json!({
                    "user_id": id.to_string(),
                    "unlinked": {"appid": appid.to_string(), "openid": openid.to_string()},
                }),
                text: format!("unlinked ({appid}, {openid}) from user {id}"),
            })
        }
        Action::Merge { into, from } => {
            let survivor = accounts
                .merge(into.clone(), from.clone(), actor)
                .await
                .map_err(|e| {
                    UserError::domain(&format!("cannot merge user {from} into user {into}"), e)
                })?;
            let shown = show(store, &survivor).await?;
            Ok(Output {
                text: format!("merged user {from} into user {into}\n{}", shown.text),
                json: shown.json,
            })
        }
        Action::Split {
            user,
            identities,
            into,
        } => {
            let split = accounts
                .split(user.clone(), identities, into, actor)
                .await
                .map_err(|e| refused(&user, e))?;
            let moved_to = show(store, &split.user).await?;
            let remaining = show(store, &split.remaining).await?;
            Ok(Output {
                text: format!("split user {user}\n{}\n{}", moved_to.text, remaining.text),
                json: serde_json::json!({"user": moved_to.json, "remaining": remaining.json}),
            })
        }
        Action::ResetDecryptBudget(appid, openid) => {
            let reset = store
                .reset_decrypt_budget(&appid, &openid)
                .await
                .map_err(|e| {
                    UserError::domain(
                        &format!("cannot reset the budget of ({appid}, {openid})"),
                        DomainError::Store(e),
                    )
                })?;
            Ok(Output {
                json: serde_json::json!({ "reset": reset }),
                text: if reset {
                    format!("reset the budget of failed decryptions of ({appid}, {openid})")
                } else {
                    format!("({appid}, {openid}) spent none of its budget today: nothing to reset")
                },
            })
        }
        Action::Delete(id) => {
            let cancelled = accounts
                .delete_user(id.clone(), actor)
                .await
                .map_err(|e| refused(&id, e))?;
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

async fn show(store: &Store, id: &UserId) -> Result<Output, UserError> {
    let record = store
        .user_by_id(id)
        .await
        .map_err(|e| refused(id, DomainError::Store(e)))?
        .ok_or_else(|| refused(id, DomainError::UserNotFound))?;
    // The operator of the database sees everything the internal API can show.
    let user = crate::http::wire::InternalUser::new(record, true);
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
    if let Some(Some(phone)) = &user.phone_number {
        text.push_str(&format!("\n  phone number: {}", phone.phone_number));
    }
    let json = serde_json::to_value(&user).map_err(|e| UserError {
        failure: Failure::Contract(ErrorCode::InternalError),
        message: e.to_string(),
    })?;
    Ok(Output { json, text })
}

/// An identity given as APPID/OPENID.
fn identity_arg(text: &str) -> Result<(AppId, OpenId), UserError> {
    let (appid, openid) = text
        .split_once('/')
        .ok_or_else(|| UserError::argument(format!("identity {text:?}: expected APPID/OPENID")))?;
    Ok((
        AppId::parse(appid.to_owned()).map_err(|e| UserError::argument(format!("appid: {e}")))?,
        OpenId::parse(openid.to_owned())
            .map_err(|e| UserError::argument(format!("openid: {e}")))?,
    ))
}

fn user_id_arg(text: &str) -> Result<UserId, UserError> {
    UserId::parse(text.to_owned())
        .map_err(|e| UserError::argument(format!("user id {text:?}: {e}")))
}

fn refused(id: &UserId, error: DomainError) -> UserError {
    UserError::domain(&format!("user {id}"), error)
}

/// Ask on stderr, read one line from stdin: only `y` or `yes` goes ahead. No terminal and
/// nothing piped in is a refusal.
fn confirm(action: &str) -> Result<(), UserError> {
    eprint!("wxlink: {action}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let read = std::io::stdin().lock().read_line(&mut answer);
    match (read, answer.trim().to_ascii_lowercase().as_str()) {
        (Ok(_), "y" | "yes") => Ok(()),
        _ => Err(UserError {
            failure: Failure::NotConfirmed,
            message: format!(
                "not confirmed: nothing changed (answer y, or pass --yes to {action})"
            ),
        }),
    }
}
