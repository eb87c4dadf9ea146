//! `ClientFrame` decoding: every WebSocket message the relay receives, from anyone who
//! connects. What decodes must encode to bytes that decode to the same frame.
#![no_main]
use latch_relay::api::ClientFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = ClientFrame::decode(data) {
        let encoded = frame.encode().expect("a decoded frame encodes");
        let again = ClientFrame::decode(&encoded).expect("a re-encoded frame decodes");
        assert_eq!(again, frame);
        assert_eq!(again.encode().ok(), Some(encoded));
    }
});
