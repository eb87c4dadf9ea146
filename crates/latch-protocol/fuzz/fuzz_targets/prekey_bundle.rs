//! PreKeyBundle decoding (includes signature checks).
#![no_main]
use latch_protocol::PreKeyBundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = PreKeyBundle::from_bytes(data) {
        assert_eq!(b.to_bytes(), data);
    }
});
