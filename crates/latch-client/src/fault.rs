//! Crash points for the fault tests: with the `fault-injection` feature (tests only) and
//! `LATCH_FAULT=<point>`, the process aborts at that point, as a power cut or `kill -9` would.

/// Aborts the process if `LATCH_FAULT` names this point (fault-injection builds only).
#[cfg(feature = "fault-injection")]
pub(crate) fn point(name: &str) {
    if std::env::var("LATCH_FAULT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}

/// Does nothing: shipped builds have no crash points.
#[cfg(not(feature = "fault-injection"))]
pub(crate) fn point(_name: &str) {}
