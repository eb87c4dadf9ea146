//! Comparison of a scanned safety-number QR payload (untrusted camera input).
#![no_main]
use latch_protocol::Fingerprint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = Fingerprint::new(2, 2, b"alice", &[1; 32], b"bob", &[2; 32]) {
        let _ = f.scannable.compare(data);
    }
});
