//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use latch_store::{
    ContactId, ConversationId, ConversationKind, DatabaseKey, Direction, MessageId, MessageStatus,
    NewMessage, Store, StoreOptions,
};

pub fn new_store(dir: &Path) -> (Store, DatabaseKey) {
    let key = DatabaseKey::generate().unwrap();
    let store = Store::create(dir, &key, &StoreOptions::default()).unwrap();
    (store, key)
}

pub fn contact_and_conversations(store: &Store) -> (ContactId, ConversationId, ConversationId) {
    store
        .write(|tx| {
            let (bob, _) = tx.observe_identity("bob", &[7u8; 33], 0)?;
            let std = tx.create_conversation(bob, ConversationKind::Standard, None, 0)?;
            let secret = tx.create_conversation(
                bob,
                ConversationKind::Secret { bound_device_id: 1 },
                Some(5),
                0,
            )?;
            Ok((bob, std, secret))
        })
        .unwrap()
}

pub fn insert(
    store: &Store,
    conv: ConversationId,
    body: &str,
    sent_at: i64,
    expires_at: Option<i64>,
) -> MessageId {
    store
        .write(|tx| {
            tx.insert_message(&NewMessage {
                conversation_id: conv,
                direction: Direction::Incoming,
                status: MessageStatus::Received,
                body,
                sent_at,
                received_at: Some(sent_at),
                expires_at,
                remote_id: None,
                expire_after_secs: None,
            })
        })
        .unwrap()
}

/// Every file in the profile directory, recursively, as (path, bytes).
pub fn all_files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Panics naming the file if any file under `dir` contains `needle`.
pub fn assert_nowhere_on_disk(dir: &Path, needle: &[u8], what: &str) {
    for (path, bytes) in all_files(dir) {
        assert!(
            !contains(&bytes, needle),
            "{what} found in {}",
            path.display()
        );
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decrypts every page of a SQLCipher 4 database file (default settings: 4096-byte pages,
/// AES-256-CBC, 80 reserved bytes holding the IV and HMAC; a raw key is the AES key), so
/// tests can look inside *free* pages, which SQL cannot reach.
pub fn decrypt_sqlcipher_pages(path: &Path, key: &DatabaseKey) -> Vec<Vec<u8>> {
    use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::NoPadding};
    const PAGE: usize = 4096;
    const RESERVE: usize = 80;
    let file = std::fs::read(path).unwrap();
    assert_eq!(file.len() % PAGE, 0, "whole pages");
    file.chunks(PAGE)
        .enumerate()
        .map(|(i, page)| {
            let start = if i == 0 { 16 } else { 0 }; // page 1 starts with the salt
            let iv = &page[PAGE - RESERVE..PAGE - RESERVE + 16];
            let mut buf = page[start..PAGE - RESERVE].to_vec();
            cbc::Decryptor::<aes::Aes256>::new(key.expose().into(), iv.into())
                .decrypt_padded_mut::<NoPadding>(&mut buf)
                .unwrap();
            buf
        })
        .collect()
}
