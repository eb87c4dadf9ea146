//! The real `latch-desktop` binary in a real webview, driven over WebDriver.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::time::Duration;

use latch_e2e::{Artifacts, ScreenshotOnFailure, TauriDriver, wait_for};
use serde_json::{Value, json};

/// The storage check writes and reads a small encrypted file; on a loaded CI machine that is
/// still far below this.
const STORAGE_CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// The identifier in tauri.conf.json, which names the app's data directory.
const APP_IDENTIFIER: &str = "app.latch.desktop";

#[test]
#[ignore = "needs a display, tauri-driver and WebKitWebDriver; run by scripts/test"]
fn ui_round_trips_through_sqlcipher() {
    let artifacts = Artifacts::for_test("ui_round_trips_through_sqlcipher").unwrap();
    eprintln!("artifacts: {}", artifacts.dir().display());
    let home = tempfile::tempdir().unwrap();
    let driver = TauriDriver::start(&artifacts, home.path()).unwrap();
    let session = driver
        .launch_app()
        .unwrap_or_else(|e| panic!("app did not start ({e}); log: {}", driver.log().display()));
    let _capture = ScreenshotOnFailure::new(&session, &artifacts);

    let button = wait_for("the storage check button", STORAGE_CHECK_TIMEOUT, || {
        Ok(session.try_find("#storage-check")?)
    })
    .unwrap();
    artifacts.screenshot(&session, "launched").unwrap();

    session.click(&button).unwrap();
    let shown = wait_for("a storage check result", STORAGE_CHECK_TIMEOUT, || {
        if let Some(error) = session.try_find("#storage-error")? {
            panic!(
                "the app reported a storage failure: {}",
                session.text(&error)?
            );
        }
        match session.try_find("#cipher-version")? {
            Some(version) => Ok(Some(session.text(&version)?)),
            None => Ok(None),
        }
    })
    .unwrap();
    wait_for("the check to finish", STORAGE_CHECK_TIMEOUT, || {
        let button = session.find("#storage-check")?;
        Ok((session.text(&button)? == "Check encrypted storage").then_some(()))
    })
    .unwrap();
    artifacts.screenshot(&session, "checked").unwrap();

    // The window shows exactly what the linked SQLCipher reports, not a canned string.
    let scratch = tempfile::tempdir().unwrap();
    let expected = latch_store::selftest::run(scratch.path()).unwrap();
    assert_eq!(shown, expected.cipher_version);

    // The check ran in the app's own data directory (which WebKit shares for its own storage)
    // and cleaned up after itself.
    let data_dir = driver.home().join("data").join(APP_IDENTIFIER);
    assert!(
        data_dir.is_dir(),
        "the app never touched {}",
        data_dir.display()
    );
    let leftovers: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("selftest-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "scratch files left behind: {leftovers:?}"
    );

    // The isolation pattern is on (exactly one isolation frame) and works invisibly.
    let frames = session
        .execute(
            "return [...document.querySelectorAll('iframe')].map((f) => ({\
               id: f.id, width: f.getBoundingClientRect().width }));",
            json!([]),
        )
        .unwrap();
    assert_eq!(
        frames,
        json!([{ "id": "__tauri_isolation__", "width": 0 }]),
        "expected one hidden isolation frame"
    );
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
    wait_for("the UI", STORAGE_CHECK_TIMEOUT, || {
        Ok(session.try_find("#storage-check")?)
    })
    .unwrap();

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
    // The allowed command still works through the same path, so the probe itself is sound.
    let allowed = session
        .execute_async(probe, json!(["storage_check"]))
        .unwrap();
    assert_eq!(allowed, json!("succeeded"));
}
