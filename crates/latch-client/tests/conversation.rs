//! Two `latch` profiles talking through a real relay: handshake, messages both ways,
//! receipts, a secret chat beside the standard one, a 5-second timer that deletes on both
//! sides, edits and deletes, search that never sees secret-chat text, and drafts that survive a
//! restart for standard chats only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Testbed;
use serde_json::json;

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn two_profiles_talk_with_receipts_a_secret_chat_a_timer_and_search() {
    let t = Testbed::new();
    t.profile("alice");
    t.profile("bob");
    let mut a = t.session("alice");
    let mut b = t.session("bob");

    // Handshake: Alice adds Bob by handle and writes first.
    let chat_a = a.cmd(json!({"cmd": "add", "handle": "bob"}))["chat"].clone();
    let sent = a.send(&chat_a, "hello bob, plain standard words");
    let got = b.wait_message("hello bob, plain standard words");
    let chat_b = got["conversation_id"].clone();
    assert_eq!(got["status"], "received");
    // Bob never added Alice: her first message is a request until he accepts it.
    b.cmd(json!({"cmd": "standing", "handle": "alice", "change": "accept"}));

    // Receipts: delivered when Bob's device stored it, read when Bob reads.
    a.wait_status(&sent["id"], "delivered");
    assert_eq!(b.cmd(json!({"cmd": "read", "chat": chat_b}))["read"], 1);
    a.wait_status(&sent["id"], "read");

    // And back.
    let reply = b.send(&chat_b, "hi alice");
    a.wait_message("hi alice");
    b.wait_status(&reply["id"], "delivered");

    // Edit and delete for everyone reach the other side.
    a.cmd(json!({"cmd": "edit", "message": sent["id"], "text": "hello bob, edited words"}));
    b.wait_event("message_updated", |e| {
        e["message"]["body"] == "hello bob, edited words" && e["message"]["edited"] == true
    });
    let oops = a.send(&chat_a, "oops, wrong chat");
    let oops_at_b = b.wait_message("oops, wrong chat");
    a.cmd(json!({"cmd": "delete", "message": oops["id"]}));
    // The announcement names the message but no longer carries its text.
    b.wait_event("message_updated", |e| {
        e["message"]["deleted"] == true
            && e["message"]["id"] == oops_at_b["id"]
            && e["message"]["body"] == ""
    });
    assert!(
        b.history(&chat_b)
            .iter()
            .all(|m| m["body"] != "oops, wrong chat")
    );

    // The lock toggle: a secret chat is a second, separate thread.
    let secret_a =
        a.cmd(json!({"cmd": "open", "handle": "bob", "secret": true, "timer": 30}))["chat"].clone();
    assert_ne!(secret_a, chat_a);
    let started = b.wait_event("conversation_started", |e| e["kind"] == "secret");
    let secret_b = started["conversation_id"].clone();
    assert_ne!(secret_b, chat_b);

    // Alice sets a 5-second timer; Bob sees that she changed it.
    a.cmd(json!({"cmd": "timer", "chat": secret_a, "seconds": 5}));
    b.wait_event("timer_changed", |e| {
        e["conversation_id"] == secret_b && e["seconds"] == 5 && e["by_me"] == false
    });

    let whisper = a.send(&secret_a, "a secret needle that vanishes");
    assert!(
        whisper["expires_at"].is_i64(),
        "sender's clock starts at sending"
    );
    let got = b.wait_message("a secret needle that vanishes");
    assert_eq!(got["conversation_id"], secret_b);

    // Search finds standard-chat text on both sides and never secret-chat text.
    for s in [&mut a, &mut b] {
        let hits = s.cmd(json!({"cmd": "search", "query": "edited"}))["results"].clone();
        assert_eq!(hits.as_array().unwrap().len(), 1, "{hits}");
        let hits = s.cmd(json!({"cmd": "search", "query": "needle"}))["results"].clone();
        assert_eq!(
            hits.as_array().unwrap().len(),
            0,
            "secret text was indexed: {hits}"
        );
    }

    // Bob reads: his clock starts; the sweeper deletes it on both sides.
    b.cmd(json!({"cmd": "read", "chat": secret_b}));
    a.wait_event("messages_expired", |e| {
        e["conversation_id"] == secret_a && e["message_ids"][0] == whisper["id"]
    });
    b.wait_event("messages_expired", |e| {
        e["conversation_id"] == secret_b && e["message_ids"][0] == got["id"]
    });
    assert!(a.history(&secret_a).is_empty());
    assert!(b.history(&secret_b).is_empty());

    // Both sides keep who changed the timer.
    // One field of one chat in a session's chat list.
    let chat_field = |s: &mut common::Session, chat: &serde_json::Value, field: &str| {
        let chats = s.cmd(json!({"cmd": "chats"}))["chats"].clone();
        chats
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == *chat)
            .unwrap()[field]
            .clone()
    };
    let timer_by =
        |s: &mut common::Session, chat: &serde_json::Value| chat_field(s, chat, "timer_set_by_me");
    assert_eq!(timer_by(&mut a, &secret_a), true);
    assert_eq!(timer_by(&mut b, &secret_b), false);

    // Drafts: a standard chat's survives a restart; a secret chat's is never stored.
    let stored = |s: &mut common::Session, chat: &serde_json::Value, text: &str| {
        s.cmd(json!({"cmd": "draft", "chat": chat, "text": text}))["stored"].clone()
    };
    assert_eq!(stored(&mut a, &chat_a, "half a thought, kept"), true);
    assert_eq!(stored(&mut a, &secret_a, "a secret half thought"), false);
    a.close();
    let mut a = t.session("alice");
    let draft_of = |s: &mut common::Session, chat: &serde_json::Value| chat_field(s, chat, "draft");
    assert_eq!(draft_of(&mut a, &chat_a), "half a thought, kept");
    assert_eq!(draft_of(&mut a, &secret_a), serde_json::Value::Null);
    assert_eq!(stored(&mut a, &chat_a, ""), true);
    assert_eq!(draft_of(&mut a, &chat_a), serde_json::Value::Null);

    // Bob's chat list: two threads with Alice, visibly different.
    let chats = b.cmd(json!({"cmd": "chats"}))["chats"].clone();
    let kinds: Vec<_> = chats
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["contact_name"].clone(), c["kind"].clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (json!("alice"), json!("standard")),
            (json!("alice"), json!("secret"))
        ]
    );
}

/// A PNG of the QR modules as a screen shows them: 5 px per module, a 4-module margin.
fn screenshot(modules: &serde_json::Value) -> Vec<u8> {
    let rows: Vec<Vec<bool>> = modules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|m| m == true).collect())
        .collect();
    let (scale, margin) = (5u32, 4u32);
    let side = (rows.len() as u32 + 2 * margin) * scale;
    let img = image::GrayImage::from_fn(side, side, |x, y| {
        let (mx, my) = (x / scale, y / scale);
        let dark = mx >= margin
            && my >= margin
            && rows
                .get((my - margin) as usize)
                .and_then(|r| r.get((mx - margin) as usize))
                .copied()
                .unwrap_or(false);
        image::Luma([if dark { 0 } else { 255 }])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn safety_numbers_match_and_a_scanned_code_verifies() {
    let t = Testbed::new();
    let (mut a, mut b, _, _) = t.pair();

    let sa = a.cmd(json!({"cmd": "safety_number", "handle": "bob"}));
    let sb = b.cmd(json!({"cmd": "safety_number", "handle": "alice"}));
    assert_eq!(
        sa["digits"], sb["digits"],
        "both sides show the same 60 digits"
    );
    assert_eq!(sa["digits"].as_str().unwrap().len(), 60);
    assert_eq!(sa["verified"], false);

    assert_eq!(sa["groups"].as_array().unwrap().len(), 12);

    // Alice takes a screenshot of the QR code Bob's screen shows and verifies from it.
    let shot = t.home.path().join("bob-qr.png");
    std::fs::write(&shot, screenshot(&sb["qr"])).unwrap();
    let ok = a.cmd(json!({"cmd": "verify", "handle": "bob", "image": shot}));
    assert_eq!(ok["verified"], true);
    // An image of Alice's own code does not verify Bob; one without a code is an error.
    std::fs::write(&shot, screenshot(&sa["qr"])).unwrap();
    let not_bob = a.cmd(json!({"cmd": "verify", "handle": "bob", "image": shot}));
    assert_eq!(not_bob["verified"], false);
    std::fs::write(&shot, screenshot(&json!([[false]]))).unwrap();
    let err = a
        .try_cmd(json!({"cmd": "verify", "handle": "bob", "image": shot}))
        .unwrap_err();
    assert!(err.contains("no QR code"), "{err}");
    assert_eq!(
        a.cmd(json!({"cmd": "safety_number", "handle": "bob"}))["verified"],
        true
    );
    let own = b.cmd(json!({"cmd": "verify", "handle": "alice", "payload": sb["qr_payload"]}));
    assert_eq!(own["verified"], false, "one's own code must not verify");
    let err = b
        .try_cmd(json!({"cmd": "verify", "handle": "alice", "payload": "00ff"}))
        .unwrap_err();
    assert!(err.contains("safety number"), "{err}");
}

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn an_invite_code_adds_a_contact_without_trusting_the_directory() {
    let t = Testbed::new();
    t.profile("alice");
    t.profile("carol");
    let mut a = t.session("alice");
    let mut c = t.session("carol");
    let code = a.cmd(json!({"cmd": "invite"}))["invite"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(code.starts_with("latch-invite:1:alice:"), "{code}");

    // A code naming a key nobody registered, a code for another relay and garbage are
    // refused with a clear error.
    let mut forged: Vec<&str> = code.split(':').collect();
    let zeros = "00".repeat(32);
    forged[3] = &zeros;
    let err = c
        .try_cmd(json!({"cmd": "add", "invite": forged.join(":")}))
        .unwrap_err();
    assert!(err.contains("NotFound"), "{err}");
    let elsewhere = code.replace("ws://127.0.0.1", "ws://127.0.0.2");
    let err = c
        .try_cmd(json!({"cmd": "add", "invite": elsewhere}))
        .unwrap_err();
    assert!(err.contains("another relay"), "{err}");
    assert!(
        c.try_cmd(json!({"cmd": "add", "invite": "latch-invite:garbage"}))
            .unwrap_err()
            .contains("malformed")
    );

    let chat = c.cmd(json!({"cmd": "add", "invite": code}))["chat"].clone();
    c.send(&chat, "found you through your invite");
    let got = a.wait_message("found you through your invite");
    // Carol wrote first: a message request until Alice accepts it.
    a.cmd(json!({"cmd": "standing", "handle": "carol", "change": "accept"}));
    a.cmd(json!({"cmd": "send", "chat": got["conversation_id"], "text": "welcome"}));
    c.wait_message("welcome");
    let again = c.send(&chat, "thanks");
    c.wait_status(&again["id"], "delivered");
}
