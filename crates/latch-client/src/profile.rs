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
use std::path::{Path, PathBuf};

use latch_protocol::{IdentityKeyPair, KemPreKeyRecord, OneTimePreKeyRecord, SignedPreKeyRecord};
use latch_store::keystore::{KeyName, load_identity_key, store_identity_key};
use latch_store::{
    KeyStore, KeyStoreError, OpenError, PreKeyKind, Profile, ProfileId, SecretBytes, Store,
    StoreError, StoreOptions, UnixMillis,
};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

/// The label of the identity key in the keyring.
const IDENTITY_LABEL: &str = "main";

/// This device's number. Linked devices will get others.
pub const PRIMARY_DEVICE_ID: u32 = 1;

/// One-time prekeys generated at a time (X25519 and ML-KEM, paired by id).
pub const ONE_TIME_PREKEY_BATCH: u32 = 50;

/// Settings keys.
pub(crate) const SETTING_RELAY_URL: &str = "relay_url";
pub(crate) const SETTING_NEXT_PREKEY_ID: &str = "next_prekey_id";

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
        };
        let result = self.create_in(&dir, &info);
        if result.is_err() {
            let _ = self.forget_keys(&info);
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    fn create_in(&self, dir: &Path, info: &ProfileInfo) -> Result<OpenProfile, ProfileError> {
        fs::create_dir_all(dir)?;
        let lock = lock(dir, &info.name)?;
        let keyring_id = ProfileId::new(&info.keyring_id)?;
        let identity = IdentityKeyPair::generate(&mut OsRng);
        store_identity_key(
            self.keys.as_ref(),
            &keyring_id,
            IDENTITY_LABEL,
            &SecretBytes::new(identity.to_secret_bytes().expose().to_vec()),
        )?;
        let store = Store::create_with_keyring(
            &dir.join("db"),
            &keyring_id,
            self.keys.as_ref(),
            &StoreOptions::default(),
        )?;
        let now = now_ms();
        store.write(|tx| {
            tx.set_profile(&Profile {
                device_id: PRIMARY_DEVICE_ID,
                handle: None,
                display_name: Some(info.name.clone()),
                created_at: now,
            })?;
            tx.set_setting(SETTING_RELAY_URL, &info.relay_url)?;
            let signed = SignedPreKeyRecord::generate(1, now as u64, &identity, &mut OsRng);
            tx.put_prekey(
                PreKeyKind::Signed,
                1,
                signed.to_secret_bytes().expose(),
                now,
            )?;
            let last_resort = KemPreKeyRecord::generate(1, now as u64, true, &identity, &mut OsRng);
            tx.put_prekey(
                PreKeyKind::PostQuantum,
                1,
                last_resort.to_secret_bytes().expose(),
                now,
            )?;
            generate_one_time_prekeys(tx, &identity, now)?;
            Ok(())
        })?;
        let json =
            serde_json::to_vec_pretty(info).map_err(|e| ProfileError::BadInfo(e.to_string()))?;
        fs::write(dir.join("profile.json"), json)?;
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

    /// Deletes a profile: its keyring entries first (without them the files are unreadable),
    /// then its directory. The caller unregisters from the relay beforehand if it can.
    ///
    /// # Errors
    /// [`ProfileError::NotFound`], [`ProfileError::InUse`], or a keyring/file error.
    pub fn delete(&self, name: &str) -> Result<(), ProfileError> {
        let dir = self.dir(name)?;
        let info = read_info(&dir, name)?;
        let lock = lock(&dir, name)?;
        self.forget_keys(&info)?;
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
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(ProfileError::InUse(name.to_owned())),
        Err(fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Generates the next batch of one-time prekeys (an X25519 and an ML-KEM key per id) and
/// returns their ids.
pub(crate) fn generate_one_time_prekeys(
    tx: &latch_store::Tx<'_>,
    identity: &IdentityKeyPair,
    now: UnixMillis,
) -> Result<Vec<u32>, StoreError> {
    // Id 1 is the last-resort ML-KEM key; one-time ids start above it.
    let first: u32 = tx
        .setting(SETTING_NEXT_PREKEY_ID)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let ids: Vec<u32> = (first..first.saturating_add(ONE_TIME_PREKEY_BATCH)).collect();
    for &id in &ids {
        let x = OneTimePreKeyRecord::generate(id, &mut OsRng);
        tx.put_prekey(PreKeyKind::OneTime, id, x.to_secret_bytes().expose(), now)?;
        let kem = KemPreKeyRecord::generate(id, now as u64, false, identity, &mut OsRng);
        tx.put_prekey(
            PreKeyKind::PostQuantum,
            id,
            kem.to_secret_bytes().expose(),
            now,
        )?;
    }
    tx.set_setting(
        SETTING_NEXT_PREKEY_ID,
        &first.saturating_add(ONE_TIME_PREKEY_BATCH).to_string(),
    )?;
    Ok(ids)
}
