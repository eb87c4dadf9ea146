//! A voice call between two engines in this process, through an in-process relay and real
//! UDP sockets on loopback, with synthetic devices that timestamp what they hand over:
//!
//! - setup: from the callee's answer to the first frame of the caller's voice handed to the
//!   callee's speaker;
//! - mouth to ear: from the caller's microphone handing over a frame that starts a tone burst
//!   to the callee's speaker receiving the frame that carries it (device buffers excluded:
//!   the devices here have none);
//! - CPU for both ends of a call over a stretch of seconds, and the resident memory the call
//!   adds.
//!
//! `cargo bench -p latch-client --bench call [-- --calls N --bursts N --seconds N]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latch_call::MediaKind;
use latch_call::audio::{AudioSink, AudioSource};
use latch_client::{CallDevices, ConnectionState, Engine, Event, Profiles};
use latch_store::MemoryKeyStore;
use tokio::sync::broadcast;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

/// A microphone that is silent until asked for a burst; notes when the burst's first frame
/// was handed over.
#[derive(Clone, Default)]
struct Mouth(Arc<Mutex<MouthState>>);

#[derive(Default)]
struct MouthState {
    burst_frames_left: u32,
    phase: f64,
    said_at: Option<Instant>,
    /// Keep talking (for setup and CPU): a steady tone.
    steady: bool,
}

impl AudioSource for Mouth {
    fn read(&mut self, frame: &mut [i16]) -> bool {
        let mut s = self.0.lock().unwrap();
        let speaking = s.steady || s.burst_frames_left > 0;
        if s.burst_frames_left > 0 {
            if s.said_at.is_none() {
                s.said_at = Some(Instant::now());
            }
            s.burst_frames_left -= 1;
        }
        for x in frame.iter_mut() {
            *x = if speaking {
                (s.phase.sin() * 8_000.0) as i16
            } else {
                0
            };
            s.phase =
                (s.phase + std::f64::consts::TAU * 1_000.0 / 48_000.0) % std::f64::consts::TAU;
        }
        true
    }
}

/// A speaker that notes when it first gets a loud frame after being armed.
#[derive(Clone, Default)]
struct Ear(Arc<Mutex<EarState>>);

#[derive(Default)]
struct EarState {
    armed: bool,
    heard_at: Option<Instant>,
}

impl AudioSink for Ear {
    fn write(&mut self, frame: &[i16]) {
        let mut s = self.0.lock().unwrap();
        let loud = frame.iter().map(|&x| i32::from(x).abs()).max().unwrap_or(0) > 2_000;
        if s.armed && loud && s.heard_at.is_none() {
            s.heard_at = Some(Instant::now());
        }
    }
}

struct Quiet;

impl AudioSink for Quiet {
    fn write(&mut self, _frame: &[i16]) {}
}

impl AudioSource for Quiet {
    fn read(&mut self, frame: &mut [i16]) -> bool {
        frame.fill(0);
        true
    }
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

async fn wait_call(events: &mut broadcast::Receiver<Event>, state: &str) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
            Ok(Ok(Event::Call {
                call_id, state: s, ..
            })) if s == state => return call_id,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("no call {state}: {other:?}"),
        }
    }
}

fn call_id(hex_id: &str) -> latch_call::CallId {
    latch_call::CallId(hex::decode(hex_id).unwrap().try_into().unwrap())
}

/// Alice calls Bob with `mouth` as her microphone; Bob answers with `ear` as his speaker
/// (armed just before he answers). Returns Alice's call and when Bob answered.
async fn call(
    alice: &Engine,
    bob: &Engine,
    chat: latch_store::ConversationId,
    bob_events: &mut broadcast::Receiver<Event>,
    mouth: &Mouth,
    ear: &Ear,
) -> (latch_call::CallId, Instant) {
    let id = alice
        .start_call(
            chat,
            MediaKind::Audio,
            CallDevices {
                microphone: Box::new(mouth.clone()),
                speaker: Box::new(Quiet),
            },
        )
        .await
        .unwrap();
    let rung = wait_call(bob_events, "ringing").await;
    ear.0.lock().unwrap().armed = true;
    let answered = Instant::now();
    bob.answer_call(
        call_id(&rung),
        false,
        CallDevices {
            microphone: Box::new(Quiet),
            speaker: Box::new(ear.clone()),
        },
    )
    .await
    .unwrap();
    (id, answered)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn cpu_time() -> Duration {
    // utime and stime of this process, in clock ticks (100 per second on Linux): fields 14
    // and 15 of /proc/self/stat, counted from the state after the command's closing ')'.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((tick(11) + tick(12)) * 10)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls = arg("--calls", 10) as usize;
    let bursts = arg("--bursts", 30) as usize;
    let seconds = arg("--seconds", 10);
    let dir = tempfile::tempdir().unwrap();
    let relay = latch_relay::server::start(
        latch_relay::config::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: dir.path().join("relay.db"),
            ..latch_relay::config::Config::default()
        },
        Arc::new(latch_relay::clock::SystemClock),
    )
    .await
    .unwrap();
    let url = format!("ws://{}", relay.local_addr());
    let profiles = Profiles::new(dir.path(), Box::new(MemoryKeyStore::new()));
    let alice = Engine::new(profiles.create("alice", &url).unwrap()).unwrap();
    let bob = Engine::new(profiles.create("bob", &url).unwrap()).unwrap();
    for (e, name) in [(&alice, "alice"), (&bob, "bob")] {
        e.register(name).await.unwrap();
        e.start();
        online(e).await;
        e.set_call_hosts(vec![std::net::Ipv4Addr::LOCALHOST.into()]);
    }
    let contact = alice.add_contact("bob").await.unwrap();
    let chat = alice.open_standard_chat(contact).unwrap();
    let mut bob_events = bob.subscribe();
    alice.send_text(chat, "warm-up").unwrap();
    loop {
        if let Ok(Ok(Event::Message { .. })) =
            tokio::time::timeout(Duration::from_secs(30), bob_events.recv()).await
        {
            break;
        }
    }
    bob.accept_request(bob.contact_by_handle("alice").unwrap().id)
        .unwrap();
    let mut alice_events = alice.subscribe();
    let idle_rss = rss_kib();

    // Setup: answer → first of Alice's voice at Bob's speaker.
    let mut setups = Vec::with_capacity(calls);
    for _ in 0..calls {
        let mouth = Mouth::default();
        mouth.0.lock().unwrap().steady = true;
        let ear = Ear::default();
        let (id, answered) = call(&alice, &bob, chat, &mut bob_events, &mouth, &ear).await;
        let heard = loop {
            if let Some(t) = ear.0.lock().unwrap().heard_at {
                break t;
            }
            // Polling a timestamp the speaker thread sets; the figure is that timestamp.
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert!(answered.elapsed() < Duration::from_secs(30), "no voice");
        };
        setups.push(heard - answered);
        alice.hang_up_call(id).unwrap();
        wait_call(&mut alice_events, "ended").await;
        wait_call(&mut bob_events, "ended").await;
    }
    setups.sort();
    println!(
        "setup (answer → first voice frame at the speaker), {calls} calls: median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        ms(percentile(&setups, 0.5)),
        ms(percentile(&setups, 0.95)),
        ms(*setups.last().unwrap())
    );

    // Mouth to ear, and the cost of a call.
    let mouth = Mouth::default();
    let ear = Ear::default();
    let (id, _) = call(&alice, &bob, chat, &mut bob_events, &mouth, &ear).await;
    wait_call(&mut bob_events, "connected").await;
    // Let the jitter buffer settle before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::with_capacity(bursts);
    for _ in 0..bursts {
        {
            let mut e = ear.0.lock().unwrap();
            e.armed = true;
            e.heard_at = None;
            let mut m = mouth.0.lock().unwrap();
            m.said_at = None;
            m.burst_frames_left = 5;
        }
        let start = Instant::now();
        let (said, heard) = loop {
            let said = mouth.0.lock().unwrap().said_at;
            let heard = ear.0.lock().unwrap().heard_at;
            if let (Some(s), Some(h)) = (said, heard) {
                break (s, h);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert!(start.elapsed() < Duration::from_secs(10), "burst lost");
        };
        latencies.push(heard.saturating_duration_since(said));
        ear.0.lock().unwrap().armed = false;
        // Quiet between bursts, so each is heard as its own.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    latencies.sort();
    println!(
        "mouth to ear on loopback (device buffers excluded), {bursts} bursts: median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.95)),
        ms(*latencies.last().unwrap())
    );

    mouth.0.lock().unwrap().steady = true;
    let in_call_rss = rss_kib();
    let cpu_before = cpu_time();
    let wall = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu = cpu_time() - cpu_before;
    let share = cpu.as_secs_f64() / wall.elapsed().as_secs_f64() * 100.0;
    println!(
        "one voice call, both ends in this process, {seconds} s: {share:.1} % of one core; resident memory {} KiB idle → {} KiB in the call (+{} KiB)",
        idle_rss,
        in_call_rss,
        in_call_rss.saturating_sub(idle_rss)
    );
    alice.hang_up_call(id).unwrap();
    wait_call(&mut bob_events, "ended").await;
    alice.shutdown().await;
    bob.shutdown().await;
}
