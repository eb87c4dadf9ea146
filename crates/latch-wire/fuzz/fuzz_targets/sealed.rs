//! `Sealed` decoding: an envelope body exactly as the relay delivers it, from anyone. Accepted
//! bodies must re-encode to the same bytes.
#![no_main]
use latch_wire::Sealed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sealed) = Sealed::from_bytes(data) {
        let encoded = sealed.to_bytes().expect("a decoded body encodes");
        assert_eq!(encoded, data);
    }
});
