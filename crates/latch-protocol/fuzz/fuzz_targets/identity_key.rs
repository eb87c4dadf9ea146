//! Identity key and identity key pair decoding.
#![no_main]
use latch_protocol::{IdentityKey, IdentityKeyPair};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = IdentityKey::from_bytes(data) {
        assert_eq!(&k.to_bytes()[..], data);
    }
    if let Ok(k) = IdentityKeyPair::from_secret_bytes(data) {
        assert_eq!(k.to_secret_bytes().expose(), data);
    }
});
