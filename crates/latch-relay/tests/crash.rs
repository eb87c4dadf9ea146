//! `kill -9` of the real relay binary during a burst: nothing acked is lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use latch_relay::api::{ClientFrame, DeviceAddress, EnvelopeId, Response, ServerFrame};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SENDERS: u8 = 5;
const PER_SENDER: u32 = 2_000;
const RECIPIENTS: u8 = 2;

/// Acks seen so far, with a wake-up for whoever waits on the count.
#[derive(Default)]
struct Progress(AtomicUsize, tokio::sync::Notify);

async fn spawn_relay(db: &Path, config: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_latch-relay"))
        // Database from the environment, limits from the file, address from a flag: all three
        // configuration sources take part.
        .env("LATCH_RELAY_DATABASE", db)
        .env("RUST_LOG", "warn")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = line.rsplit(' ').next().unwrap().parse().unwrap();
    (child, addr)
}

/// Envelope id derived from (sender, n): a retry reuses it, as a real client would.
fn id_for(sender: u8, n: u32) -> EnvelopeId {
    let mut id = [0u8; 16];
    id[0] = sender;
    id[1..5].copy_from_slice(&n.to_be_bytes());
    id[5..].copy_from_slice(&[0xAA; 11]);
    EnvelopeId(id)
}

fn body_for(sender: u8, n: u32) -> Vec<u8> {
    let mut b = vec![sender];
    b.extend_from_slice(&n.to_be_bytes());
    b.resize(128, 0x55);
    b
}

fn recipient(n: u32) -> DeviceAddress {
    address(&key(100 + (n % u32::from(RECIPIENTS)) as u8), 1)
}

/// Send `todo` pipelined; record what the relay acked. Stops quietly when the relay dies.
async fn burst(
    addr: SocketAddr,
    sender: u8,
    todo: Vec<u32>,
    acked: Arc<std::sync::Mutex<HashSet<(u8, u32)>>>,
    count: Arc<Progress>,
) {
    let c = Client::login(addr, &key(sender), 1, true).await;
    let (mut sink, mut stream) = futures_util::StreamExt::split(c.ws);
    let sends = {
        let todo = todo.clone();
        tokio::spawn(async move {
            use futures_util::SinkExt;
            for n in todo {
                let f = ClientFrame::Send {
                    req: n,
                    id: id_for(sender, n),
                    to: recipient(n),
                    body: body_for(sender, n),
                };
                let m = tokio_tungstenite::tungstenite::Message::Binary(f.encode().unwrap().into());
                if sink.send(m).await.is_err() {
                    return;
                }
            }
        })
    };
    let want = todo.len();
    let mut answered = 0;
    while answered < want {
        let Ok(Some(Ok(msg))) =
            tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut stream)).await
        else {
            break;
        };
        let tokio_tungstenite::tungstenite::Message::Binary(b) = msg else {
            continue;
        };
        match ServerFrame::decode(&b).unwrap() {
            ServerFrame::Response {
                req,
                body: Response::Sent { .. },
            } => {
                acked.lock().unwrap().insert((sender, req));
                count.0.fetch_add(1, Ordering::SeqCst);
                count.1.notify_waiters();
                answered += 1;
            }
            ServerFrame::Envelope(_) | ServerFrame::BacklogDone => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    sends.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_loses_no_acknowledged_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        "durability = \"full\"\nqueue_cap = 100000\n[device_rate]\nper_second = 1000000.0\nburst = 1000000.0\n[ip_rate]\nper_second = 1000000.0\nburst = 1000000.0\n",
    )
    .unwrap();
    let (mut relay, addr) = spawn_relay(&db, &config).await;
    for r in 0..RECIPIENTS {
        drop(Client::login(addr, &key(100 + r), 1, true).await);
    }
    let acked = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let count = Arc::new(Progress::default());
    let mut tasks = Vec::new();
    for s in 1..=SENDERS {
        tasks.push(tokio::spawn(burst(
            addr,
            s,
            (0..PER_SENDER).collect(),
            acked.clone(),
            count.clone(),
        )));
    }
    // Kill once a fair part of the burst is acknowledged (a real condition, bounded).
    let target = (usize::from(SENDERS) * PER_SENDER as usize) / 4;
    tokio::time::timeout(WAIT, async {
        loop {
            let woken = count.1.notified();
            if count.0.load(Ordering::SeqCst) >= target {
                break;
            }
            woken.await;
        }
    })
    .await
    .expect("burst too slow");
    relay.start_kill().unwrap(); // SIGKILL
    relay.wait().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked_before: HashSet<(u8, u32)> = acked.lock().unwrap().clone();
    let total = usize::from(SENDERS) * PER_SENDER as usize;
    assert!(
        acked_before.len() < total,
        "the kill landed after the burst ended"
    );

    // Restart on the same database; senders retry everything not acked, with the same ids.
    let (mut relay, addr) = spawn_relay(&db, &config).await;
    let mut tasks = Vec::new();
    for s in 1..=SENDERS {
        let todo: Vec<u32> = (0..PER_SENDER)
            .filter(|n| !acked_before.contains(&(s, *n)))
            .collect();
        tasks.push(tokio::spawn(burst(
            addr,
            s,
            todo,
            acked.clone(),
            count.clone(),
        )));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        acked.lock().unwrap().len(),
        total,
        "every envelope acked after the retries"
    );

    // Recipients drain their mailboxes.
    let mut by_id: HashMap<EnvelopeId, Vec<u8>> = HashMap::new();
    let mut deliveries = 0usize;
    for r in 0..RECIPIENTS {
        let mut c = Client::login(addr, &key(100 + r), 1, false).await;
        for e in c.backlog().await {
            deliveries += 1;
            if let Some(prev) = by_id.insert(e.id, e.body.clone()) {
                assert_eq!(prev, e.body, "a duplicate carries the same id and body");
            }
        }
    }
    for s in 1..=SENDERS {
        for n in 0..PER_SENDER {
            assert_eq!(
                by_id.get(&id_for(s, n)),
                Some(&body_for(s, n)),
                "envelope {s}/{n} lost"
            );
        }
    }
    assert_eq!(by_id.len(), total);
    assert_eq!(
        deliveries, total,
        "each id is queued once even when retried"
    );

    // SIGTERM: graceful shutdown exits cleanly.
    let pid = relay.id().unwrap();
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(WAIT, relay.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "graceful exit, got {exit:?}");
}
