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

/// Set in a child test process that runs under umask 000.
const OPEN_UMASK_CHILD: &str = "LATCH_OPEN_UMASK_TEST_CHILD";

/// In the test process, re-runs the test `name` of this binary in a child under umask 000
/// (the umask is process-wide, so it cannot be changed inside a parallel test run) and
/// returns `false` once the child passed; in that child, returns `true`. Under umask 000
/// nothing can rely on the umask to keep a file from other users.
#[cfg(unix)]
pub fn in_child_under_open_umask(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    if std::env::var_os(OPEN_UMASK_CHILD).is_some() {
        // The umask really is open here: a plain new file is world-writable.
        let scratch = tempfile::tempdir().unwrap();
        let probe = scratch.path().join("probe");
        std::fs::File::create(&probe).unwrap();
        let mode = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666, "the child's umask is not 000");
        return true;
    }
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            r#"umask 000 && exec "$0" --exact "$1" --nocapture --include-ignored"#,
        ])
        .arg(std::env::current_exe().unwrap())
        .arg(name)
        .env(OPEN_UMASK_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Panics naming the entry unless `dir` and every directory under it is 0700 and every file
/// 0600; returns the names of the files seen.
#[cfg(unix)]
pub fn assert_owner_only(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "directory {} is {mode:o}", d.display());
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                let mode = meta.permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "file {} is {mode:o}", path.display());
                files.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    files
}

/// Writes a message and an attachment to an open profile at `dir`, then checks that every
/// file it keeps, the SQLite `-wal` and `-shm` files included, is owner-only.
#[cfg(unix)]
pub fn assert_open_profile_owner_only(store: &Store, dir: &Path) {
    let mut key = [0u8; 33];
    getrandom::fill(&mut key).unwrap();
    let conv = store
        .write(|tx| {
            let (contact, _) = tx.observe_identity(&hex(&key[..8]), &key, 0)?;
            tx.create_conversation(contact, ConversationKind::Standard, None, 0)
        })
        .unwrap();
    let m = insert(store, conv, "text", 1, None);
    store
        .write(|tx| tx.add_attachment(m, b"attached", None))
        .unwrap();
    let files = assert_owner_only(dir);
    for expected in ["latch.db", "latch.db-wal", "latch.db-shm"] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} missing: {files:?}"
        );
    }
    assert!(
        files.len() >= 4,
        "the attachment's file is checked: {files:?}"
    );
}

/// Gives an existing profile the modes builds before issue 18 left (directories 0755, files
/// 0644), as a profile made by them would have.
#[cfg(unix)]
pub fn widen_modes(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
    }
}
