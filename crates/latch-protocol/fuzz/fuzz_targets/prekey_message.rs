//! PreKeyMessage decoding; accepted inputs must re-encode to the same bytes.
#![no_main]
use latch_protocol::PreKeyMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = PreKeyMessage::from_bytes(data) {
        assert_eq!(m.to_bytes(), data);
    }
});
