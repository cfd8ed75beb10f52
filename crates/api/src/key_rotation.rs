//! `wxlink rotate-data-key` and `wxlink rotate-signing-key`: an operator's key rotations,
//! against the configured database (see docs/operations.md).

use std::path::Path;

use wxlink_persistence::Store;

use crate::config::{Settings, TokenFormat, Validated};
use crate::{KeyCheck, StorePool, open_store};

/// The configured database, with a small pool: an operator's command runs one thing at a time.
async fn open(
    settings: &Settings,
    valid: Validated,
    key_file: &Path,
    key_check: KeyCheck,
) -> Result<Store, String> {
    open_store(
        valid.database,
        valid.data_keys,
        key_file,
        StorePool {
            max_connections: 2,
            migrate_on_start: settings.database.migrate_on_start,
            key_check,
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// Re-seal every sealed value (session keys, phone numbers, access tokens, JWT signing keys)
/// under the current data key, rehash phone numbers, and retire the data keys nothing is sealed
/// under any more; prints what it did.
///
/// # Errors
/// A message for the operator: the configuration, the keyring check or the database refused.
pub async fn rotate_data_key(config: &Path, key_file: &Path) -> Result<(), String> {
    let settings = Settings::load(Some(config)).map_err(|e| e.to_string())?;
    let valid = settings.validate().map_err(|e| e.to_string())?;
    if !valid.data_keys.configured() && !key_file.exists() {
        return Err("no data key was configured: nothing to rotate".into());
    }
    let store = open(&settings, valid, key_file, KeyCheck::Record).await?;
    let keys = store
        .reseal_session_keys(500)
        .await
        .map_err(|e| e.to_string())?;
    let phones = store
        .reseal_phone_numbers(500)
        .await
        .map_err(|e| e.to_string())?;
    store
        .rehash_phone_numbers(500)
        .await
        .map_err(|e| e.to_string())?;
    let tokens = store
        .reseal_access_tokens(500)
        .await
        .map_err(|e| e.to_string())?;
    let signing = store
        .reseal_signing_keys(500)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "re-sealed {keys} session keys, {phones} phone numbers, {tokens} access tokens \
         and {signing} JWT signing keys under the current data key"
    );
    let retired = store
        .retire_unused_data_keys()
        .await
        .map_err(|e| e.to_string())?;
    if retired.is_empty() {
        println!("no data key retired");
    } else {
        println!(
            "retired data keys {}: no value is sealed under them, nodes may drop them",
            retired.join(", ")
        );
    }
    Ok(())
}

/// Add a JWT signing key now (`[tokens] format = "jwt"`); prints when it signs.
///
/// # Errors
/// A message for the operator: the configuration, the keyring check or the database refused,
/// or another node added a key at the same moment.
pub async fn rotate_signing_key(config: &Path, key_file: &Path) -> Result<(), String> {
    use wxlink_domain::Clock as _;
    let settings = Settings::load(Some(config)).map_err(|e| e.to_string())?;
    let valid = settings.validate().map_err(|e| e.to_string())?;
    if settings.tokens.format != TokenFormat::Jwt {
        return Err("[tokens] format is not \"jwt\": there is no signing key".into());
    }
    let store = open(&settings, valid, key_file, KeyCheck::Verify).await?;
    let now = crate::adapters::SystemClock.now();
    let tokens = crate::tokens::JwtTokens::load(store, &settings.tokens, now)
        .await
        .map_err(|e| e.to_string())?;
    let added = tokens.rotate_now(now).await.map_err(|e| e.to_string())?;
    if added {
        println!(
            "added a signing key: published by every node within {} s, signing in {} s",
            tokens.reload_interval().as_secs(),
            settings.tokens.key_publish_secs
        );
        Ok(())
    } else {
        Err("another node added a signing key at the same moment; run it again".into())
    }
}
