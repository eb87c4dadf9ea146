//! Envelope decoding, then the body as the message its kind names; encodings must round-trip.
#![no_main]
use latch_protocol::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::from_bytes(data) {
        assert_eq!(env.to_bytes(), data);
        let _ = env.message();
    }
});
