//! `Content` decoding: a decrypted plaintext (thread tag, then the postcard-encoded content),
//! which the sender chose freely. What decodes must encode to bytes that decode to the same
//! content, and that encoding must be stable.
#![no_main]
use latch_wire::Content;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((thread, content)) = Content::from_plaintext(data) {
        let encoded = content
            .to_plaintext(thread)
            .expect("decoded content encodes");
        let (thread_again, again) =
            Content::from_plaintext(&encoded).expect("re-encoded content decodes");
        assert_eq!(thread_again, thread);
        assert!(again == content, "re-encoded content differs");
        assert_eq!(again.to_plaintext(thread_again).ok(), Some(encoded));
    }
});
