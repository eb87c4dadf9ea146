//! Session record and prekey record decoding (stored blobs may be corrupted on disk).
#![no_main]
use latch_protocol::{KemPreKeyRecord, OneTimePreKeyRecord, SessionRecord, SignedPreKeyRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = SessionRecord::from_bytes(data) {
        assert_eq!(r.to_bytes().expose(), data);
    }
    let _ = OneTimePreKeyRecord::from_secret_bytes(data);
    let _ = SignedPreKeyRecord::from_secret_bytes(data);
    let _ = KemPreKeyRecord::from_secret_bytes(data);
});
