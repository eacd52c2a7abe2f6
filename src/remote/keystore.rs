//! Where remote API keys live: the platform keyring (Secret Service on Linux, Keychain on
//! macOS, Credential Manager on Windows), one entry per server address; where there is no
//! keyring (a headless machine, a desktop without a secret service), a private file in the
//! data folder readable by the user alone (0600). Never in `settings.json`, never in a log.
//!
//! `ATELIER_KEYSTORE=file` forces the file (tests, machines whose keyring prompts).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ApiKey, RemoteError, normalize_base_url};

/// The keyring service name the entries are filed under.
const SERVICE: &str = "atelier";
/// The fallback file's name in the data folder.
pub const FILE_NAME: &str = "remote-keys.json";

/// Which store holds a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// The platform keyring.
    Keyring,
    /// The private file in the data folder.
    File,
}

impl Backing {
    /// For the settings panel: where the key went.
    pub fn describe(self) -> &'static str {
        match self {
            Backing::Keyring => "the system keyring",
            Backing::File => "a private file (no system keyring here)",
        }
    }
}

/// The key store of one data folder.
pub struct KeyStore {
    file: PathBuf,
    use_keyring: bool,
}

impl KeyStore {
    /// The store of the studio's data folder.
    pub fn open() -> Self {
        Self::in_dir(&crate::paths::data_dir())
    }

    /// A store whose fallback file is in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        let use_keyring = std::env::var("ATELIER_KEYSTORE").map_or(true, |v| v != "file");
        Self {
            file: dir.join(FILE_NAME),
            use_keyring,
        }
    }

    /// The key saved for `base_url`, if any.
    pub fn load(&self, base_url: &str) -> Result<Option<ApiKey>, RemoteError> {
        let account = normalize_base_url(base_url)?;
        if self.use_keyring {
            match entry(&account).and_then(|e| e.get_password()) {
                Ok(key) => return Ok(ApiKey::new(key)),
                Err(keyring::Error::NoEntry) => {}
                // No keyring on this machine: the file is the store.
                Err(e) => tracing::debug!("keyring unavailable ({e}); using the key file"),
            }
        }
        Ok(self.read_file()?.remove(&account).and_then(ApiKey::new))
    }

    /// Saves `key` for `base_url`; returns where it went.
    pub fn save(&self, base_url: &str, key: &ApiKey) -> Result<Backing, RemoteError> {
        let account = normalize_base_url(base_url)?;
        if self.use_keyring {
            match entry(&account).and_then(|e| e.set_password(key.expose())) {
                Ok(()) => {
                    // A key that moved into the keyring must not linger in the file.
                    self.remove_from_file(&account)?;
                    return Ok(Backing::Keyring);
                }
                Err(e) => tracing::info!("keyring unavailable ({e}); saving the key to a file"),
            }
        }
        let mut keys = self.read_file()?;
        keys.insert(account, key.expose().to_string());
        self.write_file(&keys)?;
        Ok(Backing::File)
    }

    /// Forgets the key of `base_url` everywhere.
    pub fn delete(&self, base_url: &str) -> Result<(), RemoteError> {
        let account = normalize_base_url(base_url)?;
        if self.use_keyring {
            match entry(&account).and_then(|e| e.delete_credential()) {
                Ok(()) | Err(keyring::Error::NoEntry) => {}
                Err(e) => tracing::debug!("keyring unavailable ({e})"),
            }
        }
        self.remove_from_file(&account)
    }

    fn remove_from_file(&self, account: &str) -> Result<(), RemoteError> {
        let mut keys = self.read_file()?;
        if keys.remove(account).is_some() {
            self.write_file(&keys)?;
        }
        Ok(())
    }

    fn read_file(&self) -> Result<BTreeMap<String, String>, RemoteError> {
        match std::fs::read(&self.file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                RemoteError::KeyStore(format!("{} is damaged: {e}", self.file.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(RemoteError::KeyStore(format!(
                "cannot read {}: {e}",
                self.file.display()
            ))),
        }
    }

    fn write_file(&self, keys: &BTreeMap<String, String>) -> Result<(), RemoteError> {
        let bytes =
            serde_json::to_vec_pretty(keys).map_err(|e| RemoteError::KeyStore(e.to_string()))?;
        crate::fsutil::atomic_write_private(&self.file, &bytes).map_err(|e| {
            RemoteError::KeyStore(format!("cannot write {}: {e}", self.file.display()))
        })
    }
}

fn entry(account: &str) -> keyring::Result<keyring::Entry> {
    keyring::Entry::new(SERVICE, account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trips_privately() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore {
            file: dir.path().join(FILE_NAME),
            use_keyring: false,
        };
        assert!(store.load("http://h:1").unwrap().is_none());
        let key = ApiKey::new("sk-test").unwrap();
        assert_eq!(store.save("http://h:1/v1/", &key).unwrap(), Backing::File);
        assert_eq!(store.load("http://h:1").unwrap(), Some(key));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&store.file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store.delete("http://h:1").unwrap();
        assert!(store.load("http://h:1").unwrap().is_none());
    }
}
