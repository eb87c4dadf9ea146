//! Session operations over a [`ProtocolStore`]: start a session from a bundle, encrypt,
//! decrypt. Each call reads what it needs, works on copies, and writes back only when it
//! succeeded, so a failed call leaves every store exactly as it was.

use rand_core::{CryptoRng, RngCore};

use crate::pqxdh::{self, PqxdhError};
use crate::prekey::PreKeyBundle;
use crate::ratchet::{RatchetError, SessionRecord};
use crate::secret::SecretVec;
use crate::store::{Direction, ProtocolAddress, ProtocolStore, StoreError};
use crate::wire::{CiphertextMessage, PreKeyMessage};

/// Why a session operation failed. Nothing was written to any store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The peer's identity differs from the stored one and the user has not accepted it.
    #[error("untrusted identity for this address")]
    UntrustedIdentity,
    /// There is no session with this address.
    #[error("no session with this address")]
    NoSession,
    /// The prekey message names a signed prekey we do not have.
    #[error("unknown signed prekey {0}")]
    SignedPreKeyNotFound(u32),
    /// The one-time prekey is unknown: never ours, or already used (replay).
    #[error("unknown or already used one-time prekey {0}")]
    PreKeyNotFound(u32),
    /// The ML-KEM prekey is unknown: never ours, or an already used one-time key.
    #[error("unknown or already used ML-KEM prekey {0}")]
    KemPreKeyNotFound(u32),
    /// The last-resort ML-KEM prekey was already used with this base key (replay).
    #[error("last-resort prekey reused with the same base key")]
    LastResortReplay,
    /// PQXDH refused the bundle or message.
    #[error(transparent)]
    Pqxdh(#[from] PqxdhError),
    /// The Double Ratchet refused the message.
    #[error(transparent)]
    Ratchet(#[from] RatchetError),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Starts a session with `address` from its published bundle (PQXDH initiator). The next
/// [`encrypt`] produces a [`PreKeyMessage`]. An existing session is archived, not lost.
pub fn process_prekey_bundle<S: ProtocolStore, R: CryptoRng + RngCore>(
    store: &mut S,
    address: &ProtocolAddress,
    bundle: &PreKeyBundle,
    rng: &mut R,
) -> Result<(), SessionError> {
    if !store.is_trusted_identity(address, &bundle.identity, Direction::Sending)? {
        return Err(SessionError::UntrustedIdentity);
    }
    let local = store.identity_key_pair()?;
    let state = pqxdh::initiate(&local, bundle, rng)?;
    let mut record = store.load_session(address)?.unwrap_or_default();
    record.promote(state);
    store.store_session(address, &record)?;
    store.save_identity(address, &bundle.identity)?;
    Ok(())
}

/// Encrypts to `address` on the current session.
pub fn encrypt<S: ProtocolStore>(
    store: &mut S,
    address: &ProtocolAddress,
    plaintext: &[u8],
) -> Result<CiphertextMessage, SessionError> {
    let mut record = store
        .load_session(address)?
        .ok_or(SessionError::NoSession)?;
    if let Some(identity) = record.remote_identity()
        && !store.is_trusted_identity(address, &identity, Direction::Sending)?
    {
        return Err(SessionError::UntrustedIdentity);
    }
    let message = record.encrypt(plaintext)?;
    store.store_session(address, &record)?;
    Ok(message)
}

/// Decrypts a message from `address`, creating a session for a new prekey message.
pub fn decrypt<S: ProtocolStore, R: CryptoRng + RngCore>(
    store: &mut S,
    address: &ProtocolAddress,
    message: &CiphertextMessage,
    rng: &mut R,
) -> Result<SecretVec, SessionError> {
    match message {
        CiphertextMessage::Ratchet(m) => {
            let mut record = store
                .load_session(address)?
                .ok_or(SessionError::NoSession)?;
            let plaintext = record.decrypt(m, rng)?;
            store.store_session(address, &record)?;
            Ok(plaintext)
        }
        CiphertextMessage::PreKey(m) => decrypt_prekey(store, address, m, rng),
    }
}

fn decrypt_prekey<S: ProtocolStore, R: CryptoRng + RngCore>(
    store: &mut S,
    address: &ProtocolAddress,
    msg: &PreKeyMessage,
    rng: &mut R,
) -> Result<SecretVec, SessionError> {
    if !store.is_trusted_identity(address, &msg.identity, Direction::Receiving)? {
        return Err(SessionError::UntrustedIdentity);
    }
    let mut record = store.load_session(address)?.unwrap_or_default();

    // A repeated prekey message (the initiator repeats them until answered) belongs to the
    // session it already created: decrypt there, where duplicates are refused by the chain.
    if record.has_base_key(&msg.base_key) {
        let sender = msg.identity.to_bytes();
        let plaintext = record.decrypt_matching(&msg.message, rng, |s| {
            s.base_key == msg.base_key && s.remote_identity == sender
        })?;
        store.store_session(address, &record)?;
        return Ok(plaintext);
    }

    let local = store.identity_key_pair()?;
    let signed = store
        .get_signed_pre_key(msg.signed_prekey_id)?
        .ok_or(SessionError::SignedPreKeyNotFound(msg.signed_prekey_id))?;
    let one_time = match msg.one_time_prekey_id {
        Some(id) => Some(
            store
                .get_pre_key(id)?
                .ok_or(SessionError::PreKeyNotFound(id))?,
        ),
        None => None,
    };
    let kem = store
        .get_kem_pre_key(msg.kem_prekey_id)?
        .ok_or(SessionError::KemPreKeyNotFound(msg.kem_prekey_id))?;
    if kem.last_resort && store.last_resort_use_seen(kem.id, &msg.base_key)? {
        return Err(SessionError::LastResortReplay);
    }

    let mut state = pqxdh::respond(&local, &signed, one_time.as_ref(), &kem, msg)?;
    let plaintext = state.decrypt(&msg.message, rng)?;

    // Success: commit the session and consume the prekeys.
    record.promote(state);
    store.store_session(address, &record)?;
    if let Some(o) = &one_time {
        store.remove_pre_key(o.id)?;
    }
    if kem.last_resort {
        store.record_last_resort_use(kem.id, &msg.base_key)?;
    } else {
        store.remove_kem_pre_key(kem.id)?;
    }
    store.save_identity(address, &msg.identity)?;
    Ok(plaintext)
}

/// Record-level helpers for callers that manage records themselves (benchmarks, tools).
impl SessionRecord {
    /// Starts a record as PQXDH initiator from `bundle` (no stores, no trust check).
    pub fn initiate<R: CryptoRng + RngCore>(
        local: &crate::identity::IdentityKeyPair,
        bundle: &PreKeyBundle,
        rng: &mut R,
    ) -> Result<Self, SessionError> {
        let mut record = Self::new();
        record.promote(pqxdh::initiate(local, bundle, rng)?);
        Ok(record)
    }
}
