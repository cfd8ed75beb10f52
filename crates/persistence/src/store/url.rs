//! Database URLs: which backend a URL names, where it points, and how it appears in logs and
//! errors without its password.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::error::PersistenceError;

/// Which database a [`Store`](crate::Store) talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An SQLite file (`sqlite://PATH`).
    Sqlite,
    /// A PostgreSQL server (`postgres://…` or `postgresql://…`).
    Postgres,
}

impl Backend {
    /// The backend a database URL names by its scheme, if it is one the store accepts.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite://") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// A parsed database URL: which backend, and where.
#[derive(Clone)]
pub(crate) enum Target {
    /// An absolute path to the SQLite file.
    Sqlite { path: PathBuf },
    /// A libpq connection URI as given, the connect timeout to add unless it sets one, the URL
    /// with its password redacted, and what to scrub from messages that could echo it.
    Postgres {
        url: String,
        connect_timeout: Duration,
        display: String,
        redactor: Redactor,
    },
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_url())
    }
}

/// A database URL parsed once, by the store's rules: configuration refuses a bad one at start,
/// and [`StoreConfig`](crate::StoreConfig) takes it as it is, so nothing parses the URL again.
///
/// `Debug` and `Display` show it without its password.
#[derive(Clone)]
pub struct DatabaseTarget(pub(crate) Target);

impl DatabaseTarget {
    /// Parse `url`.
    ///
    /// # Errors
    ///
    /// [`PersistenceError::UnsupportedUrl`] for another scheme, [`PersistenceError::InvalidUrl`]
    /// for an unusable SQLite path.
    pub fn parse(url: &str) -> Result<Self, PersistenceError> {
        Target::parse(url).map(Self)
    }

    /// Which backend it names.
    pub fn backend(&self) -> Backend {
        self.0.backend()
    }

    /// The SQLite file, made absolute against the working directory at parse time; `None` for
    /// PostgreSQL.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.0 {
            Target::Sqlite { path } => Some(path),
            Target::Postgres { .. } => None,
        }
    }
}

impl std::str::FromStr for DatabaseTarget {
    type Err = PersistenceError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Self::parse(url)
    }
}

impl fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.display_url())
    }
}

/// The accepted forms, for error messages.
pub(crate) const ACCEPTED_FORMS: &str = "sqlite://PATH (relative to the working directory), \
     sqlite:///ABSOLUTE/PATH, postgres://USER:PASSWORD@HOST:PORT/DB or postgresql://…";

impl Target {
    /// Parse a database URL by its scheme. SQLite paths are made absolute here, against the
    /// working directory, so every pooled connection opens the same file.
    fn parse(url: &str) -> Result<Self, PersistenceError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(PersistenceError::InvalidUrl {
                    url: redact_url(url),
                    reason: format!("the SQLite path is empty; expected {ACCEPTED_FORMS}"),
                });
            }
            if path == ":memory:" || path.starts_with("file:") {
                return Err(PersistenceError::InvalidUrl {
                    url: redact_url(url),
                    reason: "in-memory and URI-style SQLite databases are not supported; \
                             use a file path"
                        .to_owned(),
                });
            }
            let path =
                std::path::absolute(Path::new(path)).map_err(|e| PersistenceError::InvalidUrl {
                    url: redact_url(url),
                    reason: format!("cannot make the SQLite path absolute: {e}"),
                })?;
            if path.to_str().is_none() {
                return Err(PersistenceError::InvalidUrl {
                    url: redact_url(url),
                    reason: "the SQLite path is not valid UTF-8".to_owned(),
                });
            }
            Ok(Target::Sqlite { path })
        } else if Backend::of_url(url) == Some(Backend::Postgres) {
            Ok(Target::Postgres {
                url: url.to_owned(),
                connect_timeout: crate::StoreConfig::DEFAULT_CONNECT_TIMEOUT,
                display: redact_url(url),
                redactor: Redactor::for_url(url),
            })
        } else {
            Err(PersistenceError::UnsupportedUrl {
                url: redact_url(url),
            })
        }
    }

    /// The same target with libpq's connect timeout set to `timeout`.
    pub(crate) fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        if let Target::Postgres {
            connect_timeout, ..
        } = &mut self
        {
            *connect_timeout = timeout;
        }
        self
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Target::Sqlite { .. } => Backend::Sqlite,
            Target::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The URL as it may appear in logs and errors: without a password.
    pub(crate) fn display_url(&self) -> String {
        match self {
            Target::Sqlite { path } => format!("sqlite://{}", path.display()),
            Target::Postgres { display, .. } => display.clone(),
        }
    }

    /// Remove anything secret from a message that may quote the URL (a driver error).
    pub(crate) fn scrub(&self, message: String) -> String {
        match self {
            Target::Sqlite { .. } => message,
            Target::Postgres { redactor, .. } => redactor.scrub(message),
        }
    }

    /// Create the SQLite file's directory if it is missing; nothing to do for PostgreSQL.
    pub(crate) fn create_parent_dir(&self) -> Result<(), PersistenceError> {
        match self {
            Target::Sqlite { path } => match path.parent() {
                Some(parent) => {
                    std::fs::create_dir_all(parent).map_err(|source| PersistenceError::CreateDir {
                        path: parent.to_path_buf(),
                        source,
                    })
                }
                None => Ok(()),
            },
            Target::Postgres { .. } => Ok(()),
        }
    }
}

/// Add libpq's `connect_timeout` (whole seconds, at least 2) unless the URL sets one, so an
/// unreachable server is reported in seconds rather than after the operating system's TCP
/// timeout.
pub(crate) fn connection_uri(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let secs = timeout.as_secs().max(2);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={secs}")
}

/// What a PostgreSQL URL holds that must never be logged: the password, as written and
/// percent-decoded.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<secrecy::SecretString>,
}

impl Redactor {
    fn for_url(url: &str) -> Self {
        use secrecy::SecretString;
        let mut secrets = Vec::new();
        let mut push = |raw: &str| {
            if !raw.is_empty() {
                let decoded = percent_encoding::percent_decode_str(raw)
                    .decode_utf8_lossy()
                    .into_owned();
                if decoded != raw {
                    secrets.push(SecretString::from(decoded));
                }
                secrets.push(SecretString::from(raw.to_owned()));
            }
        };
        if let Some((_, password)) = userinfo(url).and_then(|u| u.split_once(':')) {
            push(password);
        }
        for value in query_passwords(url) {
            push(value);
        }
        Self { secrets }
    }

    /// Remove the secrets from a driver message, and fold libpq's multi-line messages onto
    /// one line for logs.
    pub(crate) fn scrub(&self, message: String) -> String {
        use secrecy::ExposeSecret;
        let mut message = message;
        for secret in &self.secrets {
            let secret = secret.expose_secret();
            if message.contains(secret) {
                message = message.replace(secret, "[redacted]");
            }
        }
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// The `user:password` part of `scheme://user:password@host/…`, if any. The last `@` is the
/// separator (a password may contain an unencoded `@`); an `@` later in the query makes this
/// hide more than needed, never less.
fn userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let at = rest.rfind('@')?;
    Some(&rest[..at])
}

/// Values of `password=` query parameters (libpq accepts the password there too).
fn query_passwords(url: &str) -> impl Iterator<Item = &str> {
    url.split_once('?')
        .map(|(_, query)| query)
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.strip_prefix("password="))
}

/// A URL as logs, errors and `Debug` may show it: scheme, host, port and path, with the
/// userinfo (a user and password, or a token) and the query (a libpq `password=`, a webhook's
/// `access_token=`) each replaced by `[redacted]`. libpq's keyword form (`host=db
/// password=…`) keeps its keywords, its password redacted. The one redaction of URLs in
/// wxlink: database URLs and webhook URLs alike.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_keyword_passwords(url);
    };
    let mut out = format!("{scheme}://");
    // The last `@` ends the userinfo (a password may hold an unencoded `@` or `/`); an `@`
    // further on, in the path or query, makes this hide more than needed, never less.
    let after_userinfo = match rest.rfind('@') {
        Some(at) => {
            out.push_str("[redacted]@");
            &rest[at + 1..]
        }
        None => rest,
    };
    match after_userinfo.find(['?', '#']) {
        Some(end) => {
            out.push_str(&after_userinfo[..end]);
            out.push_str("?[redacted]");
        }
        None => out.push_str(after_userinfo),
    }
    out
}

/// libpq's keyword form with each `password=` value replaced by `[redacted]`.
fn redact_keyword_passwords(text: &str) -> String {
    let mut out = text.to_owned();
    let mut search_from = 0;
    while let Some(found) = out[search_from..].find("password=") {
        let value_start = search_from + found + "password=".len();
        let value_end = out[value_start..]
            .find(['&', ' '])
            .map_or(out.len(), |i| value_start + i);
        out.replace_range(value_start..value_end, "[redacted]");
        search_from = value_start + "[redacted]".len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_relative_and_absolute_paths() {
        let Target::Sqlite { path } = Target::parse("sqlite://data/wxlink.db").unwrap() else {
            panic!("not sqlite");
        };
        assert!(path.is_absolute());
        assert!(path.ends_with("data/wxlink.db"));
        assert_eq!(
            std::env::current_dir().unwrap().join("data/wxlink.db"),
            path
        );

        let Target::Sqlite { path } = Target::parse("sqlite:///var/lib/wxlink/w.db").unwrap()
        else {
            panic!("not sqlite");
        };
        assert_eq!(path, PathBuf::from("/var/lib/wxlink/w.db"));
    }

    #[test]
    fn postgres_schemes_are_accepted_and_get_a_connect_timeout() {
        for url in ["postgres://u@h/db", "postgresql://u@h/db"] {
            let target = Target::parse(url).unwrap();
            assert_eq!(target.backend(), Backend::Postgres);
            assert_eq!(
                connection_uri(url, Duration::from_secs(3)),
                format!("{url}?connect_timeout=3")
            );
        }
        assert_eq!(
            connection_uri(
                "postgres://h/db?sslmode=disable",
                Duration::from_millis(500)
            ),
            "postgres://h/db?sslmode=disable&connect_timeout=2"
        );
        let given = "postgres://h/db?sslmode=disable&connect_timeout=9";
        assert_eq!(connection_uri(given, Duration::from_secs(3)), given);
    }

    #[test]
    fn other_forms_are_refused_with_the_accepted_ones_named() {
        for url in [
            "mysql://root:hunter2@db/x",
            "wxlink.db",
            "sqlite:wxlink.db",
            "",
            "SQLITE://x",
        ] {
            let err = Target::parse(url).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("sqlite://PATH"), "{text}");
            assert!(text.contains("postgres://"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        for url in ["sqlite://", "sqlite://:memory:"] {
            assert!(matches!(
                Target::parse(url),
                Err(PersistenceError::InvalidUrl { .. })
            ));
        }
    }

    #[test]
    fn passwords_are_redacted_everywhere() {
        assert_eq!(
            redact_url("postgres://wx:s3cr%40t@db:5432/wxlink?sslmode=require"),
            "postgres://[redacted]@db:5432/wxlink?[redacted]"
        );
        assert_eq!(
            redact_url("postgres://wx:p@ss@db/wxlink"),
            "postgres://[redacted]@db/wxlink"
        );
        assert_eq!(
            redact_url("postgres://wx:pa/ss@db/wxlink"),
            "postgres://[redacted]@db/wxlink"
        );
        assert_eq!(
            redact_url("postgres://db/wxlink?user=wx&password=hunter2&sslmode=require"),
            "postgres://db/wxlink?[redacted]"
        );
        assert_eq!(
            redact_url("host=db password=hunter2 user=wx"),
            "host=db password=[redacted] user=wx"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(
            redact_url("sqlite:///var/lib/wxlink/w.db"),
            "sqlite:///var/lib/wxlink/w.db"
        );
        // Webhook URLs: credentials in the userinfo or the query, a token as the user.
        assert_eq!(
            redact_url("https://crmuser:hunter2@crm.example/hook?access_token=t0k#frag"),
            "https://[redacted]@crm.example/hook?[redacted]"
        );
        assert_eq!(
            redact_url("https://ghp_token@hooks.example/in"),
            "https://[redacted]@hooks.example/in"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:9/hook#access_token=t0k"),
            "http://127.0.0.1:9/hook?[redacted]"
        );

        let target = Target::parse("postgres://wx:s3cr%40t@db/x?password=other").unwrap();
        let debug = format!("{target:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
        assert!(!debug.contains("other"), "{debug}");
        assert_eq!(
            target.display_url(),
            "postgres://[redacted]@db/x?[redacted]"
        );
        let scrubbed = target.scrub("auth failed for s3cr@t and\n\ts3cr%40t and other".to_owned());
        assert_eq!(
            scrubbed,
            "auth failed for [redacted] and [redacted] and [redacted]"
        );
    }
}
