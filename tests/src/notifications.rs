//! A real notification server on the test's session bus (Debian's `notification-daemon`) and a
//! record of what apps asked of it, read by `dbus-monitor`.

use std::io::{self, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use crate::{HarnessError, io_error};

/// Where Debian installs the daemon (it ships no D-Bus activation file, so it is started here).
const DAEMON: &str = "/usr/lib/notification-daemon/notification-daemon";

/// The bus name a notification server owns.
const NAME: &str = "org.freedesktop.Notifications";

/// One call an app made to the server, with the server's answer where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationCall {
    /// `Notify`: a notification shown, and the id the server gave it.
    Notify {
        /// The title line.
        summary: String,
        /// The body as sent (markup-escaped text).
        body: String,
        /// The server's id for it (`None` until its reply was seen).
        id: Option<u32>,
    },
    /// `CloseNotification`: a notification withdrawn.
    Close {
        /// Its id.
        id: u32,
    },
}

/// The server and the recorder; both stop when dropped.
#[derive(Debug)]
pub struct Notifications {
    daemon: Child,
    monitor: Child,
    calls: Arc<Mutex<Vec<NotificationCall>>>,
}

impl Notifications {
    /// Starts the recorder, then the server on the display in `$DISPLAY`, and returns once
    /// the server owns its bus name (the recorder sees the bus announce it).
    ///
    /// # Errors
    /// When either cannot start, or the server never takes its name.
    pub fn start(timeout: Duration) -> Result<Self, HarnessError> {
        let mut monitor = Command::new("dbus-monitor")
            .args([
                "--session",
                "type='method_call',interface='org.freedesktop.Notifications'",
                "type='method_return'",
                "type='signal',member='NameOwnerChanged',arg0='org.freedesktop.Notifications'",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_error("starting dbus-monitor"))?;
        let stdout = monitor
            .stdout
            .take()
            .ok_or_else(|| io_error("reading dbus-monitor")(io::Error::other("no pipe")))?;
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (owned_tx, owned_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let record = Arc::clone(&calls);
        thread::spawn(move || parse(BufReader::new(stdout), &record, &ready_tx, &owned_tx));
        // dbus-monitor first prints the bus's NameAcquired/NameLost for its own connection:
        // from then on it sees every message, so the server may start.
        if ready_rx.recv_timeout(timeout).is_err() {
            let _ = monitor.kill();
            let _ = monitor.wait();
            return Err(HarnessError::Timeout {
                what: "dbus-monitor to connect".into(),
                timeout,
            });
        }
        let daemon = Command::new(DAEMON)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_error(format!("starting {DAEMON}")))?;
        let notifications = Self {
            daemon,
            monitor,
            calls,
        };
        match owned_rx.recv_timeout(timeout) {
            Ok(()) => Ok(notifications),
            Err(_) => Err(HarnessError::Timeout {
                what: format!("{DAEMON} to own {NAME}"),
                timeout,
            }),
        }
    }

    /// Every call seen so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<NotificationCall> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Notifications {
    fn drop(&mut self) {
        for child in [&mut self.daemon, &mut self.monitor] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads dbus-monitor's text: a header line per message, then one line per argument. Each
/// call is recorded as soon as the arguments it needs have arrived (a message has no end
/// marker; waiting for the next header would wait for unrelated traffic).
fn parse(
    lines: impl io::BufRead,
    calls: &Mutex<Vec<NotificationCall>>,
    ready: &mpsc::Sender<()>,
    owned: &mpsc::Sender<()>,
) {
    // Notify calls waiting for their reply: (caller, serial, index in `calls`).
    let mut pending: Vec<(String, String, usize)> = Vec::new();
    let mut header = String::new();
    let mut args: Vec<String> = Vec::new();
    for line in lines.lines() {
        let Ok(line) = line else { break };
        if !line.starts_with(' ') {
            if header.is_empty() {
                let _ = ready.send(());
            }
            header = line;
            args.clear();
            continue;
        }
        // `   string "text"`, `   uint32 7`: the value after the type.
        let value = line.trim_start();
        let value = value.split_once(' ').map_or("", |(_, v)| v);
        args.push(value.trim_matches('"').to_owned());
        let field = |name: &str| {
            header
                .split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .map(|v| v.trim_end_matches(';').to_owned())
        };
        let mut calls = calls.lock().unwrap_or_else(PoisonError::into_inner);
        if header.starts_with("signal") && header.contains("member=NameOwnerChanged") {
            // The name, its old owner and its new one.
            if args.len() == 3 && args[0] == NAME && !args[2].is_empty() {
                let _ = owned.send(());
            }
        } else if header.starts_with("method call") && header.contains("member=Notify") {
            // app name, replaces id, icon, summary, body, …
            if args.len() == 5
                && let (Some(sender), Some(serial)) = (field("sender="), field("serial="))
            {
                calls.push(NotificationCall::Notify {
                    summary: args[3].clone(),
                    body: args[4].clone(),
                    id: None,
                });
                pending.push((sender, serial, calls.len() - 1));
            }
        } else if header.starts_with("method call") && header.contains("member=CloseNotification") {
            if args.len() == 1
                && let Ok(id) = args[0].parse()
            {
                calls.push(NotificationCall::Close { id });
            }
        } else if header.starts_with("method return")
            && args.len() == 1
            && let (Some(to), Some(reply)) = (field("destination="), field("reply_serial="))
            && let Some(at) = pending.iter().position(|(s, n, _)| *s == to && *n == reply)
        {
            let (_, _, index) = pending.remove(at);
            if let Some(NotificationCall::Notify { id, .. }) = calls.get_mut(index) {
                *id = args[0].parse().ok();
            }
        }
    }
}
