//! Operators of the support console: names, scopes, Argon2id passwords, one-time passwords,
//! TOTP (RFC 6238), and how failed sign-ins slow down and then lock.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng as _;
use secrecy::zeroize::Zeroizing;
use wxlink_domain::UnixTime;
use wxlink_persistence::SignInFailures;

use crate::http::clients::Scope;

/// Search, users' pages, duplicates.
pub const USERS_READ: &str = Scope::UsersRead.as_str();
/// Phone numbers unmasked.
pub const USERS_PHONE: &str = Scope::UsersPhone.as_str();
/// A user's timeline of events.
pub const EVENTS_READ: &str = Scope::EventsRead.as_str();
/// Repairs: merge, split, unlink, revoke sessions, cancel.
pub const SUPPORT_WRITE: &str = Scope::SupportWrite.as_str();

/// Every scope an operator can hold (the internal API's clients' scopes), comma-separated.
pub fn all_scopes() -> String {
    Scope::ALL.map(Scope::as_str).join(",")
}

/// How failed sign-ins slow down and lock (`[console]` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInPolicy {
    /// Failures in a row under one key that go on at full speed.
    pub slow_after: i64,
    /// The first wait after them, doubled by each further failure.
    pub slow_down_secs: i64,
    /// Failures in a row that lock an operator until `wxlink operator reset-password`.
    pub lock_operator_after: i64,
    /// Failures in a row that lock an address for [`ADDRESS_LOCK_SECS`].
    pub lock_address_after: i64,
}

impl SignInPolicy {
    /// The policy of the `[console]` settings.
    pub fn of(settings: &crate::config::ConsoleSettings) -> Self {
        let lock = i64::from(settings.lock_after_failures);
        Self {
            slow_after: i64::from(settings.slow_after_failures),
            slow_down_secs: i64::from(settings.slow_down_secs.max(1)),
            lock_operator_after: lock,
            lock_address_after: lock.saturating_mul(3),
        }
    }
}

/// How long a locked address waits, from its last failure.
pub const ADDRESS_LOCK_SECS: i64 = 3600;
/// The longest wait between two attempts before the lock.
const MAX_DELAY_SECS: i64 = 300;

/// Why a sign-in attempt is refused before its password is even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Too many failures: try again in this many seconds.
    Wait(u64),
    /// Locked: the operator until an administrator resets its password, the address for
    /// this many seconds.
    Locked(Option<u64>),
}

impl SignInPolicy {
    /// Whether an attempt may go on, given the failures counted so far: after `slow_after`
    /// each further attempt waits twice as long after the last failure, then the key locks.
    pub fn gate(&self, counts: &[SignInFailures], now: UnixTime) -> Result<(), Gate> {
        // A lock wins over a wait, whichever key's row comes first.
        let mut wait = None;
        for count in counts {
            let is_operator = count.key.starts_with("operator:");
            if is_operator && count.failures >= self.lock_operator_after {
                return Err(Gate::Locked(None));
            }
            let since = now.saturating_sub(count.last_failure_at);
            if !is_operator && count.failures >= self.lock_address_after {
                let left = ADDRESS_LOCK_SECS.saturating_sub(since);
                if left > 0 {
                    return Err(Gate::Locked(Some(u64::try_from(left).unwrap_or(0))));
                }
                continue;
            }
            if count.failures >= self.slow_after {
                let doublings = u32::try_from(count.failures - self.slow_after).unwrap_or(u32::MAX);
                let most = MAX_DELAY_SECS.max(self.slow_down_secs);
                let delay = self
                    .slow_down_secs
                    .checked_mul(1_i64.checked_shl(doublings.min(20)).unwrap_or(most))
                    .unwrap_or(most)
                    .min(most);
                let left = u64::try_from(delay.saturating_sub(since)).unwrap_or(0);
                if left > 0 {
                    wait = wait.max(Some(left));
                }
            }
        }
        match wait {
            Some(secs) => Err(Gate::Wait(secs)),
            None => Ok(()),
        }
    }
}

/// An operator's name: 1 to 56 of `A-Z a-z 0-9 . _ -`, so that `console:NAME` is an event's
/// actor (at most 64 characters).
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_name(name: &str) -> Result<String, String> {
    let fits = (1..=56).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if fits {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "operator name {name:?}: 1 to 56 letters, digits, '.', '_' or '-'"
        ))
    }
}

/// Scope names, comma- or space-separated; each must be a scope of the internal API.
///
/// # Errors
/// A message naming the unknown scope and the known ones.
pub fn parse_scopes(text: &str) -> Result<Vec<String>, String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in text.split([',', ' ']).filter(|s| !s.is_empty()) {
        if Scope::parse(scope).is_none() {
            return Err(format!(
                "unknown scope {scope:?}; the scopes are {}",
                all_scopes()
            ));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    if scopes.is_empty() {
        return Err(format!("--scopes: name at least one of {}", all_scopes()));
    }
    Ok(scopes)
}

/// A one-time password: 20 random letters and digits (about 119 bits).
pub fn one_time_password() -> Zeroizing<String> {
    Zeroizing::new(
        rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(20)
            .map(char::from)
            .collect(),
    )
}

/// The shortest password an operator may choose.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Argon2id of a password (the crate's default parameters: 19 MiB, 2 passes), PHC string.
/// Slow on purpose: call it off the async threads.
///
/// # Errors
/// The hasher's error (it has none for these parameters).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches an Argon2id PHC string. Slow on purpose, like [`hash_password`].
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A new TOTP secret: 20 random bytes (160 bits, as RFC 4226 recommends).
pub fn new_totp_secret() -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(vec![0u8; 20]);
    rand::rng().fill(secret.as_mut_slice());
    secret
}

fn totp(secret: &[u8], name: &str) -> Result<totp_rs::TOTP, String> {
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret.to_vec(),
        Some("wxlink".to_owned()),
        name.to_owned(),
    )
    .map_err(|e| e.to_string())
}

/// The `otpauth://` URI an authenticator app scans.
///
/// # Errors
/// When the secret or the name does not fit a TOTP URI.
pub fn totp_uri(secret: &[u8], name: &str) -> Result<String, String> {
    Ok(totp(secret, name)?.get_url())
}

/// The time step whose TOTP code `code` is: the current one, or the one before or after (for
/// clocks a little apart); `None` when it is none of them. The caller accepts each step once.
pub fn totp_step(secret: &[u8], name: &str, code: &str, now: UnixTime) -> Option<i64> {
    let totp = totp(secret, name).ok()?;
    let code = code.trim();
    let step = i64::try_from(totp.step).ok()?;
    let current = now.div_euclid(step);
    [current - 1, current, current + 1].into_iter().find(|s| {
        u64::try_from(s * step).is_ok_and(|at| {
            let expected = totp.generate(at);
            use subtle::ConstantTimeEq as _;
            bool::from(expected.as_bytes().ct_eq(code.as_bytes()))
        })
    })
}

/// The TOTP code at `now`, for the sandbox's and tests' operators.
///
/// # Errors
/// When the secret or the name does not fit.
pub fn totp_code(secret: &[u8], name: &str, now: UnixTime) -> Result<String, String> {
    Ok(totp(secret, name)?.generate(u64::try_from(now).unwrap_or(0)))
}

/// What a new operator is told once: its one-time password and, with a second factor, the
/// TOTP secret and its `otpauth://` URI.
pub struct Credentials {
    /// Valid for one sign-in, which must choose a new one.
    pub one_time_password: Zeroizing<String>,
    /// The TOTP secret (raw bytes).
    pub totp_secret: Option<Zeroizing<Vec<u8>>>,
    /// The URI an authenticator app scans.
    pub totp_uri: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

/// Why an operator could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// A bad name or scope, or a taken name.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] wxlink_domain::StoreError),
}

/// Add an operator with a one-time password (and with `totp`, a TOTP secret): the one home of
/// `wxlink operator add`, the sandbox's demo operator and the tests' operators.
///
/// # Errors
/// [`AddError::Invalid`] for a bad name or scope or a taken name; the database's failures.
pub async fn add_operator(
    store: &wxlink_persistence::Store,
    name: &str,
    scopes: &str,
    totp: bool,
    now: UnixTime,
) -> Result<Credentials, AddError> {
    let name = parse_name(name).map_err(AddError::Invalid)?;
    let scopes = parse_scopes(scopes).map_err(AddError::Invalid)?;
    let password = one_time_password();
    let secret = totp.then(new_totp_secret);
    let uri = secret
        .as_ref()
        .map(|s| totp_uri(s, &name))
        .transpose()
        .map_err(AddError::Invalid)?;
    let hashed = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| AddError::Invalid(e.to_string()))?
            .map_err(AddError::Invalid)?
    };
    let new = wxlink_persistence::NewOperator {
        name: name.clone(),
        password_hash: hashed,
        scopes,
        totp_secret: secret.clone(),
    };
    if !store.add_operator(new, now).await? {
        return Err(AddError::Invalid(format!("operator {name} exists already")));
    }
    Ok(Credentials {
        one_time_password: password,
        totp_secret: secret,
        totp_uri: uri,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(key: &str, failures: i64, last: UnixTime) -> SignInFailures {
        SignInFailures {
            key: key.to_owned(),
            failures,
            last_failure_at: last,
        }
    }

    const POLICY: SignInPolicy = SignInPolicy {
        slow_after: 3,
        slow_down_secs: 1,
        lock_operator_after: 10,
        lock_address_after: 30,
    };
    const LOCK_OPERATOR_AFTER: i64 = 10;
    const LOCK_ADDRESS_AFTER: i64 = 30;

    fn gate(counts: &[SignInFailures], now: UnixTime) -> Result<(), Gate> {
        POLICY.gate(counts, now)
    }

    #[test]
    fn failures_slow_down_then_lock() {
        let now = 1_000_000;
        assert_eq!(gate(&[failures("operator:a", 2, now)], now), Ok(()));
        assert_eq!(
            gate(&[failures("operator:a", 3, now)], now),
            Err(Gate::Wait(1))
        );
        assert_eq!(
            gate(&[failures("operator:a", 5, now - 1)], now),
            Err(Gate::Wait(3))
        );
        assert_eq!(gate(&[failures("operator:a", 5, now - 4)], now), Ok(()));
        assert_eq!(
            gate(
                &[failures("operator:a", LOCK_OPERATOR_AFTER, now - 100_000)],
                now
            ),
            Err(Gate::Locked(None))
        );
        assert_eq!(
            gate(
                &[failures("address:192.0.2.1", LOCK_ADDRESS_AFTER, now - 10)],
                now
            ),
            Err(Gate::Locked(Some(3590)))
        );
        assert_eq!(
            gate(
                &[failures(
                    "address:192.0.2.1",
                    LOCK_ADDRESS_AFTER,
                    now - 4000
                )],
                now
            ),
            Ok(())
        );
        // A lock wins over a wait, in whatever order the rows come.
        assert_eq!(
            gate(
                &[
                    failures("address:192.0.2.1", 5, now),
                    failures("operator:a", LOCK_OPERATOR_AFTER, now)
                ],
                now
            ),
            Err(Gate::Locked(None))
        );
    }

    #[test]
    fn passwords_and_codes_check() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterz", &hash));
        assert!(!verify_password("x", "not a hash"));
        let secret = new_totp_secret();
        let code = totp_code(&secret, "ann", 1_000_000).expect("code");
        assert_eq!(
            totp_step(&secret, "ann", &code, 1_000_000),
            Some(1_000_000 / 30)
        );
        assert_eq!(
            totp_step(&secret, "ann", &code, 1_000_000 + 30),
            Some(1_000_000 / 30),
            "a step of clock skew"
        );
        assert_eq!(totp_step(&secret, "ann", &code, 1_000_000 + 600), None);
        assert!(
            totp_uri(&secret, "ann")
                .expect("uri")
                .starts_with("otpauth://totp/")
        );
    }

    #[test]
    fn names_and_scopes_parse() {
        assert!(parse_name("ann.lee-2").is_ok());
        assert!(parse_name("ann lee").is_err());
        assert!(parse_name("").is_err());
        assert_eq!(
            parse_scopes("users:read,support:write users:read").expect("scopes"),
            vec!["users:read", "support:write"]
        );
        assert!(parse_scopes("users:write").is_err());
        assert!(parse_scopes("").is_err());
    }
}
