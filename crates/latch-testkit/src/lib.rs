//! Real servers that Latch's tests start for themselves, each private to the test and
//! stopped when dropped: nothing is shared with the machine's own sessions.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a sound server may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a server could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A private PulseAudio server with two null sinks: `latch_speaker` is the default speaker
/// (its monitor, `latch_speaker.monitor`, records what was played) and the monitor of
/// `mic_feed` is the default microphone: what is played into `mic_feed` is what the
/// microphone hears. (A monitor hands sound over every few milliseconds; PulseAudio's
/// `module-sine-source` holds two seconds and delivers in bursts a call cannot smooth.)
///
/// Point a process at it with `PULSE_SERVER` ([`SoundServer::address`]); ALSA's default device
/// reaches it through the PulseAudio plugin (`libasound2-plugins`).
pub struct SoundServer {
    dir: tempfile::TempDir,
    child: Child,
}

impl SoundServer {
    /// Starts the server and waits until it answers.
    ///
    /// # Errors
    /// When `pulseaudio` is missing (`scripts/setup test` installs it), exits, or never
    /// answers.
    pub fn start() -> Result<Self, StartError> {
        let dir = tempfile::tempdir().map_err(|e| StartError(e.to_string()))?;
        let socket = dir.path().join("native");
        let child = Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
            ])
            .arg("-L")
            .arg(format!(
                "module-native-protocol-unix auth-anonymous=1 socket={}",
                socket.display()
            ))
            .args(["-L", "module-null-sink sink_name=latch_speaker rate=48000"])
            .args(["-L", "module-null-sink sink_name=mic_feed rate=48000"])
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                StartError(format!(
                    "pulseaudio did not start ({e}); run scripts/setup test"
                ))
            })?;
        let mut server = Self { dir, child };
        // Ready when it answers, not after a guess at how long starting takes.
        let deadline = Instant::now() + START_TIMEOUT;
        while !server.pactl(&["info"]) {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(StartError(format!("pulseaudio exited: {status}")));
            }
            if Instant::now() > deadline {
                return Err(StartError("pulseaudio never answered".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for args in [
            ["set-default-sink", "latch_speaker"],
            ["set-default-source", "mic_feed.monitor"],
        ] {
            if !server.pactl(&args) {
                return Err(StartError(format!("pactl {} failed", args.join(" "))));
            }
        }
        Ok(server)
    }

    /// The value for `PULSE_SERVER`.
    pub fn address(&self) -> String {
        format!("unix:{}", self.socket().display())
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("native")
    }

    /// Runs `pactl` against this server; whether it succeeded.
    pub fn pactl(&self, args: &[&str]) -> bool {
        self.command("pactl")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A command (`paplay`, `parecord`, ...) pointed at this server.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("PULSE_SERVER", self.address());
        c
    }

    /// Where the server keeps its socket (a private directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SoundServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
