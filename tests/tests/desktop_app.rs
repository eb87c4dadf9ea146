//! The real `latch-desktop` binary in a real webview, driven over WebDriver.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::time::Duration;

use latch_e2e::{Artifacts, Relay, ScreenshotOnFailure, TauriDriver, wait_for};
use serde_json::{Value, json};

/// First run and unlocking touch the keyring, Argon2id (64 MiB) and the relay; on a loaded CI
/// machine that is still far below this.
const STEP: Duration = Duration::from_secs(60);

fn wait_for_element(session: &latch_e2e::Session, css: &str) -> latch_e2e::Element {
    wait_for(css, STEP, || Ok(session.try_find(css)?)).unwrap_or_else(|e| panic!("{e}"))
}

fn type_into(session: &latch_e2e::Session, css: &str, text: &str) {
    let field = wait_for_element(session, css);
    session.clear(&field).unwrap();
    session.send_keys(&field, text).unwrap();
}

/// A profile protected by a passphrase instead of the keyring: created on the first-run
/// screen, then after a restart the unlock screen refuses a wrong passphrase and opens with
/// the right one. The database key is wrapped on disk and the identity key sits inside the
/// encrypted database, so nothing of the profile is readable without the passphrase.
#[test]
#[ignore = "needs a display, tauri-driver and WebKitWebDriver; run by scripts/test"]
fn a_passphrase_profile_unlocks_only_with_its_passphrase() {
    let artifacts =
        Artifacts::for_test("a_passphrase_profile_unlocks_only_with_its_passphrase").unwrap();
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path()).unwrap();
    let home = tempfile::tempdir().unwrap();
    {
        let driver = TauriDriver::start(&artifacts, home.path()).unwrap();
        let session = driver
            .launch_app()
            .unwrap_or_else(|e| panic!("app did not start ({e}); log: {}", driver.log().display()));
        let _capture = ScreenshotOnFailure::new(&session, &artifacts);
        type_into(&session, "#profile-name", "carol");
        type_into(&session, "#profile-handle", "carol");
        type_into(&session, "#relay-url", relay.url());
        let protect = wait_for_element(&session, "#use-passphrase");
        session.click(&protect).unwrap();
        type_into(&session, "#passphrase", "correct horse battery");
        type_into(&session, "#passphrase-confirm", "correct horse battery");
        artifacts
            .screenshot(&session, "first-run-with-passphrase")
            .unwrap();
        let create = wait_for_element(&session, "#create-profile");
        session.click(&create).unwrap();
        wait_for_element(&session, "#me-handle");
        artifacts.screenshot(&session, "created").unwrap();
    }

    let profile = home.path().join("data/latch/profiles/carol");
    let info: Value =
        serde_json::from_slice(&std::fs::read(profile.join("profile.json")).unwrap()).unwrap();
    assert_eq!(info["protection"], "passphrase");
    assert!(
        std::fs::read_dir(profile.join("db")).unwrap().count() > 0,
        "the encrypted database exists"
    );

    let driver = TauriDriver::start(&artifacts, home.path()).unwrap();
    let session = driver.launch_app().unwrap();
    let _capture = ScreenshotOnFailure::new(&session, &artifacts);
    type_into(&session, "#unlock-passphrase", "wrong horse battery");
    session
        .click(&wait_for_element(&session, "#unlock"))
        .unwrap();
    let refusal = wait_for("the refusal", STEP, || {
        let Some(error) = session.try_find("#unlock-error")? else {
            return Ok(None);
        };
        let text = session.text(&error)?;
        Ok((!text.trim().is_empty()).then_some(text))
    })
    .unwrap();
    assert!(refusal.contains("passphrase"), "{refusal}");
    assert!(session.try_find("#me-handle").unwrap().is_none());
    artifacts.screenshot(&session, "wrong-passphrase").unwrap();

    type_into(&session, "#unlock-passphrase", "correct horse battery");
    session
        .click(&wait_for_element(&session, "#unlock"))
        .unwrap();
    let me = wait_for_element(&session, "#me-handle");
    assert!(session.text(&me).unwrap().contains("carol"));
    artifacts.screenshot(&session, "unlocked").unwrap();
}

/// The bundled SQLCipher exports `sqlite3_*` symbols into the app process, where WebKit also
/// keeps its storage in SQLite. This proves the webview's own storage still works.
#[test]
#[ignore = "needs a display, tauri-driver and WebKitWebDriver; run by scripts/test"]
fn webview_storage_survives_bundled_sqlcipher() {
    let artifacts = Artifacts::for_test("webview_storage_survives_bundled_sqlcipher").unwrap();
    let home = tempfile::tempdir().unwrap();
    let driver = TauriDriver::start(&artifacts, home.path()).unwrap();
    let session = driver.launch_app().unwrap();
    let _capture = ScreenshotOnFailure::new(&session, &artifacts);

    let local = session
        .execute(
            "localStorage.setItem('latch-probe', arguments[0]); return localStorage.getItem('latch-probe');",
            json!(["stored-by-webkit"]),
        )
        .unwrap();
    assert_eq!(local, json!("stored-by-webkit"));

    let indexed = session
        .execute_async(
            r"const [value, done] = arguments;
            const open = indexedDB.open('latch-probe', 1);
            open.onupgradeneeded = () => open.result.createObjectStore('kv');
            open.onerror = () => done('open failed: ' + open.error);
            open.onsuccess = () => {
              const tx = open.result.transaction('kv', 'readwrite');
              tx.objectStore('kv').put(value, 'k');
              tx.oncomplete = () => {
                const get = open.result.transaction('kv').objectStore('kv').get('k');
                get.onsuccess = () => done(get.result);
                get.onerror = () => done('get failed: ' + get.error);
              };
              tx.onerror = () => done('put failed: ' + tx.error);
            };",
            json!(["kept-in-indexeddb"]),
        )
        .unwrap();
    assert_eq!(indexed, Value::from("kept-in-indexeddb"));
}

/// Script in the page cannot reach an API the UI does not use: the isolation hook refuses the
/// command (its promise never settles) and the capability would deny it anyway (it rejects).
/// Either way it must not succeed. The bound only limits how long "nothing happened" is
/// observed; success would arrive within milliseconds.
#[test]
#[ignore = "needs a display, tauri-driver and WebKitWebDriver; run by scripts/test"]
fn commands_outside_the_allow_list_are_refused() {
    let artifacts = Artifacts::for_test("commands_outside_the_allow_list_are_refused").unwrap();
    let home = tempfile::tempdir().unwrap();
    let driver = TauriDriver::start(&artifacts, home.path()).unwrap();
    let session = driver.launch_app().unwrap();
    let _capture = ScreenshotOnFailure::new(&session, &artifacts);
    wait_for_element(&session, "#profile-name");

    let probe = r"const [command, done] = arguments;
        const invoke = window.__TAURI_INTERNALS__.invoke;
        Promise.race([
          invoke(command, {}).then(() => 'succeeded', (e) => 'rejected: ' + e),
          new Promise((resolve) => setTimeout(() => resolve('no answer'), 3000)),
        ]).then(done);";
    for command in [
        "plugin:app|version",
        "plugin:window|close",
        "plugin:event|emit",
    ] {
        let outcome = session.execute_async(probe, json!([command])).unwrap();
        let outcome = outcome.as_str().unwrap_or_default().to_owned();
        assert_ne!(outcome, "succeeded", "{command} went through");
    }
    // An allowed command still works through the same path, so the probe itself is sound.
    let allowed = session.execute_async(probe, json!(["startup"])).unwrap();
    assert_eq!(allowed, json!("succeeded"));
}
