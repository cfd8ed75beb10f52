//! The data keys: the configured ones, or on SQLite a key file beside the configuration that
//! a first start makes.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use wxlink_persistence::Backend;

use super::{ConfigError, SecuritySettings, invalid};

/// The data keys as configured: the current one (none on SQLite means the key file), and the
/// previous ones that still open older data.
pub struct DataKeys {
    current: Option<wxlink_crypto::DataKey>,
    previous: Vec<wxlink_crypto::DataKey>,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeys")
            .field("configured", &self.current.is_some())
            .field("previous", &self.previous.len())
            .finish()
    }
}

impl DataKeys {
    pub(super) fn parse(
        security: &SecuritySettings,
        backend: Backend,
    ) -> Result<Self, ConfigError> {
        let decode = |key: &str, value: &SecretString| {
            wxlink_crypto::DataKey::from_base64(value.expose_secret())
                .map_err(|e| invalid(key, e.to_string()))
        };
        let current = match &security.data_key {
            Some(key) => Some(decode("security.data_key", key)?),
            // A key file of its own per node would split a cluster's keyring.
            None if backend == Backend::Postgres => {
                return Err(invalid(
                    "security.data_key",
                    "is required with PostgreSQL: every node of the cluster needs the same \
                     data key; generate one with `wxlink new-data-key` and set \
                     security.data_key (or WXLINK__SECURITY__DATA_KEY) on every node",
                ));
            }
            None => None,
        };
        let previous = security
            .previous_data_keys
            .iter()
            .enumerate()
            .map(|(i, old)| decode(&format!("security.previous_data_keys[{i}]"), old))
            .collect::<Result<_, _>>()?;
        Ok(Self { current, previous })
    }

    /// Whether `security.data_key` is set (not the key file).
    pub fn configured(&self) -> bool {
        self.current.is_some()
    }

    /// The keyring sealing session_keys: the configured data key, or on SQLite the key file
    /// at `key_file`. When that file is absent a new key is made and staged beside it
    /// (mode 0600); it becomes the key file only when [`NewKeyFile::keep`] is called, after
    /// the database accepted the key, so a node refused at start leaves no key file behind.
    ///
    /// # Errors
    /// [`ConfigError::DataKeyFile`] when the key file cannot be read or staged.
    pub fn keyring(
        self,
        key_file: &Path,
    ) -> Result<(wxlink_crypto::Keyring, Option<NewKeyFile>), ConfigError> {
        let (current, staged) = match self.current {
            Some(key) => (key, None),
            None => match read_key_file(key_file)? {
                Some(key) => (key, None),
                None => {
                    let (key, staged) = NewKeyFile::stage(key_file)?;
                    (key, Some(staged))
                }
            },
        };
        let keyring = self
            .previous
            .into_iter()
            .fold(wxlink_crypto::Keyring::new(current), |ring, old| {
                ring.with_old_key(old)
            });
        Ok((keyring, staged))
    }
}

fn key_file_error(path: &Path, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::DataKeyFile(format!("{}: {e}", path.display()))
}

fn read_key_file(path: &Path) -> Result<Option<wxlink_crypto::DataKey>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => wxlink_crypto::DataKey::from_base64(text.trim())
            .map(Some)
            .map_err(|e| key_file_error(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(key_file_error(path, e)),
    }
}

/// A data key made for a key file that did not exist: written and synced to a temporary file
/// beside it, removed on drop unless [`NewKeyFile::keep`] moves it into place.
pub struct NewKeyFile {
    staged: tempfile::NamedTempFile,
    path: PathBuf,
}

impl std::fmt::Debug for NewKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKeyFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl NewKeyFile {
    fn stage(path: &Path) -> Result<(wxlink_crypto::DataKey, Self), ConfigError> {
        use std::io::Write;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| key_file_error(path, e))?;
        // tempfile creates the file with mode 0600.
        let mut staged = tempfile::Builder::new()
            .prefix(".wxlink-key-")
            .tempfile_in(dir)
            .map_err(|e| key_file_error(path, e))?;
        let key = wxlink_crypto::DataKey::generate();
        writeln!(staged, "{}", key.to_base64().expose_secret())
            .and_then(|()| staged.as_file().sync_all())
            .map_err(|e| key_file_error(path, e))?;
        let path = path.to_path_buf();
        Ok((key, Self { staged, path }))
    }

    /// Move the staged key into place (never over a file another process wrote meanwhile) and
    /// return its path.
    ///
    /// # Errors
    /// [`ConfigError::DataKeyFile`] when it cannot be moved.
    pub fn keep(self) -> Result<PathBuf, ConfigError> {
        self.staged
            .persist_noclobber(&self.path)
            .map_err(|e| key_file_error(&self.path, e.error))?;
        Ok(self.path)
    }
}
