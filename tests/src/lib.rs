#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod notifications;
mod proc;
mod webdriver;

pub use notifications::{NotificationCall, Notifications};
pub use webdriver::{ENTER, Element, Session, WebDriverError};

use std::cell::Cell;
use std::fs::{self, File};
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long `tauri-driver` and WebKitWebDriver may take to start listening. A cold start under
/// Xvfb on this 2-core machine takes well under a second; the margin absorbs a loaded CI host.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a driver that exits before listening (its ports taken) is started again.
const DRIVER_START_ATTEMPTS: u32 = 3;

/// How long `tauri-driver` gets to stop WebKitWebDriver and the app before they are killed.
const DRIVER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a wait re-checks its condition. Short enough to keep tests fast, long enough not
/// to flood the driver with requests.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Why the harness could not run a test.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// A process or file could not be started, created or read.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// `tauri-driver` did not accept connections in time.
    #[error("tauri-driver did not start within {0:?}; see its log in the artifacts directory")]
    DriverStart(Duration),
    /// `tauri-driver` exited before it listened (every attempt; e.g. its ports were taken).
    #[error("tauri-driver exited before listening; see its log in the artifacts directory")]
    DriverExited,
    /// The app exited (or its launch thread died) before its WebDriver session was created.
    #[error("the app exited before its window could be driven; see its output in {0}")]
    AppExited(PathBuf),
    /// The app binary has not been built.
    #[error(
        "{0} does not exist: build the app first (`cargo build -p latch-desktop`, as scripts/test does)"
    )]
    AppMissing(PathBuf),
    /// A WebDriver request failed.
    #[error(transparent)]
    WebDriver(#[from] WebDriverError),
    /// A condition did not become true in time.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        timeout: Duration,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// The directory a test keeps its screenshots and logs in, emptied at the start of the test.
#[derive(Debug)]
pub struct Artifacts {
    dir: PathBuf,
    steps: Cell<usize>,
}

impl Artifacts {
    /// Creates `artifacts/e2e/<test>/` (or `$LATCH_ARTIFACTS/e2e/<test>/`).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn for_test(test: &str) -> Result<Self, HarnessError> {
        let root = std::env::var_os("LATCH_ARTIFACTS").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts"),
            PathBuf::from,
        );
        let dir = root.join("e2e").join(test);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io_error(format!("clearing {}", dir.display())))?;
        }
        fs::create_dir_all(&dir).map_err(io_error(format!("creating {}", dir.display())))?;
        Ok(Self {
            dir,
            steps: Cell::new(0),
        })
    }

    /// The directory itself.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves a numbered screenshot of the session's window, named after the step.
    ///
    /// # Errors
    /// When the screenshot cannot be taken or written.
    pub fn screenshot(&self, session: &Session, step: &str) -> Result<PathBuf, HarnessError> {
        let n = self.steps.get() + 1;
        self.steps.set(n);
        let path = self.dir.join(format!("{n:02}-{step}.png"));
        let png = session.screenshot()?;
        fs::write(&path, png).map_err(io_error(format!("writing {}", path.display())))?;
        Ok(path)
    }
}

/// Takes a last screenshot if the test panics while this guard is alive, so a failure always
/// leaves a picture of what the window showed next to the logs.
#[derive(Debug)]
pub struct ScreenshotOnFailure<'a> {
    session: &'a Session,
    artifacts: &'a Artifacts,
}

impl<'a> ScreenshotOnFailure<'a> {
    /// Arms the guard for `session`.
    #[must_use]
    pub fn new(session: &'a Session, artifacts: &'a Artifacts) -> Self {
        Self { session, artifacts }
    }
}

impl Drop for ScreenshotOnFailure<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            // Best effort: the app may be the thing that died.
            let _ = self.artifacts.screenshot(self.session, "failure");
        }
    }
}

/// A running `tauri-driver`, killed when dropped. Its output (which includes the app's own
/// stdout and stderr, since WebKitWebDriver launches the app) goes to `driver.log`.
#[derive(Debug)]
pub struct TauriDriver {
    child: Child,
    port: u16,
    native_port: u16,
    log: PathBuf,
    app: PathBuf,
    home: PathBuf,
}

impl TauriDriver {
    /// Starts `tauri-driver` (from `$LATCH_TAURI_DRIVER` or the `PATH`) for the app built next
    /// to this test binary, with XDG directories under `home` so the app's data stays out of
    /// the user's profile.
    ///
    /// # Errors
    /// When the app is not built, the driver cannot start, or it never listens.
    pub fn start(artifacts: &Artifacts, home: &Path) -> Result<Self, HarnessError> {
        Self::start_with_env(artifacts, home, &[])
    }

    /// As [`TauriDriver::start`], with more environment for the driver and so for the app
    /// (a sound server's `PULSE_SERVER`, say).
    ///
    /// # Errors
    /// As [`TauriDriver::start`].
    pub fn start_with_env(
        artifacts: &Artifacts,
        home: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self, HarnessError> {
        let app = app_binary()?;
        let program =
            std::env::var_os("LATCH_TAURI_DRIVER").unwrap_or_else(|| "tauri-driver".into());
        let log = artifacts.dir().join("driver.log");
        let out = File::create(&log).map_err(io_error(format!("creating {}", log.display())))?;
        for sub in ["data", "config", "cache"] {
            fs::create_dir_all(home.join(sub)).map_err(io_error("creating the test home"))?;
        }
        // `tauri-driver` takes its two ports on the command line, so they are chosen free
        // here and bound by the drivers a moment later; another process (other tests start
        // drivers, apps and relays at the same time) can bind one in between. The attempt
        // then sees its own driver fail to listen (not another's `/status`), stops it, and
        // tries a new pair.
        for _ in 0..DRIVER_START_ATTEMPTS {
            let [port, native_port] = free_ports()?;
            let stdout = out
                .try_clone()
                .map_err(io_error("duplicating the log handle"))?;
            let stderr = out
                .try_clone()
                .map_err(io_error("duplicating the log handle"))?;
            let child = Command::new(&program)
                .arg("--port")
                .arg(port.to_string())
                .arg("--native-port")
                .arg(native_port.to_string())
                .env("XDG_DATA_HOME", home.join("data"))
                .env("XDG_CONFIG_HOME", home.join("config"))
                .env("XDG_CACHE_HOME", home.join("cache"))
                // The webview as it ships (no GPU compositing), whatever the caller's
                // environment says.
                .env_remove("LATCH_WEBVIEW_COMPOSITING")
                // No camera here: WebKit's mock camera goes through the real permission path.
                .env("LATCH_WEBVIEW_MOCK_CAMERA", "1")
                .envs(env.iter().copied())
                // Its own process group, so teardown reaches WebKitWebDriver and the app too.
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .map_err(io_error(format!(
                    "starting {}",
                    Path::new(&program).display()
                )))?;
            let mut driver = Self {
                child,
                port,
                native_port,
                log: log.clone(),
                app: app.clone(),
                home: home.to_path_buf(),
            };
            match driver.wait_until_ready() {
                // Dropping it stops whatever of the attempt still runs (a native driver left
                // listening, for one), so only this attempt's processes remain.
                Err(HarnessError::DriverExited) => drop(driver),
                result => return result.map(|()| driver),
            }
        }
        Err(HarnessError::DriverExited)
    }

    /// Ready means both drivers of this attempt listen on their own ports and `/status`
    /// answers through them. `/status` alone is not enough: a port chosen free can be bound
    /// by another test's driver first, and its answer would then send this test's session,
    /// and app, to that driver (which launches apps with the other test's data directory).
    fn wait_until_ready(&mut self) -> Result<(), HarnessError> {
        let deadline = Instant::now() + DRIVER_START_TIMEOUT;
        loop {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return Err(HarnessError::DriverExited);
            }
            let native = self.native_driver();
            // WebKitWebDriver exits when its port is taken; tauri-driver never reaps it.
            if native.is_some_and(|pid| !proc::alive(pid)) {
                return Err(HarnessError::DriverExited);
            }
            if proc::listens(self.child.id(), self.port)
                && native.is_some_and(|pid| proc::listens(pid, self.native_port))
                && webdriver::is_ready(self.port)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::DriverStart(DRIVER_START_TIMEOUT));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// WebKitWebDriver, the one child `tauri-driver` starts.
    fn native_driver(&self) -> Option<u32> {
        proc::children(self.child.id()).into_iter().next()
    }

    /// The app WebKitWebDriver launched, while it runs.
    fn launched_app(&self) -> Option<u32> {
        let name = self.app.file_name()?;
        let native = self.native_driver()?;
        proc::children(native)
            .into_iter()
            .find(|&pid| proc::alive(pid) && proc::is_program(pid, name))
    }

    /// Launches the app and opens a WebDriver session on its main window.
    ///
    /// WebKitWebDriver answers a new session once the app's webview connects to it, and
    /// waits for that as long as the app runs: an app that exits first (a start-up error, or
    /// a second instance for a data directory whose app still runs, which hands over to that
    /// one and exits) leaves the request hanging until its timeout. So the launch waits for
    /// the data directory to be free first, and while the request runs it watches the app
    /// and both drivers and fails as soon as one of them is gone.
    ///
    /// # Errors
    /// When the driver refuses the session, the app or a driver exits, or the previous app of
    /// this data directory never lets go of it (see the log).
    pub fn launch_app(&self) -> Result<Session, HarnessError> {
        self.wait_for_data_dir_released(DRIVER_STOP_TIMEOUT)?;
        let (port, app) = (self.port, self.app.clone());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(Session::create(port, &app));
        });
        let mut launched = None;
        loop {
            match rx.recv_timeout(POLL_INTERVAL) {
                Ok(session) => return Ok(session?),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(HarnessError::AppExited(self.log.clone()));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let native_alive = self.native_driver().is_some_and(proc::alive);
            if !native_alive || !proc::alive(self.child.id()) {
                return Err(HarnessError::DriverExited);
            }
            match (launched, self.launched_app()) {
                (_, Some(pid)) => launched = Some(pid),
                (Some(_), None) => return Err(HarnessError::AppExited(self.log.clone())),
                (None, None) => {}
            }
        }
    }

    /// Waits until no process holds the app's single-instance lock on this data directory:
    /// the app takes it first thing and the kernel frees it when the app is gone, so this is
    /// exactly what the next launch needs (a launch that finds it taken hands over and exits).
    fn wait_for_data_dir_released(&self, timeout: Duration) -> Result<(), HarnessError> {
        let path = self.home.join("data").join("latch").join("desktop.lock");
        let Ok(file) = File::open(&path) else {
            return Ok(()); // never launched here
        };
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => {
                return Err(io_error(format!("locking {}", path.display()))(e));
            }
        }
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            // Returns (and unlocks, dropping the file) when the holder is gone.
            let _ = tx.send(file.lock());
        });
        match rx.recv_timeout(timeout) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(io_error(format!("locking {}", path.display()))(e)),
            Err(_) => Err(HarnessError::Timeout {
                what: "the previous app to release its data directory".into(),
                timeout,
            }),
        }
    }

    /// Where the driver's and the app's output goes.
    #[must_use]
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The process id of the app this driver launched, found by its data directory.
    #[must_use]
    pub fn app_pid(&self) -> Option<u32> {
        let wanted = format!("XDG_DATA_HOME={}", self.home.join("data").display());
        let name = self.app.file_name()?.to_owned();
        fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let exe = fs::read_link(entry.path().join("exe")).ok()?;
            if exe.file_name()? != name {
                return None;
            }
            let environ = fs::read(entry.path().join("environ")).ok()?;
            environ
                .split(|&b| b == 0)
                .any(|var| var == wanted.as_bytes())
                .then_some(pid)
        })
    }

    /// Gives the app's window the keyboard focus. Under Xvfb without a window manager only
    /// the window mapped last has it, and the app marks messages read only in a focused
    /// window, as it should.
    ///
    /// # Errors
    /// When the app is not running or `xdotool` fails.
    pub fn focus_app_window(&self) -> Result<(), HarnessError> {
        let pid = self
            .app_pid()
            .ok_or_else(|| HarnessError::AppMissing(self.app.clone()))?;
        let found = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--pid", &pid.to_string()])
            .output()
            .map_err(io_error("running xdotool search"))?;
        let windows = String::from_utf8_lossy(&found.stdout);
        for window in windows.split_whitespace() {
            let status = Command::new("xdotool")
                .args(["windowfocus", "--sync", window])
                .status()
                .map_err(io_error("running xdotool windowfocus"))?;
            if status.success() {
                return Ok(());
            }
        }
        Err(HarnessError::Io {
            what: format!("focusing the app's window (pid {pid})"),
            source: io::Error::other("xdotool found no focusable window"),
        })
    }

    /// The directory holding the app's XDG data, config and cache directories.
    #[must_use]
    pub fn home(&self) -> &Path {
        &self.home
    }
}

impl Drop for TauriDriver {
    fn drop(&mut self) {
        // SIGTERM to the whole group: tauri-driver stops WebKitWebDriver only on a signal it
        // can handle, and SIGKILL to it alone would orphan WebKitWebDriver and the app.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + DRIVER_STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            thread::sleep(POLL_INTERVAL);
        }
        // Whatever is still alive after the grace period goes now.
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        // The app may outlive the driver for a moment (it finishes its engine's commits on
        // SIGTERM); the next launch on the same home must not find it still holding its data
        // directory. It gets the grace period, then is killed and waited for.
        if self
            .wait_for_data_dir_released(DRIVER_STOP_TIMEOUT)
            .is_err()
        {
            if let Some(pid) = self.app_pid() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = self.wait_for_data_dir_released(DRIVER_STOP_TIMEOUT);
        }
    }
}

/// Polls `check` until it yields a value or `timeout` passes. The check itself observes the
/// real state (the DOM through WebDriver); the interval only paces the polling.
///
/// # Errors
/// [`HarnessError::Timeout`] naming `what`, or the first hard error `check` returns.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>, HarnessError>,
) -> Result<T, HarnessError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: what.to_owned(),
                timeout,
            });
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// The `latch-desktop` binary built in the same target directory as the running test, which
/// is right whatever `CARGO_TARGET_DIR` says: test binaries live in `<target>/<profile>/deps/`.
fn app_binary() -> Result<PathBuf, HarnessError> {
    let exe = std::env::current_exe().map_err(io_error("locating the test binary"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| HarnessError::AppMissing(exe.clone()))?;
    let app = profile_dir.join(format!("latch-desktop{}", std::env::consts::EXE_SUFFIX));
    if app.is_file() {
        Ok(app)
    } else {
        Err(HarnessError::AppMissing(app))
    }
}

/// Distinct free loopback ports: every listener stays bound until all ports are chosen, so the
/// OS cannot hand out the same one twice.
fn free_ports<const N: usize>() -> Result<[u16; N], HarnessError> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    for port in &mut ports {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).map_err(io_error("finding a free port"))?;
        *port = listener
            .local_addr()
            .map_err(io_error("reading the bound port"))?
            .port();
        listeners.push(listener);
    }
    Ok(ports)
}

/// A binary of this workspace built beside the app (`latch-relay`, `latch`).
///
/// # Errors
/// When it has not been built.
pub fn workspace_binary(name: &str) -> Result<PathBuf, HarnessError> {
    let app = app_binary()?;
    let path = app.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::AppMissing(path))
    }
}

/// A `latch-relay` on a free loopback port with its own SQLite file; killed when dropped.
#[derive(Debug)]
pub struct Relay {
    child: Child,
    url: String,
}

impl Relay {
    /// Starts the relay with its database and log in `dir`.
    ///
    /// # Errors
    /// When it is not built or never says it listens.
    pub fn start(dir: &Path) -> Result<Self, HarnessError> {
        let log = File::create(dir.join("relay.log")).map_err(io_error("creating relay.log"))?;
        let mut child = Command::new(workspace_binary("latch-relay")?)
            .args(["--listen", "127.0.0.1:0", "--database"])
            .arg(dir.join("relay.db"))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(io_error("starting latch-relay"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io_error("reading the relay's output")(io::Error::other("no pipe")))?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            use io::BufRead as _;
            for line in io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("latch-relay listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        match rx.recv_timeout(DRIVER_START_TIMEOUT) {
            Ok(addr) => Ok(Self {
                child,
                url: format!("ws://{addr}"),
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(HarnessError::Timeout {
                    what: "the relay to listen".into(),
                    timeout: DRIVER_START_TIMEOUT,
                })
            }
        }
    }

    /// Its WebSocket URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `latch` CLI on the profiles under `home` and returns its stdout.
///
/// # Errors
/// When it cannot start or exits with an error (its stderr is in the error).
pub fn latch_cli(home: &Path, args: &[&str]) -> Result<String, HarnessError> {
    let out = Command::new(workspace_binary("latch")?)
        .env("LATCH_HOME", home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io_error("running latch"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HarnessError::Io {
            what: format!("latch {}", args.join(" ")),
            source: io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
        })
    }
}
