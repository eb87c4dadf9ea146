//! The protocol's storage traits over one open store transaction, so a `session::*` call and
//! the message it produced or consumed commit together (or not at all).

use latch_protocol::store::{
    Direction, IdentityChange, IdentityKeyStore, KemPreKeyStore, PreKeyStore, SessionStore,
    SignedPreKeyStore, StoreError,
};
use latch_protocol::{
    IdentityKey, IdentityKeyPair, KemPreKeyRecord, OneTimePreKeyRecord, ProtocolAddress,
    SessionRecord, SignedPreKeyRecord,
};
use latch_store::{ContactId, PreKeyKind, Tx, UnixMillis};

/// A session address's contact part: secret threads append `#<tag>` to the contact address
/// so each thread has its own ratchet session while sharing the contact's identity.
pub(crate) fn contact_address(session_address: &str) -> &str {
    session_address
        .split_once('#')
        .map_or(session_address, |(a, _)| a)
}

/// A key change observed while the transaction ran, reported after it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyChanged {
    pub(crate) contact: ContactId,
    pub(crate) was_verified: bool,
}

/// [`latch_protocol::ProtocolStore`] over a latch-store transaction.
pub(crate) struct TxProtocolStore<'t, 'c> {
    tx: &'t Tx<'c>,
    identity: &'t IdentityKeyPair,
    now: UnixMillis,
    /// Contacts whose identity key changed during this transaction.
    pub(crate) key_changes: Vec<KeyChanged>,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl<'t, 'c> TxProtocolStore<'t, 'c> {
    pub(crate) fn new(tx: &'t Tx<'c>, identity: &'t IdentityKeyPair, now: UnixMillis) -> Self {
        Self {
            tx,
            identity,
            now,
            key_changes: Vec::new(),
        }
    }
}

impl SessionStore for TxProtocolStore<'_, '_> {
    fn load_session(&self, address: &ProtocolAddress) -> Result<Option<SessionRecord>, StoreError> {
        self.tx
            .session(&address.name, address.device_id)
            .map_err(backend)?
            .map(|bytes| SessionRecord::from_bytes(&bytes).map_err(backend))
            .transpose()
    }

    fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: &SessionRecord,
    ) -> Result<(), StoreError> {
        let bytes = record.to_bytes();
        self.tx
            .put_session(&address.name, address.device_id, bytes.expose(), self.now)
            .map_err(backend)
    }
}

impl IdentityKeyStore for TxProtocolStore<'_, '_> {
    fn identity_key_pair(&self) -> Result<IdentityKeyPair, StoreError> {
        Ok(self.identity.clone())
    }

    /// Incoming messages are always accepted (a changed key is recorded and announced by
    /// [`Self::save_identity`]); sending requires the key the contact row holds, which the
    /// engine updates, with the user's consent where a secret chat needs it, before sending.
    fn is_trusted_identity(
        &self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
        direction: Direction,
    ) -> Result<bool, StoreError> {
        if direction == Direction::Receiving {
            return Ok(true);
        }
        Ok(self
            .get_identity(address)?
            .is_none_or(|known| known == *identity))
    }

    fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> Result<IdentityChange, StoreError> {
        let (contact, change) = self
            .tx
            .observe_identity(
                contact_address(&address.name),
                &identity.to_bytes(),
                self.now,
            )
            .map_err(backend)?;
        Ok(match change {
            latch_store::IdentityChange::Changed { was_verified } => {
                self.tx
                    .set_key_change_pending(contact, true)
                    .map_err(backend)?;
                self.key_changes.push(KeyChanged {
                    contact,
                    was_verified,
                });
                IdentityChange::ReplacedExisting
            }
            _ => IdentityChange::NewOrUnchanged,
        })
    }

    fn get_identity(&self, address: &ProtocolAddress) -> Result<Option<IdentityKey>, StoreError> {
        self.tx
            .contact_by_address(contact_address(&address.name))
            .map_err(backend)?
            .map(|c| IdentityKey::from_bytes(&c.identity_key).map_err(backend))
            .transpose()
    }
}

impl PreKeyStore for TxProtocolStore<'_, '_> {
    fn get_pre_key(&self, id: u32) -> Result<Option<OneTimePreKeyRecord>, StoreError> {
        self.tx
            .prekey(PreKeyKind::OneTime, id)
            .map_err(backend)?
            .map(|b| OneTimePreKeyRecord::from_secret_bytes(&b).map_err(backend))
            .transpose()
    }

    fn save_pre_key(&mut self, record: &OneTimePreKeyRecord) -> Result<(), StoreError> {
        self.tx
            .put_prekey(
                PreKeyKind::OneTime,
                record.id,
                record.to_secret_bytes().expose(),
                self.now,
            )
            .map_err(backend)
    }

    fn remove_pre_key(&mut self, id: u32) -> Result<(), StoreError> {
        self.tx
            .remove_prekey(PreKeyKind::OneTime, id)
            .map(|_| ())
            .map_err(backend)
    }
}

impl SignedPreKeyStore for TxProtocolStore<'_, '_> {
    fn get_signed_pre_key(&self, id: u32) -> Result<Option<SignedPreKeyRecord>, StoreError> {
        self.tx
            .prekey(PreKeyKind::Signed, id)
            .map_err(backend)?
            .map(|b| SignedPreKeyRecord::from_secret_bytes(&b).map_err(backend))
            .transpose()
    }

    fn save_signed_pre_key(&mut self, record: &SignedPreKeyRecord) -> Result<(), StoreError> {
        self.tx
            .put_prekey(
                PreKeyKind::Signed,
                record.id,
                record.to_secret_bytes().expose(),
                self.now,
            )
            .map_err(backend)
    }
}

impl KemPreKeyStore for TxProtocolStore<'_, '_> {
    fn get_kem_pre_key(&self, id: u32) -> Result<Option<KemPreKeyRecord>, StoreError> {
        self.tx
            .prekey(PreKeyKind::PostQuantum, id)
            .map_err(backend)?
            .map(|b| KemPreKeyRecord::from_secret_bytes(&b).map_err(backend))
            .transpose()
    }

    fn save_kem_pre_key(&mut self, record: &KemPreKeyRecord) -> Result<(), StoreError> {
        self.tx
            .put_prekey(
                PreKeyKind::PostQuantum,
                record.id,
                record.to_secret_bytes().expose(),
                self.now,
            )
            .map_err(backend)
    }

    fn remove_kem_pre_key(&mut self, id: u32) -> Result<(), StoreError> {
        self.tx
            .remove_prekey(PreKeyKind::PostQuantum, id)
            .map(|_| ())
            .map_err(backend)
    }

    fn last_resort_use_seen(&self, id: u32, base_key: &[u8; 32]) -> Result<bool, StoreError> {
        self.tx.last_resort_used(id, base_key).map_err(backend)
    }

    fn record_last_resort_use(&mut self, id: u32, base_key: &[u8; 32]) -> Result<(), StoreError> {
        self.tx
            .record_last_resort_use(id, base_key, self.now)
            .map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_thread_addresses_share_the_contact() {
        assert_eq!(contact_address("bob"), "bob");
        assert_eq!(contact_address("bob#00ff"), "bob");
    }
}
