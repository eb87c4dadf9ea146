//! Consent: someone the user never added who writes first waits as a message request (no
//! receipts, no replies, nothing until accepted); a blocked contact's messages are dropped
//! unread. Across real processes through a real relay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Session, Testbed};
use serde_json::{Value, json};

fn chat_with(s: &mut Session, handle: &str) -> Value {
    let chats = s.cmd(json!({"cmd": "chats"}))["chats"].clone();
    chats
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["contact_name"] == handle)
        .cloned()
        .unwrap_or_else(|| panic!("no chat with {handle}: {chats}"))
}

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn a_stranger_writing_first_waits_as_a_request_until_accepted() {
    let t = Testbed::new();
    t.profile("alice");
    t.profile("mallory");
    let mut a = t.session("alice");
    let mut m = t.session("mallory");
    let chat_m = m.cmd(json!({"cmd": "add", "handle": "alice"}))["chat"].clone();
    let first = m.send(&chat_m, "hi, remember me?");

    // Alice has the message, in a chat marked as a request.
    let got = a.wait_message("hi, remember me?");
    let request = chat_with(&mut a, "mallory");
    assert_eq!(request["standing"], "request");
    assert_eq!(request["id"], got["conversation_id"]);
    // Reading it tells Mallory nothing: with her offline, nothing for her waits at the relay
    // once Alice's outbox is empty (no delivery or read receipt while it is a request).
    m.close();
    a.cmd(json!({"cmd": "read", "chat": request["id"]}));
    assert_eq!(a.cmd(json!({"cmd": "flush"}))["flushed"], true);
    assert_eq!(t.relay.queue_depth(), 0);
    let err = a
        .try_cmd(json!({"cmd": "send", "chat": request["id"], "text": "who is this?"}))
        .unwrap_err();
    assert!(err.contains("accept the message request"), "{err}");
    // A stranger's text is not searchable until the request is accepted.
    let found = |a: &mut Session| a.cmd(json!({"cmd": "search", "query": "remember"}));
    assert_eq!(found(&mut a)["results"], json!([]));

    // Accepting receipts what came as delivered (not read), and Alice can reply.
    a.cmd(json!({"cmd": "standing", "handle": "mallory", "change": "accept"}));
    a.wait_event("contact_standing", |e| e["standing"] == "accepted");
    assert_eq!(chat_with(&mut a, "mallory")["standing"], "accepted");
    assert_eq!(found(&mut a)["results"][0]["id"], got["id"]);
    let mut m = t.session("mallory");
    m.wait_status(&first["id"], "delivered");
    a.send(&request["id"], "oh, hello");
    m.wait_message("oh, hello");
    let history = m.history(&chat_m);
    let first_now = history.iter().find(|x| x["id"] == first["id"]).unwrap();
    assert_eq!(first_now["status"], "delivered", "never read: {history:?}");
    let second = m.send(&chat_m, "second");
    m.wait_status(&second["id"], "delivered");
}

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn a_declined_request_is_gone_and_a_blocked_contact_is_not_heard() {
    let t = Testbed::new();
    t.profile("alice");
    t.profile("bob");
    t.profile("mallory");
    t.profile("eve");
    let mut a = t.session("alice");
    let mut b = t.session("bob");
    let mut m = t.session("mallory");
    let mut e = t.session("eve");
    let chat_b = b.cmd(json!({"cmd": "add", "handle": "alice"}))["chat"].clone();
    let chat_m = m.cmd(json!({"cmd": "add", "handle": "alice"}))["chat"].clone();
    let chat_e = e.cmd(json!({"cmd": "add", "handle": "alice"}))["chat"].clone();

    // Declining deletes the request and everything in it.
    m.send(&chat_m, "buy now");
    a.wait_message("buy now");
    a.cmd(json!({"cmd": "standing", "handle": "mallory", "change": "decline"}));
    a.wait_event("contact_removed", |_| true);
    let chats = a.cmd(json!({"cmd": "chats"}))["chats"].clone();
    assert!(
        !chats.to_string().contains("mallory"),
        "the declined request is gone: {chats}"
    );

    // Declining ended the session too: what Mallory sends on it is dropped, not shown.
    m.send(&chat_m, "again");
    a.wait_event("receive_failed", |_| true);

    // Blocking silences Eve.
    e.send(&chat_e, "hello?");
    a.wait_message("hello?");
    a.cmd(json!({"cmd": "standing", "handle": "eve", "change": "block"}));
    assert_eq!(chat_with(&mut a, "eve")["standing"], "blocked");
    e.send(&chat_e, "you cannot ignore me");
    assert_eq!(e.cmd(json!({"cmd": "flush"}))["flushed"], true);
    // Bob writes after Eve's message reached the relay, so Alice's device handles Eve's
    // first: once Bob's arrives, Eve's was dropped, not delayed.
    b.send(&chat_b, "lunch?");
    a.wait_message("lunch?");
    assert!(
        !a.received.iter().any(|t| t == "you cannot ignore me"),
        "a blocked contact's message was shown: {:?}",
        a.received
    );
    let blocked = chat_with(&mut a, "eve")["id"].clone();
    let err = a
        .try_cmd(json!({"cmd": "send", "chat": blocked, "text": "x"}))
        .unwrap_err();
    assert!(err.contains("unblock"), "{err}");
}
