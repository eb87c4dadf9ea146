#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod clock;
mod delivery;
pub mod keystore;
pub mod migrations;
pub mod model;
pub mod open;
pub mod passphrase;
pub mod secret;
pub mod selftest;
pub mod store;
pub mod sweeper;
pub mod tx;

pub use clock::{Clock, SystemClock, TokioClock};
pub use keystore::{KeyName, KeyStore, KeyStoreError, MemoryKeyStore, OsKeyring, ProfileId};
pub use model::*;
pub use open::OpenError;
pub use passphrase::{KdfParams, PassphraseError};
pub use secret::{DatabaseKey, SecretBytes};
pub use store::{Store, StoreError, StoreOptions};
pub use sweeper::{Sweeper, SweeperError};
pub use tx::Tx;
