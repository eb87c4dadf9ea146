//! Storage traits and in-memory implementations.
//!
//! The protocol never touches disk: it reads and writes records through these traits. The
//! desktop app implements them on SQLCipher, storing each record as the opaque, versioned blob
//! its `to_bytes`/`to_secret_bytes` method produces. A call such as
//! [`crate::session::decrypt`] may write several stores; implementations backed by a database
//! should run the whole call inside one transaction. The in-memory store here is for tests and
//! is `Clone`, so tests can snapshot and restore a whole device.

use std::collections::{BTreeMap, BTreeSet};

use crate::identity::{IdentityKey, IdentityKeyPair};
use crate::prekey::{KemPreKeyRecord, OneTimePreKeyRecord, SignedPreKeyRecord};
use crate::ratchet::SessionRecord;
use crate::secret::SecretVec;

/// A store failure, wrapped so backends can carry their own error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed; its error is kept as the source.
    #[error("store backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A peer device: the account name the app uses and the device's number under it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolAddress {
    /// Account identifier (e.g. a handle).
    pub name: String,
    /// Device number within the account.
    pub device_id: u32,
}

impl ProtocolAddress {
    /// Builds an address.
    pub fn new(name: impl Into<String>, device_id: u32) -> Self {
        Self {
            name: name.into(),
            device_id,
        }
    }
}

/// Which way a message is going when trust is checked (stores may apply different policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Direction {
    /// We are about to encrypt to the identity.
    Sending,
    /// We received a message from the identity.
    Receiving,
}

/// What [`IdentityKeyStore::save_identity`] changed, so the app can warn about key changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityChange {
    /// First identity for this address, or the same one as before.
    NewOrUnchanged,
    /// A different identity replaced the stored one: show the safety-number warning.
    ReplacedExisting,
}

/// Sessions, one record per peer device.
pub trait SessionStore {
    /// Loads the record for `address`, if any.
    fn load_session(&self, address: &ProtocolAddress) -> Result<Option<SessionRecord>, StoreError>;
    /// Replaces the record for `address`.
    fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: &SessionRecord,
    ) -> Result<(), StoreError>;
}

/// Our identity and the identities we have seen, with trust decisions.
pub trait IdentityKeyStore {
    /// Our own identity key pair.
    fn identity_key_pair(&self) -> Result<IdentityKeyPair, StoreError>;
    /// Whether `identity` may be used for `address`. Trust-on-first-use stores accept an
    /// unknown address and refuse a changed key until the user accepts it via `save_identity`.
    fn is_trusted_identity(
        &self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
        direction: Direction,
    ) -> Result<bool, StoreError>;
    /// Records `identity` as the one for `address` (also how a user accepts a changed key).
    fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> Result<IdentityChange, StoreError>;
    /// The stored identity for `address`.
    fn get_identity(&self, address: &ProtocolAddress) -> Result<Option<IdentityKey>, StoreError>;
}

/// One-time X25519 prekeys.
pub trait PreKeyStore {
    /// Looks a prekey up.
    fn get_pre_key(&self, id: u32) -> Result<Option<OneTimePreKeyRecord>, StoreError>;
    /// Stores a prekey.
    fn save_pre_key(&mut self, record: &OneTimePreKeyRecord) -> Result<(), StoreError>;
    /// Deletes a prekey once a session has consumed it.
    fn remove_pre_key(&mut self, id: u32) -> Result<(), StoreError>;
}

/// Signed X25519 prekeys.
pub trait SignedPreKeyStore {
    /// Looks a signed prekey up.
    fn get_signed_pre_key(&self, id: u32) -> Result<Option<SignedPreKeyRecord>, StoreError>;
    /// Stores a signed prekey.
    fn save_signed_pre_key(&mut self, record: &SignedPreKeyRecord) -> Result<(), StoreError>;
}

/// ML-KEM prekeys, with the record of last-resort uses that refuses replays.
pub trait KemPreKeyStore {
    /// Looks a KEM prekey up.
    fn get_kem_pre_key(&self, id: u32) -> Result<Option<KemPreKeyRecord>, StoreError>;
    /// Stores a KEM prekey.
    fn save_kem_pre_key(&mut self, record: &KemPreKeyRecord) -> Result<(), StoreError>;
    /// Deletes a one-time KEM prekey once a session has consumed it.
    fn remove_kem_pre_key(&mut self, id: u32) -> Result<(), StoreError>;
    /// Whether the last-resort key `id` was already used with this initiator base key.
    fn last_resort_use_seen(&self, id: u32, base_key: &[u8; 32]) -> Result<bool, StoreError>;
    /// Records a use of the last-resort key `id` with `base_key`. Stores may forget entries
    /// once the key is rotated out, since messages for a deleted key fail anyway.
    fn record_last_resort_use(&mut self, id: u32, base_key: &[u8; 32]) -> Result<(), StoreError>;
}

/// Everything a device stores, as one bound for the session functions.
pub trait ProtocolStore:
    SessionStore + IdentityKeyStore + PreKeyStore + SignedPreKeyStore + KemPreKeyStore
{
}

impl<T: SessionStore + IdentityKeyStore + PreKeyStore + SignedPreKeyStore + KemPreKeyStore>
    ProtocolStore for T
{
}

/// An in-memory store for tests and tools. Records are kept as their encoded blobs, exactly as a
/// database would, so every test also exercises the serialization; the blobs zeroize on drop.
#[derive(Clone)]
pub struct InMemoryStore {
    identity: IdentityKeyPair,
    identities: BTreeMap<ProtocolAddress, IdentityKey>,
    sessions: BTreeMap<ProtocolAddress, SecretVec>,
    pre_keys: BTreeMap<u32, SecretVec>,
    signed_pre_keys: BTreeMap<u32, SecretVec>,
    kem_pre_keys: BTreeMap<u32, SecretVec>,
    last_resort_uses: BTreeSet<(u32, [u8; 32])>,
}

fn backend(e: crate::error::DecodeError) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl InMemoryStore {
    /// An empty store for the given identity.
    pub fn new(identity: IdentityKeyPair) -> Self {
        Self {
            identity,
            identities: BTreeMap::new(),
            sessions: BTreeMap::new(),
            pre_keys: BTreeMap::new(),
            signed_pre_keys: BTreeMap::new(),
            kem_pre_keys: BTreeMap::new(),
            last_resort_uses: BTreeSet::new(),
        }
    }

    /// Number of one-time X25519 prekeys left.
    pub fn pre_key_count(&self) -> usize {
        self.pre_keys.len()
    }

    /// Number of KEM prekeys left.
    pub fn kem_pre_key_count(&self) -> usize {
        self.kem_pre_keys.len()
    }

    /// Number of recorded last-resort uses.
    pub fn last_resort_use_count(&self) -> usize {
        self.last_resort_uses.len()
    }

    /// A byte-level fingerprint of everything stored, so tests can assert "nothing changed".
    pub fn contents(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (a, k) in &self.identities {
            out.extend_from_slice(a.name.as_bytes());
            out.extend_from_slice(&a.device_id.to_be_bytes());
            out.extend_from_slice(&k.to_bytes());
        }
        for map in [&self.pre_keys, &self.signed_pre_keys, &self.kem_pre_keys] {
            out.push(0xEE);
            for (id, blob) in map {
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(blob.expose());
            }
        }
        out.push(0xEE);
        for (a, blob) in &self.sessions {
            out.extend_from_slice(a.name.as_bytes());
            out.extend_from_slice(&a.device_id.to_be_bytes());
            out.extend_from_slice(blob.expose());
        }
        out.push(0xEE);
        for (id, key) in &self.last_resort_uses {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(key);
        }
        out
    }
}

impl SessionStore for InMemoryStore {
    fn load_session(&self, address: &ProtocolAddress) -> Result<Option<SessionRecord>, StoreError> {
        self.sessions
            .get(address)
            .map(|b| SessionRecord::from_bytes(b.expose()).map_err(backend))
            .transpose()
    }
    fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: &SessionRecord,
    ) -> Result<(), StoreError> {
        self.sessions.insert(address.clone(), record.to_bytes());
        Ok(())
    }
}

impl IdentityKeyStore for InMemoryStore {
    fn identity_key_pair(&self) -> Result<IdentityKeyPair, StoreError> {
        Ok(self.identity.clone())
    }
    fn is_trusted_identity(
        &self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
        _: Direction,
    ) -> Result<bool, StoreError> {
        Ok(self.identities.get(address).is_none_or(|k| k == identity))
    }
    fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> Result<IdentityChange, StoreError> {
        Ok(
            match self.identities.insert(address.clone(), identity.clone()) {
                Some(old) if &old != identity => IdentityChange::ReplacedExisting,
                _ => IdentityChange::NewOrUnchanged,
            },
        )
    }
    fn get_identity(&self, address: &ProtocolAddress) -> Result<Option<IdentityKey>, StoreError> {
        Ok(self.identities.get(address).cloned())
    }
}

impl PreKeyStore for InMemoryStore {
    fn get_pre_key(&self, id: u32) -> Result<Option<OneTimePreKeyRecord>, StoreError> {
        self.pre_keys
            .get(&id)
            .map(|b| OneTimePreKeyRecord::from_secret_bytes(b.expose()).map_err(backend))
            .transpose()
    }
    fn save_pre_key(&mut self, record: &OneTimePreKeyRecord) -> Result<(), StoreError> {
        self.pre_keys.insert(record.id, record.to_secret_bytes());
        Ok(())
    }
    fn remove_pre_key(&mut self, id: u32) -> Result<(), StoreError> {
        self.pre_keys.remove(&id);
        Ok(())
    }
}

impl SignedPreKeyStore for InMemoryStore {
    fn get_signed_pre_key(&self, id: u32) -> Result<Option<SignedPreKeyRecord>, StoreError> {
        self.signed_pre_keys
            .get(&id)
            .map(|b| SignedPreKeyRecord::from_secret_bytes(b.expose()).map_err(backend))
            .transpose()
    }
    fn save_signed_pre_key(&mut self, record: &SignedPreKeyRecord) -> Result<(), StoreError> {
        self.signed_pre_keys
            .insert(record.id, record.to_secret_bytes());
        Ok(())
    }
}

impl KemPreKeyStore for InMemoryStore {
    fn get_kem_pre_key(&self, id: u32) -> Result<Option<KemPreKeyRecord>, StoreError> {
        self.kem_pre_keys
            .get(&id)
            .map(|b| KemPreKeyRecord::from_secret_bytes(b.expose()).map_err(backend))
            .transpose()
    }
    fn save_kem_pre_key(&mut self, record: &KemPreKeyRecord) -> Result<(), StoreError> {
        self.kem_pre_keys
            .insert(record.id, record.to_secret_bytes());
        Ok(())
    }
    fn remove_kem_pre_key(&mut self, id: u32) -> Result<(), StoreError> {
        self.kem_pre_keys.remove(&id);
        Ok(())
    }
    fn last_resort_use_seen(&self, id: u32, base_key: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.last_resort_uses.contains(&(id, *base_key)))
    }
    fn record_last_resort_use(&mut self, id: u32, base_key: &[u8; 32]) -> Result<(), StoreError> {
        self.last_resort_uses.insert((id, *base_key));
        Ok(())
    }
}

impl core::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("identity", &self.identity)
            .field("sessions", &self.sessions.len())
            .field("pre_keys", &self.pre_keys.len())
            .field("signed_pre_keys", &self.signed_pre_keys.len())
            .field("kem_pre_keys", &self.kem_pre_keys.len())
            .finish_non_exhaustive()
    }
}
