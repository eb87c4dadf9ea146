//! The desktop app's figures: launch to an interactive conversation list, idle memory (PSS
//! summed over the app and its WebKit processes) beside a hello-world Tauri window measured
//! in the same run, and frame times while scrolling a 100,000-message chat.
//!
//! Run through `scripts/bench-desktop`, which builds both apps in release mode, fills the
//! chat, and runs this under a private D-Bus with a keyring and Xvfb. Direct use:
//! `LATCH_BENCH_HOME=<home with a filled profile> LATCH_BENCH_HELLO=<hello binary>
//!  cargo bench -p latch-e2e --bench desktop`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use latch_e2e::{Artifacts, Session, TauriDriver, wait_for};
use serde_json::json;

/// Launches measured; the first is reported separately as the cold one.
const LAUNCHES: usize = 6;
/// How long a launch may take before the run is declared broken.
const LAUNCH_LIMIT: Duration = Duration::from_secs(60);
/// Idle time before memory is read, so start-up allocations settle as they would for a user.
const SETTLE: Duration = Duration::from_secs(10);
/// Frames recorded per scrolling pass.
const FRAMES: usize = 240;

fn main() {
    // `cargo bench` passes `--bench`; there are no filters to honour.
    let home = PathBuf::from(std::env::var_os("LATCH_BENCH_HOME").expect("set LATCH_BENCH_HOME"));
    let hello = std::env::var_os("LATCH_BENCH_HELLO").map(PathBuf::from);
    let app = app_binary();
    println!("app: {}", app.display());

    let (cold, warm) = launch_times(&app, &home);
    println!(
        "launch to interactive conversation list: cold {cold} ms, warm median {} ms (runs: {warm:?})",
        median(&warm)
    );

    let latch_pss = idle_pss(&app, &home, true);
    println!("idle PSS, Latch: {}", describe(&latch_pss));
    if let Some(hello) = hello {
        let hello_pss = idle_pss(&hello, &home, false);
        println!("idle PSS, hello-world Tauri: {}", describe(&hello_pss));
    }

    scroll_frames(&home);
}

fn app_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    dir.join("latch-desktop")
}

fn spawn(binary: &Path, home: &Path, report: bool) -> Child {
    let mut command = Command::new(binary);
    command
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if report {
        command.env("LATCH_REPORT_READY", "1");
    }
    command.spawn().unwrap()
}

/// Waits for the app's "interactive after N ms" line; returns N.
fn wait_ready(child: &mut Child) -> u64 {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(ms) = line
                .strip_prefix("latch-desktop: interactive after ")
                .and_then(|rest| rest.strip_suffix(" ms"))
                .and_then(|ms| ms.parse::<u64>().ok())
            {
                let _ = tx.send(ms);
            }
        }
    });
    match rx.recv_timeout(LAUNCH_LIMIT) {
        Ok(ms) => ms,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the app never reported an interactive conversation list");
        }
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn launch_times(app: &Path, home: &Path) -> (u64, Vec<u64>) {
    let mut times = Vec::new();
    for _ in 0..LAUNCHES {
        let started = Instant::now();
        let mut child = spawn(app, home, true);
        let reported = wait_ready(&mut child);
        let observed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The app's own clock starts a little after exec; the wall clock from spawn is the
        // user's view, so that is what counts.
        times.push(observed.max(reported));
        stop(child);
    }
    let cold = times.remove(0);
    (cold, times)
}

fn median(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

/// PSS in KiB per process name, for `pid` and all its descendants.
fn pss_tree(pid: u32) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        let name = std::fs::read_to_string(format!("/proc/{p}/comm"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let pss = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        out.push((name, pss));
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // Field 4 (after the parenthesised name) is the parent pid.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if parent == Some(p) {
                queue.push(child);
            }
        }
    }
    out
}

fn describe(tree: &[(String, u64)]) -> String {
    let total: u64 = tree.iter().map(|(_, kib)| kib).sum();
    let parts: Vec<String> = tree
        .iter()
        .map(|(name, kib)| format!("{name} {:.1}", *kib as f64 / 1024.0))
        .collect();
    format!("{:.1} MiB ({})", total as f64 / 1024.0, parts.join(", "))
}

fn idle_pss(binary: &Path, home: &Path, report: bool) -> Vec<(String, u64)> {
    let mut child = spawn(binary, home, report);
    if report {
        wait_ready(&mut child);
    } else {
        // The hello-world app reports nothing: wait until its web process exists.
        let pid = child.id();
        wait_for("the hello-world web process", LAUNCH_LIMIT, || {
            Ok(pss_tree(pid)
                .iter()
                .any(|(name, _)| name.starts_with("WebKitWebProces"))
                .then_some(()))
        })
        .unwrap();
    }
    std::thread::sleep(SETTLE);
    let tree = pss_tree(child.id());
    stop(child);
    tree
}

/// Records frame intervals while the chat's list scrolls by `step` pixels per frame (negative:
/// upwards, towards older pages that load as they come into view).
fn frames(session: &Session, step: i64) -> Vec<(f64, bool)> {
    let value = session
        .execute_async(
            r"const [step, count, done] = arguments;
            const list = document.querySelector('.timeline .virtual-list');
            if (!list) { done('no list'); return; }
            const times = [];
            const grew = [];
            let last = null;
            let height = list.scrollHeight;
            function frame(t) {
              if (last !== null) {
                times.push(t - last);
                // Whether an older page arrived since the last frame (the list grew).
                grew.push(list.scrollHeight > height + 1000);
              }
              height = list.scrollHeight;
              last = t;
              list.scrollTop += step;
              if (times.length < count) requestAnimationFrame(frame); else done({ times, grew });
            }
            requestAnimationFrame(frame);",
            json!([step, FRAMES]),
        )
        .unwrap();
    let (Some(times), Some(grew)) = (value["times"].as_array(), value["grew"].as_array()) else {
        panic!("scrolling failed: {value}");
    };
    times
        .iter()
        .zip(grew)
        .map(|(t, g)| (t.as_f64().unwrap_or(0.0), g.as_bool().unwrap_or(false)))
        .collect()
}

fn report_frames(label: &str, frames: &[(f64, bool)]) {
    let times: Vec<f64> = frames.iter().map(|(t, _)| *t).collect();
    let pages = frames.iter().filter(|(_, grew)| *grew).count();
    let slow_with_page = frames.iter().filter(|(t, grew)| *t > 32.0 && *grew).count();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    let over = times.iter().filter(|&&t| t > 32.0).count();
    println!(
        "scrolling, {label}: {} frames, p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms, {over} over 32 ms \
         ({pages} frames with an older page arriving, {slow_with_page} of them over 32 ms)",
        times.len(),
        pick(0.5),
        pick(0.95),
        sorted.last().copied().unwrap_or(0.0),
    );
}

fn scroll_frames(home: &Path) {
    let artifacts = Artifacts::for_test("bench-desktop").unwrap();
    let driver = TauriDriver::start(&artifacts, home).unwrap();
    let session = driver.launch_app().unwrap();
    let chat = wait_for("the filled chat", LAUNCH_LIMIT, || {
        Ok(session.try_find("[data-conversation-id]")?)
    })
    .unwrap();
    session.click(&chat).unwrap();
    wait_for("messages", LAUNCH_LIMIT, || {
        Ok(session.try_find("[data-message-id]")?)
    })
    .unwrap();
    // Let the first page settle (fonts, measurements) before timing.
    std::thread::sleep(Duration::from_secs(2));
    report_frames("steady 40 px per frame upwards", &frames(&session, -40));
    let height = session
        .execute(
            "const l = document.querySelector('.timeline .virtual-list'); return l ? l.clientHeight : 600;",
            json!([]),
        )
        .unwrap()
        .as_i64()
        .unwrap_or(600);
    report_frames("a screen per frame upwards", &frames(&session, -height));
    let pages = session
        .execute(
            "return performance.getEntriesByName('latch:older-page').map((e) => e.duration);",
            json!([]),
        )
        .unwrap();
    println!("older pages, state update + Svelte flush (ms): {pages}");
}
