//! Two real app instances (two profiles, two data directories) and a real relay on loopback,
//! driven over WebDriver under Xvfb: first run, a secret chat started with the lock toggle, a
//! 5-second timer, messages that disappear on both screens, safety numbers verified from a
//! screenshot of the other app's QR code (as a chosen file, and held to the camera), and the
//! banner after the contact's key changes.
//! Every step leaves a screenshot in `artifacts/e2e/two_apps_chat_in_secret_and_verify/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use latch_e2e::{
    Artifacts, ENTER, HarnessError, NotificationCall, Notifications, Relay, ScreenshotOnFailure,
    Session, TauriDriver, latch_cli, wait_for,
};
use latch_testkit::SoundServer;
use serde_json::{Value, json};

/// Creating a profile generates keys, an Argon2-free SQLCipher database and registers on the
/// relay; a secret chat claims prekeys. Both take well under this on a loaded machine.
const STEP: Duration = Duration::from_secs(60);

/// A 5-second message read at once is gone in about 5 s; the sweeper's timing and a busy
/// machine get the rest of this bound.
const DISAPPEAR: Duration = Duration::from_secs(40);

/// One app under its own driver. Fields drop in order: the session first (which closes the
/// app the way a user would), then the driver.
struct App {
    session: Session,
    driver: TauriDriver,
}

fn launch(artifacts: &Artifacts, home: &Path, sound: &SoundServer) -> App {
    let address = sound.address();
    let env = [("PULSE_SERVER", address.as_str())];
    let driver = TauriDriver::start_with_env(artifacts, home, &env).unwrap();
    let session = driver
        .launch_app()
        .unwrap_or_else(|e| panic!("app did not start ({e}); log: {}", driver.log().display()));
    App { session, driver }
}

fn find(session: &Session, css: &str) -> latch_e2e::Element {
    wait_for(css, STEP, || Ok(session.try_find(css)?)).unwrap_or_else(|e| panic!("{e}"))
}

fn type_into(session: &Session, css: &str, text: &str) {
    let field = find(session, css);
    session.clear(&field).unwrap();
    session.send_keys(&field, text).unwrap();
}

fn click(session: &Session, css: &str) {
    let element = find(session, css);
    session.click(&element).unwrap();
}

/// Whether `css` matches anything whose text contains `text`.
fn shows(session: &Session, css: &str, text: &str) -> Result<bool, HarnessError> {
    let found = session.execute(
        "return [...document.querySelectorAll(arguments[0])]\
           .some((e) => e.textContent.includes(arguments[1]));",
        json!([css, text]),
    )?;
    Ok(found == Value::Bool(true))
}

fn wait_shown(session: &Session, what: &str, css: &str, text: &str, timeout: Duration) {
    wait_for(what, timeout, || {
        Ok(shows(session, css, text)?.then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits until `text` is nowhere in the window (timeline, list preview, notices) while the
/// secret chat stays open, so an empty or closed view cannot pass for a disappearance.
fn wait_gone(session: &Session, what: &str, text: &str) {
    wait_for(what, DISAPPEAR, || {
        let open = attribute(session, "#chat-header", "data-kind").as_deref() == Some("secret");
        assert!(open, "the secret chat closed while waiting for {what}");
        let anywhere = session.execute(
            "return document.body.innerText.includes(arguments[0]);",
            json!([text]),
        )?;
        Ok((anywhere == Value::Bool(false)).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

fn create_profile(app: &App, name: &str, relay: &str) {
    let s = &app.session;
    type_into(s, "#profile-name", name);
    type_into(s, "#profile-handle", name);
    type_into(s, "#relay-url", relay);
    click(s, "#create-profile");
    wait_for("the main screen", STEP, || {
        if let Some(text) = text_of(s, "#first-run-error")?
            && !text.trim().is_empty()
        {
            panic!("creating {name} failed: {text}");
        }
        Ok(s.try_find("#me-handle")?)
    })
    .unwrap();
    wait_shown(s, "online", "#connection-state", "nline", STEP);
}

/// The text of the first element matching `css`, read in one script (an element handle
/// can go stale between finding it and reading it while the UI re-renders).
fn text_of(session: &Session, css: &str) -> Result<Option<String>, HarnessError> {
    let text = session.execute(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
        json!([css]),
    )?;
    Ok(text.as_str().map(str::to_owned))
}

fn send(session: &Session, text: &str) {
    let composer = find(session, "#composer");
    session.send_keys(&composer, text).unwrap();
    session.send_keys(&composer, ENTER).unwrap();
}

fn attribute(session: &Session, css: &str, name: &str) -> Option<String> {
    session
        .try_find(css)
        .unwrap()
        .and_then(|e| session.attribute(&e, name).unwrap())
}

#[test]
#[ignore = "needs a display, tauri-driver, WebKitWebDriver and a keyring; run by scripts/test"]
fn two_apps_chat_in_secret_and_verify() {
    let artifacts = Artifacts::for_test("two_apps_chat_in_secret_and_verify").unwrap();
    eprintln!("artifacts: {}", artifacts.dir().display());
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(relay_dir.path()).unwrap();
    // A real notification server on the session bus both apps use, and what they sent it.
    let notifications = Notifications::start(STEP).unwrap();
    // A real sound server both apps call through (their microphones hear silence).
    let sound = SoundServer::start().unwrap();
    let (alice_home, bob_home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let alice_art = Artifacts::for_test("two_apps_chat_in_secret_and_verify/alice").unwrap();
    let bob_art = Artifacts::for_test("two_apps_chat_in_secret_and_verify/bob").unwrap();
    let alice = launch(&alice_art, alice_home.path(), &sound);
    let _alice_capture = ScreenshotOnFailure::new(&alice.session, &alice_art);
    let bob = launch(&bob_art, bob_home.path(), &sound);
    let bob_capture = ScreenshotOnFailure::new(&bob.session, &bob_art);

    // First run on both: profiles with keys in the keyring, registered on the relay.
    find(&alice.session, "#profile-name");
    alice_art.screenshot(&alice.session, "first-run").unwrap();
    create_profile(&alice, "alice", relay.url());
    create_profile(&bob, "bob", relay.url());
    alice_art
        .screenshot(&alice.session, "profile-created")
        .unwrap();

    // Alice starts a secret chat with the lock toggle and a 5-second timer.
    let a = &alice.session;
    click(a, "#new-chat");
    type_into(a, "#new-chat-handle", "bob");
    click(a, "#lock-toggle");
    assert_eq!(
        attribute(a, "#lock-toggle", "aria-checked").as_deref(),
        Some("true")
    );
    click(a, "#new-chat-timer option[value='5']");
    let chosen = a
        .execute(
            "return document.querySelector('#new-chat-timer').value;",
            json!([]),
        )
        .unwrap();
    assert_eq!(chosen, json!("5"));
    alice_art.screenshot(a, "new-secret-chat").unwrap();
    click(a, "#start-chat");
    wait_for("the secret chat", STEP, || {
        Ok((attribute(a, "#chat-header", "data-kind").as_deref() == Some("secret")).then_some(()))
    })
    .unwrap();
    wait_for("the 5 s timer in the header", STEP, || {
        Ok((text_of(a, "#timer-button")?.as_deref().map(str::trim) == Some("5 s")).then_some(()))
    })
    .unwrap();

    // Messages both ways, read at once, then gone on both screens.
    alice.driver.focus_app_window().unwrap();
    send(a, "hello from the secret side");
    wait_shown(
        a,
        "alice's message",
        "[data-direction='outgoing'] .message-body",
        "hello from the secret side",
        STEP,
    );
    let b = &bob.session;
    wait_for("the secret chat in bob's list", STEP, || {
        Ok(b.try_find("[data-conversation-id][data-kind='secret']")?)
    })
    .unwrap();
    bob_art.screenshot(b, "secret-chat-arrived").unwrap();
    // Bob's notification names neither the text nor the sender; the server gave it an id.
    let secret_notice = wait_for("bob's notification of the secret message", STEP, || {
        Ok(notifications
            .calls()
            .into_iter()
            .find_map(|call| match call {
                NotificationCall::Notify {
                    summary,
                    body,
                    id: Some(id),
                } if summary == "Latch" => Some((body, id)),
                _ => None,
            }))
    })
    .unwrap();
    assert!(
        ["New message in a secret chat", "New message request"].contains(&secret_notice.0.as_str()),
        "{secret_notice:?}"
    );
    click(b, "[data-conversation-id][data-kind='secret']");
    // Alice wrote first and bob never added her: a message request, which bob accepts.
    let answer = wait_for("the request or the composer", STEP, || {
        if let Some(accept) = b.try_find("#accept-request")? {
            return Ok(Some(Some(accept)));
        }
        Ok(b.try_find("#composer")?.map(|_| None))
    })
    .unwrap();
    if let Some(accept) = answer {
        b.click(&accept).unwrap();
        find(b, "#composer");
    }
    bob.driver.focus_app_window().unwrap();
    // The chat on screen in a focused window withdraws it from the server.
    wait_for("the secret notification to be withdrawn", STEP, || {
        Ok(notifications
            .calls()
            .contains(&NotificationCall::Close {
                id: secret_notice.1,
            })
            .then_some(()))
    })
    .unwrap();
    wait_shown(
        b,
        "alice's message at bob",
        "[data-direction='incoming'] .message-body",
        "hello from the secret side",
        STEP,
    );
    assert_eq!(
        attribute(b, "#chat-header", "data-kind").as_deref(),
        Some("secret")
    );
    wait_for("a countdown on bob's copy", STEP, || {
        Ok(b.try_find("[data-direction='incoming'] .countdown")?)
    })
    .unwrap();
    send(b, "and back, also secret");
    bob_art.screenshot(b, "messages-with-countdown").unwrap();
    alice.driver.focus_app_window().unwrap();
    wait_shown(
        a,
        "bob's reply at alice",
        "[data-direction='incoming'] .message-body",
        "and back, also secret",
        STEP,
    );
    alice_art.screenshot(a, "messages-with-countdown").unwrap();

    for text in ["hello from the secret side", "and back, also secret"] {
        wait_gone(a, "the messages to disappear at alice", text);
    }
    bob.driver.focus_app_window().unwrap();
    for text in ["hello from the secret side", "and back, also secret"] {
        wait_gone(b, "the messages to disappear at bob", text);
    }
    alice_art.screenshot(a, "messages-disappeared").unwrap();
    bob_art.screenshot(b, "messages-disappeared").unwrap();

    // Safety numbers: Alice verifies Bob from a screenshot of the QR code on Bob's screen.
    click(b, "#safety-button");
    find(b, "#safety-qr");
    let bob_digits = b.text(&find(b, "#safety-digits")).unwrap();
    // What a user would do: a screenshot of Bob's whole window, QR code and all, once the
    // dialog has been painted (two animation frames after it is in the DOM).
    b.execute_async(
        "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
        json!([]),
    )
    .unwrap();
    let shot = bob_art.screenshot(b, "safety-number").unwrap();
    let png = std::fs::read(shot).unwrap();

    click(a, "#safety-button");
    let alice_digits = a.text(&find(a, "#safety-digits")).unwrap();
    assert_eq!(
        digits_only(&alice_digits),
        digits_only(&bob_digits),
        "both sides must show the same 60 digits"
    );
    assert_eq!(digits_only(&alice_digits).len(), 60);
    // The camera: the webview grants it to the app page and frames reach the decoder (a
    // test picture without a code, so the dialog keeps scanning).
    click(a, "#scan-camera");
    wait_for("a live camera picture", STEP, || {
        let size = a.execute(
            "const v = document.querySelector('#safety-dialog video');\
             return v ? v.videoWidth : -1;",
            json!([]),
        )?;
        Ok((size.as_i64().unwrap_or(-1) > 0).then_some(()))
    })
    .unwrap();
    alice_art.screenshot(a, "camera-scanning").unwrap();
    assert_eq!(attribute(a, "#verify-result", "data-result"), None);
    click(a, "#scan-camera");
    feed_image(a, "#scan-image-input", &png);
    wait_for("the scan result", STEP, || {
        Ok(attribute(a, "#verify-result", "data-result"))
    })
    .map(|result| assert_eq!(result, "verified", "scanning bob's QR code"))
    .unwrap();
    alice_art.screenshot(a, "verified-by-qr").unwrap();
    click(a, "#safety-close");
    find(a, "#verified-badge");
    alice_art.screenshot(a, "verified-badge").unwrap();

    // The camera path with a real code: a camera whose picture is the screenshot of Bob's QR
    // code (a canvas stream in place of the device), through the scanner's frame grabs and
    // the app's Rust decoder, in a freshly opened dialog.
    show_in_camera(a, &png);
    click(a, "#safety-button");
    find(a, "#safety-qr");
    assert_eq!(attribute(a, "#verify-result", "data-result"), None);
    click(a, "#scan-camera");
    wait_for("the camera scan result", STEP, || {
        Ok(attribute(a, "#verify-result", "data-result"))
    })
    .map(|result| assert_eq!(result, "verified", "bob's QR code held to the camera"))
    .unwrap();
    alice_art.screenshot(a, "verified-by-camera").unwrap();
    click(a, "#safety-close");

    // Hostile text in a standard chat arrives as inert text on Bob's screen.
    click(b, "#safety-close");
    click(a, "#new-chat");
    type_into(a, "#new-chat-handle", "bob");
    click(a, "#start-chat");
    wait_for("the standard chat", STEP, || {
        Ok(
            (attribute(a, "#chat-header", "data-kind").as_deref() == Some("standard"))
                .then_some(()),
        )
    })
    .unwrap();
    // The long one first, so the short ones after it are all on screen in the virtual list.
    let long = "0123456789".repeat(2_000);
    let corpus = [
        long.as_str(),
        "<script>window.__latchPwned = 1</script>",
        "<img src=x onerror=\"window.__latchPwned = 2\">",
        "javascript:window.__latchPwned = 3",
        "<a href=\"javascript:window.__latchPwned = 4\">click</a> https://example.org/<svg/onload=alert(1)>",
        "\u{202E}gnp.exe\u{202C} looks like a picture",
        "zero\u{200B}width\u{200D}joiners\u{FEFF}here",
    ];
    // Typed once the new chat's composer is on screen (its placeholder says which chat).
    wait_for("the standard chat's composer", STEP, || {
        let placeholder = a.execute(
            "const c = document.querySelector('#composer'); return c ? c.placeholder : null;",
            json!([]),
        )?;
        Ok((placeholder == json!("Message")).then_some(()))
    })
    .unwrap();
    let markers = [
        "0123456789",
        "__latchPwned = 1",
        "onerror",
        "__latchPwned = 3",
        "svg/onload",
        "looks like a picture",
        "joiners",
    ];
    alice.driver.focus_app_window().unwrap();
    send(a, "here comes the corpus");
    wait_shown(
        a,
        "the first standard message",
        "[data-direction='outgoing'] .message-body",
        "here comes the corpus",
        STEP,
    );
    for (text, marker) in corpus.iter().zip(markers) {
        type_raw(a, text, marker);
    }
    wait_for("bob's standard chat", STEP, || Ok(b_standard(&bob.session)))
        .map(|chat| bob.session.click(&chat).unwrap())
        .unwrap();
    bob.driver.focus_app_window().unwrap();
    for marker in [
        "__latchPwned = 1",
        "onerror",
        "__latchPwned = 3",
        "svg/onload",
        "looks like a picture",
        "joiners",
    ] {
        wait_shown(
            b,
            "the hostile corpus at bob",
            "[data-direction='incoming'] .message-body",
            marker,
            STEP,
        );
    }
    let inert = bob
        .session
        .execute(
            "const bodies = [...document.querySelectorAll('.message-body')];\
             return {\
               pwned: window.__latchPwned === undefined ? null : window.__latchPwned,\
               elements: bodies.flatMap((b) => [...b.querySelectorAll('*')])\
                 .filter((e) => e.tagName !== 'A' && e.tagName !== 'SPAN' && e.tagName !== 'BUTTON' && e.tagName !== 'BR')\
                 .map((e) => e.tagName),\
               links: bodies.flatMap((b) => [...b.querySelectorAll('a')]).map((a) => a.getAttribute('href')),\
               text: bodies.map((b) => b.textContent).join('\\n'),\
             };",
            json!([]),
        )
        .unwrap();
    bob_art.screenshot(&bob.session, "hostile-corpus").unwrap();
    assert_eq!(inert["pwned"], Value::Null, "{inert}");
    assert_eq!(inert["elements"], json!([]), "{inert}");
    for href in inert["links"].as_array().unwrap() {
        let href = href.as_str().unwrap_or_default();
        assert!(
            href.starts_with("https://") || href.starts_with("http://"),
            "{href}"
        );
    }
    // What the notification server got for the standard chat: the first message as text,
    // markup escaped, and every one withdrawn once bob opened the chat. Nothing it got, from
    // either chat, carries a secret message's text.
    let calls = notifications.calls();
    let standard: Vec<(String, Option<u32>)> = calls
        .iter()
        .filter_map(|call| match call {
            NotificationCall::Notify { summary, body, id } if summary == "alice" => {
                Some((body.clone(), *id))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        standard.first().map(|(body, _)| body.as_str()),
        Some("here comes the corpus"),
        "{calls:?}"
    );
    for (body, _) in &standard {
        assert!(
            !body.contains('<') && !body.contains('>'),
            "unescaped: {body}"
        );
    }
    for (_, id) in &standard {
        let id = id.unwrap_or_else(|| panic!("the server never answered: {calls:?}"));
        wait_for("the standard notifications to be withdrawn", STEP, || {
            Ok(notifications
                .calls()
                .contains(&NotificationCall::Close { id })
                .then_some(()))
        })
        .unwrap();
    }
    for call in &calls {
        if let NotificationCall::Notify { summary, body, .. } = call {
            for secret in ["hello from the secret side", "and back, also secret"] {
                assert!(
                    !summary.contains(secret) && !body.contains(secret),
                    "{call:?}"
                );
            }
        }
    }
    let shown = inert["text"].as_str().unwrap();
    assert!(shown.contains("<script>window.__latchPwned = 1</script>"));
    assert!(shown.contains("onerror"));

    // A voice call in the standard chat: it rings in Bob's app whatever he is looking at, he
    // answers, both connect through the sound server, Alice hangs up, and both chats keep
    // the call.
    let a_standard = find(a, "[data-conversation-id][data-kind='standard']");
    a.click(&a_standard).unwrap();
    click(a, "#call-button");
    wait_shown(a, "Alice's call bar", "#call-bar", "bob", STEP);
    let answer = find(b, "#call-answer");
    bob_art.screenshot(b, "call-ringing").unwrap();
    // The notification server was told who is calling, and is told to withdraw it once
    // answered.
    let ringing = wait_for("the call's notification", STEP, || {
        Ok(notifications.calls().iter().find_map(|call| match call {
            NotificationCall::Notify {
                summary,
                body,
                id: Some(id),
            } if summary == "alice" && body == "Incoming voice call" => Some(*id),
            _ => None,
        }))
    })
    .unwrap();
    b.click(&answer).unwrap();
    wait_for("the call's notification to be withdrawn", STEP, || {
        Ok(notifications
            .calls()
            .contains(&NotificationCall::Close { id: ringing })
            .then_some(()))
    })
    .unwrap();
    for (who, session) in [("alice", a), ("bob", b)] {
        wait_for(&format!("{who}'s call to connect"), STEP, || {
            Ok(session.try_find("#call-bar[data-state='connected']")?)
        })
        .unwrap();
    }
    alice_art.screenshot(a, "call-connected").unwrap();
    click(a, "#call-mute");
    wait_for("Alice's microphone to be muted", STEP, || {
        Ok(a.try_find("#call-mute[aria-pressed='true']")?)
    })
    .unwrap();
    click(a, "#call-hang-up");
    for (who, session) in [("alice", a), ("bob", b)] {
        wait_for(&format!("{who}'s call bar to go"), STEP, || {
            Ok(session.try_find("#call-bar")?.is_none().then_some(()))
        })
        .unwrap();
    }
    wait_shown(
        a,
        "Alice's call row",
        ".message-body .call",
        "Voice call ·",
        STEP,
    );
    let b_chat = b_standard(b).expect("Bob's standard chat");
    b.click(&b_chat).unwrap();
    wait_shown(
        b,
        "Bob's call row",
        ".message-body .call",
        "Voice call ·",
        STEP,
    );
    bob_art.screenshot(b, "call-row").unwrap();

    // Bob's key changes: his app closes, his profile is deleted (unregistering his handle)
    // and a new profile with a new identity key claims "bob" and writes to Alice.
    drop(bob_capture);
    drop(bob);
    let bob_latch_home = bob_home.path().join("data").join("latch");
    // The closed app releases the profile once its engine has shut down.
    wait_for(
        "bob's app to release his profile",
        STEP,
        || match latch_cli(&bob_latch_home, &["profile", "delete", "bob"]) {
            Ok(_) => Ok(Some(())),
            Err(e) if e.to_string().contains("open in another Latch process") => Ok(None),
            Err(e) => Err(e),
        },
    )
    .unwrap();
    latch_cli(
        &bob_latch_home,
        &["profile", "create", "bob2", "--relay", relay.url()],
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let mut all = vec!["--profile", "bob2"];
        all.extend_from_slice(args);
        latch_cli(&bob_latch_home, &all).unwrap()
    };
    cli(&["register", "bob"]);
    cli(&["add", "alice"]);
    let opened: Value = serde_json::from_str(&cli(&["--json", "open", "alice"])).unwrap();
    let chat = opened["chat"].as_i64().unwrap().to_string();
    cli(&["send", &chat, "new phone, same bob"]);

    wait_for("the key-change banner", STEP, || {
        Ok(a.try_find("#key-change-banner")?)
    })
    .unwrap();
    assert!(
        a.try_find("#verified-badge").unwrap().is_none(),
        "a changed key is no longer verified"
    );
    alice_art.screenshot(a, "key-changed").unwrap();
    click(a, "#verify-again");
    find(a, "#safety-dialog");
    let new_digits = a.text(&find(a, "#safety-digits")).unwrap();
    assert_ne!(
        digits_only(&new_digits),
        digits_only(&alice_digits),
        "the new key has a new safety number"
    );
    alice_art.screenshot(a, "verify-again").unwrap();
}

/// Puts text into the composer as the page's own input event (WebDriver cannot type bidi
/// controls), then presses Enter for real.
fn type_raw(session: &Session, text: &str, marker: &str) {
    let composer = find(session, "#composer");
    session
        .execute(
            "const [css, text] = arguments;\
             const c = document.querySelector(css);\
             c.value = text;\
             c.dispatchEvent(new Event('input', { bubbles: true }));",
            json!(["#composer", text]),
        )
        .unwrap();
    session.send_keys(&composer, ENTER).unwrap();
    wait_shown(
        session,
        "the sent message in the timeline",
        "[data-direction='outgoing'] .message-body",
        marker,
        STEP,
    );
}

fn b_standard(session: &Session) -> Option<latch_e2e::Element> {
    session
        .try_find("[data-conversation-id][data-kind='standard']")
        .ok()
        .flatten()
}

fn digits_only(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// Makes the page's camera show `png`: `getUserMedia` answers with a stream of a canvas
/// that keeps drawing the picture, as a camera pointed at a screen would. It is replaced on
/// the prototype: a property set on `navigator.mediaDevices` itself lives on its JavaScript
/// wrapper, which WebKit may collect and recreate without it.
fn show_in_camera(session: &Session, png: &[u8]) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(png);
    let installed = session
        .execute_async(
            "const [data, done] = arguments;\
             const picture = new Image();\
             picture.onerror = () => done('the picture did not load');\
             picture.onload = () => {\
               const canvas = document.createElement('canvas');\
               canvas.width = picture.naturalWidth;\
               canvas.height = picture.naturalHeight;\
               const context = canvas.getContext('2d');\
               const draw = () => { context.drawImage(picture, 0, 0); requestAnimationFrame(draw); };\
               draw();\
               MediaDevices.prototype.getUserMedia = async () => canvas.captureStream(10);\
               done('installed');\
             };\
             picture.src = 'data:image/png;base64,' + data;",
            json!([encoded]),
        )
        .unwrap();
    assert_eq!(installed, json!("installed"));
}

/// Puts a PNG into a file input as if the user chose it, through the page's own `DataTransfer`
/// (the same path as drag-and-drop), so the app's Rust QR decoder gets the real pixels.
fn feed_image(session: &Session, css: &str, png: &[u8]) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(png);
    session
        .execute(
            "const [css, data] = arguments;\
             const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));\
             const file = new File([bytes], 'qr.png', { type: 'image/png' });\
             const transfer = new DataTransfer();\
             transfer.items.add(file);\
             const input = document.querySelector(css);\
             input.files = transfer.files;\
             input.dispatchEvent(new Event('change', { bubbles: true }));\
             return input.files.length;",
            json!([css, encoded]),
        )
        .unwrap();
}
