//! `ServerFrame` decoding: every WebSocket message a client receives from the relay it was
//! pointed at. What decodes must encode to bytes that decode to the same frame.
#![no_main]
use latch_relay::api::ServerFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = ServerFrame::decode(data) {
        let encoded = frame.encode().expect("a decoded frame encodes");
        let again = ServerFrame::decode(&encoded).expect("a re-encoded frame decodes");
        assert_eq!(again, frame);
        assert_eq!(again.encode().ok(), Some(encoded));
    }
});
