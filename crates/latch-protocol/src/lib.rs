#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod codec;
pub mod error;
pub mod fingerprint;
pub mod identity;
pub mod keys;
pub mod pqxdh;
pub mod prekey;
pub mod ratchet;
pub mod secret;
pub mod session;
pub mod store;
pub mod wire;

pub use error::DecodeError;
pub use fingerprint::{Fingerprint, FingerprintError};
pub use identity::{IdentityKey, IdentityKeyPair};
pub use prekey::{KemPreKeyRecord, OneTimePreKeyRecord, PreKeyBundle, SignedPreKeyRecord};
pub use ratchet::{RatchetError, SessionRecord};
pub use secret::{Secret, SecretVec};
pub use session::SessionError;
pub use store::{InMemoryStore, ProtocolAddress, ProtocolStore, StoreError};
pub use wire::{CiphertextMessage, Envelope, MessageKind, PreKeyMessage, RatchetMessage};
