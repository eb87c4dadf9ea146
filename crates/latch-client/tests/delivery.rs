//! Delivery under failure, across real processes: an offline recipient, a relay killed
//! mid-conversation, a sender killed after queuing, a recipient that crashes between
//! storing a message and acknowledging it. Nothing is lost and nothing is shown twice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::Testbed;
use serde_json::{Value, json};

fn bodies(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn an_idle_connection_outlives_the_relays_idle_timeout() {
    // The relay drops a silent connection after a second; the client pings every 200 ms.
    let t = Testbed::with_relay_args(&["--idle-timeout-ms", "1000"]);
    t.profile("alice");
    let mut a = t.session_with_env("alice", &[("LATCH_KEEPALIVE_MS", "200")]);
    a.wait_event("connection", |e| e["state"] == "online");
    // Only what happens from now on counts (the first "connecting" came before).
    a.events.clear();
    // Time passing is what is under test: three idle timeouts without a drop.
    let dropped = a.try_wait_event(
        "connection",
        |e| e["state"] != "online",
        Duration::from_millis(3_500),
    );
    assert_eq!(dropped, None, "the relay dropped the idle connection");
}

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn an_offline_recipient_gets_all_100_messages_in_order_exactly_once() {
    let t = Testbed::new();
    t.profile("alice");
    t.profile("bob");
    let mut a = t.session("alice");
    let chat = a.cmd(json!({"cmd": "add", "handle": "bob"}))["chat"].clone();
    let sent: Vec<String> = (0..100)
        .map(|i| format!("offline message {i:03}"))
        .collect();
    for text in &sent {
        a.send(&chat, text);
    }
    assert_eq!(a.cmd(json!({"cmd": "flush"}))["flushed"], true);

    // Bob comes online: the backlog arrives, then "synced".
    let mut b = t.session("bob");
    let received: Vec<String> = b
        .events
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| e["message"]["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        received, sent,
        "every message once, in order, before synced"
    );
    let chat_b =
        b.events.iter().find(|e| e["type"] == "message").unwrap()["message"]["conversation_id"]
            .clone();
    let all = b.history(&chat_b);
    assert_eq!(bodies(&all), sent);
    // Scrolling back: the page before the 51st message is the first 50.
    let older = b.cmd(json!({"cmd": "history", "chat": chat_b, "before": all[50]["id"], "limit": 50}))
        ["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(bodies(&older), sent[..50]);

    // A restart does not bring any of them again.
    b.close();
    let mut b = t.session("bob");
    assert!(b.events.iter().all(|e| e["type"] != "message"));
    assert_eq!(b.history(&chat_b).len(), 100);
}

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn a_relay_killed_mid_conversation_loses_nothing() {
    let mut t = Testbed::new();
    let (mut a, mut b, chat_a, chat_b) = t.pair();
    for i in 0..5 {
        a.send(&chat_a, &format!("before {i}"));
    }
    b.wait_message("before 4");
    t.relay.kill();
    // Queued while the relay is down, sent when it is back.
    for i in 0..5 {
        a.send(&chat_a, &format!("after {i}"));
    }
    a.wait_event("connection", |e| e["state"] == "offline");
    t.relay.restart();
    b.wait_message("after 4");
    assert_eq!(a.cmd(json!({"cmd": "flush"}))["flushed"], true);
    let expected: Vec<String> = std::iter::once("hello".to_owned())
        .chain((0..5).map(|i| format!("before {i}")))
        .chain((0..5).map(|i| format!("after {i}")))
        .collect();
    assert_eq!(bodies(&b.history(&chat_b)), expected);
    assert_eq!(b.received, expected, "received in the order sent");
    // Bob answers through the restarted relay.
    b.send(&chat_b, "still here");
    a.wait_message("still here");
}

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn a_sender_killed_after_queuing_sends_once_after_restart() {
    let mut t = Testbed::new();
    let (mut a, mut b, chat_a, chat_b) = t.pair();
    t.relay.kill();
    a.wait_event("connection", |e| e["state"] == "offline");
    let queued = a.send(&chat_a, "queued while the relay was down");
    assert_eq!(queued["status"], "pending");
    a.kill();
    t.relay.restart();
    let mut a = t.session("alice");
    b.wait_message("queued while the relay was down");
    a.wait_status(&queued["id"], "delivered");
    let history = bodies(&b.history(&chat_b));
    assert_eq!(history, ["hello", "queued while the relay was down"]);
}

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn a_recipient_crashing_between_storing_and_acknowledging_shows_the_message_once() {
    let t = Testbed::new();
    let (mut a, b, chat_a, chat_b) = t.pair();
    b.close();
    a.send(&chat_a, "crash test");
    assert_eq!(a.cmd(json!({"cmd": "flush"}))["flushed"], true);

    // Bob stores the message and aborts before acknowledging it to the relay. The session
    // start itself waits for "synced", which never comes, so start the process by hand.
    let crashed = std::process::Command::new(common::latch_bin())
        .arg("--home")
        .arg(t.home.path())
        .args(["--profile", "bob", "listen", "--timeout", "40"])
        .env("LATCH_FAULT", "after-receive-commit")
        .output()
        .unwrap();
    assert_eq!(
        crashed.status.signal(),
        Some(6),
        "the crash point must have fired (SIGABRT): {}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    assert_eq!(
        t.relay.queue_depth(),
        1,
        "the crash came after the commit and before the acknowledgement"
    );

    // The relay still holds the envelope (never acknowledged) and delivers it again: it is
    // recognised and dropped, so the message is shown once.
    let mut b = t.session("bob");
    assert!(
        b.events.iter().all(|e| e["type"] != "message"),
        "{:?}",
        b.events
    );
    assert_eq!(bodies(&b.history(&chat_b)), ["hello", "crash test"]);
    b.send(&chat_b, "after the crash");
    a.wait_message("after the crash");
}
