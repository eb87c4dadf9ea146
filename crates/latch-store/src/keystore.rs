//! Where keys live: the OS keyring, behind a small trait so other layers can test with an
//! in-memory store.
//!
//! The keyring holds, per profile, the database key and the identity private keys. There is
//! deliberately no file-backed implementation: when the keyring is missing or locked the
//! caller gets a [`KeyStoreError`] that says so and must choose the passphrase path
//! ([`crate::passphrase`]) explicitly. Nothing here ever falls back to plain text.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use crate::secret::{DatabaseKey, SecretBytes};

/// Errors from a key store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// No keyring service answered (on Linux: no D-Bus session bus or no Secret Service
    /// such as gnome-keyring or KeePassXC running).
    #[error(
        "no OS keyring is available ({0}); start a Secret Service (e.g. gnome-keyring) in your \
         session, or protect this profile with a passphrase instead"
    )]
    Unavailable(String),
    /// The keyring exists but is locked, or refused access (a prompt was dismissed or needed).
    #[error(
        "the OS keyring is locked or refused access ({0}); unlock it (log in to your desktop \
         keyring) and try again, or protect this profile with a passphrase instead"
    )]
    Locked(String),
    /// The keyring has no entry for this key: the profile was created elsewhere, the entry
    /// was deleted, or this is the wrong keyring.
    #[error("the keyring has no entry for {0}; the profile cannot be opened without it")]
    NotFound(KeyName),
    /// The entry exists but does not hold a well-formed key (wrong length).
    #[error("the keyring entry for {0} is malformed")]
    Malformed(KeyName),
    /// The keyring rejected the request itself (name too long, ambiguous entries...).
    #[error("the keyring rejected the request for {name}: {reason}")]
    Rejected {
        /// Which entry.
        name: KeyName,
        /// What the platform said (never secret material).
        reason: String,
    },
    /// The profile id cannot be used as part of a keyring account name.
    #[error("invalid profile id: use 1-64 ASCII letters, digits, '-' or '_'")]
    InvalidProfileId,
}

/// A profile's identifier: part of keyring account names, so restricted to a safe alphabet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProfileId(String);

impl ProfileId {
    /// Validates the id (1-64 of `[A-Za-z0-9_-]`).
    ///
    /// # Errors
    /// [`KeyStoreError::InvalidProfileId`] otherwise.
    pub fn new(id: &str) -> Result<Self, KeyStoreError> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(KeyStoreError::InvalidProfileId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The keyring account name of one secret: `<profile>/<purpose>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyName(String);

impl KeyName {
    /// The database key of a profile.
    pub fn database_key(profile: &ProfileId) -> Self {
        Self(format!("{profile}/database-key"))
    }

    /// An identity private key of a profile; `label` tells several apart (e.g. `"identity"`,
    /// `"pq-identity"`). Labels follow the same alphabet as profile ids.
    ///
    /// # Errors
    /// [`KeyStoreError::InvalidProfileId`] if the label has characters outside it.
    pub fn identity_key(profile: &ProfileId, label: &str) -> Result<Self, KeyStoreError> {
        let label = ProfileId::new(label)?;
        Ok(Self(format!("{profile}/identity/{label}")))
    }

    /// The account name as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A place that keeps secrets by name. Implementations must never persist in the clear.
pub trait KeyStore: Send + Sync {
    /// Stores (or replaces) a secret.
    ///
    /// # Errors
    /// A [`KeyStoreError`] naming why the store refused.
    fn set(&self, name: &KeyName, secret: &SecretBytes) -> Result<(), KeyStoreError>;

    /// Reads a secret. A missing entry is [`KeyStoreError::NotFound`].
    ///
    /// # Errors
    /// A [`KeyStoreError`] naming why the store refused.
    fn get(&self, name: &KeyName) -> Result<SecretBytes, KeyStoreError>;

    /// Deletes a secret; deleting a missing one is not an error.
    ///
    /// # Errors
    /// A [`KeyStoreError`] naming why the store refused.
    fn delete(&self, name: &KeyName) -> Result<(), KeyStoreError>;
}

/// Reads a profile's database key from a key store.
///
/// # Errors
/// The store's error, or [`KeyStoreError::Malformed`] if the entry is not 32 bytes.
pub fn load_database_key(
    store: &dyn KeyStore,
    profile: &ProfileId,
) -> Result<DatabaseKey, KeyStoreError> {
    let name = KeyName::database_key(profile);
    let secret = store.get(&name)?;
    DatabaseKey::from_slice(secret.expose()).ok_or(KeyStoreError::Malformed(name))
}

/// Writes a profile's database key to a key store.
///
/// # Errors
/// The store's error.
pub fn store_database_key(
    store: &dyn KeyStore,
    profile: &ProfileId,
    key: &DatabaseKey,
) -> Result<(), KeyStoreError> {
    let secret = SecretBytes::new(key.expose().to_vec());
    store.set(&KeyName::database_key(profile), &secret)
}

/// Writes an identity private key (protocol encoding) to a key store under `label`.
///
/// # Errors
/// The store's error, or [`KeyStoreError::InvalidProfileId`] for a bad label.
pub fn store_identity_key(
    store: &dyn KeyStore,
    profile: &ProfileId,
    label: &str,
    key: &SecretBytes,
) -> Result<(), KeyStoreError> {
    store.set(&KeyName::identity_key(profile, label)?, key)
}

/// Reads an identity private key from a key store.
///
/// # Errors
/// The store's error ([`KeyStoreError::NotFound`] if it was never stored).
pub fn load_identity_key(
    store: &dyn KeyStore,
    profile: &ProfileId,
    label: &str,
) -> Result<SecretBytes, KeyStoreError> {
    store.get(&KeyName::identity_key(profile, label)?)
}

/// The OS keyring: Secret Service on Linux, Keychain on macOS, Credential Manager on Windows.
///
/// Built on `keyring` 3.x with the synchronous Secret Service backend (libdbus): its API is
/// one `Entry` per (service, account) with byte secrets, and it runs without an async runtime,
/// so it can be called from the store's blocking open path and from any thread.
pub struct OsKeyring {
    service: String,
}

impl OsKeyring {
    /// The service name Latch uses in the OS keyring.
    pub const DEFAULT_SERVICE: &'static str = "org.latch.Latch";

    /// A keyring client for `service` (tests use a unique service per run).
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
        }
    }

    fn entry(&self, name: &KeyName) -> Result<keyring::Entry, KeyStoreError> {
        keyring::Entry::new(&self.service, name.as_str()).map_err(|e| map_keyring_error(name, e))
    }
}

impl Default for OsKeyring {
    fn default() -> Self {
        Self::new(Self::DEFAULT_SERVICE)
    }
}

impl fmt::Debug for OsKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OsKeyring")
            .field("service", &self.service)
            .finish()
    }
}

/// Maps the keyring crate's errors to ours without carrying any secret along
/// (`BadEncoding` holds the secret bytes: it is dropped here, never formatted).
fn map_keyring_error(name: &KeyName, err: keyring::Error) -> KeyStoreError {
    match err {
        keyring::Error::PlatformFailure(e) => {
            // The Secret Service reports a locked collection as a plain D-Bus error
            // (`org.freedesktop.Secret.Error.IsLocked`), which the keyring crate files under
            // platform failures; only its text tells it apart from a missing service.
            let text = e.to_string();
            if text.to_ascii_lowercase().contains("locked") {
                KeyStoreError::Locked(text)
            } else {
                KeyStoreError::Unavailable(text)
            }
        }
        keyring::Error::NoStorageAccess(e) => KeyStoreError::Locked(e.to_string()),
        keyring::Error::NoEntry => KeyStoreError::NotFound(name.clone()),
        keyring::Error::BadEncoding(mut bytes) => {
            zeroize::Zeroize::zeroize(&mut bytes);
            KeyStoreError::Malformed(name.clone())
        }
        keyring::Error::TooLong(attr, limit) => KeyStoreError::Rejected {
            name: name.clone(),
            reason: format!("attribute {attr} longer than {limit}"),
        },
        keyring::Error::Invalid(attr, why) => KeyStoreError::Rejected {
            name: name.clone(),
            reason: format!("attribute {attr} invalid: {why}"),
        },
        keyring::Error::Ambiguous(_) => KeyStoreError::Rejected {
            name: name.clone(),
            reason: "several entries match".to_owned(),
        },
        other => KeyStoreError::Rejected {
            name: name.clone(),
            reason: other.to_string(),
        },
    }
}

impl KeyStore for OsKeyring {
    fn set(&self, name: &KeyName, secret: &SecretBytes) -> Result<(), KeyStoreError> {
        self.entry(name)?
            .set_secret(secret.expose())
            .map_err(|e| map_keyring_error(name, e))
    }

    fn get(&self, name: &KeyName) -> Result<SecretBytes, KeyStoreError> {
        self.entry(name)?
            .get_secret()
            .map(SecretBytes::new)
            .map_err(|e| map_keyring_error(name, e))
    }

    fn delete(&self, name: &KeyName) -> Result<(), KeyStoreError> {
        match self.entry(name)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_keyring_error(name, e)),
        }
    }
}

/// An in-memory key store for unit tests of layers above the store. Never use it for a
/// real profile: its keys die with the process.
#[derive(Default)]
pub struct MemoryKeyStore {
    entries: Mutex<HashMap<KeyName, SecretBytes>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyName, SecretBytes>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryKeyStore")
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl KeyStore for MemoryKeyStore {
    fn set(&self, name: &KeyName, secret: &SecretBytes) -> Result<(), KeyStoreError> {
        self.lock().insert(name.clone(), secret.clone());
        Ok(())
    }

    fn get(&self, name: &KeyName) -> Result<SecretBytes, KeyStoreError> {
        self.lock()
            .get(name)
            .cloned()
            .ok_or_else(|| KeyStoreError::NotFound(name.clone()))
    }

    fn delete(&self, name: &KeyName) -> Result<(), KeyStoreError> {
        self.lock().remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_ids_are_validated() {
        assert!(ProfileId::new("alice-1_x").is_ok());
        for bad in ["", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(matches!(
                ProfileId::new(bad),
                Err(KeyStoreError::InvalidProfileId)
            ));
        }
        let p = ProfileId::new("p").unwrap();
        assert!(KeyName::identity_key(&p, "../x").is_err());
        assert_eq!(
            KeyName::identity_key(&p, "identity").unwrap().as_str(),
            "p/identity/identity"
        );
    }

    #[test]
    fn memory_store_round_trip() {
        let ks = MemoryKeyStore::new();
        let p = ProfileId::new("p").unwrap();
        assert!(matches!(
            load_database_key(&ks, &p),
            Err(KeyStoreError::NotFound(_))
        ));
        let key = DatabaseKey::generate().unwrap();
        store_database_key(&ks, &p, &key).unwrap();
        assert_eq!(load_database_key(&ks, &p).unwrap().expose(), key.expose());
        ks.set(&KeyName::database_key(&p), &SecretBytes::new(vec![1; 3]))
            .unwrap();
        assert!(matches!(
            load_database_key(&ks, &p),
            Err(KeyStoreError::Malformed(_))
        ));
        let other = KeyName::identity_key(&p, "identity").unwrap();
        ks.set(&other, &SecretBytes::new(vec![2; 32])).unwrap();
        assert_eq!(format!("{ks:?}"), "MemoryKeyStore { entries: 2 }");

        let name = KeyName::database_key(&p);
        ks.delete(&name).unwrap();
        assert!(matches!(ks.get(&name), Err(KeyStoreError::NotFound(n)) if n == name));
        assert!(matches!(
            load_database_key(&ks, &p),
            Err(KeyStoreError::NotFound(_))
        ));
        assert_eq!(format!("{ks:?}"), "MemoryKeyStore { entries: 1 }");
        // Deleting what is gone is not an error, and deletes nothing else.
        ks.delete(&name).unwrap();
        assert_eq!(ks.get(&other).unwrap().expose(), &[2; 32]);
        assert_eq!(format!("{ks:?}"), "MemoryKeyStore { entries: 1 }");
    }

    #[test]
    fn bad_encoding_error_drops_the_secret() {
        let p = ProfileId::new("p").unwrap();
        let e = map_keyring_error(
            &KeyName::database_key(&p),
            keyring::Error::BadEncoding(b"TOPSECRET".to_vec()),
        );
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("TOPSECRET"));
        assert!(!shown.contains("84, 79, 80"));
    }
}
