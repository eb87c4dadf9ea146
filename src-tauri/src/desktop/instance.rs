//! One app per data directory: a second launch asks the first to show its window and exits,
//! instead of failing on the profile's lock or connecting as the same device twice.
//!
//! The first instance holds `<home>/desktop.lock` and listens on `<home>/desktop.sock`; a
//! later one finds the lock taken, connects, writes `show` and leaves.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

/// What a launch found.
pub(crate) enum Claim {
    /// This process is the instance; keep the lock for the app's lifetime.
    First(InstanceLock),
    /// Another process is the instance and was asked to show itself.
    Second,
}

/// Held by the first instance.
pub(crate) struct InstanceLock {
    _lock: File,
    #[cfg(unix)]
    listener: Option<std::os::unix::net::UnixListener>,
}

/// The message a second launch sends.
const SHOW: &[u8] = b"show\n";

/// Claims the instance for `home`.
///
/// # Errors
/// The lock file cannot be created (the data directory is unusable).
pub(crate) fn claim(home: &Path) -> std::io::Result<Claim> {
    fs::create_dir_all(home)?;
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(home.join("desktop.lock"))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            notify_first(home);
            return Ok(Claim::Second);
        }
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    #[cfg(unix)]
    {
        let socket = home.join("desktop.sock");
        // A stale socket of a crashed instance: we hold the lock, so nobody listens on it.
        let _ = fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket).ok();
        Ok(Claim::First(InstanceLock {
            _lock: lock,
            listener,
        }))
    }
    #[cfg(not(unix))]
    Ok(Claim::First(InstanceLock { _lock: lock }))
}

fn notify_first(home: &Path) {
    #[cfg(unix)]
    if let Ok(mut stream) = std::os::unix::net::UnixStream::connect(home.join("desktop.sock")) {
        let _ = stream.write_all(SHOW);
    }
    #[cfg(not(unix))]
    let _ = home;
}

impl InstanceLock {
    /// Calls `show` whenever another launch asks, on a thread of its own.
    pub(crate) fn serve(&mut self, show: impl Fn() + Send + 'static) {
        #[cfg(unix)]
        if let Some(listener) = self.listener.take() {
            let _ = std::thread::Builder::new()
                .name("latch-instance".into())
                .spawn(move || {
                    for stream in listener.incoming().flatten() {
                        let mut buf = [0u8; SHOW.len()];
                        let mut stream = stream;
                        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(1)));
                        if stream.read_exact(&mut buf).is_ok() && buf == SHOW {
                            show();
                        }
                    }
                });
        }
        #[cfg(not(unix))]
        let _ = show;
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn a_second_launch_asks_the_first_to_show_itself() {
        let home = tempfile::tempdir().unwrap();
        let Claim::First(mut first) = claim(home.path()).unwrap() else {
            panic!("the first claim must win");
        };
        let (shown, was_shown) = mpsc::channel();
        first.serve(move || {
            let _ = shown.send(());
        });
        assert!(matches!(claim(home.path()).unwrap(), Claim::Second));
        was_shown
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the first instance was asked to show its window");
        drop(first);
        assert!(
            matches!(claim(home.path()).unwrap(), Claim::First(_)),
            "the lock is free once the first instance is gone"
        );
    }
}
