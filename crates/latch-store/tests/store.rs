#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The store against real SQLCipher: encryption at rest, typed open errors, the schema's
//! rules, the search index, and the sweeper (deterministic and real-time).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::*;
use latch_store::passphrase::unwrap_key;
use latch_store::*;
use zeroize::Zeroizing;

const MARKER: &str = "zebraquokkaplaintextmarker";

fn key_pragma(key: &DatabaseKey) -> String {
    format!("PRAGMA key = \"x'{}'\";", hex(key.expose()))
}

#[derive(Debug)]
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
fn database_is_sqlcipher_with_required_pragmas() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key) = new_store(dir.path());
    assert!(
        !store.cipher_version().unwrap().is_empty(),
        "SQLCipher linked"
    );
    store.close().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("latch.db")).unwrap();
    conn.execute_batch(&key_pragma(&key)).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // FTS5 is compiled in.
    let fts: i64 = conn
        .query_row("SELECT sqlite_compileoption_used('ENABLE_FTS5')", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fts, 1);
}

#[test]
fn pragmas_on_open_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    let values = store
        .write(|tx| {
            tx.raw_blobs(
                "SELECT secure_delete FROM pragma_secure_delete \
                 UNION ALL SELECT foreign_keys FROM pragma_foreign_keys \
                 UNION ALL SELECT journal_mode FROM pragma_journal_mode",
            )
        })
        .unwrap();
    assert_eq!(values, vec![b"1".to_vec(), b"1".to_vec(), b"wal".to_vec()]);
}

#[test]
fn no_plaintext_in_db_wal_or_shm_and_no_key_means_no_access() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key) = new_store(dir.path());
    let (_, std_conv, secret) = contact_and_conversations(&store);
    let id = insert(
        &store,
        std_conv,
        &format!("hello {MARKER} standard"),
        1,
        None,
    );
    insert(
        &store,
        secret,
        &format!("{MARKER} secret"),
        2,
        Some(i64::MAX),
    );
    store
        .write(|tx| tx.add_attachment(id, MARKER.as_bytes(), Some("text/plain")))
        .unwrap();
    // While open: the WAL holds the fresh pages.
    assert!(dir.path().join("latch.db-wal").exists());
    assert_nowhere_on_disk(dir.path(), MARKER.as_bytes(), "message text (open)");
    store.close().unwrap();
    assert_nowhere_on_disk(dir.path(), MARKER.as_bytes(), "message text (closed)");
    // The text is in the file, only encrypted: decrypting the pages finds it, so the scan
    // above could have failed.
    assert!(
        decrypt_sqlcipher_pages(&dir.path().join("latch.db"), &key)
            .iter()
            .any(|p| contains(p, MARKER.as_bytes()))
    );

    // Without the key: a clear error, not garbage.
    let wrong = DatabaseKey::generate().unwrap();
    let err = Store::open(dir.path(), &wrong, &StoreOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::WrongKey), "{err:?}");
    assert!(err.to_string().contains("key does not open"));
    // Plain SQLite (no key at all) cannot read it either.
    let conn = rusqlite::Connection::open(dir.path().join("latch.db")).unwrap();
    let e = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_err();
    assert!(e.to_string().contains("not a database"), "{e}");
    drop(conn);
    // The right key still works, and the data is intact.
    let store = Store::open(dir.path(), &key, &StoreOptions::default()).unwrap();
    let m = store.write(|tx| tx.message(id)).unwrap().unwrap();
    assert!(m.body.contains(MARKER));
}

#[test]
fn corrupt_file_is_not_reported_as_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key) = new_store(dir.path());
    let (_, conv, _) = contact_and_conversations(&store);
    for i in 0..50 {
        insert(&store, conv, &"x".repeat(500), i, None);
    }
    store.close().unwrap();
    let path = dir.path().join("latch.db");
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 4096 * 4);
    // Damage page 1 past the salt: its HMAC fails, the other pages still authenticate.
    for b in &mut bytes[200..260] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = Store::open(dir.path(), &key, &StoreOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt), "{err:?}");

    // A truncated header is corrupt too.
    std::fs::write(&path, &bytes[..10]).unwrap();
    let err = Store::open(dir.path(), &key, &StoreOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt), "{err:?}");
}

#[test]
fn unencrypted_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("latch.db")).unwrap();
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(conn);
    let key = DatabaseKey::generate().unwrap();
    let err = Store::open(dir.path(), &key, &StoreOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::Unencrypted), "{err:?}");
}

#[test]
fn newer_schema_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key) = new_store(dir.path());
    store.close().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("latch.db")).unwrap();
    conn.execute_batch(&key_pragma(&key)).unwrap();
    conn.execute_batch("PRAGMA user_version = 999;").unwrap();
    drop(conn);
    let err = Store::open(dir.path(), &key, &StoreOptions::default()).unwrap_err();
    match err {
        OpenError::NewerSchema { found, supported } => {
            assert_eq!(found, 999);
            assert_eq!(supported, migrations::SCHEMA_VERSION);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[test]
fn missing_and_existing_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let key = DatabaseKey::generate().unwrap();
    let err = Store::open(&dir.path().join("nope"), &key, &StoreOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::NotFound(_)), "{err:?}");
    let (store, _) = new_store(dir.path());
    drop(store);
    let err = Store::create(dir.path(), &key, &StoreOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::AlreadyExists(_)), "{err:?}");
}

#[test]
fn full_disk_is_a_typed_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    let (_, conv, _) = contact_and_conversations(&store);
    let kept = insert(&store, conv, "kept", 1, None);
    let pages: u32 = store.write(|tx| tx.raw_blobs("PRAGMA page_count")).unwrap()[0]
        .iter()
        .map(|&b| char::from(b))
        .collect::<String>()
        .parse()
        .unwrap();
    store.set_max_page_count(pages + 2).unwrap();
    let big = "y".repeat(64 * 1024);
    let err = store
        .write(|tx| {
            for i in 0..10 {
                tx.insert_message(&NewMessage {
                    conversation_id: conv,
                    direction: Direction::Outgoing,
                    status: MessageStatus::Pending,
                    body: &big,
                    sent_at: 10 + i,
                    received_at: None,
                    expires_at: None,
                    remote_id: None,
                    expire_after_secs: None,
                })?;
            }
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::DiskFull), "{err:?}");
    assert!(err.to_string().contains("disk is full"));
    let page = store
        .write(|tx| tx.conversation_page(conv, None, 100))
        .unwrap();
    assert_eq!(page.len(), 1, "the failed transaction left nothing behind");
    assert_eq!(page[0].id, kept);
}

#[test]
fn secret_chat_text_never_reaches_the_search_index() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    let (_, std_conv, secret) = contact_and_conversations(&store);
    let visible = insert(&store, std_conv, "findable standardword", 1, None);
    let hidden = insert(
        &store,
        secret,
        &format!("hidden {MARKER}"),
        2,
        Some(i64::MAX),
    );
    // Editing a secret message's text must not index it either.
    store
        .write(|tx| {
            tx.raw_blobs(&format!(
                "UPDATE messages SET body = 'edited {MARKER}' WHERE id = {} RETURNING id",
                hidden.0
            ))
        })
        .unwrap();
    assert_eq!(
        store.write(|tx| tx.search("standardword", 10)).unwrap(),
        vec![visible]
    );
    assert!(store.write(|tx| tx.search(MARKER, 10)).unwrap().is_empty());
    assert!(
        store
            .write(|tx| tx.search("hidden", 10))
            .unwrap()
            .is_empty()
    );
    // The raw shadow tables hold nothing of it either (tokens are lower-cased).
    for (table, column) in [
        ("messages_fts_data", "block"),
        ("messages_fts_idx", "term"),
        ("messages_fts_content", "c0"),
        ("messages_fts_docsize", "sz"),
        ("messages_fts_config", "v"),
    ] {
        let blobs = store
            .write(|tx| tx.raw_blobs(&format!("SELECT {column} FROM {table}")))
            .unwrap();
        for blob in &blobs {
            assert!(
                !contains(blob, MARKER.as_bytes()),
                "{table} holds secret text"
            );
            assert!(!contains(blob, b"hidden"), "{table} holds secret text");
        }
        if table == "messages_fts_data" {
            assert!(
                blobs.iter().any(|b| contains(b, b"standardword")),
                "the scan can see standard text, so it would see secret text"
            );
        }
    }
    // A conversation cannot turn from secret into standard to get indexed later.
    let err = store
        .write(|tx| {
            tx.raw_blobs(&format!(
                "UPDATE conversations SET kind = 0, bound_device_id = NULL WHERE id = {}",
                secret.0
            ))
        })
        .unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
    // Secret messages must carry an expiry.
    let err = store
        .write(|tx| {
            tx.insert_message(&NewMessage {
                conversation_id: secret,
                direction: Direction::Outgoing,
                status: MessageStatus::Pending,
                body: "x",
                sent_at: 3,
                received_at: None,
                expires_at: None,
                remote_id: None,
                expire_after_secs: None,
            })
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

#[test]
fn search_input_is_never_fts_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    let (_, conv, _) = contact_and_conversations(&store);
    let id = insert(&store, conv, "say \"quoted\" words", 1, None);
    for q in ["\"", "a OR", "NEAR(", "*", "quoted\" OR \"x", "-"] {
        store.write(|tx| tx.search(q, 10)).unwrap();
    }
    assert_eq!(store.write(|tx| tx.search("quoted", 10)).unwrap(), vec![id]);
    assert!(store.write(|tx| tx.search("   ", 10)).unwrap().is_empty());
}

#[test]
fn conversation_pages_are_newest_first_and_contiguous() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    let (_, conv, _) = contact_and_conversations(&store);
    let ids: Vec<_> = (0..25)
        .map(|i| insert(&store, conv, "m", i / 2, None))
        .collect();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .write(|tx| tx.conversation_page(conv, cursor, 10))
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(PageCursor::from);
        seen.extend(page.iter().map(|m| m.id));
    }
    let mut expected = ids;
    expected.reverse();
    assert_eq!(seen, expected);
}

#[test]
fn a_sender_is_found_by_signing_key_through_the_index_and_standing_persists() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    // Identity keys as the protocol encodes them: a version byte, then the signing key.
    let identity = |signing: u8| {
        let mut k = vec![1u8];
        k.extend_from_slice(&[signing; 32]);
        k.extend_from_slice(&[0xEE; 96]);
        k
    };
    let carol = store
        .write(|tx| tx.observe_identity("carol", &identity(7), 1))
        .unwrap()
        .0;
    store
        .write(|tx| tx.observe_identity("dave", &identity(8), 1))
        .unwrap();
    let found = store
        .write(|tx| tx.contact_by_signing_key(&[7; 32]))
        .unwrap()
        .unwrap();
    assert_eq!(found.id, carol);
    assert_eq!(found.standing, ContactStanding::Accepted);
    assert!(
        store
            .write(|tx| tx.contact_by_signing_key(&[9; 32]))
            .unwrap()
            .is_none()
    );

    for standing in [ContactStanding::Request, ContactStanding::Blocked] {
        assert!(
            store
                .write(|tx| tx.set_contact_standing(carol, standing))
                .unwrap()
        );
        let c = store.write(|tx| tx.contact(carol)).unwrap().unwrap();
        assert_eq!(c.standing, standing);
    }
    assert!(store.write(|tx| tx.delete_contact(carol)).unwrap());
    assert!(store.write(|tx| tx.contact(carol)).unwrap().is_none());
}

#[test]
fn contact_key_changes_are_recorded_and_reset_verification() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    let (id, change) = store
        .write(|tx| tx.observe_identity("carol", b"k1", 10))
        .unwrap();
    assert_eq!(change, IdentityChange::New);
    store.write(|tx| tx.set_verified(id, b"k1", true)).unwrap();
    let (_, change) = store
        .write(|tx| tx.observe_identity("carol", b"k1", 11))
        .unwrap();
    assert_eq!(change, IdentityChange::Unchanged);
    let (_, change) = store
        .write(|tx| tx.observe_identity("carol", b"k2", 12))
        .unwrap();
    assert_eq!(change, IdentityChange::Changed { was_verified: true });
    let c = store.write(|tx| tx.contact(id)).unwrap().unwrap();
    assert_eq!(c.identity_key, b"k2");
    assert!(!c.verified);
    let history = store.write(|tx| tx.key_changes(id)).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].old_identity_key, b"k1");
    assert!(history[0].was_verified);
    // Verifying against a stale key is refused.
    let err = store
        .write(|tx| tx.set_verified(id, b"k1", true))
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
}

#[test]
fn sessions_prekeys_and_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    store
        .write(|tx| {
            tx.put_session("bob", 2, b"s2", 1)?;
            tx.put_session("bob", 1, b"s1", 1)?;
            tx.put_session("bob", 1, b"s1'", 2)?;
            tx.put_prekey(PreKeyKind::OneTime, 5, b"p5", 1)?;
            tx.put_prekey(PreKeyKind::Signed, 5, b"sp5", 1)?;
            Ok(())
        })
        .unwrap();
    store
        .write(|tx| {
            // Secret records come back in wiping buffers (the type is the check).
            let session: Option<Zeroizing<Vec<u8>>> = tx.session("bob", 1)?;
            assert_eq!(session.as_deref(), Some(&b"s1'".to_vec()));
            assert_eq!(tx.session_devices("bob")?, vec![1, 2]);
            assert!(tx.session("bob", 3)?.is_none());
            let prekey: Option<Zeroizing<Vec<u8>>> = tx.prekey(PreKeyKind::Signed, 5)?;
            assert_eq!(prekey.as_deref(), Some(&b"sp5".to_vec()));
            assert!(tx.remove_prekey(PreKeyKind::OneTime, 5)?);
            assert!(!tx.remove_prekey(PreKeyKind::OneTime, 5)?);
            assert_eq!(tx.prekey_ids(PreKeyKind::Signed)?, vec![5]);
            assert_eq!(tx.delete_sessions("bob", None)?, 2);
            Ok(())
        })
        .unwrap();
    let (_, conv, _) = contact_and_conversations(&store);
    let m = insert(&store, conv, "out", 1, None);
    let o = store
        .write(|tx| tx.enqueue_outbox(Some(m), "bob", 1, &[7; 16], b"envelope", 100))
        .unwrap();
    assert!(store.write(|tx| tx.due_outbox(99, 10)).unwrap().is_empty());
    let due = store.write(|tx| tx.due_outbox(100, 10)).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].envelope, b"envelope");
    store.write(|tx| tx.outbox_retry_at(o, 200)).unwrap();
    assert!(store.write(|tx| tx.due_outbox(150, 10)).unwrap().is_empty());
    assert_eq!(
        store.write(|tx| tx.due_outbox(200, 10)).unwrap()[0].attempts,
        1
    );
    assert!(store.write(|tx| tx.outbox_acked(o)).unwrap());
    assert!(
        store
            .write(|tx| tx.due_outbox(i64::MAX, 10))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn attachments_are_encrypted_files_removed_with_their_message() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    let (_, conv, _) = contact_and_conversations(&store);
    let m = insert(&store, conv, "with file", 1, None);
    let a = store
        .write(|tx| tx.add_attachment(m, MARKER.as_bytes(), Some("text/plain")))
        .unwrap();
    assert_eq!(&*store.read_attachment(a).unwrap(), MARKER.as_bytes());
    let files = || {
        std::fs::read_dir(dir.path().join("attachments"))
            .unwrap()
            .count()
    };
    assert_eq!(files(), 1);
    assert_nowhere_on_disk(dir.path(), MARKER.as_bytes(), "attachment bytes");

    // A failed transaction removes the file it wrote.
    let err = store
        .write(|tx| {
            tx.add_attachment(m, b"doomed", None)?;
            Err::<(), _>(StoreError::Invalid("abort"))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid("abort")));
    assert_eq!(files(), 1);

    // Tampering is detected.
    let path = std::fs::read_dir(dir.path().join("attachments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        store.read_attachment(a),
        Err(StoreError::AttachmentCorrupt)
    ));
    assert!(store.write(|tx| tx.delete_message(m)).unwrap());
    assert_eq!(files(), 0);
    assert!(store.write(|tx| tx.attachments(m)).unwrap().is_empty());
}

#[test]
fn passphrase_profile_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let params = KdfParams::insecure_for_tests();
    let store = Store::create_with_passphrase(
        dir.path(),
        "hunter2 hunter2",
        params,
        &StoreOptions::default(),
    )
    .unwrap();
    let (_, conv, _) = contact_and_conversations(&store);
    let id = insert(&store, conv, MARKER, 1, None);
    store.close().unwrap();

    let err =
        Store::open_with_passphrase(dir.path(), "wrong", &StoreOptions::default()).unwrap_err();
    assert!(
        matches!(err, OpenError::Passphrase(PassphraseError::WrongPassphrase)),
        "{err:?}"
    );
    let store =
        Store::open_with_passphrase(dir.path(), "hunter2 hunter2", &StoreOptions::default())
            .unwrap();
    assert_eq!(
        store.write(|tx| tx.message(id)).unwrap().unwrap().body,
        MARKER
    );
    store.close().unwrap();

    // The wrapped key file is ciphertext only: the key is nowhere on disk.
    let wrapped = std::fs::read(dir.path().join("db-key.wrapped")).unwrap();
    let key = unwrap_key(&wrapped, "hunter2 hunter2").unwrap();
    assert_nowhere_on_disk(dir.path(), key.expose(), "raw database key");
    assert_nowhere_on_disk(dir.path(), hex(key.expose()).as_bytes(), "hex database key");
    assert_nowhere_on_disk(dir.path(), MARKER.as_bytes(), "message text");

    // A keyring profile has no wrapped key: said plainly.
    let other = tempfile::tempdir().unwrap();
    drop(new_store(other.path()));
    let err = Store::open_with_passphrase(other.path(), "x", &StoreOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::NoWrappedKey), "{err:?}");

    // Changing the passphrase keeps the database key.
    Store::set_passphrase(dir.path(), &key, "new phrase", params).unwrap();
    let store =
        Store::open_with_passphrase(dir.path(), "new phrase", &StoreOptions::default()).unwrap();
    drop(store);
    assert!(
        Store::open_with_passphrase(dir.path(), "hunter2 hunter2", &StoreOptions::default())
            .is_err()
    );
}

#[test]
fn memory_keystore_profile_and_missing_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = MemoryKeyStore::new();
    let profile = ProfileId::new("alice").unwrap();
    let store =
        Store::create_with_keyring(dir.path(), &profile, &keys, &StoreOptions::default()).unwrap();
    store.close().unwrap();
    Store::open_with_keyring(dir.path(), &profile, &keys, &StoreOptions::default()).unwrap();
    let other = ProfileId::new("mallory").unwrap();
    let err =
        Store::open_with_keyring(dir.path(), &other, &keys, &StoreOptions::default()).unwrap_err();
    assert!(
        matches!(err, OpenError::KeyStore(KeyStoreError::NotFound(_))),
        "{err:?}"
    );
}

/// Both kinds of profile keep every directory 0700 and every file 0600, the SQLite side
/// files and the rewritten wrapped key included, whatever the umask; a profile left
/// readable by an older build is narrowed when it opens.
#[cfg(unix)]
#[test]
fn profile_files_are_owner_only_under_any_umask() {
    if !in_child_under_open_umask("profile_files_are_owner_only_under_any_umask") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let params = KdfParams::insecure_for_tests();
    let options = StoreOptions::default();

    // A passphrase profile, in a `db/` directory that does not exist yet (as the app's).
    let dir = root.path().join("passphrase").join("db");
    let store = Store::create_with_passphrase(&dir, "pass phrase", params, &options).unwrap();
    assert_open_profile_owner_only(&store, &dir);
    store.close().unwrap();
    let wrapped = std::fs::read(dir.join("db-key.wrapped")).unwrap();
    let key = unwrap_key(&wrapped, "pass phrase").unwrap();
    // Rewrapping goes through a temporary file and a rename.
    Store::set_passphrase(&dir, &key, "new phrase", params).unwrap();
    let files = assert_owner_only(&dir);
    assert!(files.iter().any(|f| f == "db-key.wrapped"), "{files:?}");
    widen_modes(&dir);
    let store = Store::open_with_passphrase(&dir, "new phrase", &options).unwrap();
    assert_open_profile_owner_only(&store, &dir);
    drop(store);

    // A keyring profile (an in-memory key store stands in for the Secret Service here;
    // tests/keyring.rs runs the same checks against the real one).
    let dir = root.path().join("keyring").join("db");
    let keys = MemoryKeyStore::new();
    let profile = ProfileId::new("modes").unwrap();
    let store = Store::create_with_keyring(&dir, &profile, &keys, &options).unwrap();
    assert_open_profile_owner_only(&store, &dir);
    store.close().unwrap();
    widen_modes(&dir);
    let store = Store::open_with_keyring(&dir, &profile, &keys, &options).unwrap();
    assert_open_profile_owner_only(&store, &dir);
}

// ---- sweeper -------------------------------------------------------------------------

#[test]
fn reopening_sweeps_what_expired_while_closed_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(1_000_000)));
    let opts = StoreOptions {
        clock: clock.clone(),
    };
    let key = DatabaseKey::generate().unwrap();
    let store = Store::create(dir.path(), &key, &opts).unwrap();
    let (_, conv, _) = contact_and_conversations(&store);
    let gone = insert(&store, conv, "ephemeralword", 1, Some(1_001_000));
    let stays = insert(&store, conv, "lastingword", 2, Some(1_010_000));
    store
        .write(|tx| tx.add_attachment(gone, b"file", None))
        .unwrap();
    store.close().unwrap();

    // While closed the row is still in the file (so the check below can fail).
    let conn = rusqlite::Connection::open(dir.path().join("latch.db")).unwrap();
    conn.execute_batch(&key_pragma(&key)).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    drop(conn);

    clock.0.store(1_002_000, Ordering::SeqCst);
    let store = Store::open(dir.path(), &key, &opts).unwrap();
    // The very first read after open.
    let page = store
        .write(|tx| tx.conversation_page(conv, None, 10))
        .unwrap();
    assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), vec![stays]);
    assert!(
        store
            .write(|tx| tx.search("ephemeralword", 10))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("attachments"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn failed_checkpoint_after_a_sweep_still_announces_the_deletion_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(1_000_000)));
    let opts = StoreOptions {
        clock: clock.clone(),
    };
    let key = DatabaseKey::generate().unwrap();
    let store = Store::create(dir.path(), &key, &opts).unwrap();
    let (_, conv, _) = contact_and_conversations(&store);
    let gone = insert(&store, conv, "checkpointword", 1, Some(1_001_000));
    let mut events = store.subscribe();
    let wal = dir.path().join("latch.db-wal");
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());

    clock.0.store(1_002_000, Ordering::SeqCst);
    store.fail_next_checkpoints(1);
    assert!(
        store.sweep_expired().is_err(),
        "the checkpoint failure is reported"
    );
    // The deletion committed and the UI heard about it despite the failed checkpoint.
    assert!(store.write(|tx| tx.message(gone)).unwrap().is_none());
    match events.try_recv() {
        Ok(StoreEvent::MessagesExpired { messages, swept_at }) => {
            assert_eq!(messages.len(), 1);
            assert_eq!(messages[0].message_id, gone);
            assert_eq!(swept_at, 1_002_000);
        }
        other => panic!("expected MessagesExpired, got {other:?}"),
    }
    assert!(store.checkpoint_pending());
    assert!(wal_len() > 0, "the deleted pages are still in the WAL");

    // The next sweep deletes nothing but still owes (and now makes) the checkpoint.
    assert!(store.sweep_expired().unwrap().is_empty());
    assert!(!store.checkpoint_pending());
    assert_eq!(wal_len(), 0, "the retry checkpointed and truncated the WAL");
    assert!(
        events.try_recv().is_err(),
        "the deletion is announced exactly once"
    );
}

#[tokio::test(start_paused = true)]
async fn sweeper_sleeps_until_the_earliest_expiry_and_wakes_early_for_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TokioClock::starting_at(1_000_000));
    let opts = StoreOptions {
        clock: clock.clone(),
    };
    let key = DatabaseKey::generate().unwrap();
    let store = Store::create(dir.path(), &key, &opts).unwrap();
    let (_, conv, _) = contact_and_conversations(&store);
    let mut events = store.subscribe();
    let late = insert(&store, conv, "late", 1, Some(1_000_000 + 3_600_000));
    let mut parks = store.sweeper_parks();
    let sweeper = Sweeper::spawn(store.clone()).unwrap();
    wait_parked_until(&mut parks, 1_000_000 + 3_600_000).await;
    assert!(store.write(|tx| tx.message(late)).unwrap().is_some());

    let early_at = clock.now_ms() + 10_000;
    let early = insert(&store, conv, "early", 2, Some(early_at));
    let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("the sweeper woke for the earlier expiry")
        .unwrap();
    match event {
        StoreEvent::MessagesExpired { messages, swept_at } => {
            assert_eq!(messages.len(), 1);
            assert_eq!(messages[0].message_id, early);
            assert_eq!(messages[0].conversation_id, conv);
            assert_eq!(swept_at, early_at, "deleted exactly at expires_at");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(store.write(|tx| tx.message(late)).unwrap().is_some());

    // Then the late one, at its time.
    let event = tokio::time::timeout(Duration::from_secs(7200), events.recv())
        .await
        .unwrap()
        .unwrap();
    let StoreEvent::MessagesExpired { messages, swept_at } = event else {
        panic!("unexpected event");
    };
    assert_eq!(messages[0].message_id, late);
    assert_eq!(swept_at, 1_000_000 + 3_600_000);
    sweeper.stop().await;
}

/// A deletion (for everyone, or of an incoming message) and an edit leave no copy of the old
/// text in the WAL or the database once the write returns, as an expiry does: on SQLCipher
/// (the WAL is truncated, the decrypted pages are clean) and on plain SQLite through the same
/// code (the raw bytes of every file are clean).
#[test]
fn deleted_and_edited_text_leaves_no_trace_in_the_wal() {
    let encrypted = tempfile::tempdir().unwrap();
    let (store, key) = new_store(encrypted.path());
    removed_text_leaves_no_trace(&store, encrypted.path(), Some(&key));
    let plain = tempfile::tempdir().unwrap();
    let store = Store::create_unencrypted(plain.path(), &StoreOptions::default()).unwrap();
    removed_text_leaves_no_trace(&store, plain.path(), None);
}

fn removed_text_leaves_no_trace(store: &Store, dir: &std::path::Path, key: Option<&DatabaseKey>) {
    const OLD: &str = "wombatnumbatoldtextmarker";
    let wal_len = || std::fs::metadata(dir.join("latch.db-wal")).map_or(0, |m| m.len());
    let (_, conv, _) = contact_and_conversations(store);
    let keep = insert(store, conv, "unrelated survivor", 1, None);
    let deleted = insert(store, conv, &format!("deleted {MARKER}"), 2, None);
    let edited = insert(store, conv, &format!("edited {OLD}"), 3, None);
    assert!(
        wal_len() > 0,
        "the texts are in the WAL (so the checks below can fail)"
    );
    if key.is_none() {
        assert!(on_disk(dir, None, MARKER.as_bytes()));
        assert!(on_disk(dir, None, OLD.as_bytes()));
    }

    assert!(store.write(|tx| tx.delete_message(deleted)).unwrap());
    assert_eq!(wal_len(), 0, "the WAL was checkpointed after the deletion");
    assert!(
        !on_disk(dir, key, MARKER.as_bytes()),
        "deleted text on disk"
    );

    insert(store, conv, "another write", 4, None);
    assert!(wal_len() > 0);
    store
        .write(|tx| tx.edit_message(edited, "the new text", 5))
        .unwrap();
    assert_eq!(wal_len(), 0, "the WAL was checkpointed after the edit");
    assert!(!on_disk(dir, key, OLD.as_bytes()), "replaced text on disk");
    assert!(on_disk(dir, key, b"the new text"));
    assert!(on_disk(dir, key, b"unrelated survivor"));
    assert!(store.write(|tx| tx.message(keep)).unwrap().is_some());

    // A write that removes no text leaves the WAL alone (no checkpoint per write).
    insert(store, conv, "one more", 6, None);
    assert!(!store.write(|tx| tx.delete_message(deleted)).unwrap());
    assert!(wal_len() > 0);
}

/// Whether any decrypted page (SQLCipher) or any file (plain) holds `needle`.
fn on_disk(dir: &std::path::Path, key: Option<&DatabaseKey>, needle: &[u8]) -> bool {
    match key {
        Some(key) => {
            let wal = dir.join("latch.db-wal");
            assert!(
                std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
                "the WAL was checkpointed and truncated"
            );
            decrypt_sqlcipher_pages(&dir.join("latch.db"), key)
                .iter()
                .any(|p| contains(p, needle))
        }
        None => all_files(dir).iter().any(|(_, b)| contains(b, needle)),
    }
}

/// Whether `needle` leaves the files once the sweep's checkpoint has run (bounded wait: the
/// checkpoint follows the expiry event on the sweeper's task).
async fn gone_from_disk(dir: &std::path::Path, key: Option<&DatabaseKey>, needle: &[u8]) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let wal = std::fs::metadata(dir.join("latch.db-wal")).map_or(0, |m| m.len());
        // With a key, `on_disk` reads the database file only, so the WAL must be empty first.
        if (key.is_none() || wal == 0) && !on_disk(dir, key, needle) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Shared body of the real-time test, on SQLCipher (pages decrypted with the key to look
/// into free pages) and on plain SQLite through the same code (raw bytes of every file).
async fn expire_in_one_second(store: Store, dir: &std::path::Path, key: Option<&DatabaseKey>) {
    let (_, conv, _) = contact_and_conversations(&store);
    let keep = insert(&store, conv, "unrelated survivor", 1, None);
    let mut events = store.subscribe();
    let sweeper = Sweeper::spawn(store.clone()).unwrap();
    // The bound: gone within 2 s of the insert of a message that expires after 1 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let expires_at = store.clock().now_ms() + 1_000;
    let id = insert(
        &store,
        conv,
        &format!("vanishing {MARKER}"),
        2,
        Some(expires_at),
    );
    let att = store
        .write(|tx| tx.add_attachment(id, b"attachment bytes", None))
        .unwrap();
    let indexed = store
        .write(|tx| tx.raw_blobs("SELECT block FROM messages_fts_data"))
        .unwrap();
    assert!(
        indexed.iter().any(|b| contains(b, MARKER.as_bytes())),
        "the token is in the index before the sweep (so the check after can fail)"
    );
    store.checkpoint().unwrap();
    assert!(
        on_disk(dir, key, MARKER.as_bytes()),
        "the text is on disk before the sweep (so the scan after it can fail)"
    );
    // A bounded wait on the event itself, ending at the 2-second mark.
    let event = tokio::time::timeout_at(deadline, events.recv())
        .await
        .expect("deleted within 2 seconds")
        .unwrap();
    let StoreEvent::MessagesExpired { messages, swept_at } = event else {
        panic!("unexpected event {event:?}");
    };
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].message_id, id);
    assert_eq!(messages[0].attachments, vec![att]);
    // Not before its time, judged by the clock the sweep itself read (no race with ours).
    assert!(
        swept_at >= expires_at,
        "swept at {swept_at}, before expires_at {expires_at}"
    );

    assert!(store.write(|tx| tx.message(id)).unwrap().is_none());
    assert!(store.write(|tx| tx.message(keep)).unwrap().is_some());
    assert!(store.write(|tx| tx.search(MARKER, 10)).unwrap().is_empty());
    for (table, column) in [
        ("messages_fts_data", "block"),
        ("messages_fts_content", "c0"),
    ] {
        for blob in store
            .write(|tx| tx.raw_blobs(&format!("SELECT {column} FROM {table}")))
            .unwrap()
        {
            assert!(
                !contains(&blob, MARKER.as_bytes()),
                "{table} still holds it"
            );
            assert!(!contains(&blob, b"vanishing"), "{table} still holds it");
        }
    }
    assert_eq!(
        std::fs::read_dir(dir.join("attachments")).unwrap().count(),
        0
    );
    // The sweep checkpoints right after it publishes the event (so a failing checkpoint
    // cannot hide the deletion): then no page, in use or free, and no WAL frame holds a trace.
    for needle in [MARKER.as_bytes(), b"vanishing"] {
        assert!(
            gone_from_disk(dir, key, needle).await,
            "expired text left in freed pages or the WAL"
        );
    }
    sweeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_expiry_within_two_seconds_leaves_no_trace_in_sqlcipher_free_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key) = new_store(dir.path());
    expire_in_one_second(store, dir.path(), Some(&key)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_expiry_leaves_no_trace_in_freed_pages_plain_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_unencrypted(dir.path(), &StoreOptions::default()).unwrap();
    expire_in_one_second(store, dir.path(), None).await;
}

#[test]
fn sweeper_outside_a_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = new_store(dir.path());
    assert!(matches!(
        Sweeper::spawn(store),
        Err(SweeperError::NoRuntime)
    ));
}

#[tokio::test(start_paused = true)]
async fn wake_sweeper_catches_up_after_a_clock_jump() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(1_000_000)));
    let opts = StoreOptions {
        clock: clock.clone(),
    };
    let key = DatabaseKey::generate().unwrap();
    let store = Store::create(dir.path(), &key, &opts).unwrap();
    let (_, conv, _) = contact_and_conversations(&store);
    let mut events = store.subscribe();
    let id = insert(
        &store,
        conv,
        "after suspend",
        1,
        Some(1_000_000 + 3_600_000),
    );
    let mut parks = store.sweeper_parks();
    let sweeper = Sweeper::spawn(store.clone()).unwrap();
    // The sweeper has read the clock, computed the one-hour deadline and is waiting on it.
    let parked = wait_parked_until(&mut parks, 1_000_000 + 3_600_000).await;
    // The machine "slept" two hours: the wall clock jumped, the monotonic one did not.
    clock.0.store(1_000_000 + 7_200_000, Ordering::SeqCst);
    store.wake_sweeper();
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("swept at once, not at the stale one-hour deadline")
        .unwrap();
    let StoreEvent::MessagesExpired { messages, .. } = event else {
        panic!("unexpected {event:?}");
    };
    assert_eq!(messages[0].message_id, id);
    // It was woken out of that very wait (not at its deadline, nor by some other wake-up):
    // the next wait is the first after it, with nothing left to expire.
    let next = *tokio::time::timeout(
        Duration::from_secs(1),
        parks.wait_for(|p| p.parks > parked.parks),
    )
    .await
    .expect("the sweeper parks again after the sweep")
    .unwrap();
    assert_eq!(
        next.parks,
        parked.parks + 1,
        "woken once, from the stale wait"
    );
    assert_eq!(next.wake_at, None);
    sweeper.stop().await;
}

/// Waits (bounded) until the sweeper is waiting with `wake_at` as its deadline.
async fn wait_parked_until(
    parks: &mut tokio::sync::watch::Receiver<sweeper::SweeperPark>,
    wake_at: i64,
) -> sweeper::SweeperPark {
    let park = tokio::time::timeout(
        Duration::from_secs(1),
        parks.wait_for(|p| p.wake_at == Some(wake_at)),
    )
    .await
    .expect("the sweeper parked on the expected deadline")
    .unwrap();
    *park
}

/// The sweeper deletes the newest messages of a secret chat; the next message must get a
/// new id, not the deleted one's, or the UI and the notifications would mistake one for the
/// other.
#[test]
fn message_ids_are_never_reused_after_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _key) = new_store(dir.path());
    let (_, standard, secret) = contact_and_conversations(&store);
    let kept = insert(&store, standard, "kept", 1, None);
    let gone_a = insert(&store, secret, "gone a", 2, Some(10));
    let gone_b = insert(&store, secret, "gone b", 3, Some(10));
    store
        .write(|tx| {
            tx.delete_message(gone_a)?;
            tx.delete_message(gone_b)
        })
        .unwrap();
    let next = insert(&store, standard, "next", 4, None);
    assert!(
        next.0 > gone_b.0,
        "{next:?} reuses a deleted id ({gone_b:?})"
    );
    assert!(gone_b.0 > gone_a.0 && gone_a.0 > kept.0);
}
