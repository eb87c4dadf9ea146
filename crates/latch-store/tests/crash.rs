#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]
//! Crash safety: a child process writes messages, each together with the ratchet state that
//! produced it, one transaction per message, and is killed with SIGKILL at a random moment.
//! After every kill the profile must open, and every stored message must have its session
//! state and vice versa: no half-written message, no state ahead of or behind the messages.
//!
//! `harness = false`: the same binary is the parent (no env var) and the child (env var set).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latch_store::{
    ConversationKind, DatabaseKey, Direction, MessageStatus, NewMessage, Store, StoreOptions,
};

const CHILD_DIR: &str = "LATCH_CRASH_CHILD_DIR";
const CHILD_KEY: &str = "LATCH_CRASH_CHILD_KEY";
const ROUNDS: usize = 5;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn session_count(record: &[u8]) -> u64 {
    std::str::from_utf8(record)
        .unwrap()
        .strip_prefix("seen=")
        .unwrap()
        .parse()
        .unwrap()
}

fn child(dir: &Path, key: &DatabaseKey) {
    let store = Store::open(dir, key, &StoreOptions::default()).unwrap();
    let conv = latch_store::ConversationId(1);
    let mut n = store
        .write(|tx| tx.session("bob", 1))
        .unwrap()
        .map_or(0, |r| session_count(&r));
    println!("ready");
    // Bounded: if the parent dies, the child stops by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let body = format!("crash message {n} {}", "p".repeat((n % 7 * 300) as usize));
        store
            .write(|tx| {
                tx.insert_message(&NewMessage {
                    conversation_id: conv,
                    direction: Direction::Incoming,
                    status: MessageStatus::Received,
                    body: &body,
                    sent_at: n as i64,
                    received_at: Some(n as i64),
                    expires_at: None,
                    remote_id: None,
                    expire_after_secs: None,
                })?;
                tx.put_session("bob", 1, format!("seen={}", n + 1).as_bytes(), n as i64)
            })
            .unwrap();
        n += 1;
    }
}

fn check(dir: &Path, key: &DatabaseKey) -> u64 {
    let store = Store::open(dir, key, &StoreOptions::default()).expect("reopens after kill -9");
    let integrity = store
        .write(|tx| tx.raw_blobs("PRAGMA integrity_check"))
        .unwrap();
    assert_eq!(integrity, vec![b"ok".to_vec()]);
    let cipher = store
        .write(|tx| tx.raw_blobs("PRAGMA cipher_integrity_check"))
        .unwrap();
    assert!(cipher.is_empty(), "page HMAC failures after crash");
    let seen = store
        .write(|tx| tx.session("bob", 1))
        .unwrap()
        .map_or(0, |r| session_count(&r));
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .write(|tx| tx.conversation_page(latch_store::ConversationId(1), cursor, 500))
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(latch_store::PageCursor::from);
        all.extend(page);
    }
    all.reverse();
    assert_eq!(
        all.len() as u64,
        seen,
        "ratchet state and stored messages disagree"
    );
    for (i, m) in all.iter().enumerate() {
        assert_eq!(m.sent_at, i as i64, "messages are contiguous");
        let expected = format!("crash message {i} {}", "p".repeat(i % 7 * 300));
        assert_eq!(m.body, expected, "message {i} is whole");
    }
    let fts = store
        .write(|tx| tx.raw_blobs("SELECT count(*) FROM messages_fts"))
        .unwrap();
    assert_eq!(
        fts,
        vec![seen.to_string().into_bytes()],
        "index matches rows"
    );
    store.close().unwrap();
    seen
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let key = DatabaseKey::generate().unwrap();
    let store = Store::create(dir.path(), &key, &StoreOptions::default()).unwrap();
    store
        .write(|tx| {
            let (bob, _) = tx.observe_identity("bob", b"bob key", 0)?;
            let conv = tx.create_conversation(bob, ConversationKind::Standard, None, 0)?;
            assert_eq!(conv.0, 1);
            Ok(())
        })
        .unwrap();
    store.close().unwrap();

    let exe = std::env::current_exe().unwrap();
    let mut last = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .env(CHILD_DIR, dir.path())
            .env(CHILD_KEY, hex(key.expose()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "child started");
        // The random moment of the crash (not a synchronisation wait).
        let mut r = [0u8; 2];
        getrandom::fill(&mut r).unwrap();
        let delay = 100 + u64::from(u16::from_le_bytes(r)) % 400;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "child was killed, not finished");
        let seen = check(dir.path(), &key);
        eprintln!("round {round}: killed after {delay} ms, {seen} messages consistent");
        assert!(seen >= last, "committed messages never disappear");
        last = seen;
    }
    assert!(last > 0, "the child made progress");
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let key = DatabaseKey::from_slice(&unhex(&std::env::var(CHILD_KEY).unwrap())).unwrap();
        child(Path::new(&dir), &key);
        return;
    }
    parent();
    eprintln!("test crash_kill_9_leaves_messages_and_sessions_consistent ... ok");
}
