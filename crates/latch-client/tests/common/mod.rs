//! A test bed of real processes: one `latch-relay` on loopback with its SQLite file, and
//! `latch` processes (one-shot commands, or `latch session` driven over a pipe) using the OS
//! keyring. Every wait is bounded and waits for a real condition (a line, an event).
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(45);

pub fn latch_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_latch"))
}

/// The relay binary built beside `latch` by `cargo test --workspace`.
pub fn relay_bin() -> PathBuf {
    let p = latch_bin().with_file_name("latch-relay");
    assert!(
        p.exists(),
        "{} is missing: run the workspace tests (cargo test --workspace) or cargo build -p latch-relay",
        p.display()
    );
    p
}

/// A relay process. Killed (SIGKILL) when dropped.
pub struct RelayProc {
    child: Child,
    pub addr: String,
    /// The relay's metrics listener (kept off its public one).
    metrics_addr: String,
    dir: PathBuf,
    /// Settings given on top of the test defaults.
    extra: Vec<String>,
}

impl RelayProc {
    pub fn start(dir: &Path) -> Self {
        Self::start_on(dir, "127.0.0.1:0", &[])
    }

    fn start_on(dir: &Path, listen: &str, extra: &[String]) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("relay.log"))
            .unwrap();
        let mut child = Command::new(relay_bin())
            .args([
                "--listen",
                listen,
                "--metrics-listen",
                "127.0.0.1:0",
                // The claim limits are the relay's to test; here tests claim in bursts.
                "--claim-burst",
                "10000",
                "--claim-target-burst",
                "10000",
                "--database",
            ])
            .arg(dir.join("relay.db"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // The metrics line comes first, then the listening line.
            let mut metrics = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("latch-relay metrics on ") {
                    metrics = Some(addr.to_owned());
                }
                if let Some(addr) = line.strip_prefix("latch-relay listening on ") {
                    let _ = tx.send((addr.to_owned(), metrics.take()));
                }
            }
        });
        let (addr, metrics_addr) = rx
            .recv_timeout(WAIT)
            .expect("the relay did not start listening");
        Self {
            child,
            addr,
            metrics_addr: metrics_addr.expect("the relay did not report its metrics address"),
            dir: dir.to_owned(),
            extra: extra.to_vec(),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Envelopes waiting in the relay's mailboxes, from its Prometheus metrics.
    pub fn queue_depth(&self) -> u64 {
        let mut conn = std::net::TcpStream::connect(&self.metrics_addr).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        write!(conn, "GET /metrics HTTP/1.0\r\nHost: relay\r\n\r\n").unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut conn, &mut text).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("latch_relay_queue_depth "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no queue depth in the relay's metrics: {text}"))
    }

    /// Starts again on the same address and database.
    pub fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        loop {
            // The port is free again once the old process is gone; binding can still race
            // with the kernel for a moment, so retry within the bound.
            match std::panic::catch_unwind(|| Self::start_on(&self.dir, &self.addr, &self.extra)) {
                Ok(r) => {
                    *self = r;
                    return;
                }
                Err(e) if started.elapsed() > WAIT => std::panic::resume_unwind(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A home directory with a relay.
pub struct Testbed {
    pub home: tempfile::TempDir,
    pub relay: RelayProc,
}

impl Testbed {
    pub fn new() -> Self {
        Self::with_relay_args(&[])
    }

    /// A testbed whose relay runs with these extra command-line settings.
    pub fn with_relay_args(args: &[&str]) -> Self {
        let home = tempfile::tempdir().unwrap();
        let extra: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let relay = RelayProc::start_on(home.path(), "127.0.0.1:0", &extra);
        Self { home, relay }
    }

    /// Runs a one-shot `latch --json` command and returns its last output line.
    pub fn latch(&self, args: &[&str]) -> Value {
        let out = Command::new(latch_bin())
            .arg("--json")
            .arg("--home")
            .arg(self.home.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "latch {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let last = stdout.lines().last().unwrap_or("null");
        serde_json::from_str(last).unwrap()
    }

    /// Creates a profile named `name` and registers the handle `name`.
    pub fn profile(&self, name: &str) {
        self.latch(&["profile", "create", name, "--relay", &self.relay.url()]);
        let r = self.latch(&["--profile", name, "register", name]);
        assert_eq!(r["registered"], name);
    }

    /// Alice and Bob registered, in sessions, with a standard chat that carried "hello";
    /// returns the sessions and each side's chat id.
    pub fn pair(&self) -> (Session, Session, Value, Value) {
        self.profile("alice");
        self.profile("bob");
        let mut a = self.session("alice");
        let mut b = self.session("bob");
        let chat_a = a.cmd(json!({"cmd": "add", "handle": "bob"}))["chat"].clone();
        a.send(&chat_a, "hello");
        let chat_b = b.wait_message("hello")["conversation_id"].clone();
        // Alice wrote first: Bob answers her message request.
        b.cmd(json!({"cmd": "standing", "handle": "alice", "change": "accept"}));
        (a, b, chat_a, chat_b)
    }

    pub fn session(&self, profile: &str) -> Session {
        self.session_with_env(profile, &[])
    }

    pub fn session_with_env(&self, profile: &str, env: &[(&str, &str)]) -> Session {
        Session::start(self.home.path(), profile, env)
    }
}

/// A `latch session` process: JSON commands in, results and events out.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    /// Events seen but not yet waited for, in order.
    pub events: Vec<Value>,
    /// The text of every incoming message event, in arrival order.
    pub received: Vec<String>,
    pub name: String,
}

impl Session {
    fn start(home: &Path, profile: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(latch_bin())
            .arg("--home")
            .arg(home)
            .args(["--profile", profile, "session"])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => panic!("latch session printed a non-JSON line: {line}"),
                }
            }
        });
        let stdin = child.stdin.take();
        let mut s = Self {
            child,
            stdin,
            lines: rx,
            events: Vec::new(),
            received: Vec::new(),
            name: profile.to_owned(),
        };
        s.wait_event("synced", |_| true);
        s
    }

    fn next_line(&mut self, deadline: Instant) -> Option<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = self.lines.recv_timeout(left).ok()?;
        let e = &line["event"];
        if e["type"] == "message" && e["message"]["direction"] == "incoming" {
            self.received
                .push(e["message"]["body"].as_str().unwrap_or_default().to_owned());
        }
        Some(line)
    }

    /// Sends a command; returns its result, or the error text.
    pub fn try_cmd(&mut self, cmd: Value) -> Result<Value, String> {
        let stdin = self.stdin.as_mut().expect("session stdin closed");
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let line = self
                .next_line(deadline)
                .unwrap_or_else(|| panic!("{}: no answer to {cmd}", self.name));
            if let Some(r) = line.get("result") {
                return Ok(r.clone());
            }
            if let Some(e) = line.get("error") {
                return Err(e.as_str().unwrap_or_default().to_owned());
            }
            if let Some(e) = line.get("event") {
                self.events.push(e.clone());
            }
        }
    }

    pub fn cmd(&mut self, cmd: Value) -> Value {
        let name = self.name.clone();
        self.try_cmd(cmd.clone())
            .unwrap_or_else(|e| panic!("{name}: {cmd} failed: {e}"))
    }

    /// Waits for an event of type `kind` matching `pred` (seen already or arriving).
    pub fn wait_event(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.try_wait_event(kind, pred, WAIT)
            .unwrap_or_else(|| panic!("{}: no {kind} event; saw {:?}", self.name, self.events))
    }

    pub fn try_wait_event(
        &mut self,
        kind: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        let matches = |e: &Value| e["type"] == kind && pred(e);
        if let Some(i) = self.events.iter().position(matches) {
            return Some(self.events.remove(i));
        }
        let deadline = Instant::now() + timeout;
        while let Some(line) = self.next_line(deadline) {
            if let Some(e) = line.get("event") {
                if matches(e) {
                    return Some(e.clone());
                }
                self.events.push(e.clone());
            }
        }
        None
    }

    /// Waits for an incoming message with this text; returns the message object.
    pub fn wait_message(&mut self, body: &str) -> Value {
        self.wait_event("message", |e| {
            e["message"]["body"] == body && e["message"]["direction"] == "incoming"
        })["message"]
            .clone()
    }

    /// Waits until our message `id` reaches `status`.
    pub fn wait_status(&mut self, id: &Value, status: &str) {
        self.wait_event("message_updated", |e| {
            e["message"]["id"] == *id && e["message"]["status"] == status
        });
    }

    pub fn send(&mut self, chat: &Value, text: &str) -> Value {
        self.cmd(json!({"cmd": "send", "chat": chat, "text": text}))["message"].clone()
    }

    pub fn history(&mut self, chat: &Value) -> Vec<Value> {
        self.cmd(json!({"cmd": "history", "chat": chat, "limit": 1000}))["messages"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// `kill -9`.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes stdin (the session flushes its outbox and exits) and waits for the exit.
    pub fn close(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            // Keep draining output so the child never blocks on a full pipe.
            let _ = self.lines.recv_timeout(Duration::from_millis(50));
        }
        panic!("{}: session did not exit", self.name);
    }

    /// Waits for the process to end by itself (e.g. at a crash point); returns its status.
    pub fn wait_exit(mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            let _ = self.lines.recv_timeout(Duration::from_millis(50));
        }
        panic!("{}: process did not exit", self.name);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
