//! Shared helpers for the integration tests.
#![allow(dead_code, unreachable_pub)]

use latch_protocol::store::{KemPreKeyStore, PreKeyStore, SignedPreKeyStore};
use latch_protocol::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A device with its store and the prekey records it published.
#[derive(Clone)]
pub struct Device {
    pub name: String,
    pub identity: IdentityKeyPair,
    pub store: InMemoryStore,
    pub signed: SignedPreKeyRecord,
    pub kem_last_resort: KemPreKeyRecord,
    next_id: u32,
}

impl Device {
    pub fn new(name: &str, rng: &mut ChaCha20Rng) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let mut store = InMemoryStore::new(identity.clone());
        let signed = SignedPreKeyRecord::generate(1, 1_700_000_000_000, &identity, rng);
        let kem_last_resort = KemPreKeyRecord::generate(1, 1_700_000_000_000, true, &identity, rng);
        store.save_signed_pre_key(&signed).unwrap();
        store.save_kem_pre_key(&kem_last_resort).unwrap();
        Self {
            name: name.into(),
            identity,
            store,
            signed,
            kem_last_resort,
            next_id: 100,
        }
    }

    pub fn address(&self) -> ProtocolAddress {
        ProtocolAddress::new(self.name.clone(), 1)
    }

    /// A bundle with fresh one-time X25519 and ML-KEM prekeys.
    pub fn bundle(&mut self, rng: &mut ChaCha20Rng) -> PreKeyBundle {
        self.next_id += 1;
        let opk = OneTimePreKeyRecord::generate(self.next_id, rng);
        let kem = KemPreKeyRecord::generate(self.next_id, 0, false, &self.identity, rng);
        self.store.save_pre_key(&opk).unwrap();
        self.store.save_kem_pre_key(&kem).unwrap();
        PreKeyBundle::new(self.identity.public(), &self.signed, Some(&opk), &kem)
    }

    /// A bundle using only the signed prekey and the last-resort KEM key.
    pub fn last_resort_bundle(&self) -> PreKeyBundle {
        PreKeyBundle::new(
            self.identity.public(),
            &self.signed,
            None,
            &self.kem_last_resort,
        )
    }
}

/// Round-trips a message through its wire encoding, as the relay would deliver it.
pub fn wire(msg: &CiphertextMessage) -> CiphertextMessage {
    let env = Envelope::new([1; 32], [2; 32], msg);
    Envelope::from_bytes(&env.to_bytes())
        .unwrap()
        .message()
        .unwrap()
}
