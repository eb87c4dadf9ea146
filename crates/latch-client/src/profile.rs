//! Profiles: one directory and one set of keyring entries each.
//!
//! ```text
//! <home>/profiles/<name>/profile.json   name, keyring id, relay URL (nothing secret)
//! <home>/profiles/<name>/db/            the SQLCipher database (latch-store)
//! <home>/profiles/<name>/lock           held while an engine has the profile open
//! keyring: <keyring id>/database-key, <keyring id>/identity/main
//! ```
//! The keyring id is the name plus a random suffix, so a profile deleted and created again
//! under the same name never meets the old entries.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use latch_protocol::IdentityKeyPair;
use latch_store::keystore::{KeyName, load_identity_key, store_identity_key};
use latch_store::{
    KdfParams, KeyStore, KeyStoreError, OpenError, PassphraseError, Profile, ProfileId,
    SecretBytes, Store, StoreError, StoreOptions, UnixMillis,
};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The label of the identity key in the keyring.
const IDENTITY_LABEL: &str = "main";

/// The keyring service under which every profile's entries are filed. The CLI and the
/// desktop app share it, so they share profiles.
pub const KEYRING_SERVICE: &str = "app.latch.desktop";

/// The relay a new profile uses unless told otherwise: the local one `scripts/run` starts.
pub const DEFAULT_RELAY: &str = "ws://127.0.0.1:7878";

/// Where profiles live unless the user says otherwise (`LATCH_HOME`, `--home`):
/// `$XDG_DATA_HOME/latch`, else `~/.local/share/latch`. `None` without either variable.
pub fn default_home() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("latch"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/latch"))
}

/// This device's number. Linked devices will get others.
pub const PRIMARY_DEVICE_ID: u32 = 1;

/// Settings keys.
pub(crate) const SETTING_RELAY_URL: &str = "relay_url";
/// Where a passphrase-protected profile keeps its identity key: inside the encrypted
/// database, whose own key is wrapped under the passphrase. Keyring profiles never set it.
const SETTING_IDENTITY_KEY: &str = "identity_key";

/// What can go wrong with profiles.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Profile names are short and plain so they can name directories and keyring entries.
    #[error("invalid profile name: use 1-32 lower-case letters, digits, '-' or '_'")]
    InvalidName,
    /// There is already a profile with this name.
    #[error("a profile named {0:?} already exists")]
    Exists(String),
    /// There is no profile with this name.
    #[error("no profile named {0:?}")]
    NotFound(String),
    /// Another process has the profile open.
    #[error("profile {0:?} is open in another Latch process")]
    InUse(String),
    /// The keyring failed (missing, locked, refused).
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// The database could not be created or opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A database operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The identity key in the keyring is not a Latch identity.
    #[error("the identity key in the keyring is malformed")]
    BadIdentity,
    /// The profile is protected by a passphrase; open it with
    /// [`Profiles::open_with_passphrase`].
    #[error("profile {0:?} is protected by a passphrase")]
    NeedsPassphrase(String),
    /// The passphrase does not open this profile.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// `profile.json` is unreadable.
    #[error("profile.json is unreadable: {0}")]
    BadInfo(String),
    /// A file-system error.
    #[error("file system error: {0}")]
    Io(#[from] std::io::Error),
}

/// The non-secret description of a profile, kept beside its database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileInfo {
    /// The name the user gave it.
    pub name: String,
    /// The keyring account of its keys.
    pub keyring_id: String,
    /// The relay it registers with.
    pub relay_url: String,
    /// Where its keys are kept (profiles from before passphrases existed used the keyring).
    #[serde(default)]
    pub protection: Protection,
}

/// Where a profile's keys are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    /// The identity key and the database key are in the OS keyring; opening needs nothing
    /// from the user.
    #[default]
    Keyring,
    /// The database key is wrapped under an Argon2id passphrase and the identity key is
    /// inside the encrypted database: for machines without a keyring, or as an app lock.
    Passphrase,
}

/// The secret that protects a profile being created or opened.
enum Unlock<'a> {
    Keyring,
    Passphrase(&'a str),
}

/// All profiles under one home directory.
pub struct Profiles {
    root: PathBuf,
    keys: Box<dyn KeyStore>,
}

impl std::fmt::Debug for Profiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiles")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// A profile opened by this process: its store, identity and settings. Holds the profile's
/// lock until dropped.
pub struct OpenProfile {
    /// Its description.
    pub info: ProfileInfo,
    /// Its database.
    pub store: Store,
    /// Its identity key pair (from the keyring).
    pub identity: IdentityKeyPair,
    _lock: fs::File,
}

impl std::fmt::Debug for OpenProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenProfile")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The current time in Unix milliseconds.
pub(crate) fn now_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Profiles {
    /// Profiles under `home`, with keys in `keys` (the OS keyring in the app and CLI).
    pub fn new(home: &Path, keys: Box<dyn KeyStore>) -> Self {
        Self {
            root: home.join("profiles"),
            keys,
        }
    }

    fn dir(&self, name: &str) -> Result<PathBuf, ProfileError> {
        if !valid_name(name) {
            return Err(ProfileError::InvalidName);
        }
        Ok(self.root.join(name))
    }

    /// Names of every profile, sorted.
    ///
    /// # Errors
    /// A file-system error.
    pub fn list(&self) -> Result<Vec<String>, ProfileError> {
        let mut names = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            if entry.path().join("profile.json").is_file()
                && let Some(name) = entry.file_name().to_str()
                && valid_name(name)
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Creates a profile: identity key and database key in the keyring, the database with
    /// its first prekeys, and `profile.json`. On failure nothing is left behind.
    ///
    /// # Errors
    /// [`ProfileError::Exists`], a keyring error (no keyring: the message says so), or a
    /// database error.
    pub fn create(&self, name: &str, relay_url: &str) -> Result<OpenProfile, ProfileError> {
        self.create_protected(name, relay_url, Unlock::Keyring)
    }

    /// Creates a profile that needs no keyring: its database key is wrapped under
    /// `passphrase` (Argon2id) and its identity key is kept inside the encrypted database.
    ///
    /// # Errors
    /// As [`Profiles::create`]; an empty passphrase is refused.
    pub fn create_with_passphrase(
        &self,
        name: &str,
        relay_url: &str,
        passphrase: &str,
    ) -> Result<OpenProfile, ProfileError> {
        self.create_protected(name, relay_url, Unlock::Passphrase(passphrase))
    }

    fn create_protected(
        &self,
        name: &str,
        relay_url: &str,
        unlock: Unlock<'_>,
    ) -> Result<OpenProfile, ProfileError> {
        let dir = self.dir(name)?;
        if dir.exists() {
            return Err(ProfileError::Exists(name.to_owned()));
        }
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|_| OpenError::Random)?;
        let info = ProfileInfo {
            name: name.to_owned(),
            keyring_id: format!("{name}-{}", hex::encode(suffix)),
            relay_url: relay_url.to_owned(),
            protection: match unlock {
                Unlock::Keyring => Protection::Keyring,
                Unlock::Passphrase(_) => Protection::Passphrase,
            },
        };
        let result = self.create_in(&dir, &info, &unlock);
        if result.is_err() {
            let _ = self.forget_keys(&info);
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    fn create_in(
        &self,
        dir: &Path,
        info: &ProfileInfo,
        unlock: &Unlock<'_>,
    ) -> Result<OpenProfile, ProfileError> {
        // Owner-only, like everything of a profile: names, relay and keyring id included.
        latch_store::open::create_private_dir(dir)?;
        let lock = lock(dir, &info.name)?;
        let keyring_id = ProfileId::new(&info.keyring_id)?;
        let identity = IdentityKeyPair::generate(&mut OsRng);
        let identity_secret = SecretBytes::new(identity.to_secret_bytes().expose().to_vec());
        let store = match unlock {
            Unlock::Keyring => {
                store_identity_key(
                    self.keys.as_ref(),
                    &keyring_id,
                    IDENTITY_LABEL,
                    &identity_secret,
                )?;
                Store::create_with_keyring(
                    &dir.join("db"),
                    &keyring_id,
                    self.keys.as_ref(),
                    &StoreOptions::default(),
                )?
            }
            Unlock::Passphrase(passphrase) => Store::create_with_passphrase(
                &dir.join("db"),
                passphrase,
                KdfParams::default(),
                &StoreOptions::default(),
            )?,
        };
        let now = now_ms();
        store.write(|tx| {
            if let Unlock::Passphrase(_) = unlock {
                let hex = Zeroizing::new(hex::encode(identity_secret.expose()));
                tx.set_setting(SETTING_IDENTITY_KEY, &hex)?;
            }
            tx.set_profile(&Profile {
                device_id: PRIMARY_DEVICE_ID,
                handle: None,
                display_name: Some(info.name.clone()),
                created_at: now,
            })?;
            tx.set_setting(SETTING_RELAY_URL, &info.relay_url)?;
            crate::device_prekeys::create_initial(tx, &identity, now)?;
            Ok(())
        })?;
        let json =
            serde_json::to_vec_pretty(info).map_err(|e| ProfileError::BadInfo(e.to_string()))?;
        latch_store::open::create_private_file(&dir.join("profile.json"))?.write_all(&json)?;
        Ok(OpenProfile {
            info: info.clone(),
            store,
            identity,
            _lock: lock,
        })
    }

    /// Opens a profile (keys from the keyring). Expired messages are deleted before it
    /// returns.
    ///
    /// # Errors
    /// [`ProfileError::NotFound`], [`ProfileError::InUse`], or a keyring/database error.
    pub fn open(&self, name: &str) -> Result<OpenProfile, ProfileError> {
        let dir = self.dir(name)?;
        let info = read_info(&dir, name)?;
        if info.protection == Protection::Passphrase {
            return Err(ProfileError::NeedsPassphrase(name.to_owned()));
        }
        let lock = lock(&dir, name)?;
        let keyring_id = ProfileId::new(&info.keyring_id)?;
        let secret = load_identity_key(self.keys.as_ref(), &keyring_id, IDENTITY_LABEL)?;
        let identity = IdentityKeyPair::from_secret_bytes(secret.expose())
            .map_err(|_| ProfileError::BadIdentity)?;
        let store = Store::open_with_keyring(
            &dir.join("db"),
            &keyring_id,
            self.keys.as_ref(),
            &StoreOptions::default(),
        )?;
        Ok(OpenProfile {
            info,
            store,
            identity,
            _lock: lock,
        })
    }

    /// Opens a passphrase-protected profile. Expired messages are deleted before it returns.
    ///
    /// # Errors
    /// [`ProfileError::WrongPassphrase`], [`ProfileError::NotFound`],
    /// [`ProfileError::InUse`], or a database error.
    pub fn open_with_passphrase(
        &self,
        name: &str,
        passphrase: &str,
    ) -> Result<OpenProfile, ProfileError> {
        let dir = self.dir(name)?;
        let info = read_info(&dir, name)?;
        let lock = lock(&dir, name)?;
        let store = match Store::open_with_passphrase(
            &dir.join("db"),
            passphrase,
            &StoreOptions::default(),
        ) {
            Ok(store) => store,
            Err(OpenError::Passphrase(
                PassphraseError::WrongPassphrase | PassphraseError::EmptyPassphrase,
            )) => return Err(ProfileError::WrongPassphrase),
            Err(e) => return Err(e.into()),
        };
        let hex = store
            .write(|tx| tx.setting(SETTING_IDENTITY_KEY))?
            .map(Zeroizing::new)
            .ok_or(ProfileError::BadIdentity)?;
        let secret =
            Zeroizing::new(hex::decode(hex.as_str()).map_err(|_| ProfileError::BadIdentity)?);
        let identity =
            IdentityKeyPair::from_secret_bytes(&secret).map_err(|_| ProfileError::BadIdentity)?;
        Ok(OpenProfile {
            info,
            store,
            identity,
            _lock: lock,
        })
    }

    /// The description of profile `name` (its relay and how it is protected).
    ///
    /// # Errors
    /// [`ProfileError::NotFound`] or an unreadable `profile.json`.
    pub fn info(&self, name: &str) -> Result<ProfileInfo, ProfileError> {
        read_info(&self.dir(name)?, name)
    }

    /// Deletes a profile: its keyring entries first (without them the files are unreadable),
    /// then its directory. The caller unregisters from the relay beforehand if it can.
    ///
    /// # Errors
    /// [`ProfileError::NotFound`], [`ProfileError::InUse`], or a keyring/file error.
    pub fn delete(&self, name: &str) -> Result<(), ProfileError> {
        let dir = self.dir(name)?;
        let info = read_info(&dir, name)?;
        let lock = lock(&dir, name)?;
        // A passphrase profile has nothing in the keyring, and there may be no keyring at all.
        if info.protection == Protection::Keyring {
            self.forget_keys(&info)?;
        }
        drop(lock);
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    fn forget_keys(&self, info: &ProfileInfo) -> Result<(), ProfileError> {
        let id = ProfileId::new(&info.keyring_id)?;
        for name in [
            KeyName::database_key(&id),
            KeyName::identity_key(&id, IDENTITY_LABEL)?,
        ] {
            match self.keys.delete(&name) {
                Ok(()) | Err(KeyStoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

fn read_info(dir: &Path, name: &str) -> Result<ProfileInfo, ProfileError> {
    let bytes = match fs::read(dir.join("profile.json")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ProfileError::NotFound(name.to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    serde_json::from_slice(&bytes).map_err(|e| ProfileError::BadInfo(e.to_string()))
}

/// Takes the profile's lock file: one engine per profile, so two processes never race on
/// one ratchet or connect as the same device (the relay would drop one of them).
fn lock(dir: &Path, name: &str) -> Result<fs::File, ProfileError> {
    let mut options = fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(dir.join("lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(ProfileError::InUse(name.to_owned())),
        Err(fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use latch_store::MemoryKeyStore;

    use super::*;

    const RELAY: &str = "ws://127.0.0.1:7878";

    fn profiles(home: &Path) -> Profiles {
        Profiles::new(home, Box::new(MemoryKeyStore::new()))
    }

    #[test]
    fn a_passphrase_profile_needs_no_keyring_and_opens_only_with_its_passphrase() {
        let home = tempfile::tempdir().unwrap();
        // A key store that holds nothing: a passphrase profile must not touch it.
        let profiles = profiles(home.path());
        let created = profiles
            .create_with_passphrase("ada", RELAY, "correct horse")
            .unwrap();
        let identity = created.identity.public().to_bytes();
        drop(created);

        assert_eq!(
            profiles.info("ada").unwrap().protection,
            Protection::Passphrase
        );
        assert!(matches!(
            profiles.open("ada"),
            Err(ProfileError::NeedsPassphrase(_))
        ));
        assert!(matches!(
            profiles.open_with_passphrase("ada", "wrong horse"),
            Err(ProfileError::WrongPassphrase)
        ));
        let opened = profiles
            .open_with_passphrase("ada", "correct horse")
            .unwrap();
        assert_eq!(opened.identity.public().to_bytes(), identity);
    }

    #[cfg(unix)]
    #[test]
    fn a_profile_directory_and_its_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let profiles = profiles(home.path());
        drop(profiles.create("ada", RELAY).unwrap());
        drop(
            profiles
                .create_with_passphrase("bea", RELAY, "correct horse")
                .unwrap(),
        );
        for name in ["ada", "bea"] {
            let dir = profiles.dir(name).unwrap();
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
            for file in ["profile.json", "lock"] {
                assert_eq!(mode(&dir.join(file)), 0o600, "{name}/{file}");
            }
        }
    }

    #[test]
    fn a_keyring_profile_says_so_and_older_profile_files_default_to_the_keyring() {
        let home = tempfile::tempdir().unwrap();
        let profiles = profiles(home.path());
        drop(profiles.create("bob", RELAY).unwrap());
        assert_eq!(
            profiles.info("bob").unwrap().protection,
            Protection::Keyring
        );

        let old: ProfileInfo = serde_json::from_str(
            r#"{"name":"old","keyring_id":"old-0011","relay_url":"ws://127.0.0.1:7878"}"#,
        )
        .unwrap();
        assert_eq!(old.protection, Protection::Keyring);
    }
}
