//! Two profiles talking through a local relay, everything durable: the relay commits with
//! `Durability::Full` (fsync) before acknowledging, each client commits every message, ratchet
//! step and outbox change to its SQLCipher database. Prints messages per second (Alice sends
//! as fast as she can, until Bob has stored all of them) and send-to-receive latency
//! percentiles at a paced rate.
//!
//! `cargo bench -p latch-client --bench conversation [-- --messages N --rate R]`
//!
//! Keys live in an in-memory key store here (the OS keyring is touched only when a profile
//! opens, which is not what is measured); the relay runs in-process on loopback with its rate
//! limits raised so they do not cap the figures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use latch_client::{ConnectionState, Engine, Event, Profiles};
use latch_relay::config::Config;
use latch_relay::limits::Rate;
use latch_store::{ConversationId, MemoryKeyStore};
use tokio::sync::broadcast;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

async fn online(engine: &Engine) {
    let mut c = engine.connection();
    tokio::time::timeout(
        Duration::from_secs(30),
        c.wait_for(|s| *s == ConnectionState::Online),
    )
    .await
    .unwrap()
    .unwrap();
}

/// Waits for `n` incoming messages; returns when each body arrived.
async fn receive(events: &mut broadcast::Receiver<Event>, n: usize) -> HashMap<String, Instant> {
    let mut seen = HashMap::with_capacity(n);
    while seen.len() < n {
        match tokio::time::timeout(Duration::from_secs(120), events.recv()).await {
            Ok(Ok(Event::Message { message })) if message.direction == "incoming" => {
                seen.insert(message.body.clone(), Instant::now());
            }
            Ok(Ok(_)) => {}
            Ok(Err(broadcast::error::RecvError::Lagged(k))) => panic!("lagged by {k}"),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("timed out with {} of {n} messages", seen.len()),
        }
    }
    seen
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let messages = arg("--messages", 1_000) as usize;
    let rate = arg("--rate", 100);
    let dir = tempfile::tempdir().unwrap();
    let relay = latch_relay::server::start(
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: dir.path().join("relay.db"),
            device_rate: Rate {
                per_second: 1e6,
                burst: 1e6,
            },
            ip_rate: Rate {
                per_second: 1e6,
                burst: 1e6,
            },
            ..Config::default()
        },
        Arc::new(latch_relay::clock::SystemClock),
    )
    .await
    .unwrap();
    let url = format!("ws://{}", relay.local_addr());

    let profiles = Profiles::new(dir.path(), Box::new(MemoryKeyStore::new()));
    let alice = Engine::new(profiles.create("alice", &url).unwrap()).unwrap();
    let bob = Engine::new(profiles.create("bob", &url).unwrap()).unwrap();
    alice.register("alice").await.unwrap();
    bob.register("bob").await.unwrap();
    alice.start();
    bob.start();
    online(&alice).await;
    online(&bob).await;
    let contact = alice.add_contact("bob").await.unwrap();
    let chat: ConversationId = alice.open_standard_chat(contact).unwrap();
    let mut bob_events = bob.subscribe();
    alice.send_text(chat, "warm-up").unwrap();
    receive(&mut bob_events, 1).await;
    // Alice wrote first: Bob accepts her request, so what follows is receipted as before.
    let alice_on_bob = bob.contact_by_handle("alice").unwrap();
    bob.accept_request(alice_on_bob.id).unwrap();

    // Throughput: as fast as Alice can send, until Bob has stored them all.
    let start = Instant::now();
    for i in 0..messages {
        alice.send_text(chat, &format!("throughput {i}")).unwrap();
    }
    receive(&mut bob_events, messages).await;
    let elapsed = start.elapsed();
    println!(
        "throughput: {messages} messages in {:.2} s = {:.0} messages/s (send, encrypt, relay fsync, decrypt, store)",
        elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64()
    );
    assert!(alice.flush(Duration::from_secs(60)).await.unwrap());

    // Latency at a paced rate.
    let paced = messages.min(500);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut sent_at = HashMap::with_capacity(paced);
    let bob_task = {
        let mut ev = bob.subscribe();
        tokio::spawn(async move { receive(&mut ev, paced).await })
    };
    let mut tick = tokio::time::interval(interval);
    for i in 0..paced {
        tick.tick().await;
        let body = format!("latency {i}");
        sent_at.insert(body.clone(), Instant::now());
        alice.send_text(chat, &body).unwrap();
    }
    let received = bob_task.await.unwrap();
    let mut lat: Vec<Duration> = received
        .iter()
        .map(|(body, at)| at.duration_since(sent_at[body]))
        .collect();
    lat.sort();
    println!(
        "latency at {rate} messages/s over {paced} messages: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3
    );
    alice.shutdown().await;
    bob.shutdown().await;
    relay.shutdown().await.unwrap();
}
