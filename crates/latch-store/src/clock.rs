//! Time for expiries: wall-clock milliseconds, behind a trait so tests can be deterministic.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::UnixMillis;

/// A source of "now" for `expires_at` comparisons.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> UnixMillis;
}

/// The system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMillis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that follows tokio's time: under `#[tokio::test(start_paused = true)]` it only
/// moves when the runtime auto-advances, so sweeper tests run instantly and exactly.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    epoch_ms: UnixMillis,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `epoch_ms` now and advancing with tokio time.
    pub fn starting_at(epoch_ms: UnixMillis) -> Self {
        Self {
            epoch_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> UnixMillis {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.start);
        self.epoch_ms
            .saturating_add(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
    }
}
