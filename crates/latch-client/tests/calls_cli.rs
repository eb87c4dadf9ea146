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
use latch_testkit::SoundServer;
use serde_json::Value;

/// The tests here run one at a time: each is a real-time call between two processes (and a
/// sound server), and two at once on a two-core machine would starve each other's audio.
static ONE_CALL_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A `latch` process whose JSON lines arrive on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

fn spawn(t: &Testbed, profile: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(latch_bin());
    cmd.arg("--home")
        .arg(t.home.path())
        .args(["--profile", profile])
        .args(args)
        .env("LATCH_CALL_HOSTS", "127.0.0.1");
    run(cmd)
}

/// As [`spawn`], with the process's sound going through `sound`.
fn spawn_with(t: &Testbed, profile: &str, args: &[&str], sound: &SoundServer) -> Proc {
    let mut cmd = Command::new(latch_bin());
    cmd.arg("--home")
        .arg(t.home.path())
        .args(["--profile", profile])
        .args(args)
        .env("LATCH_CALL_HOSTS", "127.0.0.1")
        .env("PULSE_SERVER", sound.address());
    run(cmd)
}

fn run(mut cmd: Command) -> Proc {
    let mut child = cmd
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

/// The largest share of `hz` in any one-second stretch (stepping a tenth of a second).
fn best_second(samples: &[i16], hz: f64) -> f64 {
    (0..samples.len().saturating_sub(48_000))
        .step_by(4_800)
        .map(|i| latch_call::audio::tone_share(&samples[i..i + 48_000], hz))
        .fold(0.0, f64::max)
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
    let _serial = ONE_CALL_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
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

    // What Bob recorded is Alice's tone, not just some bytes: a whole second of it (the start
    // is the jitter buffer filling and the codec settling).
    let s = samples(&heard);
    assert!(s.len() >= 3 * 48_000, "{} samples", s.len());
    let best = best_second(&s, 440.0);
    assert!(best > 0.8, "best 440 Hz share {best}");
    assert!(best_second(&s, 880.0) < 0.05);
    // Only Bob may read what he recorded.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&heard).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "recording mode {mode:o}");
    }
}

#[test]
#[ignore = "needs a Secret Service keyring and PulseAudio; run by scripts/test"]
fn a_call_through_a_real_sound_server_carries_the_microphone_and_reaches_the_speaker() {
    let _serial = ONE_CALL_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let sound = SoundServer::start().unwrap();
    let t = Testbed::new();
    let (a, b, _, _) = t.pair();
    a.close();
    b.close();
    let alice_heard = t.home.path().join("alice-heard.wav");
    let played = t.home.path().join("played.wav");

    // Bob talks through the sound server: into his microphone goes a 660 Hz tone, played in
    // real time; his speaker is a null sink. Alice sends 440 Hz and records what she hears.
    let tone = t.home.path().join("660.wav");
    let mut w = hound::WavWriter::create(
        &tone,
        hound::WavSpec {
            channels: 1,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        },
    )
    .unwrap();
    for i in 0..48_000 * 60 {
        let x = (std::f64::consts::TAU * 660.0 * f64::from(i) / 48_000.0).sin() * 8_000.0;
        w.write_sample(x as i16).unwrap();
    }
    w.finalize().unwrap();
    let feeder = sound
        .command("paplay")
        .arg("--device=mic_feed")
        .arg(&tone)
        .spawn()
        .unwrap();
    let _feeder = Proc {
        child: feeder,
        lines: mpsc::channel().1,
    };
    let mut bob = spawn_with(&t, "bob", &["answer", "--wait", "60", "--sound"], &sound);
    let alice = spawn(
        &t,
        "alice",
        &[
            "call",
            "bob",
            "--tone",
            "440",
            "--record",
            alice_heard.to_str().unwrap(),
        ],
    );
    bob.call_state("ringing", Duration::from_secs(30));
    alice.call_state("connected", Duration::from_secs(30));
    bob.call_state("connected", Duration::from_secs(30));

    // What Bob's speaker played, taken from the null sink's monitor for three seconds.
    let recorder = sound
        .command("parecord")
        .args([
            "--device=latch_speaker.monitor",
            "--format=s16le",
            "--rate=48000",
            "--channels=1",
            "--file-format=wav",
        ])
        .arg(&played)
        .spawn()
        .unwrap();
    let mut recorder = Proc {
        child: recorder,
        lines: mpsc::channel().1,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&played).map_or(0, |m| m.len()) < 3 * 48_000 * 2 {
        assert!(Instant::now() < deadline, "the speaker played nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGINT lets parecord finish its file.
    let _ = Command::new("kill")
        .args(["-INT", &recorder.child.id().to_string()])
        .status();
    let _ = recorder.child.wait();
    bob.child.kill().unwrap();
    let _ = bob.child.wait();
    alice.call_state("ended", Duration::from_secs(60));
    // Her recording is complete once her process has exited on its own.
    let mut alice = alice;
    assert!(alice.child.wait().unwrap().success());

    let speaker = samples(&played);
    assert!(
        speaker.len() > 2 * 48_000,
        "{} samples played",
        speaker.len()
    );
    let best = best_second(&speaker, 440.0);
    assert!(best > 0.8, "Bob's speaker: best 440 Hz share {best}");

    let heard = samples(&alice_heard);
    assert!(heard.len() > 2 * 48_000, "{} samples heard", heard.len());
    // Bob's microphone starts a moment after the call connects: look for a second of it.
    let best = best_second(&heard, 660.0);
    assert!(
        best > 0.8,
        "Alice heard Bob's microphone: best 660 Hz share {best}"
    );
}
