#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The OS keyring: keys live there and nowhere on disk; a missing or locked keyring is a
//! typed error and never a plain-text fallback.

mod common;

use std::process::Command;

use common::*;
use latch_store::*;

const CHILD: &str = "LATCH_KEYRING_TEST_CHILD";

fn unique(prefix: &str) -> String {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).unwrap();
    format!("{prefix}-{}", hex(&r))
}

/// Re-runs one test of this binary in a child process with a changed environment (the
/// environment is process-wide, so it cannot be changed inside a parallel test run).
fn run_child(test: &str, envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--include-ignored"])
        .env(CHILD, "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn keyring_without_a_session_bus_is_a_typed_error_and_nothing_is_written() {
    if std::env::var_os(CHILD).is_none() {
        let out = run_child(
            "keyring_without_a_session_bus_is_a_typed_error_and_nothing_is_written",
            &[(
                "DBUS_SESSION_BUS_ADDRESS",
                "unix:path=/nonexistent/latch-test-bus",
            )],
        );
        assert!(
            out.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        return;
    }
    let keys = OsKeyring::new(&unique("latch-test"));
    let profile = ProfileId::new("nobus").unwrap();
    let err = keys.get(&KeyName::database_key(&profile)).unwrap_err();
    assert!(matches!(err, KeyStoreError::Unavailable(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("no OS keyring is available"), "{text}");
    assert!(text.contains("passphrase"), "says what to do: {text}");

    let dir = tempfile::tempdir().unwrap();
    let err = Store::create_with_keyring(dir.path(), &profile, &keys, &StoreOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, OpenError::KeyStore(KeyStoreError::Unavailable(_))),
        "{err:?}"
    );
    // No fallback: no database, no key file, nothing at all was written.
    assert!(
        all_files(dir.path()).is_empty(),
        "{:?}",
        all_files(dir.path())
    );
}

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn database_and_identity_keys_are_in_the_keyring_and_nowhere_on_disk() {
    let service = unique("latch-test");
    let keys = OsKeyring::new(&service);
    let profile = ProfileId::new(&unique("p")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::create_with_keyring(dir.path(), &profile, &keys, &StoreOptions::default()).unwrap();
    let identity = SecretBytes::new(b"identity-private-key-0123456789abcdef".to_vec());
    let identity_name = KeyName::identity_key(&profile, "identity").unwrap();
    keystore::store_identity_key(&keys, &profile, "identity", &identity).unwrap();
    let (_, conv, _) = contact_and_conversations(&store);
    insert(&store, conv, "some text", 1, None);
    store.close().unwrap();

    // A fresh client reads both back from the Secret Service.
    let fresh = OsKeyring::new(&service);
    let db_key = keystore::load_database_key(&fresh, &profile).unwrap();
    assert_eq!(
        fresh.get(&identity_name).unwrap().expose(),
        identity.expose()
    );

    // Independent confirmation through libsecret's CLI.
    let out = Command::new("secret-tool")
        .args([
            "lookup",
            "service",
            &service,
            "username",
            KeyName::database_key(&profile).as_str(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "secret-tool lookup failed");
    assert_eq!(out.stdout, db_key.expose());

    // Nowhere on disk: raw or hex, database key or identity key.
    assert_nowhere_on_disk(dir.path(), db_key.expose(), "raw database key");
    assert_nowhere_on_disk(
        dir.path(),
        hex(db_key.expose()).as_bytes(),
        "hex database key",
    );
    assert_nowhere_on_disk(dir.path(), identity.expose(), "identity key");
    // The Secret Service's own file encrypts what it holds (gnome-keyring: under the login
    // password), so the keys are not there in the clear either.
    let keyrings = std::env::var_os("XDG_DATA_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".local/share")))
        .map(|d| d.join("keyrings"));
    if let Some(keyrings) = keyrings.filter(|d| d.is_dir()) {
        assert_nowhere_on_disk(&keyrings, db_key.expose(), "raw database key");
        assert_nowhere_on_disk(
            &keyrings,
            hex(db_key.expose()).as_bytes(),
            "hex database key",
        );
        assert_nowhere_on_disk(&keyrings, identity.expose(), "identity key");
    }

    // The profile reopens through the keyring.
    let store =
        Store::open_with_keyring(dir.path(), &profile, &fresh, &StoreOptions::default()).unwrap();
    drop(store);

    // Deleting the entry makes the profile unopenable with a clear error.
    fresh.delete(&KeyName::database_key(&profile)).unwrap();
    fresh.delete(&identity_name).unwrap();
    let err = Store::open_with_keyring(dir.path(), &profile, &fresh, &StoreOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, OpenError::KeyStore(KeyStoreError::NotFound(_))),
        "{err:?}"
    );
}

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn locked_keyring_is_a_typed_error() {
    if std::env::var_os(CHILD).is_none() {
        // A private bus and keyring daemon, so locking it cannot disturb other tests.
        let exe = std::env::current_exe().unwrap();
        let service = unique("latch-test");
        let script = format!(
            "echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null && \
             printf '%032d' 0 | secret-tool store --label=latch-test service {service} \
               username locked/database-key && \
             dbus-send --session --print-reply --dest=org.freedesktop.secrets \
               /org/freedesktop/secrets org.freedesktop.Secret.Service.Lock \
               array:objpath:/org/freedesktop/secrets/collection/login >/dev/null && \
             LATCH_LOCKED_SERVICE={service} {CHILD}=1 timeout 60 '{}' --exact locked_keyring_is_a_typed_error --nocapture --include-ignored",
            exe.display()
        );
        // A fresh keyring file too, so the daemon creates and unlocks it with our password.
        let data_home = tempfile::tempdir().unwrap();
        let out = Command::new("dbus-run-session")
            .args(["--", "sh", "-c", &script])
            .env("XDG_DATA_HOME", data_home.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        return;
    }
    let keys = OsKeyring::new(&std::env::var("LATCH_LOCKED_SERVICE").unwrap());
    let profile = ProfileId::new("locked").unwrap();
    // Reading an existing entry from the locked collection (the unlock prompt cannot show).
    let err = keystore::load_database_key(&keys, &profile).unwrap_err();
    assert!(matches!(err, KeyStoreError::Locked(_)), "{err:?}");
    let err = Store::open_with_keyring(
        tempfile::tempdir().unwrap().path(),
        &profile,
        &keys,
        &StoreOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, OpenError::NotFound(_)),
        "no database there: {err:?}"
    );
    // Creating a profile needs to write the key: refused, and nothing lands on disk.
    let dir = tempfile::tempdir().unwrap();
    let err = Store::create_with_keyring(dir.path(), &profile, &keys, &StoreOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, OpenError::KeyStore(KeyStoreError::Locked(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(all_files(dir.path()).is_empty());
}

/// The modes test of tests/store.rs against the real Secret Service.
#[cfg(unix)]
#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn keyring_profile_files_are_owner_only_under_any_umask() {
    if !in_child_under_open_umask("keyring_profile_files_are_owner_only_under_any_umask") {
        return;
    }
    let keys = OsKeyring::new(&unique("latch-test"));
    let profile = ProfileId::new(&unique("p")).unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("db");
    let options = StoreOptions::default();
    let store = Store::create_with_keyring(&dir, &profile, &keys, &options).unwrap();
    assert_open_profile_owner_only(&store, &dir);
    store.close().unwrap();
    widen_modes(&dir);
    let store = Store::open_with_keyring(&dir, &profile, &keys, &options).unwrap();
    assert_open_profile_owner_only(&store, &dir);
    drop(store);
    keys.delete(&KeyName::database_key(&profile)).unwrap();
}
