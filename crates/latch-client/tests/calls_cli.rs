//! `latch call` and `latch answer` as separate processes through a real relay, with real UDP
//! sockets on loopback: the callee records the caller's tone, and a caller killed with
//! SIGKILL mid-call leaves the callee with a failed call in bounded time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Testbed, latch_bin};
use serde_json::Value;

/// A `latch` process whose JSON lines arrive on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

fn spawn(t: &Testbed, profile: &str, args: &[&str]) -> Proc {
    let mut child = Command::new(latch_bin())
        .arg("--home")
        .arg(t.home.path())
        .args(["--profile", profile])
        .args(args)
        .env("LATCH_CALL_HOSTS", "127.0.0.1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("latch printed a non-JSON line: {line}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    Proc { child, lines }
}

impl Proc {
    /// Waits (up to `within`) for a call event in `state`; returns the event.
    fn call_state(&self, state: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no call {state} within {within:?}"));
            let e = &v["event"];
            if e["type"] == "call" && e["state"] == state {
                return e.clone();
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Samples in the WAV file, or none while its header is not written yet.
fn samples(path: &std::path::Path) -> Vec<i16> {
    match hound::WavReader::open(path) {
        Ok(mut r) => r.samples::<i16>().filter_map(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
#[ignore = "needs a Secret Service keyring; run by scripts/test"]
fn the_callee_records_the_callers_tone_and_a_killed_caller_fails_the_call() {
    let t = Testbed::new();
    let (a, b, _, _) = t.pair();
    a.close();
    b.close();
    let heard = t.home.path().join("heard.wav");
    let heard_arg = heard.to_str().unwrap();

    let bob = spawn(
        &t,
        "bob",
        &["answer", "--wait", "60", "--record", heard_arg],
    );
    let mut alice = spawn(&t, "alice", &["call", "bob", "--tone", "440"]);
    bob.call_state("ringing", Duration::from_secs(30));
    alice.call_state("connected", Duration::from_secs(30));
    bob.call_state("connected", Duration::from_secs(30));

    // Three seconds of Alice's tone reach Bob's file (the file growing is the signal).
    let deadline = Instant::now() + Duration::from_secs(30);
    let want = 3 * 48_000 * 2 + 44;
    while std::fs::metadata(&heard).map_or(0, |m| m.len()) < want {
        assert!(Instant::now() < deadline, "Bob's recording stopped growing");
        std::thread::sleep(Duration::from_millis(50));
    }

    // SIGKILL: Alice's process gets no chance to hang up.
    alice.child.kill().unwrap();
    alice.child.wait().unwrap();
    let killed_at = Instant::now();
    let ended = bob.call_state("ended", Duration::from_secs(60));
    assert_eq!(ended["reason"], "failed", "{ended}");
    let took = killed_at.elapsed();
    // Four seconds of silence, then fifteen of trying to reconnect, and some slack.
    assert!(took < Duration::from_secs(30), "noticed after {took:?}");
    let mut bob = bob;
    assert!(bob.child.wait().unwrap().success());

    // What Bob recorded is Alice's tone, not just some bytes: skip the start (the jitter
    // buffer filling, the codec settling) and measure the rest.
    let s = samples(&heard);
    assert!(s.len() >= 3 * 48_000, "{} samples", s.len());
    let steady = &s[48_000..3 * 48_000];
    let share = latch_call::audio::tone_share(steady, 440.0);
    assert!(share > 0.8, "440 Hz share {share}");
    assert!(latch_call::audio::tone_share(steady, 880.0) < 0.05);
    // Only Bob may read what he recorded.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&heard).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "recording mode {mode:o}");
    }
}
