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

/// The messenger fills the window exactly, whatever the first-run screen before it did. The
/// first-run form is taller than the default window, so a new user scrolls the app's scroller
/// (`#app`) down to "Create profile"; the messenger then mounts in that same scroller. When
/// it was taller than the window (the empty chat pane once added its padding to its full
/// height), the scroller kept part of the old offset and the first main screen came up with
/// the sidebar header above the window and an empty strip below it.
#[test]
#[ignore = "needs a display, tauri-driver and WebKitWebDriver; run by scripts/test"]
fn the_first_main_screen_fits_the_window() {
    let artifacts = Artifacts::for_test("the_first_main_screen_fits_the_window").unwrap();
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path()).unwrap();
    let home = tempfile::tempdir().unwrap();
    let driver = TauriDriver::start(&artifacts, home.path()).unwrap();
    let session = driver
        .launch_app()
        .unwrap_or_else(|e| panic!("app did not start ({e}); log: {}", driver.log().display()));
    let _capture = ScreenshotOnFailure::new(&session, &artifacts);
    type_into(&session, "#profile-name", "dave");
    type_into(&session, "#profile-handle", "dave");
    type_into(&session, "#relay-url", relay.url());
    // Down to the button, as a user does (the click below would scroll there too).
    let scrolled = session
        .execute(
            "const app = document.getElementById('app'); app.scrollTop = app.scrollHeight; return app.scrollTop;",
            json!([]),
        )
        .unwrap();
    assert!(
        scrolled.as_f64().is_some_and(|top| top > 0.0),
        "the first-run form no longer overflows the window ({scrolled}): this test needs a form that does"
    );
    artifacts
        .screenshot(&session, "first-run-scrolled")
        .unwrap();
    session
        .click(&wait_for_element(&session, "#create-profile"))
        .unwrap();
    wait_for_element(&session, "#me-handle");
    artifacts.screenshot(&session, "first-main-screen").unwrap();

    let layout = session
        .execute(
            r"const app = document.getElementById('app');
            const header = document.getElementById('me-handle').closest('header');
            const messenger = document.querySelector('.messenger').getBoundingClientRect();
            return {
              overflow: app.scrollHeight - app.clientHeight,
              scrollTop: app.scrollTop,
              headerTop: header.getBoundingClientRect().top,
              messengerTop: messenger.top,
              messengerBottom: messenger.bottom,
              windowHeight: window.innerHeight,
            };",
            json!([]),
        )
        .unwrap();
    assert_eq!(
        layout["overflow"],
        json!(0),
        "the messenger overflows the window: {layout}"
    );
    assert_eq!(layout["scrollTop"], json!(0), "{layout}");
    assert_eq!(
        layout["headerTop"],
        json!(0),
        "the sidebar header is off screen: {layout}"
    );
    assert_eq!(layout["messengerTop"], json!(0), "{layout}");
    assert_eq!(
        layout["messengerBottom"], layout["windowHeight"],
        "the messenger leaves a strip below it: {layout}"
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

/// Script in the page cannot reach an API the UI does not use, and each of the two layers
/// refuses on its own, so widening either one fails this test:
/// - the isolation hook drops a refused command before it is encrypted: the isolation frame
///   answers a later, allowed command and never the refused one (messages reach the frame in
///   order, so once the allowed one is back the refused one was handled);
/// - the capability: injected script can skip the hook by replaying a captured encrypted
///   payload under another name (Tauri encrypts only the arguments); the core rejects it,
///   while the same payload under its own name still goes through.
#[test]
#[ignore = "needs a display, tauri-driver and WebKitWebDriver; run by scripts/test"]
fn commands_outside_the_allow_list_are_refused() {
    let artifacts = Artifacts::for_test("commands_outside_the_allow_list_are_refused").unwrap();
    let home = tempfile::tempdir().unwrap();
    let driver = TauriDriver::start(&artifacts, home.path()).unwrap();
    let session = driver.launch_app().unwrap();
    let _capture = ScreenshotOnFailure::new(&session, &artifacts);
    wait_for_element(&session, "#profile-name");

    // Sends `refused` and then `allowed` through the hook and records what the isolation
    // frame hands to the main frame; then replays the allowed command's encrypted payload
    // straight to the core under both names.
    let probe = r"const [refused, allowed, done] = arguments;
        const internals = window.__TAURI_INTERNALS__;
        const passed = [];
        const listen = (event) => {
          const d = event.data;
          if (d && typeof d === 'object' && d.payload && Array.isArray(d.payload.nonce)) passed.push(d);
        };
        window.addEventListener('message', listen);
        const replay = (message, cmd) => new Promise((resolve) => {
          const callback = internals.transformCallback((r) => resolve({ ok: r }), true);
          const error = internals.transformCallback((e) => resolve({ err: String(e) }), true);
          internals.postMessage({ ...message, cmd, callback, error });
        });
        internals.invoke(refused, {}).then(
          () => { window.__latchRefusedSettled = 'succeeded'; },
          (e) => { window.__latchRefusedSettled = 'rejected: ' + e; });
        internals.invoke(allowed, {}).then(async () => {
          window.removeEventListener('message', listen);
          const through = passed.map((m) => m.cmd);
          const captured = passed.find((m) => m.cmd === allowed);
          done({
            through,
            replayedRefused: await replay(captured, refused),
            replayedAllowed: await replay(captured, allowed),
            refusedSettled: window.__latchRefusedSettled ?? null,
          });
        }, (e) => done({ failed: String(e) }));";
    for command in [
        "plugin:app|version",
        "plugin:window|close",
        "plugin:event|emit",
        "contacts",
    ] {
        let outcome = session
            .execute_async(probe, json!([command, "startup"]))
            .unwrap();
        eprintln!("{command}: {outcome}");
        assert_eq!(outcome["failed"], Value::Null, "{command}: {outcome}");
        let through = outcome["through"].as_array().unwrap();
        assert!(through.contains(&json!("startup")), "{command}: {outcome}");
        assert!(
            !through.contains(&json!(command)),
            "the isolation hook let {command} through: {outcome}"
        );
        assert_eq!(
            outcome["refusedSettled"],
            Value::Null,
            "{command}: {outcome}"
        );
        let rejected = outcome["replayedRefused"]["err"]
            .as_str()
            .unwrap_or_else(|| panic!("the core ran {command} past the hook: {outcome}"));
        assert!(rejected.contains("not allowed"), "{command}: {rejected}");
        // The replay itself is sound: the same payload under its own name is accepted.
        assert!(
            outcome["replayedAllowed"]["ok"].is_object(),
            "{command}: {outcome}"
        );
    }
}
