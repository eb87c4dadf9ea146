//! Launch milestones for the start-up benchmark: with `LATCH_REPORT_READY=1` the app prints
//! one line on stderr when the UI first reports an interactive screen. Nothing else is
//! printed, and nothing secret ever is.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static STARTED: OnceLock<Instant> = OnceLock::new();
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Marks the process start (called first thing in `run`).
pub(crate) fn started() {
    let _ = STARTED.set(Instant::now());
}

/// The UI is interactive: report it once.
pub(crate) fn ready() {
    if std::env::var_os("LATCH_REPORT_READY").is_none() || REPORTED.swap(true, Ordering::SeqCst) {
        return;
    }
    let ms = STARTED.get().map_or(0, |t| t.elapsed().as_millis());
    #[allow(clippy::print_stderr)]
    {
        eprintln!("latch-desktop: interactive after {ms} ms");
    }
}
