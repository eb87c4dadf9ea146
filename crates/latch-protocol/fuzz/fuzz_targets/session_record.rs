//! Session record and prekey record decoding (stored blobs may be corrupted on disk).
#![no_main]
use latch_protocol::ratchet::SESSION_RECORD_VERSION;
use latch_protocol::{KemPreKeyRecord, OneTimePreKeyRecord, SessionRecord, SignedPreKeyRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = SessionRecord::from_bytes(data) {
        let encoded = record.to_bytes();
        // The current format is canonical: what decodes re-encodes to the same bytes. Older
        // formats are upgraded on write, so for them the upgraded encoding must be stable.
        if data.first() == Some(&SESSION_RECORD_VERSION) {
            assert_eq!(encoded.expose(), data);
        } else {
            let again =
                SessionRecord::from_bytes(encoded.expose()).expect("upgraded record decodes");
            assert_eq!(again.to_bytes().expose(), encoded.expose());
        }
    }
    let _ = OneTimePreKeyRecord::from_secret_bytes(data);
    let _ = SignedPreKeyRecord::from_secret_bytes(data);
    let _ = KemPreKeyRecord::from_secret_bytes(data);
});
